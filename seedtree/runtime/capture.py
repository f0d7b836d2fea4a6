"""Capture, restore and isolate every RNG state: the registered libraries' global
generators and the ambient stream.

``restore`` is atomic: it validates every part of the state first and applies nothing
unless all of it is valid, so a damaged or foreign state raises ``ValueError`` naming
the part and leaves every generator as it was.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from contextlib import ContextDecorator
from typing import Any

from ..core.codec import CodecError, node_from_json, node_to_json
from ..core.tree import SeedTree
from . import ambient, importhook
from .controllers import REGISTRY, LibController

__all__ = ["STATE_FORMAT", "capture", "isolate", "restore"]

STATE_FORMAT = "seedtree.rng-state/1"


def capture(names: Iterable[str] | None = None) -> dict[str, Any]:
    """The states of every active library's global generator and of the ambient stream
    (only those named, with ``names``). The state holds only dicts, lists, strings, ints,
    floats and None (torch's generator states as lists of byte values), so ``json.dumps``
    and ``torch.save`` (``torch.load(weights_only=True)``) both take it as it is."""
    if isinstance(names, (str, bytes)):
        raise TypeError(f"capture() takes a list of library names, e.g. [{names!r}], not a single str")
    wanted = None if names is None else set(names)
    state: dict[str, Any] = {"format": STATE_FORMAT}
    for controller in REGISTRY.active():
        if wanted is None or controller.name in wanted:
            state[controller.name] = _plain(controller.capture())
    if wanted is None or "ambient" in wanted:
        saved = ambient.snapshot()
        state["ambient"] = {
            "default": _node_json(saved["default"]),
            "node": _node_json(saved["node"]),
            "state": saved["state"],
        }
    return state


def restore(state: dict[str, Any]) -> None:
    """Put back what ``capture`` returned. Libraries absent from ``state`` are untouched.

    The ambient part puts back the default node, and the generator position of the node
    ``rng()`` reads where ``restore`` is called when that is the captured node (a state
    captured inside ``bound(a)`` does not bind ``a`` elsewhere).

    Raises ``ValueError`` naming the first problem (not a captured state, an unknown
    library, a damaged part) before anything is changed."""
    steps, saved_ambient = _validated(state)
    for controller, value in steps:
        controller.restore(value)
    if saved_ambient is not None:
        ambient.restore_snapshot(saved_ambient)


def _validated(state: object) -> tuple[list[tuple[LibController, Any]], dict[str, Any] | None]:
    """Every part of ``state`` checked: (controller, state) pairs to apply, and the
    ambient snapshot (or None)."""
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"not a seedtree RNG state (expected a dict with format={STATE_FORMAT!r} from capture())")
    steps = []
    for name, value in state.items():
        if name in ("format", "ambient"):
            continue
        controller = REGISTRY.get(name)  # None for any name no controller has (an int, a tuple)
        if controller is None:
            raise ValueError(
                f"the state holds {name!r}, which no registered binding handles (no LibController has that "
                "name); register one first"
            )
        if sys.modules.get(controller.module) is None and not REGISTRY.installed(controller.module):
            continue  # captured where the library was used, restored where it is absent: nothing to put back
        importlib.import_module(controller.module)
        value = _device_tensors(controller, value)
        try:
            controller.validate(value)
            steps.append((controller, value))
        except ValueError as exc:
            raise ValueError(f"cannot restore the RNG state: {exc}; pass what seedtree.capture() returned") from None
    return steps, (_validated_ambient(state["ambient"]) if "ambient" in state else None)


def _validated_ambient(saved: object) -> dict[str, Any]:
    if not isinstance(saved, dict) or set(saved) != {"default", "node", "state"}:
        raise ValueError("cannot restore the RNG state: 'ambient' must hold {default, node, state}")
    try:
        default = None if saved["default"] is None else node_from_json(saved["default"])
        node = None if saved["node"] is None else node_from_json(saved["node"])
    except (CodecError, TypeError, ValueError) as exc:
        raise ValueError(f"cannot restore the RNG state: the ambient node is damaged ({exc})") from None
    gen_state = saved["state"]
    if gen_state is not None:
        if node is None:
            raise ValueError("cannot restore the RNG state: the ambient generator state has no node")
        probe = node.numpy()
        try:
            probe.bit_generator.state = gen_state
        except (TypeError, ValueError, KeyError, OverflowError) as exc:
            raise ValueError(f"cannot restore the RNG state: the ambient generator state is damaged ({exc})") from None
    return {"default": default, "node": node, "state": gen_state}


def _is_tensor(value: object) -> bool:
    return type(value).__module__ == "torch" and hasattr(value, "tolist")


def _plain(value: Any) -> Any:
    """A library's captured state with its tensors (torch's CPU state; the CUDA state, one
    per device) as lists of ints, so that the whole state is JSON."""
    if _is_tensor(value):
        return value.tolist()
    if isinstance(value, (list, tuple)) and any(_is_tensor(v) for v in value):
        return [_plain(v) for v in value]
    return value


def _bytes(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(b, int) and not isinstance(b, bool) and 0 <= b < 256 for b in value
    )


def _device_tensors(controller: LibController, value: Any) -> Any:
    """The CUDA states, read back from JSON as lists of byte values, as the tensors
    ``torch.cuda.set_rng_state_all`` takes (the CPU state's controller takes lists itself).
    Anything else is passed on as it is, for ``validate`` to judge."""
    if controller.name == "torch_cuda" and isinstance(value, list) and value and all(_bytes(v) for v in value):
        torch = sys.modules["torch"]
        return [torch.tensor(v, dtype=torch.uint8) for v in value]
    return value


def _node_json(node: SeedTree | None) -> dict[str, Any] | None:
    return None if node is None else node_to_json(node)


class isolate(ContextDecorator):
    """Capture every RNG state on entry and restore it on exit (also on error); works as
    ``with seedtree.isolate():`` and as ``@seedtree.isolate()`` (re-entrant). A library
    first imported inside the block is put back to the state it had on import.
    ``ambient=False`` leaves the ambient stream alone (integrations whose tasks bind their
    own nodes use it)."""

    def __init__(self, ambient: bool = True) -> None:
        self._names = None if ambient else list(REGISTRY.all())
        self._saved: list[dict[str, Any]] = []

    def __enter__(self) -> isolate:
        # Each controller's fastest snapshot (not the portable capture()): this runs once
        # per batch of an in-process DataLoader. What it took needs no validation.
        saved: dict[str, Any] = {
            c.name: c.snapshot() for c in REGISTRY.active() if self._names is None or c.name in self._names
        }
        if self._names is None:
            saved["ambient"] = ambient.snapshot()
        self._saved.append(saved)
        return self

    def __exit__(self, *exc: object) -> None:
        saved = self._saved.pop()
        for name, value in saved.items():
            controller = REGISTRY.get(name)
            if controller is not None:
                controller.put_back(value)
        if "ambient" in saved:
            ambient.restore_snapshot(saved["ambient"])
        for controller in REGISTRY.active():
            if controller.name not in saved:
                fresh, value = importhook.fresh_state(controller.name)
                if fresh:
                    controller.restore(value)
