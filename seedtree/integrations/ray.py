"""Ray integration: keyed task maps, per-actor streams and per-row streams for Ray Data.

    from seedtree.ray import actor_nodes, bind_actor, keyed_batches, keyed_map

    results = keyed_map(simulate, params, tree)                 # item k bound to tree / k
    ds.map_batches(keyed_batches(add_noise, tree, key="id"))    # row r draws from tree / r

Keyed tasks. ``keyed_map`` runs ``fn(item)`` as Ray tasks with item k bound to ``tree / k``
(``seedtree.rng()`` is that item's stream) and returns the results in order. Items travel
in chunks of consecutive items (up to 16, at least 16 chunks per CPU); each chunk runs exactly what
``seedtree.joblib.parallel_map`` runs in a loky worker (``runtime.tasks.run_keyed_batch``),
so the results are bit-identical to ``parallel_map`` with any backend and ``n_jobs``, and
to any chunk size. A task that Ray retries after its worker process died (``max_retries``,
3 by default for tasks) recomputes its items from their keys and draws the same numbers.

Global RNGs. A Ray worker process runs one task at a time (on its main thread), so as with
loky the global RNGs (``random``, NumPy's global, torch: those the calling process has
imported) are seeded from each item's node by default (``bind_globals=None``), and unmodified
code that calls ``np.random`` is deterministic per item; ``bind_globals=False`` leaves them
alone, a list names the libraries. Where the task finds it is not on its worker's main
thread, binding the globals is refused with an error.

Actors. An actor is a process that lives across calls, so it gets a stream of its own:
``actor_nodes(tree, n)`` are ``tree / "actor" / i`` and ``bind_actor(node)``, first thing in
the actor's ``__init__``, makes the node the actor process's ambient default and seeds its
global RNGs. Which actor of an ``ActorPool`` serves which item is up to the scheduler, so
per-actor streams belong to the actor's own state; results that must not depend on
scheduling key each item instead: ``with seedtree.bound(tree / k): ...`` in the method.
Threaded (``max_concurrency > 1``) and async actors run methods concurrently on one
process: there the per-actor stream is shared by those calls and draws depend on their
interleaving; bind per item with ``seedtree.bound`` (per thread, safe) and leave the globals.

Ray Data. Ray Data hands ``map_batches`` batches of a size and in an order that depend on
``batch_size``, block layout and concurrency, and no global row position. ``keyed_batches``
keys each row by a column of the data (``"id"`` by default: ``ray.data.range`` makes it; add
one with ``from_items([{"id": i, **row} for i, row in enumerate(rows)])``, or name a column
that identifies the row, e.g. a sample id or file name). Each row's generator is
``(tree / row[key]).numpy()``, so a row's numbers do not depend on batch size, blocks or
concurrency. What is not guaranteed: keys are only as stable as the key column (a column
computed from the batch layout, or duplicate keys, give layout-dependent or repeated
streams), and the output row order is Ray's unless ``preserve_order`` is set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from ..core.optional import require
from ..core.tree import SeedTree
from ..runtime.policy import GLOBALS_ERROR, BindGlobals, modules_for, shared_globals_problem
from ..runtime.seeding import bind_process
from ..runtime.tasks import run_keyed_batch
from ._checks import check_tree

ray = require("ray", "seedtree.ray")

__all__ = ["actor_nodes", "bind_actor", "keyed_batches", "keyed_map"]

_MAX_CHUNK = 16  # a Ray task costs about a millisecond; longer chunks leave workers idle at the end


def _keyed_chunk(
    tree: SeedTree, keys: list[int], fn: Callable[[Any], Any], items: list[Any], modules: tuple[str, ...]
) -> list[Any]:
    if modules:
        problem = shared_globals_problem()
        if problem is not None:
            raise RuntimeError(GLOBALS_ERROR.format(problem=problem))
    return run_keyed_batch(tree, keys, fn, items, modules)


_remote_chunk = ray.remote(_keyed_chunk)


def _chunk_size(n_items: int) -> int:
    """At least 16 chunks per CPU of the cluster, so the last ones finish close together."""
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    return max(1, min(_MAX_CHUNK, n_items // (16 * cpus)))


def keyed_map(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    tree: SeedTree,
    *,
    bind_globals: BindGlobals = None,
    chunk_size: int | None = None,
    **remote_options: Any,
) -> list[Any]:
    """``[fn(item) for item in items]`` as Ray tasks, item k with ``tree / k`` bound.

    Guarantee: the list is bit-identical to ``seedtree.joblib.parallel_map(fn, items, tree)``
    with any backend and ``n_jobs``, for any ``chunk_size`` and cluster size, and a retried
    task draws what its first attempt drew (given ``fn`` draws only from ``seedtree.rng()``,
    or from the global RNGs when they are bound). ``remote_options`` go to the tasks'
    ``.options()`` (``num_cpus``, ``max_retries``, ...). Ray must be initialised (``ray.init``).
    """
    check_tree(tree, "keyed_map")
    if isinstance(items, (str, bytes)):
        raise TypeError("items must be a collection of task inputs, not a single str/bytes")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    if not ray.is_initialized():
        raise RuntimeError("keyed_map needs a running Ray: call ray.init() (or ray.init(address=...)) first")
    modules = modules_for(bind_globals, "processes", "Ray tasks")
    items = list(items)
    if not items:
        return []
    size = chunk_size or _chunk_size(len(items))
    task = _remote_chunk.options(**remote_options) if remote_options else _remote_chunk
    fn_ref = ray.put(fn)  # shipped once, not with every chunk (Ray resolves it before the call)
    refs = [
        task.remote(tree, list(range(lo, min(lo + size, len(items)))), fn_ref, items[lo : lo + size], modules)
        for lo in range(0, len(items), size)
    ]
    return [result for part in ray.get(refs) for result in part]


def actor_nodes(tree: SeedTree, n: int) -> list[SeedTree]:
    """The streams of ``n`` actors: ``tree / "actor" / i`` for i in ``range(n)``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"actor_nodes needs a non-negative int count, got {n!r}")
    return [tree / "actor" / i for i in range(n)]


