"""The one execution policy: may a worker's tasks seed the global RNGs, and which?

Every integration (joblib, pools and executors, Dask, Ray, threads, the DataLoader) asks
the same two questions through this module:

- ``modules_for(bind_globals, where, what)``: which libraries' global generators a task
  should seed. ``bind_globals`` is one type, ``BindGlobals``: ``None`` (the default) means
  *yes where each worker has its process's globals to itself* (process workers, inline
  runs) and *no* elsewhere; ``True`` asks for them (an error on threads, which share the
  globals); ``False`` refuses them; a collection of module names picks libraries.
  Seeded libraries are those the calling process has imported (the worker imports them
  too), so a task that imports torch itself is still seeded.
- ``shared_globals_problem()``: run where a task runs, says why this process's globals are
  shared with other concurrent work (another thread, another Dask worker in the process),
  or None. Integrations that only learn their layout at run time (Dask) check it there:
  they pass ``where="task"`` to ``modules_for`` and call ``task_modules`` in each task,
  which seeds the globals by default only where the task has them to itself.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable
from typing import Any, Literal

from .controllers import REGISTRY

__all__ = ["GLOBALS_ERROR", "BindGlobals", "Where", "modules_for", "shared_globals_problem", "task_modules"]

BindGlobals = bool | Iterable[str] | None
Where = Literal["threads", "processes", "inline", "other", "task"]
"""Where tasks run: threads of this process, their own processes, this very process one
at a time, somewhere unknown (then the globals are not seeded unless asked), or known
only to each task where it runs (``task``: decided there by ``task_modules``)."""

GLOBALS_ERROR = (
    "bind_globals=True seeds the global RNGs of random, numpy and torch per task, which is only "
    "safe where nothing else in the process draws from them meanwhile, but {problem}. Draw from "
    "seedtree.rng() instead (bind_globals=False: the ambient stream is per task and safe on any "
    "thread), or run one-thread worker processes."
)

_THREADS_ERROR = (
    "bind_globals=True cannot be used with {what}: threads share the global RNGs of random, "
    "numpy and torch, so per-task seeding would race and results would depend on scheduling. "
    "Use seedtree.rng() inside the task (the ambient stream is per-thread and safe), or a "
    "process backend."
)


def modules_for(bind_globals: BindGlobals, where: Where, what: str) -> tuple[str, ...]:
    """The modules whose global generators each task seeds (see the module docstring).
    ``what`` names the executor in error messages."""
    if bind_globals is None:
        bind_globals = where in ("processes", "inline", "task")
    if isinstance(bind_globals, str):
        raise TypeError(f"bind_globals takes True/False/None or a list of module names, e.g. ({bind_globals!r},)")
    if isinstance(bind_globals, bool):
        if bind_globals and where == "threads":
            raise ValueError(_THREADS_ERROR.format(what=what))
        return REGISTRY.loaded_modules() if bind_globals else ()
    modules = tuple(bind_globals)
    if modules and where == "threads":
        raise ValueError(_THREADS_ERROR.format(what=what))
    known = {c.module for c in REGISTRY.all().values()}
    unknown = [m for m in modules if m not in known]
    if unknown:
        raise ValueError(
            f"bind_globals names {unknown}, whose global RNG no seedtree binding seeds (no LibController is "
            "registered for it); "
            f"name some of {sorted(known)}, or register a seedtree.LibController for it"
        )
    return modules


def task_modules(modules: tuple[str, ...], required: bool, advice: str = "") -> tuple[str, ...]:
    """Run where a task runs (for ``where="task"``): the modules whose globals this task
    seeds. Where the globals are shared (``shared_globals_problem``), an explicit request
    (``required``: the user passed ``bind_globals``) raises RuntimeError naming the problem
    (``advice`` appended), and the default seeds none: the task keeps its ambient stream,
    and unmodified code drawing from the globals is not reproducible there (documented)."""
    if not modules:
        return ()
    problem = shared_globals_problem()
    if problem is None:
        return modules
    if required:
        raise RuntimeError(GLOBALS_ERROR.format(problem=problem) + advice)
    return ()


def shared_globals_problem() -> str | None:
    """Why the global RNGs of the process running this code are shared with other
    concurrent work, or None if they are this task's alone."""
    distributed = sys.modules.get("distributed")
    if distributed is not None:
        try:
            worker = distributed.get_worker()
        except ValueError:
            worker = None
        if worker is not None:
            return dask_worker_problem(worker)
    if threading.current_thread() is not threading.main_thread():
        return (
            f"this task runs on the thread {threading.current_thread().name!r}, not the main thread "
            "(several tasks may run at once in this process)"
        )
    return None


def dask_worker_problem(worker: Any) -> str | None:
    """Why a Dask worker does not have its process's global RNGs to itself, or None."""
    nthreads = worker.state.nthreads
    if nthreads != 1:
        return f"the Dask worker {worker.name!r} runs {nthreads} threads, which share those globals"
    return dask_process_problem(worker)


def dask_process_problem(worker: Any) -> str | None:
    """Why a Dask worker shares its process with other workers or the scheduler, or None."""
    from distributed import Scheduler, Worker
    from distributed.core import Status

    gone = (Status.closing, Status.closed, Status.failed)
    neighbours = [w for w in list(Worker._instances) if w is not worker and w.status not in gone]
    schedulers = [s for s in list(Scheduler._instances) if s.status not in gone]
    if neighbours or schedulers:
        return (
            f"the Dask worker {worker.name!r} shares its process with other workers or with the scheduler "
            "and client (LocalCluster(processes=False)?)"
        )
    return None
