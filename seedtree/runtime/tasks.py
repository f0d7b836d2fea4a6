"""Keyed tasks: run ``fn(item)`` with its task node bound, wherever it runs.

This is the one mechanism behind every task integration (joblib, executors, pools,
Dask): task k gets ``tree / k`` from its position in the input, never from the worker that
runs it, so results do not depend on the number of workers, the backend or scheduling.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from ..core.keys import Key
from ..core.tree import SeedTree
from . import ambient, importhook
from .controllers import REGISTRY, Batch
from .policy import SharedGlobalsWatch
from .seeding import seed_globals
from .state import NodeBatch

__all__ = ["KeyedCall", "apply_call", "run_keyed", "run_keyed_batch", "run_watched_batch"]

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


def apply_call(call: Call) -> Any:
    """``fn(*args, **kwargs)`` for a ``(fn, args, kwargs)`` triple (a ``joblib.delayed`` task)."""
    fn, args, kwargs = call
    return fn(*args, **kwargs)


def run_keyed_batch(
    tree: SeedTree, keys: Any, fn: Callable[[Any], Any], items: Sequence[Any], modules: tuple[str, ...] = ()
) -> list[Any]:
    """``[run_keyed(fn, tree, k, (item,), {}, modules) for k, item in zip(keys, items)]``
    for consecutive work items (a DataLoader batch, a chunk of a parallel map; ``keys`` a
    list of int keys or an (n, depth) int array), at a fraction of the per-item cost:
    the words that seed every item's global RNGs are derived in one vectorised call, and
    item j is bound as ``(NodeBatch, j)``, its node made only if the item asks for it.
    The seed-on-import hook is armed once for the batch and moved from item to item, so
    a library first imported by item j is seeded from item j's node."""
    if len(items) != len(keys):
        raise ValueError(f"run_keyed_batch got {len(items)} items for {len(keys)} keys")
    nodes = NodeBatch(tree, keys)
    out: list[Any] = []
    append, set_binding = out.append, ambient.VAR.set
    # Item j's binding replaces item j-1's, and the one token taken before the first item
    # puts back the caller's binding after the last (or after a failure): the same
    # bindings as a bind/unbind per item, at less than half the cost.
    token = set_binding((nodes, 0))  # pragma: no mutate - only its token is used: each item binds itself
    try:
        if not modules:
            for j, item in enumerate(items):
                set_binding((nodes, j))
                append(fn(item))
            return out
        _seeded_loop(tree, keys, nodes, fn, items, modules, append)
        return out
    finally:
        ambient.VAR.reset(token)


def run_watched_batch(
    watch: SharedGlobalsWatch, tree: SeedTree, keys: Any, fn: Callable[[Any], Any], items: Sequence[Any]
) -> list[Any]:
    """``run_keyed_batch(tree, keys, fn, items)`` for a chunk of tasks that runs on a
    thread next to other chunks (the globals are shared there, so never seeded), then
    ``watch.check()``: a chunk costs a few microseconds more, a task nothing. Once the
    watch has seen a global RNG move the call is refused anyway, and later chunks return
    at once (an empty list) instead of running their tasks."""
    if watch.moved:
        return []
    out = run_keyed_batch(tree, keys, fn, items)
    watch.check()
    return out


def _seeded_loop(
    tree: SeedTree,
    keys: Any,
    nodes: NodeBatch,
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    modules: tuple[str, ...],
    append: Callable[[Any], None],
) -> None:
    """``run_keyed_batch``'s loop when global RNGs are seeded per item."""
    set_binding = ambient.VAR.set
    plan = REGISTRY.plan(modules)
    first = plan.batch(tree, keys)
    # Not mutated: without the batch, items are seeded from their rows or their node (the
    # same state), and the batch is released only to be recycled.
    batch: Batch | None = first  # pragma: no mutate
    # The common case (every controller seeds from the batch's rows) calls each row's
    # seeders right here: a method call per item would cost as much as a seeder.
    rows = first.seeders if not plan.node_seeders else None
    seen = len(sys.modules)  # pragma: no mutate
    armed: bool | None = None  # None: arm at the next item; False: nothing to watch for
    try:
        for j, item in enumerate(items):
            ref = (nodes, j)
            set_binding(ref)
            if len(sys.modules) != seen:
                # An earlier item imported something: a library it loaded joins the plan
                # (its words are not among the batch's rows), and the hook watches for
                # what is still missing.
                seen, armed = len(sys.modules), None
                replanned = REGISTRY.plan(modules)
                if replanned is not plan:
                    if batch is not None:
                        plan.release(batch)
                    plan, batch, rows = replanned, None, None
            if rows is not None:
                for seed in rows[j]:
                    seed()
            elif batch is not None:
                batch.seed(j, ref)
            else:
                plan.seed(nodes.node(j))
            if armed:
                importhook.retarget(ref)
            elif armed is None:
                armed = importhook.arm(ref)
            append(fn(item))
    finally:
        importhook.disarm()
        if batch is not None:
            plan.release(batch)


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
