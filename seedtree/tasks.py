"""Keyed tasks: run ``fn(item)`` with its task node bound, wherever it runs.

This is the one mechanism behind every task integration (joblib, executors, pools,
Dask): task k gets ``tree / k`` from its position in the input, never from the worker that
runs it, so results do not depend on the number of workers, the backend or scheduling.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from . import ambient, bindings
from .keys import Key
from .tree import SeedTree

Kind = Literal["threads", "processes", "inline", "other"]

_THREAD_ERROR = (
    "bind_globals=True cannot be used with {what}: threads share the global RNGs of random, "
    "numpy and torch, so per-task seeding would race and results would depend on scheduling. "
    "Use seedtree.rng() inside the task (the ambient stream is per-thread and safe), or a "
    "process backend."
)


def resolve_bind_globals(bind_globals: bool | None, kind: Kind, what: str) -> tuple[str, ...]:
    """Which libraries' globals a task on this kind of executor should seed: by default
    those this (parent) process has loaded, for processes and inline runs, and none
    otherwise; asking for them on threads is an error."""
    if bind_globals is None:
        bind_globals = kind in ("processes", "inline")
    elif bind_globals and kind == "threads":
        raise ValueError(_THREAD_ERROR.format(what=what))
    return bindings.loaded_modules() if bind_globals else ()


def run_keyed(
    fn: Callable[..., Any], tree: SeedTree, key: Key, args: tuple, kwargs: dict, modules: tuple[str, ...]
) -> Any:
    """Call ``fn(*args, **kwargs)`` with ``tree / key`` as the ambient node, and with the
    global RNGs of ``modules`` (e.g. ``("numpy", "random", "torch")``) seeded from it.
    The child is derived where the task runs, from the (shared, already mixed) tree."""
    node = tree / key
    token = ambient.bind(node)
    try:
        if modules:
            bindings.seed_globals(node, modules)
        return fn(*args, **kwargs)
    finally:
        if modules:
            bindings.disarm_import_hook()
        ambient.unbind(token)


def run_keyed_batch(
    tree: SeedTree, keys: list[int], calls: list[tuple[Callable[..., Any], tuple, dict]], modules: tuple[str, ...]
) -> list[Any]:
    """``[run_keyed(fn, tree, k, args, kwargs, modules) ...]`` for consecutive work items,
    with the words that seed every item's global RNGs derived in one vectorised call (a
    DataLoader batch, a chunk of a parallel map): the same results, at a fraction of the
    per-item cost."""
    first = bindings.globals_plan(modules) if modules else None
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
                        plan, seen = bindings.globals_plan(modules), len(sys.modules)
                    plan.seed(node, rows[j] if plan is first and rows is not None else None)
                    bindings.arm_import_hook(node)
                out.append(fn(*args, **kwargs))
            finally:
                ambient.unbind(token)
    finally:
        if first is not None:
            bindings.disarm_import_hook()
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
