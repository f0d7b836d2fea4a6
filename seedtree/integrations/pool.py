"""multiprocessing and concurrent.futures: per-worker initialisers and keyed maps.

Two ways to get reproducible randomness from a pool:

- ``initializer(tree)``: each pool process binds its own node ``tree / "worker" / ...``
  (its global RNGs and ``seedtree.rng()``). Distinct for every process of the program and
  reproducible for a program that starts its processes in the same order, under fork,
  spawn and forkserver. Results still depend on which worker ran which task.
- ``keyed_map(executor, fn, items, tree)``: item k runs with ``tree / k`` bound, so results
  are the same for any executor, pool size or start method (layout invariant).
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import multiprocessing.pool
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from ..core.tree import SeedTree
from ..runtime.policy import SharedGlobalsWatch, Where, modules_for
from ..runtime.seeding import bind_process
from ..runtime.tasks import KeyedCall
from ._checks import check_callable, check_items, check_tree

__all__ = ["initializer", "keyed_map", "worker_node"]


def worker_node(tree: SeedTree) -> SeedTree:
    """This process's worker node, ``tree / "worker" / i / j ...`` from multiprocessing's
    process identity (the child counters along the chain of parents). Every process a
    program starts has a distinct identity, assigned in start order; the main process gets
    ``tree / "worker"``."""
    check_tree(tree, "seedtree.pool.worker_node()")
    identity = multiprocessing.current_process()._identity
    return tree.child("worker", *identity)


class initializer:
    """A picklable pool initialiser: ``Pool(initializer=initializer(tree))`` or
    ``ProcessPoolExecutor(initializer=initializer(tree))``.

    In each worker it binds ``worker_node(tree)`` as the ambient node and (with
    ``bind_globals``, the default) seeds random, numpy's global and torch from it, then
    calls ``then(*then_args)`` if given (your own initialiser, chained, not replaced).
    """

    def __init__(
        self,
        tree: SeedTree,
        bind_globals: bool = True,
        then: Callable[..., Any] | None = None,
        then_args: tuple[Any, ...] = (),
    ) -> None:
        check_tree(tree, "seedtree.pool.initializer()")
        if then is not None:
            check_callable(then, "seedtree.pool.initializer()", "then (your own initialiser)")
        if not isinstance(then_args, tuple):
            raise TypeError(f"seedtree.pool.initializer(): then_args must be a tuple, got {type(then_args).__name__}")
        self.tree, self.then, self.then_args = tree, then, then_args
        # Made in the parent: seed in each worker what the parent uses (see seed_globals).
        self.modules = modules_for(bind_globals, "processes", "a pool initializer")

    def __call__(self) -> None:
        node = worker_node(self.tree)
        bind_process(node, self.modules)
        if self.then is not None:
            self.then(*self.then_args)


def _executor_kind(executor: Any) -> tuple[Where, str]:
    name = type(executor).__name__
    if isinstance(executor, ThreadPoolExecutor) or isinstance(executor, multiprocessing.pool.ThreadPool):
        return "threads", name
    if isinstance(executor, (ProcessPoolExecutor, multiprocessing.pool.Pool)):
        return "processes", name
    return "other", name


def keyed_map(
    executor: Executor | multiprocessing.pool.Pool,
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    tree: SeedTree,
    bind_globals: bool | None = None,
) -> list[Any]:
    """``[fn(item) for item in items]`` on ``executor``, item k with ``tree / k`` bound.

    Works with any ``concurrent.futures.Executor`` and with ``multiprocessing.Pool``.
    ``bind_globals`` defaults to True for process pools and False otherwise (True on a
    thread pool is an error: threads share the global RNGs). The result list is the same
    for every executor, worker count and start method. Bad arguments (an executor that is
    neither, a non-callable ``fn``, a single str as ``items``, a non-tree) are refused
    before anything is submitted.

    On a thread pool (``ThreadPoolExecutor``, ``multiprocessing.pool.ThreadPool``) the
    global RNGs are shared by the tasks: a call whose tasks drew from them (or seeded them)
    raises ``RuntimeError`` naming the fix (``seedtree.rng()`` in ``fn``, or a process
    pool) once every task has stopped, instead of returning scheduling-dependent results,
    and puts the caller's global RNGs back as they were before the call.
    """
    where = "seedtree.pool.keyed_map()"
    if not isinstance(executor, (Executor, multiprocessing.pool.Pool)):
        raise TypeError(
            f"{where}: executor must be a concurrent.futures.Executor or a multiprocessing Pool, got "
            f"{type(executor).__name__}; the order is keyed_map(executor, fn, items, tree)"
        )
    check_callable(fn, where)
    check_tree(tree, where)
    items = check_items(items, where)
    kind, name = _executor_kind(executor)
    modules = modules_for(bind_globals, kind, f"a {name}")
    calls = [(KeyedCall(fn, tree, k, modules), item) for k, item in enumerate(items)]
    watch = None
    if kind == "threads" and _workers(executor) != 1:  # one thread runs one task at a time: nothing races
        watch = SharedGlobalsWatch(f"a {name}", "a ProcessPoolExecutor or multiprocessing.Pool")
    if isinstance(executor, multiprocessing.pool.Pool):
        results: list[Any] = executor.starmap(_apply, calls)
    else:
        futures = [executor.submit(call, item) for call, item in calls]
        if watch is not None:  # no task may still run (and draw) when the caller gets the answer
            concurrent.futures.wait(futures)
        results = [f.result() for f in futures]
    if watch is not None:
        watch.finish()
    return results


def _workers(executor: Any) -> int | None:
    """How many threads a thread pool runs (None if it does not say)."""
    workers = getattr(executor, "_max_workers", None) or getattr(executor, "_processes", None)
    return workers if isinstance(workers, int) else None


def _apply(call: KeyedCall, item: Any) -> Any:
    return call(item)
