"""joblib integration: keyed parallel maps whose results do not depend on the backend.

    from seedtree.joblib import parallel_map
    results = parallel_map(simulate, params, tree, n_jobs=4, backend="loky")

Task k runs with ``tree / k`` bound: ``seedtree.rng()`` inside it is that task's stream,
and on process backends the global RNGs (random, numpy's global, torch) are seeded from it
too, so unmodified code that calls ``np.random`` becomes deterministic per task. Results
are bit-identical for any backend (threading, loky, multiprocessing, dask, sequential)
and any ``n_jobs``. The caller's own global RNG state is left as it was.

Threads share the process's global RNGs, so on a thread backend (``backend="threading"``,
``prefer="threads"``, ``require="sharedmem"``, with ``n_jobs`` > 1) they are never
seeded, and a call whose tasks draw from them (or seed them) anyway is refused: it raises
``RuntimeError`` naming the fix (``seedtree.rng()`` in the task, or a process backend)
instead of returning results that depend on thread scheduling, and puts the caller's
global RNGs back as they were before the call (see ``SharedGlobalsWatch``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..core.optional import require
from ..core.tree import SeedTree
from ..runtime.capture import isolate
from ..runtime.policy import SharedGlobalsWatch, Where, modules_for
from ..runtime.tasks import apply_call, run_keyed_batch, run_watched_batch
from ._checks import check_callable, check_items, check_tree

__all__ = ["Parallel", "delayed", "parallel_map"]

joblib = require("joblib", "seedtree.joblib")

delayed = joblib.delayed


def _backend_kind(backend: Any, n_jobs: int | None, prefer: str | None, require: str | None) -> tuple[Where, str]:
    from joblib import _parallel_backends as pb
    from joblib.parallel import get_active_backend

    if backend is None:
        # The hints choose the backend when none is named (prefer="threads" is threads).
        backend = get_active_backend(prefer=prefer, require=require)[0]
    if isinstance(backend, str):
        name = backend
        instance = joblib.parallel.BACKENDS.get(backend)
        instance = instance() if isinstance(instance, type) else instance
    else:
        name, instance = type(backend).__name__, backend
    if joblib.effective_n_jobs(n_jobs) == 1 or isinstance(instance, pb.SequentialBackend):
        return "inline", name
    if require == "sharedmem" or isinstance(instance, pb.ThreadingBackend) or getattr(instance, "uses_threads", False):
        return "threads", name
    if isinstance(instance, (pb.LokyBackend, pb.MultiprocessingBackend)):
        return "processes", name
    return "other", name


class Parallel:
    """``joblib.Parallel`` whose k-th task runs with ``tree / k`` bound.

        Parallel(tree, n_jobs=2)(delayed(f)(x) for x in xs)

    reads like the joblib loop it replaces. ``bind_globals`` defaults to True on process
    backends and sequential runs and to False otherwise (True with threads is an error);
    other keyword arguments go to ``joblib.Parallel``. On threads (``n_jobs`` > 1), a call
    whose tasks moved a global RNG raises ``RuntimeError`` instead of returning (see the
    module docstring).
    """

    def __init__(self, tree: SeedTree, bind_globals: bool | None = None, **parallel_kwargs: Any) -> None:
        check_tree(tree, "Parallel")
        self.tree = tree
        self.bind_globals = bind_globals
        self.parallel_kwargs = parallel_kwargs

    def __call__(self, tasks: Iterable[tuple[Callable[..., Any], tuple, dict]]) -> list[Any]:
        kwargs = self.parallel_kwargs
        if kwargs.get("return_as", "list") != "list":
            raise ValueError(
                "seedtree's Parallel returns a list (return_as='list'): a lazy result would outlive the "
                "restoring of your global RNGs; iterate the list, or use joblib.Parallel with seedtree.rng()"
            )
        kind, name = _backend_kind(
            kwargs.get("backend"), kwargs.get("n_jobs"), kwargs.get("prefer"), kwargs.get("require")
        )
        modules = modules_for(self.bind_globals, kind, f"the joblib backend {name!r}")
        calls = list(tasks)
        if kind == "threads":
            return self._on_threads(calls, kwargs, name)
        # Consecutive tasks travel in chunks (guided: long first, single tasks last, see
        # _chunks): a chunk derives the words
        # for all its tasks' global RNGs at once and ships the tree once. Results and
        # streams are those of one task per item; only the cost changes.
        chunks: Iterator[tuple[Any, tuple[Any, ...], dict[str, Any]]] = (
            (run_keyed_batch, (self.tree, list(range(lo, hi)), apply_call, calls[lo:hi], modules), {})
            for lo, hi in _chunks(len(calls), kwargs.get("n_jobs"))
        )
        kwargs = {"batch_size": 1, **kwargs}  # the chunks are the batches: joblib's own would unbalance the tail
        if modules and kind == "inline":  # tasks seed this very process's globals: put the caller's back
            with isolate(ambient=False):
                parts = joblib.Parallel(**kwargs)(chunks)
        else:
            parts = joblib.Parallel(**kwargs)(chunks)
        return [result for part in parts for result in part]

    def _on_threads(self, calls: list[Any], kwargs: dict[str, Any], name: str) -> list[Any]:
        """The tasks on threads, watched: the same chunks, results and streams as
        ``__call__``'s; refused (RuntimeError) if a global RNG moved meanwhile."""
        watch = SharedGlobalsWatch(f"the joblib backend {name!r}", 'backend="loky" or "multiprocessing"')
        chunks: Iterator[tuple[Any, tuple[Any, ...], dict[str, Any]]] = (
            (run_watched_batch, (watch, self.tree, list(range(lo, hi)), apply_call, calls[lo:hi]), {})
            for lo, hi in _chunks(len(calls), kwargs.get("n_jobs"))
        )
        parts = joblib.Parallel(**{"batch_size": 1, **kwargs})(chunks)
        watch.finish()  # every task has stopped: joblib returned all the chunks
        return [result for part in parts for result in part]


