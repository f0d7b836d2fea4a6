"""Keyed tasks: run ``fn(item)`` with its task node bound, wherever it runs.

This is the one mechanism behind every task integration (joblib, executors, pools,
Dask): task k gets ``tree / k`` from its position in the input, never from the worker that
runs it, so results do not depend on the number of workers, the backend or scheduling.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from ..core.keys import Key
from ..core.tree import SeedTree
from . import ambient, importhook
from .controllers import REGISTRY, Batch
from .seeding import seed_globals

__all__ = ["KeyedCall", "run_keyed", "run_keyed_batch"]

Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


def run_keyed(
    fn: Callable[..., Any],
    tree: SeedTree,
    key: Key,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    modules: tuple[str, ...],
) -> Any:
    """Call ``fn(*args, **kwargs)`` with ``tree / key`` as the ambient node, and with the
    global RNGs of ``modules`` (e.g. ``("numpy", "random", "torch")``) seeded from it.
    The child is derived where the task runs, from the (shared, already mixed) tree."""
    node = tree / key
    token = ambient.bind(node)
    try:
        if modules:
            seed_globals(node, modules)
        return fn(*args, **kwargs)
    finally:
        if modules:
            importhook.disarm()
        ambient.unbind(token)


def run_keyed_batch(tree: SeedTree, keys: list[int], calls: list[Call], modules: tuple[str, ...]) -> list[Any]:
    """``[run_keyed(fn, tree, k, args, kwargs, modules) ...]`` for consecutive work items,
    with the words that seed every item's global RNGs derived in one vectorised call (a
    DataLoader batch, a chunk of a parallel map): the same results, at a fraction of the
    per-item cost. The seed-on-import hook is armed once for the batch and moved from
    item to item, so a library first imported by item j is seeded from item j's node."""
    bind, unbind = ambient.bind, ambient.unbind
    out = []
    nodes = tree.children(keys)
    if not modules:
        for node, (fn, args, kwargs) in zip(nodes, calls, strict=True):
            token = bind(node)
            try:
                out.append(fn(*args, **kwargs))
            finally:
                unbind(token)
        return out
    plan = REGISTRY.plan(modules)
    batch: Batch | None = plan.batch(tree, keys)
    seen = len(sys.modules)
    armed: bool | None = None  # None: arm at the next item; False: nothing to watch for
    try:
        for j, (node, (fn, args, kwargs)) in enumerate(zip(nodes, calls, strict=True)):
            token = bind(node)
            try:
                if len(sys.modules) != seen:
                    # An earlier item imported something: a library it loaded joins the
                    # plan (its words are not among the batch's rows), and the hook
                    # watches for what is still missing.
                    seen, armed = len(sys.modules), None
                    replanned = REGISTRY.plan(modules)
                    if replanned is not plan:
                        if batch is not None:
                            plan.release(batch)
                        plan, batch = replanned, None
                if batch is not None:
                    batch.seed(j, node)
                else:
                    plan.seed(node)
                if armed is None:
                    armed = importhook.arm(node)
                elif armed:
                    importhook.retarget(node)
                out.append(fn(*args, **kwargs))
            finally:
                unbind(token)
    finally:
        importhook.disarm()
        if batch is not None:
            plan.release(batch)
    return out


class KeyedCall:
    """A picklable ``fn`` that runs as ``run_keyed(fn, tree, key, ...)``; executors that
    take plain callables (``Executor.submit``, ``Pool.starmap``) use it."""

    __slots__ = ("fn", "tree", "key", "modules")

    def __init__(self, fn: Callable[..., Any], tree: SeedTree, key: Key, modules: tuple[str, ...]) -> None:
        self.fn = fn
        self.tree = tree
        self.key = key
        self.modules = modules

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return run_keyed(self.fn, self.tree, self.key, args, kwargs, self.modules)

    def __reduce__(self) -> tuple[Any, ...]:
        return (KeyedCall, (self.fn, self.tree, self.key, self.modules))
