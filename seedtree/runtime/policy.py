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
- ``SharedGlobalsWatch``: where tasks run on threads of one process next to each other
  (joblib's threading backend, thread pools, ``run_threads``), the globals are never
  seeded per task, and a task that draws from them anyway would make the results depend
  on thread scheduling. The watch fingerprints every loaded global RNG when the call
  starts, again after each chunk of tasks and once all have stopped; if any moved, the
  call puts the caller's globals back and raises ``RuntimeError`` (one line naming the
  fix) instead of returning the results. Runs of one task at a time (``n_jobs=1``, the
  sequential backend) and process workers are not watched: their globals are not shared.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable
from typing import Any, Literal

from .controllers import REGISTRY

__all__ = [
    "GLOBALS_ERROR",
    "BindGlobals",
    "SharedGlobalsWatch",
    "Where",
    "modules_for",
    "shared_globals_problem",
    "task_modules",
]

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


_DRAWN_ERROR = (
    "{what} ran tasks on threads next to each other, and the global RNG of {libraries} changed meanwhile "
    "(a task, or another thread, drew from it or seeded it): threads share the process-wide global RNGs, so "
    "the results would depend on thread scheduling and are not returned. Draw from seedtree.rng() inside the "
    "task (its own stream on any thread), or run the tasks in processes ({fix}). The global RNGs were put back "
    "as they were before the call."
)

_LABELS = {
    "random": "python's random",
    "numpy": "numpy (np.random)",
    "torch": "torch (CPU)",
    "torch_cuda": "torch (CUDA)",
}


class SharedGlobalsWatch:
    """Refuses a threaded run whose tasks moved the shared global RNGs (see the module
    docstring). Made in the caller's thread before any task starts::

        watch = SharedGlobalsWatch("the joblib backend 'threading'", 'backend="loky"')
        ... run the tasks on threads, calling watch.check() after each chunk ...
        watch.finish()  # in the caller, once every task has stopped

    ``check`` is safe on any thread (fingerprints only read the generators) and costs a
    few microseconds; ``moved`` lets a worker skip the tasks of a call that is refused
    anyway. A library first imported during the call is watched from the first check
    that sees it. Guarantee: ``finish`` returns only if every watched global RNG was, at
    every check, where it was at the start; else the caller's global RNGs are put back
    to their states at the start (libraries imported during the call are left as the
    tasks left them) and ``RuntimeError`` is raised. So a task that draws from (or seeds)
    a global always refuses the call; one that puts the global back as it found it
    (``seedtree.isolate()`` around its draws) is caught only if a check falls inside it,
    though it races all the same. The watch cannot tell a task's draw from another
    thread's: any draw while the call runs refuses it. A task's own exception is not the
    watch's business: it propagates as usual, the globals as the tasks left them."""

    __slots__ = ("what", "fix", "saved", "baseline", "moved", "_lock")

    def __init__(self, what: str, fix: str) -> None:
        self.what, self.fix = what, fix
        self._lock = threading.Lock()
        self.moved: list[str] = []
        """Names of the controllers whose generator moved, in the order seen."""
        self.saved = [(c, c.snapshot()) for c in REGISTRY.active()]
        self.baseline: dict[str, Any] = {}
        for controller, _ in self.saved:
            fingerprint = controller.fingerprint()
            if fingerprint is not None:
                self.baseline[controller.name] = fingerprint

    def check(self) -> bool:
        """Compare every loaded global RNG with its state at the start; True if any moved."""
        for controller in REGISTRY.active():
            fingerprint = controller.fingerprint()
            if fingerprint is None:
                continue
            with self._lock:
                start = self.baseline.setdefault(controller.name, fingerprint)
                if fingerprint != start and controller.name not in self.moved:
                    self.moved.append(controller.name)
        return bool(self.moved)

    def finish(self) -> None:
        """Run in the caller once every task has stopped: a last ``check``; if anything
        moved, put the caller's global RNGs back and raise RuntimeError naming the fix."""
        if not self.check():
            return
        for controller, snapshot in self.saved:
            controller.put_back(snapshot)
        labels = [_LABELS.get(name, name) for name in self.moved]
        libraries = labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]
        raise RuntimeError(_DRAWN_ERROR.format(what=self.what, libraries=libraries, fix=self.fix))


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