def _chunks(n_tasks: int, n_jobs: int | None) -> Iterator[tuple[int, int]]:
    """``(lo, hi)`` ranges of consecutive tasks, by guided self-scheduling: each chunk
    takes half of what remains per worker (at most 256 tasks, at least one), so chunks
    are long while much is left (a dispatch costs about 0.3 ms on loky: few of them) and
    the last ones are single tasks, which finish close together (no worker idles through
    a long last chunk)."""
    workers = max(1, joblib.effective_n_jobs(n_jobs))
    lo = 0
    while lo < n_tasks:
        size = max(1, min(256, (n_tasks - lo) // (2 * workers)))
        yield lo, lo + size
        lo += size


def parallel_map(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    tree: SeedTree,
    n_jobs: int | None = None,
    backend: Any = None,
    bind_globals: bool | None = None,
    **parallel_kwargs: Any,
) -> list[Any]:
    """``[fn(item) for item in items]`` in parallel, item k with ``tree / k`` bound.

    Guarantee: the result list is bit-identical for every backend and ``n_jobs`` (given
    ``fn`` draws only from ``seedtree.rng()``, or from the global RNGs when they are bound).
    On a thread backend with ``n_jobs`` > 1 the global RNGs are shared and never bound: a
    call whose tasks draw from them is refused with ``RuntimeError`` (one line: use
    ``seedtree.rng()`` in ``fn``, or a process backend such as loky), after putting the
    caller's global RNGs back as they were; it never returns scheduling-dependent results.
    A non-callable ``fn``, a single str as ``items`` or a non-tree is refused before anything runs.
    """
    check_callable(fn, "seedtree.joblib.parallel_map()")
    check_tree(tree, "seedtree.joblib.parallel_map()")
    items = check_items(items, "seedtree.joblib.parallel_map()")
    return Parallel(tree, bind_globals=bind_globals, n_jobs=n_jobs, backend=backend, **parallel_kwargs)(
        delayed(fn)(item) for item in items
    )
