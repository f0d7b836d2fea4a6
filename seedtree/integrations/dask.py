"""Dask integration: keyed task streams and per-worker streams.

    from seedtree.dask import client_map, delayed_map, keyed, worker_plugin

    futures = client_map(client, simulate, params, tree)        # task k bound to tree / k
    parts = delayed_map(simulate, params, tree)                  # the same, as dask.delayed
    futures = client.map(keyed(simulate, tree), keys, params)    # any keys you like
    client.register_plugin(worker_plugin(tree))                  # a stream per worker

Keyed tasks. Task k runs with ``tree / k`` as its ambient node, so ``seedtree.rng()``
inside it is that task's stream. The stream comes from the task's key, never from the
worker that runs it, so results are bit-identical on any cluster (one worker process or
many, threads or processes, the local threaded or synchronous scheduler) and a task that
Dask retries after losing a worker draws exactly what its first attempt drew. Keyed tasks
are therefore pure in Dask's sense: the default ``pure=True`` of ``client.map`` is right.

Global RNGs. Binding also seeds the global RNGs (python's ``random``, NumPy's global,
torch) of the libraries the submitting process has imported from the task's node (or
those listed: ``bind_globals=("numpy", "random")``), so unmodified code that calls
``np.random`` becomes deterministic per task. That is only safe when nothing else in the
process draws from those globals while the task runs, which only the task can tell: each
task asks its worker (its thread count, and whether it shares its process with other
workers or the client). Safe: a Dask worker with one thread (``threads_per_worker=1`` or
``dask worker --nthreads 1``) that has its process to itself, and the main thread (the
synchronous and multiprocessing schedulers). Not safe: multi-threaded workers (Dask's
default), workers inside the client's process (``LocalCluster(processes=False)``) and
the threaded scheduler. The default (``bind_globals=None``) binds where it is safe and
leaves the globals alone elsewhere: there only ``seedtree.rng()`` is reproducible
(``seedtree doctor`` says so too). ``bind_globals=True`` (or a list) insists: a task that
lands where the globals are shared raises an error. ``False`` never binds them. A task run
in the caller's own thread (the synchronous scheduler) puts the caller's global RNG states
back when it ends.

Per-worker streams. ``worker_plugin(tree)`` gives every worker the node
``tree / "worker" / str(worker.name)`` (a path from the worker's stable name, never a sum of
ints): it becomes the worker's ambient default and seeds its global RNGs. Worker names are
stable across restarts, so a restarted worker starts its stream afresh; which worker runs
which task is up to the scheduler, so only keyed streams are layout-invariant.

The joblib Dask backend needs nothing from here: ``seedtree.joblib.parallel_map(fn, items,
tree)`` under ``joblib.parallel_config(backend="dask")`` with a ``distributed.Client``
active gives the same results as every other backend (ambient stream only: joblib does
not know Dask's workers are processes, so ``bind_globals`` defaults to off there).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..core.keys import Key
from ..core.optional import require
from ..core.tree import SeedTree
from ..runtime.capture import isolate
from ..runtime.policy import BindGlobals, dask_process_problem, modules_for, task_modules
from ..runtime.seeding import bind_process
from ..runtime.tasks import run_keyed
from ._checks import check_callable, check_count, check_items, check_tree

if TYPE_CHECKING:
    from dask.delayed import Delayed
    from distributed import Client, Future, Worker, WorkerPlugin

__all__ = ["KeyedTask", "client_map", "delayed_map", "keyed", "worker_node", "worker_plugin"]

PLUGIN_NAME = "seedtree-workers"

_DASK_ADVICE = " On Dask: LocalCluster(processes=True, threads_per_worker=1) or `dask worker --nthreads 1`."

Globals = BindGlobals


def _modules(bind_globals: Globals) -> tuple[str, ...]:
    """The libraries whose global RNGs a task may seed: True or None means those this
    (submitting) process has imported, which the worker then imports too if need be, so a
    task that imports torch itself is covered; a list names them; False, none. Whether a
    task does seed them is decided where it runs (``task_modules``)."""
    return modules_for(bind_globals, "task", "a Dask task")


def _on_dask_worker() -> bool:
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return False
    try:
        distributed.get_worker()
    except ValueError:
        return False
    return True


class KeyedTask:
    """``fn`` wrapped so that ``task(key, *args, **kwargs)`` runs ``fn(*args, **kwargs)``
    with ``tree / key`` as the ambient node, and with the global RNGs of ``modules``
    seeded from it where the task has them to itself (see the module docstring; with
    ``required`` a task that cannot raises RuntimeError). Make it with ``keyed()``.

    Guarantee: the streams a call sees depend only on ``(tree, key)``, not on the worker,
    thread or attempt that runs it. It pickles to ``(fn, tree, modules, required)`` and
    has a deterministic Dask token, so equal tasks get equal keys.
    """

    __slots__ = ("fn", "tree", "modules", "required")

    def __init__(
        self, fn: Callable[..., Any], tree: SeedTree, modules: tuple[str, ...] = (), required: bool = True
    ) -> None:
        self.fn = check_callable(fn, "seedtree.dask.keyed()")
        self.tree = check_tree(tree, "seedtree.dask.keyed()")
        self.modules = tuple(modules)
        self.required = bool(required)

    def __call__(self, key: Key, /, *args: Any, **kwargs: Any) -> Any:
        modules = task_modules(self.modules, self.required, _DASK_ADVICE)
        if modules and not _on_dask_worker():
            # The synchronous scheduler runs the task in the caller's own thread: the
            # caller's global RNG states are put back when it ends.
            with isolate(ambient=False):
                return run_keyed(self.fn, self.tree, key, args, kwargs, modules)
        return run_keyed(self.fn, self.tree, key, args, kwargs, modules)

    @property
    def __name__(self) -> str:  # what Dask names the tasks after
        return "keyed-" + getattr(self.fn, "__name__", type(self.fn).__name__)

    def __reduce__(self) -> tuple[Any, ...]:
        # The tree unpickles to one shared node per process (see SeedTree.__reduce__), so
        # each task pays only for hashing its own key.
        return (KeyedTask, (self.fn, self.tree, self.modules, self.required))

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        from dask.base import tokenize

        return (
            "seedtree.KeyedTask",
            tokenize(self.fn),
            str(self.tree.entropy),
            self.tree.path,
            self.modules,
            self.required,
        )

    def __repr__(self) -> str:
        return f"KeyedTask({self.fn!r}, {self.tree!r}, modules={self.modules}, required={self.required})"


def keyed(fn: Callable[..., Any], tree: SeedTree, *, bind_globals: Globals = None) -> KeyedTask:
    """``fn`` as a keyed task: the first argument of each call is its key.

        client.map(keyed(fn, tree), range(len(items)), items)
        dask.delayed(keyed(fn, tree))(k, item)

    Call k sees ``tree / k`` as ``seedtree.rng()``. By default (None) it also seeds the
    global RNGs of the libraries this process has imported (``random``, ``numpy``,
    ``torch``) from it where the task has them to itself (a one-thread worker process,
    the synchronous scheduler), and leaves them alone elsewhere; ``True`` insists (an error
    where they are shared), a list such as ``("numpy", "random")`` names the libraries,
    ``False`` never seeds them.
    """
    return KeyedTask(fn, tree, _modules(bind_globals), required=bind_globals is not None)


def client_map(
    client: Client,
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    tree: SeedTree,
    *,
    bind_globals: Globals = None,
    start: int = 0,
    **map_kwargs: Any,
) -> list[Future[Any]]:
    """``client.map(fn, items)`` with item k run under ``tree / (start + k)``; returns the
    futures, in input order. ``start`` lets a long job go in batches with the keys it would
    have had in one map. Other keyword arguments (``retries``, ``workers``, ``pure``...)
    go to ``client.map``.

    Guarantee: ``client.gather(futures)`` is bit-identical for any cluster layout, and
    for tasks retried after a worker was lost, given ``fn`` draws only from
    ``seedtree.rng()``, or from the global RNGs where they are bound (see ``keyed``).
    Bad arguments are refused before anything is submitted.
    """
    where = "seedtree.dask.client_map()"
    distributed = require("distributed", where)
    if not isinstance(client, distributed.Client):
        raise TypeError(
            f"{where}: client must be a distributed.Client, got {type(client).__name__}; "
            "the order is client_map(client, fn, items, tree)"
        )
    task = keyed(fn, tree, bind_globals=bind_globals)
    check_count(start, where, "start (the first task's key)")
    items = check_items(items, where)
    keys = range(start, start + len(items))
    futures: list[Future[Any]] = client.map(task, keys, items, **map_kwargs)
    return futures


def delayed_map(
    fn: Callable[[Any], Any], items: Iterable[Any], tree: SeedTree, *, bind_globals: Globals = None, start: int = 0
) -> list[Delayed]:
    """One ``dask.delayed`` call per item, item k run under ``tree / (start + k)``.

        results = dask.compute(*delayed_map(fn, items, tree))

    Guarantee: the computed results are bit-identical on every scheduler (synchronous,
    threaded, processes, distributed) and layout.
    """
    where = "seedtree.dask.delayed_map()"
    dask = require("dask", "seedtree.dask.delayed_map")
    task = dask.delayed(keyed(fn, tree, bind_globals=bind_globals), pure=True)
    check_count(start, where, "start (the first task's key)")
    return [task(k, item) for k, item in enumerate(check_items(items, where), start)]


def worker_node(tree: SeedTree, worker_name: Any) -> SeedTree:
    """The node of the worker called ``worker_name``: ``tree / "worker" / str(worker_name)``.

    The name is used as text (LocalCluster names workers 0, 1, ...; ``dask worker --name``
    takes any string), so every distinct name gets its own stream and nothing is added up.
    """
    check_tree(tree, "seedtree.dask.worker_node()")
    return tree / "worker" / str(worker_name)


@functools.cache
def _plugin_class() -> Any:  # a WorkerPlugin subclass, made once distributed is imported
    distributed = require("distributed", "seedtree.dask.worker_plugin")

    class SeedWorkers(distributed.WorkerPlugin):  # type: ignore[name-defined]
        """Gives each worker ``worker_node(tree, worker.name)``: its ambient default, and
        the seed of the global RNGs of ``modules``. Runs on every worker that exists when
        it is registered and on every worker that joins or restarts later."""

        idempotent = False

        def __init__(self, tree: SeedTree, modules: tuple[str, ...]) -> None:
            self.tree = tree
            self.modules = modules
            self.name = PLUGIN_NAME

        def setup(self, worker: Worker) -> None:
            problem = dask_process_problem(worker)
            if problem is not None:
                # One process, several workers (or the client): a per-worker default and
                # per-worker globals cannot exist there.
                raise RuntimeError(
                    f"worker_plugin() cannot give each worker a stream of its own: {problem}. "
                    "Use LocalCluster(processes=True), or keyed tasks (seedtree.dask.keyed), which work anywhere."
                )
            node = worker_node(self.tree, worker.name)
            bind_process(node, self.modules)

        def __reduce__(self) -> tuple[Any, ...]:
            return (_make_plugin, (self.tree, self.modules))

    SeedWorkers.__module__ = __name__
    return SeedWorkers


def _make_plugin(tree: SeedTree, modules: tuple[str, ...]) -> WorkerPlugin:
    plugin: WorkerPlugin = _plugin_class()(tree, modules)
    return plugin


def worker_plugin(tree: SeedTree, bind_globals: Globals = True) -> WorkerPlugin:
    """A ``distributed.WorkerPlugin`` giving each worker its own node (see
    ``worker_node``) as its ambient default. Register it before submitting work:
    ``client.register_plugin(worker_plugin(tree))``.

    With ``bind_globals`` (default) the worker's global RNGs are seeded from its node when
    it starts: those of the libraries this process has imported (imported on the worker
    if need be), or of the modules listed, e.g. ``("numpy", "random", "torch")``.

    Guarantee: distinct worker names get distinct streams, and a worker with the same name
    gets the same stream on every run (also after a restart). With several threads per
    worker the draws from those streams interleave by scheduling: use keyed tasks for
    reproducible results. Refused, with an error at registration, for workers sharing
    one process (``LocalCluster(processes=False)``).
    """
    check_tree(tree, "seedtree.dask.worker_plugin()")
    plugin: WorkerPlugin = _plugin_class()(
        tree, modules_for(bind_globals, "processes", "seedtree.dask.worker_plugin()")
    )
    return plugin
