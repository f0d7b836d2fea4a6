"""Keyed tasks: run ``fn(item)`` with its task node bound, wherever it runs.

This is the one mechanism behind every task integration (joblib, executors, pools,
Dask): task k gets ``tree / k`` from its position in the input, never from the worker that
runs it, so results do not depend on the number of workers, the backend or scheduling.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.keys import Key
from ..core.tree import SeedTree
from . import ambient, importhook
from .controllers import REGISTRY
from .seeding import seed_globals

__all__ = ["KeyedCall", "run_keyed", "run_keyed_batch"]

Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


def run_keyed(
    fn: Callable[..., Any], tree: SeedTree, key: Key, args: tuple[Any, ...], kwargs: dict[str, Any], modules: tuple[str, ...]
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


def run_keyed_batch(
    tree: SeedTree, keys: list[int], calls: list[Call], modules: tuple[str, ...]
) -> list[Any]:
    """``[run_keyed(fn, tree, k, args, kwargs, modules) ...]`` for consecutive work items,
    with the words that seed every item's global RNGs derived in one vectorised call (a
    DataLoader batch, a chunk of a parallel map): the same results, at a fraction of the
    per-item cost."""
    first = REGISTRY.plan(modules) if modules else None
    rows = None
    if first is not None and first.count:
        rows = tree.states(np.asarray(keys, dtype=np.int64), first.count, first.start)
    out = []
    plan, seen = first, len(sys.modules)
    try:
        for j, (key, (fn, args, kwargs)) in enumerate(zip(keys, calls, strict=True)):
            node = tree / key
            token = ambient.bind(node)
            try:
                if plan is not None:
                    if len(sys.modules) != seen:
                        # An earlier item imported something: a library it loaded joins the
                        # plan (its words are not among the precomputed rows).
                        plan, seen = REGISTRY.plan(modules), len(sys.modules)
                    plan.seed(node, rows[j] if plan is first and rows is not None else None)
                    importhook.arm(node)
                out.append(fn(*args, **kwargs))
            finally:
                ambient.unbind(token)
    finally:
        if first is not None:
            importhook.disarm()
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
