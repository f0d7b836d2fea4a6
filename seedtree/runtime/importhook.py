"""Seed a registered library the moment it is first imported.

While a task's globals are bound, a library that the task imports for the first time
(``import torch`` inside the task) would otherwise start on its fixed default seed, the
same in every worker process. The hook, armed with the task's node, seeds it from that
node right after its import; the state it had on import is kept in
``STATE.hook_fresh`` so that ``isolate`` can put it back.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from .controllers import REGISTRY
from .state import STATE, NodeRef, resolve

__all__ = ["arm", "disarm", "fresh_state", "retarget"]


class _SeedOnImport:
    """The meta-path finder; it reads what to watch for from ``STATE``."""

    def find_spec(self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None) -> Any:
        if name not in STATE.hook_pending or STATE.hook_node is None:
            return None
        STATE.hook_pending = STATE.hook_pending - {name}  # the find_spec below must not come back here
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run_module(module)
            _seed_fresh(name)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]  # this spec's own loader
        return spec


def _seed_fresh(module: str) -> None:
    ref = STATE.hook_node
    if ref is None:
        return
    node = resolve(ref)
    for controller in REGISTRY.all().values():
        if controller.module == module and controller.usable():
            STATE.hook_fresh[controller.name] = controller.capture()
            controller.seed(node)


_HOOK = _SeedOnImport()


def arm(node: NodeRef) -> bool:
    """Until ``disarm()``, seed registered libraries that are installed but not yet
    imported from ``node`` when they get imported. Returns whether any is watched for."""
    missing = REGISTRY.missing_modules()
    if not missing:
        STATE.hook_node = None
        return False
    STATE.hook_pending = missing
    STATE.hook_node = node
    if _HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _HOOK)
    return True


def retarget(node: NodeRef) -> None:
    """Seed from ``node`` from now on, watching for the same libraries (a batch arms the
    hook once, then moves it from item to item: what item j imports first is seeded from
    item j's node; a ``(node_batch, j)`` reference is resolved only if an import happens)."""
    STATE.hook_node = node


def disarm() -> None:
    """Stop seeding libraries at import (a keyed task or batch calls this when done)."""
    STATE.hook_node = None
    STATE.hook_pending = frozenset()


def fresh_state(name: str) -> tuple[bool, Any]:
    """``(True, state)`` if the controller ``name``'s library was first imported while the
    hook was armed (its state just after import), else ``(False, None)``."""
    if name in STATE.hook_fresh:
        return True, STATE.hook_fresh[name]
    return False, None