def bind_actor(node: SeedTree, *, bind_globals: BindGlobals = None) -> SeedTree:
    """Call first in an actor's ``__init__``: ``node`` becomes the ambient default of the
    actor's process (``seedtree.rng()`` in every method), and the global RNGs of the
    libraries the actor has imported (or those listed) are seeded from it, unless
    ``bind_globals=False``. Returns ``node``."""
    if not isinstance(node, SeedTree):
        raise TypeError(f"bind_actor needs a SeedTree, got {type(node).__name__}; use actor_nodes(tree, n)[i]")
    modules = modules_for(bind_globals, "processes", "a Ray actor")
    if modules:
        problem = shared_globals_problem()
        if problem is not None:
            raise RuntimeError(GLOBALS_ERROR.format(problem=problem))
    bind_process(node, list(modules) if modules else False)
    return node


def _row_keys(column: Any) -> np.ndarray | list[Any]:
    keys = np.asarray(column)
    if keys.dtype.kind in "iu":
        return keys
    return keys.tolist()  # str or bytes keys (validated by the tree, one by one)


def keyed_batches(
    fn: Callable[[Any, list[np.random.Generator]], Any], tree: SeedTree, key: str = "id"
) -> Callable[[Any], Any]:
    """A ``map_batches`` function: ``fn(batch, rngs)`` with ``rngs[i]`` the generator of
    row i, ``(tree / batch[key][i]).numpy()``.

    Guarantee: what a row draws depends only on ``tree`` and its ``key`` value, never on
    ``batch_size``, blocks, concurrency or which worker runs it. The key column must hold
    ints in ``[0, 2**32)``, str or bytes, and identify its row (see the module docstring).
    Works with the ``"numpy"`` and ``"pandas"`` batch formats.
    """
    check_tree(tree, "keyed_batches")
    if not isinstance(key, str):
        raise TypeError(f"key names the column that identifies each row, e.g. 'id'; got {key!r}")

    def keyed(batch: Any) -> Any:
        try:
            column = batch[key]
        except KeyError:
            columns: Sequence[str] = list(batch.keys()) if hasattr(batch, "keys") else []
            raise KeyError(
                f"keyed_batches keys rows by the column {key!r}, which this batch lacks (columns: {list(columns)}); "
                "add a row id column (e.g. ray.data.range(n), or from_items with an 'id' per row) or pass key="
            ) from None
        return fn(batch, list(tree.generators(_row_keys(column))))

    return keyed
