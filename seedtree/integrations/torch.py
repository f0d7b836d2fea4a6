"""torch DataLoader integration: per-worker hooks and a layout-invariant per-sample loader.

- ``worker_init_fn(tree)``: every worker of every epoch and rank gets its own node
  ``tree / "worker" / rank / epoch-seed / worker_id`` (a path, never a sum), seeds python
  ``random``, numpy's global and torch from it and binds ``seedtree.rng()``. Cheap, and what
  most people want; the samples a worker draws still depend on which worker loaded them.
- ``loader(dataset, tree, ...)``: a real ``DataLoader`` in which ``dataset[i]`` of epoch e
  runs with the global RNGs and ``seedtree.rng()`` bound to ``tree / e / i``. Batches are
  then bit-identical for any ``num_workers``, persistent or not, any number of ranks, and
  after a resume from ``state_dict()`` mid-epoch.
"""

from __future__ import annotations

import itertools
import math
import sys
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

from ..core.codec import path_to_json
from ..core.optional import require
from ..core.shuffle import KeyedPermutation
from ..core.tree import SeedTree
from ..runtime.ambient import current
from ..runtime.capture import isolate
from ..runtime.controllers import REGISTRY
from ..runtime.owned import OwnedGenerators, reseed_owned
from ..runtime.seeding import bind_process
from ..runtime.tasks import run_keyed_batch
from . import streaming
from ._checks import check_positive, check_ranks, check_tree
from .ranks import current_ranks, rank_info
from .streaming import ShardedStream

torch = require("torch", "seedtree.torch")
import numpy as np  # noqa: E402
from torch.utils.data import (  # noqa: E402
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    IterableDataset,
    Sampler,
    get_worker_info,
)
from torch.utils.data.dataloader import _BaseDataLoaderIter  # noqa: E402  # who draws a loader's batches

__all__ = [
    "RESEED_METHOD",
    "SeedTreeBatchSampler",
    "SeedTreeLoader",
    "SeedTreeSampler",
    "ShardedStream",
    "loader",
    "sample_node",
    "worker_init_fn",
]

RESEED_METHOD = "seedtree_reseed"
"""A dataset (the worker's copy) with a method of this name is called as
``dataset.seedtree_reseed(node)`` whenever ``worker_init_fn`` binds a worker, so it can rebuild the
generators it owns (e.g. ``self.rng = node.numpy()``). A dataset without one is searched
instead (``seedtree.runtime.owned``): the MONAI ``Randomizable`` objects, albumentations pipelines
and ``seedtree_reseed`` objects it holds are re-keyed, object k from ``node / "owned" / k``."""


def _reseed_dataset(dataset: Any, node: SeedTree) -> None:
    """Re-key the generators a worker's copy of ``dataset`` owns (``seedtree.runtime.owned``):
    its own ``seedtree_reseed(node)``, or else every generator-owning object found in it."""
    reseed_owned(dataset, node)


class worker_init_fn:
    """``DataLoader(..., worker_init_fn=seedtree.torch.worker_init_fn(tree))``.

    Worker w of a loader iteration on rank r binds ``tree / "worker" / r / hi / lo / w``
    where ``hi, lo`` are the two 32-bit halves of the iteration's base seed, which torch
    draws from the loader's ``generator`` once per iteration: non-persistent workers get new
    streams every epoch, and with ``generator=tree.torch()`` the whole run is reproducible.
    Then calls the dataset's ``seedtree_reseed(node)`` if it has one (else re-keys the MONAI,
    albumentations and ``seedtree_reseed`` objects found in it, object k from
    ``node / "owned" / k``), then your own
    ``then(worker_id)`` (chained, not replaced). The rank is read when the hook is made
    (in the main process), from ``rank`` or ``seedtree.distributed.rank_info()``.
    """

    def __init__(
        self,
        tree: SeedTree,
        then: Callable[[int], Any] | None = None,
        rank: int | None = None,
        bind_globals: bool = True,
        reseed_dataset: bool = True,
        lazy_rank: bool = False,
    ) -> None:
        check_tree(tree, "worker_init_fn")
        if then is not None and not callable(then):
            raise TypeError(f"worker_init_fn's then= must be callable, got {type(then).__name__}")
        self.tree = tree
        self.then = then
        self.lazy_rank = lazy_rank  # the loader sets the rank when each iteration starts
        self.rank = 0 if lazy_rank else rank_info().rank if rank is None else rank
        self.bind_globals = bind_globals
        self.reseed_dataset = reseed_dataset

    def node(self, worker_id: int, base_seed: int) -> SeedTree:
        """The node of worker ``worker_id`` for an iteration with this base seed."""
        return self.tree.child("worker", self.rank, (base_seed >> 32) & 0xFFFFFFFF, base_seed & 0xFFFFFFFF, worker_id)

    def __call__(self, worker_id: int) -> None:
        info = get_worker_info()
        if info is None:
            raise RuntimeError("seedtree.torch.worker_init_fn runs in DataLoader workers only (DataLoader calls it)")
        node = self.node(worker_id, info.seed - worker_id)
        bind_process(node, self.bind_globals)
        if self.reseed_dataset:
            _reseed_dataset(info.dataset, node)
        if self.then is not None:
            self.then(worker_id)


Item = tuple[int, int, int]
"""What the sampler hands a worker for one sample: ``(epoch, index, occurrence)``. The
epoch travels with the index, so persistent workers (whose dataset copies never see
``set_epoch``) still bind the right node."""


def sample_node(tree: SeedTree, epoch: int, index: int, occurrence: int = 0) -> SeedTree:
    """The node that sample ``index`` is produced under in ``epoch``: ``tree / epoch / index``
    for its first occurrence in the epoch, ``tree / epoch / index / k`` for its k-th repeat
    (a sampler drawing with replacement), so every occurrence has a stream of its own."""
    node = tree / epoch / index
    return node / occurrence if occurrence else node


class _SampleBound(Dataset):
    """Wraps a map-style dataset; item ``(epoch, i, k)`` is ``dataset[i]`` produced with
    ``sample_node(tree, epoch, i, k)`` bound (the global RNGs with ``bind_globals``, and
    ``seedtree.rng()``), after the generators the dataset owns were re-keyed from that node
    (with ``reseed``): the dataset's own ``seedtree_reseed(node)`` if it has one; else every
    MONAI ``Randomizable``, albumentations pipeline and ``seedtree_reseed`` object found in
    its attributes and containers, object k from ``node / "owned" / k``. The search runs
    once per copy of the dataset per process (``seedtree.runtime.owned.OwnedGenerators``);
    a sample then pays only for the re-keying.

    The binding happens here, in the fetch, because every wrapper a framework puts around
    the loader (Lightning's re-instantiation, accelerate's ``DataLoaderShard``) still
    fetches through the dataset. In the main process (``num_workers=0``) the caller's
    global RNG states are put back after each batch, so the training loop's own
    randomness (dropout) never follows the data's."""

    def __init__(self, dataset: Any, tree: SeedTree, bind_globals: bool, reseed: bool) -> None:
        self.dataset = dataset
        self.tree = tree
        self.bind_globals = bind_globals
        self.reseed = reseed
        self._epoch_node: tuple[int, SeedTree] | None = None
        # Found in each process at its first sample (a pickled copy searches again).
        self._owned = OwnedGenerators(dataset)

    def __len__(self) -> int:
        return len(self.dataset)

    def epoch_node(self, epoch: int) -> SeedTree:
        """``tree / epoch``, kept: its mixing state is computed once per epoch, so each
        sample costs one key's worth of hashing."""
        cached = self._epoch_node
        if cached is None or cached[0] != epoch:
            cached = self._epoch_node = (epoch, self.tree / epoch)
        return cached[1]

    def __getitem__(self, item: Item) -> Any:
        return self.__getitems__([item])[0]

    probe = False  # set by seedtree.testing.check_loader: each sample comes back with its RNG digests

    def __getitems__(self, items: list[Item]) -> list[Any]:
        fetch = self._probed if self.probe else self._fetch
        if get_worker_info() is None and self.bind_globals:
            with isolate(ambient=False):
                return fetch(items)
        return fetch(items)

    def _fetch(self, items: list[Item]) -> list[Any]:
        if not items:  # a batch source may yield an empty batch
            return []
        try:
            epochs, indices, occurrences = zip(*items, strict=True)
        except (TypeError, ValueError):
            raise TypeError(
                "seedtree's loader fetched an item that is not (epoch, index, occurrence): a wrapper replaced "
                "seedtree's sampler. Keep loader.sampler as seedtree made it (with Lightning, the default "
                "use_distributed_sampler is fine; do not pass your own sampler to the Trainer)"
            ) from None
        modules = REGISTRY.loaded_modules() if self.bind_globals else ()
        # Datasets owning generators go through _get, which re-keys them; the others are
        # fetched directly (one Python call less per sample).
        get = self._get if self.reseed and self._owned else self.dataset.__getitem__
        epoch = epochs[0]
        if epochs.count(epoch) == len(epochs) and not any(occurrences):
            # The common case: one vectorised derivation seeds every sample of the batch.
            return run_keyed_batch(self.epoch_node(epoch), list(indices), get, indices, modules)
        # A batch with repeats (a sampler drawing with replacement), or one spanning two
        # epochs: per epoch, the first occurrences (tree / e / i) go in one vectorised call
        # and the repeats (tree / e / i / k) in another, then back in batch order.
        out: list[Any] = [None] * len(items)
        for e in sorted(set(epochs)):
            for repeat in (False, True):
                where = [j for j, (e_j, _, k) in enumerate(items) if e_j == e and bool(k) == repeat]
                if not where:
                    continue
                keys: Any = (
                    np.array([items[j][1:] for j in where], dtype=np.int64) if repeat else [indices[j] for j in where]
                )
                got = run_keyed_batch(self.epoch_node(e), keys, get, [indices[j] for j in where], modules)
                for j, value in zip(where, got, strict=True):
                    out[j] = value
        return out

    def _probed(self, items: list[Item]) -> list[Any]:
        """``_fetch`` with each sample wrapped with what the RNG libraries were left at
        right after it ran, still under its binding (``seedtree.testing``)."""
        from .loader_check import Probed, probe_digest

        inner = self.dataset

        class _Digesting:  # the dataset, answering each index with (sample, digests)
            def __getitem__(self, index: int) -> Any:
                value = inner[index]
                return value, probe_digest()

            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

        self.dataset = _Digesting()
        try:
            got = self._fetch(items)
        finally:
            self.dataset = inner
        return [Probed(item, digests, value) for item, (value, digests) in zip(items, got, strict=True)]

    def _get(self, index: int) -> Any:
        self._owned.reseed(current())
        return self.dataset[index]

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)


def _is_batch_source(source: Any) -> bool:
    """Whether ``source`` looks like a batch sampler (for a ``sampler=`` argument)."""
    return isinstance(source, BatchSampler) or (
        hasattr(source, "batch_size") and hasattr(source, "__iter__") and not isinstance(source, Sampler)
    )


def _shards_itself(source: Any, batches: bool) -> bool:
    """A sampler that already picks this rank's share (torch's DistributedSampler and
    look-alikes with ``num_replicas``/``rank``), directly or inside a batch sampler."""
    inner = getattr(source, "sampler", None) if batches else source
    return isinstance(inner, DistributedSampler) or (hasattr(inner, "num_replicas") and hasattr(inner, "rank"))


def _sharding_caller(frame: FrameType | None, batch_sampler: Any) -> tuple[int, int, bool] | None:
    """``(rank, world, split)`` when ``frame`` runs a method of a wrapper that deals
    ``batch_sampler``'s batches out to several processes (accelerate's ``BatchSamplerShard``:
    it holds the batch sampler as ``.batch_sampler`` and has ``num_processes`` and
    ``process_index``); else None."""
    return _sharding_wrapper(frame.f_locals.get("self") if frame is not None else None, batch_sampler)


def _dispatching_caller(frame: FrameType | None, batch_sampler: Any) -> bool:
    """Whether ``frame`` or a caller runs accelerate's ``DataLoaderDispatcher`` over
    ``batch_sampler`` (``dispatch_batches=True``: process 0 draws the global batches and
    splits each one among the processes, so the sampler must yield the whole epoch)."""
    while frame is not None:
        owner: Any = frame.f_locals.get("self")
        if callable(getattr(owner, "_fetch_batches", None)) and hasattr(owner, "base_dataloader"):
            node = getattr(owner.base_dataloader, "batch_sampler", None)
            for _ in range(4):  # through a SkipBatchSampler (skip_first_batches)
                if node is None or node is batch_sampler:
                    return node is batch_sampler
                node = getattr(node, "batch_sampler", None)
            return False
        frame = frame.f_back
    return False


@dataclass
class _Driver:
    """Who draws this loader's batches when something other than ``SeedTreeLoader.__iter__``
    iterates its batch sampler (accelerate's ``prepare`` builds a new DataLoader over it).
    Torch's iterator prefetches and accelerate's ``DataLoaderShard`` reads one batch ahead,
    so the batches *drawn* are not the batches *trained*; what was trained is read from
    them when the cursor is asked: torch's ``_num_yielded`` less the wrapper's look-ahead."""

    iterator: weakref.ref[Any]  # torch's _BaseDataLoaderIter that draws the batches
    shard: weakref.ref[Any] | None  # accelerate's DataLoaderShard around it, if any
    known: bool  # the outermost wrapper's look-ahead is known (none, or DataLoaderShard's one batch)
    world: int  # global batches per wrapper batch (a BatchSamplerShard without split_batches deals W)
    skipped: int  # wrapper batches a SkipBatchSampler drops (trained before a resume)
    epoch: int
    start: int  # global units consumed before this iteration began

    def trained(self) -> int | None:
        """Wrapper batches of this iteration trained so far (skipped ones included); None
        when it cannot be known. ``-1``: the whole iteration was delivered."""
        shard = self.shard() if self.shard is not None else None
        if shard is not None and getattr(shard, "end_of_dataloader", False):
            return -1  # accelerate reached the end and handed out the last batch
        iterator = self.iterator()
        if iterator is None or not self.known:
            return None  # the iteration was abandoned, or a wrapper we cannot see into reads ahead
        yielded = int(getattr(iterator, "_num_yielded", 0))
        ahead = 1 if shard is not None else 0
        return self.skipped + max(0, yielded - ahead)


def _find_driver(frame: FrameType | None, sampler: Any, batch_sampler: Any) -> tuple[Any, _Driver | None]:
    """Walk up from ``batch_sampler.__iter__``'s caller: ``(None, None)`` under seedtree's own
    loader (it counts delivered batches itself) or with no torch iterator (a bare ``iter``);
    else the sharding view and a ``_Driver``."""
    iterator = shard = None
    outer_unknown = False
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, SeedTreeLoader):
            return None, None
        if iterator is None and isinstance(owner, _BaseDataLoaderIter):
            iterator = owner
        elif iterator is not None and shard is None and hasattr(owner, "base_dataloader"):
            if hasattr(owner, "end_of_dataloader"):
                shard = owner  # accelerate's DataLoaderShard (or DataLoaderDispatcher)
            else:
                outer_unknown = True
        frame = frame.f_back
    if iterator is None:
        return None, None
    skipped, world = 0, 1
    node = getattr(iterator, "_index_sampler", None)
    for _ in range(8):  # the wrappers between torch's iterator and seedtree's batch sampler
        if node is None or node is batch_sampler:
            break
        if isinstance(getattr(node, "skip_batches", None), int):
            skipped += node.skip_batches
        found = _sharding_wrapper(node, batch_sampler)
        if found is not None and not found[2]:
            world = found[1]
        node = getattr(node, "batch_sampler", None)
    known = not outer_unknown and (shard is None or type(shard).__name__ == "DataLoaderShard")
    driver = _Driver(
        weakref.ref(iterator),
        None if shard is None else weakref.ref(shard),
        known,
        world,
        skipped,
        sampler.epoch,
        0,
    )
    return shard, driver


def _sharding_wrapper(owner: Any, batch_sampler: Any) -> tuple[int, int, bool] | None:
    """``(rank, world, split_batches)`` when ``owner`` deals ``batch_sampler``'s batches out to
    several processes (accelerate's ``BatchSamplerShard``); else None."""
    if owner is None or getattr(owner, "batch_sampler", None) is not batch_sampler:
        return None
    world, rank = getattr(owner, "num_processes", None), getattr(owner, "process_index", None)
    if not isinstance(world, int) or not isinstance(rank, int):
        return None
    return rank, world, bool(getattr(owner, "split_batches", False))


def _padding_rounds(owner: Any, world: int, split: bool) -> int:
    """How many batches accelerate's ``BatchSamplerShard`` (``owner``) takes its padding from
    (its ``even_batches`` completes the last round with the first items it was handed), or
    0 when it does not pad (``even_batches=False``, ``drop_last``)."""
    if not getattr(owner, "even_batches", False) or getattr(owner, "drop_last", False):
        return 0
    return 1 if split else world


class SeedTreeSampler(DistributedSampler):
    """The epoch's order and the cursor over epochs; yields ``(epoch, index, occurrence)``.

    The order of epoch e is, without a ``source``, a keyed permutation of ``range(n)``
    drawn from ``tree / "order" / e`` and evaluated per position in O(1) memory
    (``seedtree.core.shuffle``), or ``0..n-1`` without shuffling. With a ``source`` (your
    sampler or batch sampler) the order is the source's, iterated with its randomness drawn
    from ``tree / "order" / e``: its ``generator`` is replaced by that node's torch
    generator, ``set_epoch(e)`` is called if it has one, and the global RNGs are seeded
    from that node while it runs (then put back). Each occurrence of an index in the epoch
    is numbered, so a sample drawn twice gets two streams.

    Ranks: with ``world_size`` W > 1 (given, or read from ``seedtree.ranks.rank_info()``
    when the epoch starts, so a loader made before ``torch.distributed`` is initialised
    still reads its rank), rank r takes positions r, r + W, ... of the epoch's order
    (batches r, r + W, ... of a batch source), so the ranks' shards are disjoint and their
    union is the whole epoch; a source that shards by rank itself is not sharded again.
    ``drop_uneven=True`` drops the tail so that every rank gets as many.

    It is a ``DistributedSampler`` so that Lightning neither injects its own nor wraps it,
    and ``set_epoch`` is reachable where Lightning and accelerate call it
    (``loader.sampler``, ``loader.batch_sampler``, ``loader.batch_sampler.sampler``).
    """

    def __init__(
        self,
        n: int,
        tree: SeedTree,
        batch_size: int = 1,
        shuffle: bool = True,
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        drop_uneven: bool = False,
        source: Any = None,
        source_batches: bool | None = None,
    ) -> None:
        batch_size = check_positive(batch_size, "batch_size")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"the dataset length must be a non-negative int, got {n!r}")
        self._ranks = check_ranks(rank, world_size)
        # Not DistributedSampler.__init__: it would ask torch.distributed for the rank now.
        self.n, self.tree, self.batch_size = n, tree, batch_size
        self.dataset = range(n)  # type: ignore[assignment]  # what DistributedSampler reads: its length
        self.shuffle, self.drop_last, self.drop_uneven = shuffle, drop_last, drop_uneven
        self.source = source
        # Whether the source yields batches (lists of indices) rather than indices: given by
        # the argument it came as (``batch_sampler=``), else guessed from its type.
        self.source_batches = _is_batch_source(source) if source_batches is None else bool(source_batches)
        self._view: tuple[int, int] | None = None  # (0, 1) once a wrapper deals the batches to the ranks
        self._driver: _Driver | None = None  # set while a wrapper draws the batches (see _Driver)
        self.seed = 0
        self.epoch = 0
        self.batches_done = 0
        self.start = 0  # global units (samples, or batches of a batch source) already consumed this epoch
        self._resume = False  # set by load_state_dict: the next iteration continues mid-epoch
        self._end: tuple[int, int, int] | None = None  # (epoch, start, batches) of the running iteration
        self._cache: tuple[int, int, Any] | None = None  # (epoch, world_size, the rank's plan)
        if source is not None and self.source_batches and not hasattr(source, "__iter__"):
            raise TypeError(f"batch_sampler must be an iterable of index lists, got {type(source).__name__}")
        if source is not None and not self.source_batches and not isinstance(source, Sampler):
            raise TypeError(
                f"sampler must be a torch.utils.data.Sampler (got {type(source).__name__}); wrap an index list "
                "in torch.utils.data.SubsetRandomSampler or write a Sampler"
            )

    # -- ranks ------------------------------------------------------------------------

    @property
    def num_replicas(self) -> int:  # type: ignore[override]
        """The number of ranks: as given, else read from ``rank_info()`` now."""
        return self._layout()[1]

    @property
    def rank(self) -> int:  # type: ignore[override]
        """This process's rank: as given, else read from ``rank_info()`` now."""
        return self._layout()[0]

    def _layout(self) -> tuple[int, int]:
        return self._view if self._view is not None else current_ranks(self._ranks)

    @property
    def units(self) -> str:
        """What the cursor counts: ``"samples"``, or ``"batches"`` with a batch source."""
        return "batches" if self.source is not None and self.source_batches else "samples"

    # -- the epoch's order --------------------------------------------------------------

    def _source_order(self, epoch: int) -> list[Any]:
        """The source's whole order for ``epoch``, with its randomness from the tree."""
        node = self.tree / "order" / epoch
        source = self.source
        inner = getattr(source, "sampler", None) if self.source_batches else source
        for obj in (source, inner):
            if obj is None:
                continue
            if hasattr(obj, "generator"):
                obj.generator = node.torch()
            if hasattr(obj, "seed") and hasattr(obj, "set_epoch"):
                obj.seed = self.tree.child("order", "seed").seed_int(31)
            if callable(getattr(obj, "set_epoch", None)):
                obj.set_epoch(epoch)
        with isolate(ambient=False):  # seeded for the source's own draws, then put back
            REGISTRY.plan(REGISTRY.loaded_modules()).seed(node)
            order = list(source)
        return order

    def _plan(self, epoch: int) -> tuple[int, int, Any]:
        """(rank, world size, the epoch's global order or None for the keyed permutation)."""
        rank, world = self._layout()
        cached = self._cache
        if cached is not None and cached[0] == epoch and cached[1] == world:
            return rank, world, cached[2]
        order: Any = None
        if self.source is not None:
            order = _number_occurrences(self._source_order(epoch), self.units == "batches")
        elif self.shuffle:
            order = KeyedPermutation(self.tree / "order" / epoch, self.n)
        self._cache = (epoch, world, order)
        return rank, world, order

    def _total(self, order: Any) -> int:
        return self.n if order is None or isinstance(order, KeyedPermutation) else len(order)

    def _positions(self, rank: int, world: int, total: int, start: int) -> range:
        """This rank's global positions from ``start`` to the end of the epoch."""
        if self.source is not None and _shards_itself(self.source, self.source_batches):
            rank, world = 0, 1
        end = total
        if self.drop_uneven:
            end = start + (total - start) - (total - start) % world
        return range(start + rank, end, world)

    def order(self, epoch: int) -> list[int]:
        """The sample indices this rank visits in ``epoch``, in order (with a batch source,
        the batches flattened)."""
        rank, world, order = self._plan(epoch)
        items = self._items(order, self._positions(rank, world, self._total(order), 0), epoch)
        if self.units == "batches":
            return [i for batch in items for (_, i, _) in batch]
        return [i for (_, i, _) in items]

    _CHUNK = 1 << 16  # positions evaluated at once: memory stays bounded for any n

    def _items(self, order: Any, positions: range, epoch: int) -> Iterator[Any]:
        """The items at ``positions``, computed a chunk at a time."""
        return itertools.chain.from_iterable(self._chunks(order, positions, epoch, self._CHUNK))

    def _chunks(self, order: Any, positions: range, epoch: int, chunk: int) -> Iterator[list[Any]]:
        """The items at ``positions``, as lists of ``chunk`` items (the last one shorter):
        whole lists are built at C speed, and memory stays bounded for any n."""
        for lo in range(0, len(positions), chunk):
            part = positions[lo : lo + chunk]
            if order is None:
                yield [(epoch, p, 0) for p in part]
            elif isinstance(order, KeyedPermutation):
                picked = np.asarray(order[np.arange(part.start, part.stop, part.step, dtype=np.int64)])
                yield [(epoch, i, 0) for i in picked.tolist()]
            elif self.units == "batches":
                yield [[(epoch, i, k) for i, k in order[p]] for p in part]
            else:
                yield [(epoch, i, k) for i, k in (order[p] for p in part)]

    # -- iteration ----------------------------------------------------------------------

    def _begin(self) -> tuple[int, range, Any]:
        """Start an iteration: from the cursor after ``load_state_dict``, else from the
        start of the current epoch. Returns the epoch, this rank's remaining positions and
        the epoch's order (see ``_plan``)."""
        if not self._resume:
            self.batches_done, self.start = 0, 0
        self._resume = False
        epoch = self.epoch
        rank, world, order = self._plan(epoch)
        positions = self._positions(rank, world, self._total(order), self.start)
        per_batch = 1 if self.units == "batches" else self.batch_size
        if self._driver is not None:
            self._driver.epoch, self._driver.start = epoch, self.start + self.batches_done * per_batch * world
        self._end = (epoch, self.start, self._batches_in(len(positions)))
        positions = positions[self.batches_done * per_batch :]  # a resume within the same layout
        return epoch, positions, order

    def __iter__(self) -> Iterator[Any]:
        epoch, positions, order = self._begin()
        return self._items(order, positions, epoch)

    def batches(self) -> Iterator[list[Item]]:
        """This rank's batches of the current epoch, from the cursor."""
        epoch, positions, order = self._begin()
        if self.units == "batches":
            yield from self._items(order, positions, epoch)
            return
        size = self.batch_size
        # Chunks of whole batches: each batch is a slice of a list, and only the epoch's
        # last batch can be short (dropped with drop_last).
        for chunk in self._chunks(order, positions, epoch, max(size, self._CHUNK // size * size)):
            for lo in range(0, len(chunk), size):
                batch = chunk[lo : lo + size]
                if len(batch) < size and self.drop_last:
                    return
                yield batch

    def _share(self, start: int) -> int:
        """This rank's number of units (samples, or batches of a batch source) from the
        global position ``start`` to the end of the current epoch."""
        rank, world, order = self._plan(self.epoch)
        return len(self._positions(rank, world, self._total(order), start))

    def _batches(self, start: int) -> int:
        """This rank's number of batches from the global position ``start`` on."""
        return self._batches_in(self._share(start))

    def _batches_in(self, share: int) -> int:
        """The number of batches ``share`` units make."""
        if self.units == "batches":
            return share
        return share // self.batch_size if self.drop_last else math.ceil(share / self.batch_size)

    def __len__(self) -> int:
        return self._share(0)  # what DistributedSampler's len means: this rank's units

    def num_batches(self) -> int:
        """This rank's number of batches in a whole epoch."""
        return self._batches(0)

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` from its first batch at the next iteration; a resume loaded
        for this same epoch (``load_state_dict``) is kept."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
        epoch = int(epoch)
        if self._resume and epoch == self.epoch:
            return
        if self._resume:
            # A wrapper that counts epochs from 0 (accelerate's DataLoaderShard) would
            # otherwise silently retrain from the start of another epoch.
            raise ValueError(
                f"set_epoch({epoch}) would drop the resume into epoch {self.epoch} that load_state_dict() loaded; "
                f"call set_epoch({self.epoch}) on the loader you iterate (accelerate: on the prepared loader) first"
            )
        self.epoch, self.batches_done, self.start, self._resume = epoch, 0, 0, False
        self._driver = None

    def _delivered(self) -> None:
        self.batches_done += 1
        end = self._end
        # The iteration's batch count, computed when it began (reading the rank costs
        # microseconds: not once per batch), unless the cursor was moved since.
        total = end[2] if end is not None and end[:2] == (self.epoch, self.start) else self._remaining_batches()
        if self.batches_done >= total:
            self.epoch, self.batches_done, self.start = self.epoch + 1, 0, 0

    def _ran_empty(self) -> None:
        """An iteration that had no batch to hand out has finished: its epoch is done too
        (``_delivered`` advances the epoch after the last batch of the others)."""
        end = self._end
        if end is not None and end[2] == 0 and end[:2] == (self.epoch, self.start) and not self._resume:
            self.epoch, self.batches_done, self.start = self.epoch + 1, 0, 0

    def _remaining_batches(self) -> int:
        return self._batches(self.start)

    # -- state ----------------------------------------------------------------------------

    def consumed(self) -> int:
        """Global units (samples or batches) of the current epoch consumed by all ranks,
        assuming they move in step (as DDP's collective steps make them)."""
        rank, world, _ = self._plan(self.epoch)
        if self.source is not None and _shards_itself(self.source, self.source_batches):
            world = 1
        per_batch = 1 if self.units == "batches" else self.batch_size
        return min(self.start + self.batches_done * per_batch * world, self._total(self._plan(self.epoch)[2]))

    def _driven(self) -> tuple[int, int] | None:
        """``(epoch, global units consumed)`` when a wrapper draws this epoch's batches
        (see ``_Driver``); None when seedtree's own loader counts them."""
        driver = self._driver
        if driver is None or driver.epoch != self.epoch or self._resume:
            return None
        trained = driver.trained()
        if trained is None and self._batches(driver.start) == 0:
            trained = -1  # an iteration with no batch to hand out (accelerate then never flags its end)
        if trained is None:
            raise ValueError(
                "this loader's batches are drawn through a wrapper seedtree cannot see into (or an iteration "
                "abandoned mid-epoch), so it cannot know which were trained: take state_dict() at an epoch "
                "boundary, or iterate seedtree's loader itself or accelerate's prepare()d loader (without "
                "dispatch_batches=True, whose look-ahead it cannot see)"
            )
        rank, world, order = self._plan(driver.epoch)
        total = self._total(order)
        per_batch = 1 if self.units == "batches" else self.batch_size
        stride = 1 if self.source is not None and _shards_itself(self.source, self.source_batches) else world
        consumed = total if trained < 0 else min(total, driver.start + trained * driver.world * stride * per_batch)
        if consumed >= total or self._batches_in(len(self._positions(rank, world, total, consumed))) == 0:
            return driver.epoch + 1, 0
        return driver.epoch, consumed

    def state_dict(self) -> dict[str, Any]:
        """The cursor, plus what it is only valid with (checked on load). Plain ints,
        bools, strings and lists: it saves with JSON or ``torch.save``.

        Exact wherever the batches are drawn: under seedtree's own loader it counts the
        batches its iterator has handed out; under accelerate's ``prepare()`` (which
        iterates the batch sampler from its own DataLoader, prefetching and reading one
        batch ahead) it reads what was handed out from torch's iterator and accelerate's
        look-ahead. When another DataLoader draws from the batch sampler and its
        look-ahead cannot be seen, it refuses mid-epoch rather than guess. A consumer that
        reads ahead of seedtree's own iterator (a prefetching wrapper) holds batches it
        has not trained yet: take the state before pulling the next batch (seedtree's
        Lightning integration does)."""
        rank, world = self._layout()
        driven = self._driven()
        if driven is not None:
            epoch, consumed = driven
            return {**self._cursor_state(epoch, 0, consumed, consumed), "rank": rank, "world_size": world}
        return {
            **self._cursor_state(self.epoch, self.batches_done, self.start, self.consumed()),
            "rank": rank,
            "world_size": world,
        }

    def _cursor_state(self, epoch: int, done: int, start: int, consumed: int) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "batches_done": done,
            "start": start,
            "consumed": consumed,
            "units": self.units,
            "source": None if self.source is None else type(self.source).__qualname__,
            "n": self.n,
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
            "drop_uneven": self.drop_uneven,
            "entropy": str(self.tree.entropy),
            "path": path_to_json(self.tree.path),
        }

    _MUST_MATCH = ("n", "batch_size", "shuffle", "drop_last", "drop_uneven", "entropy", "path")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from ``state_dict()`` at the next iteration.

        The same layout resumes with exactly the next batch. Another number of ranks
        (elastic resume) continues from the global position the state records: the union
        of what the new ranks read is exactly the rest of the epoch. Refuses, naming the
        field, a state from another dataset size, batching, order, sampler or tree, and a
        damaged one (wrong types, negative or out-of-range counters)."""
        if not isinstance(state, dict):
            raise ValueError(f"a loader state must be the dict state_dict() returned, got {type(state).__name__}")
        rank, world = self._layout()
        mine = {**self._cursor_state(self.epoch, 0, 0, 0), "rank": rank, "world_size": world}
        for key in self._MUST_MATCH:
            if key not in state:
                raise ValueError(f"sampler state has no {key!r}: pass what SeedTreeSampler.state_dict() returned")
            if state[key] != mine[key] or type(state[key]) is not type(mine[key]):
                raise ValueError(
                    f"sampler state was saved with {key}={state[key]!r} but this loader has {key}={mine[key]!r}; "
                    "resume with the same dataset, batching, shuffling and tree"
                )
        for key in ("epoch", "batches_done"):
            value = state.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"sampler state {key}={value!r} must be a non-negative int")
        epoch, done = state["epoch"], state["batches_done"]
        units = state.get("units", "samples")
        if units != self.units or state.get("source", mine["source"]) != mine["source"]:
            raise ValueError(
                f"sampler state was saved with the sampler {state.get('source')!r} ({units}) but this loader has "
                f"{mine['source']!r} ({self.units}); resume with the same sampler"
            )
        saved = (self.epoch, self.batches_done, self.start, self._resume)
        try:
            self._load_cursor(state, epoch, done, mine)
        except BaseException:
            self.epoch, self.batches_done, self.start, self._resume = saved  # a refused state changes nothing
            raise
        self._driver = None

    def _load_cursor(self, state: dict[str, Any], epoch: int, done: int, mine: dict[str, Any]) -> None:
        consumed = state.get("consumed")
        same_layout = (
            state.get("world_size", mine["world_size"]) == mine["world_size"]
            and state.get("rank", mine["rank"]) == mine["rank"]
        )
        self.epoch = epoch
        _, world, order = self._plan(epoch)
        total = self._total(order)
        if same_layout or consumed is None:
            # ``start``: where this layout's batches began (an elastic resume starts mid-epoch);
            # states written before it was recorded began at 0.
            start = state.get("start", 0)
            if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= total:
                raise ValueError(f"sampler state start={start!r} must be an int in [0, {total}]")
            self.start, self.batches_done = start, done
            if done > self._remaining_batches():
                raise ValueError(
                    f"sampler state batches_done={done} is past the end of epoch {epoch} "
                    f"({self._remaining_batches()} batches from {start})"
                )
        else:
            if isinstance(consumed, bool) or not isinstance(consumed, int) or not 0 <= consumed <= total:
                raise ValueError(f"sampler state consumed={consumed!r} must be an int in [0, {total}]")
            self.start, self.batches_done = consumed, 0
        self._resume = True


def _number_occurrences(order: list[Any], batches: bool) -> list[Any]:
    """The order with each index paired with its occurrence number in the epoch (0 for
    its first appearance), batch by batch for a batch source."""
    seen: dict[int, int] = {}

    def number(index: Any) -> tuple[int, int]:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"the sampler yielded {index!r}; seedtree's loader needs integer indices")
        index = int(index)
        k = seen.get(index, 0)
        seen[index] = k + 1
        return index, k

    if batches:
        return [[number(i) for i in batch] for batch in order]
    return [number(i) for i in order]


class SeedTreeBatchSampler(BatchSampler):
    """The loader's batch sampler: batches of ``(epoch, index, occurrence)`` from a
    ``SeedTreeSampler``, advancing its cursor as the loader delivers them. Its
    ``(sampler, batch_size, drop_last)`` signature is torch's, so frameworks that rebuild
    a loader (Lightning's predict) can rebuild it; given any other sampler it refuses."""

    def __init__(self, sampler: Any, batch_size: int, drop_last: bool) -> None:
        if not isinstance(sampler, SeedTreeSampler):
            raise TypeError(
                f"seedtree's batch sampler was given a {type(sampler).__name__}: a framework tried to replace "
                "seedtree's sampler (which already shards by rank and seeds per sample). With Lightning, leave "
                "use_distributed_sampler at its default and do not wrap the loader's sampler"
            )
        self.sampler: SeedTreeSampler = sampler  # a narrower type than torch's
        self.batch_size = batch_size
        self.drop_last = drop_last
        sampler.batch_size, sampler.drop_last = batch_size, drop_last

    def __iter__(self) -> Iterator[list[Item]]:  # type: ignore[override]
        # Who iterates decides what to yield: accelerate's prepare() on several processes
        # wraps this in a BatchSamplerShard that deals the batches out to the ranks itself
        # (or, with dispatch_batches, process 0 draws them all and splits them), so the
        # sampler must yield the whole epoch there (sharding again would lose batches), and
        # shard by rank again when seedtree's own loader iterates; a wrapper's DataLoader
        # draws ahead of what it hands out (_Driver).
        caller = sys._getframe(1)
        sampler = self.sampler
        sharding = _sharding_caller(caller, self)
        whole = sharding is not None or _dispatching_caller(caller, self)
        sampler._view = (0, 1) if whole else None  # seedtree's own loader shards by rank
        shard, driver = _find_driver(caller, sampler, self)
        epoch = getattr(shard, "iteration", None)
        if isinstance(epoch, int) and not isinstance(epoch, bool) and epoch != sampler.epoch:
            # accelerate's DataLoaderShard has just called set_epoch(iteration), but it does not
            # reach this sampler through skip_first_batches around a BatchSamplerShard (the
            # Trainer's resume on several processes): that iteration is the epoch.
            sampler.set_epoch(epoch)
        sampler._driver = driver
        rounds = 0
        if sharding is not None and sampler.units == "samples":
            rounds = _padding_rounds(caller.f_locals.get("self"), sharding[1], sharding[2])
        return self._evened(sampler.batches(), rounds) if rounds else sampler.batches()

    def _evened(self, batches: Iterator[list[Item]], rounds: int) -> Iterator[list[Item]]:
        """``batches`` padded as accelerate's ``even_batches`` pads them: the short last batch
        completed, then whole batches until the count is a multiple of ``rounds``, from the
        epoch's first ``rounds`` batches. Done here because accelerate pads with the first
        batches *it* was handed, which after a mid-epoch resume are not the epoch's first:
        given full batches in whole rounds, it adds nothing, and a resume pads as the
        uninterrupted epoch did."""
        size, epoch = self.batch_size, None
        short: list[Item] | None = None
        for batch in batches:
            epoch = batch[0][0]
            if len(batch) < size:
                short = batch  # only the epoch's last batch is short
            else:
                yield batch
        if epoch is None:
            return
        sampler = self.sampler
        order = sampler._plan(epoch)[2]
        total = sampler._total(order)
        first = list(sampler._items(order, range(min(total, rounds * size)), epoch))
        while len(first) < rounds * size:  # an epoch shorter than one round: cycled, as accelerate does
            first += first
        cut = 0
        if short is not None:
            cut = size - len(short)
            yield short + first[:cut]
        for _ in range(-math.ceil(total / size) % rounds):
            yield first[cut : cut + size]
            cut += size

    def __len__(self) -> int:
        caller = sys._getframe(1)
        whole = _sharding_caller(caller, self) is not None or _dispatching_caller(caller, self)
        sampler, view = self.sampler, self.sampler._view
        sampler._view = (0, 1) if whole else None  # accelerate's wrappers ask for the whole epoch's count
        try:
            return sampler.num_batches()
        finally:
            sampler._view = view  # the view is set by whoever iterates (__iter__), not by a length query

    def set_epoch(self, epoch: int) -> None:
        """Same as ``sampler.set_epoch(epoch)`` (accelerate calls it here)."""
        self.sampler.set_epoch(epoch)


class SeedTreeLoader(DataLoader):
    """The DataLoader ``loader()`` returns: a plain DataLoader whose ``sampler`` is the
    ``SeedTreeSampler`` (where Lightning calls ``set_epoch``) and whose iteration also
    advances the sampler's cursor as batches are delivered to you."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        keeper = getattr(self.batch_sampler, "sampler", None)
        if isinstance(keeper, SeedTreeSampler):
            # DataLoader put a SequentialSampler here (sampler and batch_sampler exclude each
            # other); frameworks look for set_epoch and for a DistributedSampler on .sampler.
            object.__setattr__(self, "sampler", keeper)

    @property
    def seedtree_sampler(self) -> SeedTreeSampler:
        """The ``SeedTreeSampler`` behind this loader (found through any batch sampler
        wrapper a framework put around seedtree's)."""
        keeper = getattr(self.batch_sampler, "sampler", None)
        while keeper is not None and not isinstance(keeper, SeedTreeSampler):
            keeper = getattr(keeper, "sampler", None) or getattr(keeper, "batch_sampler", None)
        if keeper is None:
            raise TypeError("this loader's batch sampler is not seedtree's: it was replaced by a framework")
        return keeper

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]  # a generator over DataLoader's iterator
        sampler = self.seedtree_sampler
        hook = self.worker_init_fn
        if isinstance(hook, worker_init_fn) and hook.lazy_rank:
            hook.rank = sampler.rank  # read now: torch.distributed may start after the loader is made
        for batch in super().__iter__():
            sampler._delivered()
            yield batch
        sampler._ran_empty()

    def set_epoch(self, epoch: int) -> None:
        """Same as ``loader.sampler.set_epoch(epoch)``."""
        self.seedtree_sampler.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        """Same as ``loader.sampler.state_dict()``."""
        return self.seedtree_sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Same as ``loader.sampler.load_state_dict(state)``."""
        self.seedtree_sampler.load_state_dict(state)


def loader(
    dataset: Any,
    tree: SeedTree,
    *,
    batch_size: int = 1,
    shuffle: bool = False,
    drop_last: bool = False,
    bind_globals: bool = True,
    rank: int | None = None,
    world_size: int | None = None,
    drop_uneven: bool = False,
    sampler: Any = None,
    batch_sampler: Any = None,
    reseed_dataset: bool = True,
    **dataloader_kwargs: Any,
) -> SeedTreeLoader | streaming.StreamLoader:
    """A real ``torch.utils.data.DataLoader`` over ``dataset`` with per-sample streams.

    While sample ``i`` is produced in epoch e, ``seedtree.rng()`` (and, with
    ``bind_globals``, python ``random``, numpy's global and torch's CPU generator) are bound
    to ``tree / e / i`` (``tree / e / i / k`` for its k-th repeat in the epoch), and a
    dataset with a ``seedtree_reseed(node)`` method is called with that node first (to
    re-key generators it owns); without one, the MONAI ``Randomizable``s, albumentations
    pipelines and ``seedtree_reseed`` objects found in the dataset's attributes and
    containers are re-keyed, object k from ``node / "owned" / k`` (``seedtree.runtime.owned``).

    Guarantees: the batches are bit-identical for every ``num_workers``,
    ``persistent_workers`` on or off, and ``prefetch_factor``; epochs differ; the order is
    drawn from ``tree / "order" / e``; ``state_dict()``/``load_state_dict()`` resume
    mid-epoch with exactly the batches the uninterrupted run would have yielded, also on
    another number of ranks; with ``rank``/``world_size`` (default: read from
    ``seedtree.ranks.rank_info()`` when each epoch starts) the ranks take disjoint shards
    whose union is the single-process epoch. With ``num_workers=0`` the caller's global
    RNG states are as they were after each batch.

    ``shuffle`` defaults to False, as in torch's ``DataLoader``. ``generator=`` is refused:
    the order is drawn from the tree (use another tree for another order).

    ``sampler`` (a torch ``Sampler``: ``WeightedRandomSampler``, ``RandomSampler``,
    ``DistributedSampler``...) or ``batch_sampler`` (any iterable of index lists, as torch
    accepts: a ``BatchSampler``, a length-bucketing ``Sampler`` that yields lists, a list
    of lists) replace the built-in shuffle; their randomness is drawn from the tree and the epoch
    (see ``SeedTreeSampler``). Other keyword arguments go to ``DataLoader``
    (``num_workers``, ``collate_fn``, ``pin_memory``, ``persistent_workers``,
    ``worker_init_fn`` (chained) ...).
    """
    # What rebuilds this loader with another layout (seedtree.testing.check_loader): every
    # argument as given, less the layout keywords.
    options = {k: v for k, v in locals().items() if k not in ("dataset", "tree", "dataloader_kwargs")}
    options.update((k, v) for k, v in dataloader_kwargs.items() if k not in _LAYOUT_KEYS)

    def rebuild(**layout: Any) -> SeedTreeLoader | streaming.StreamLoader:
        """This loader again, with other layout keywords (``seedtree.testing.check_loader``)."""
        return loader(dataset, tree, **options, **layout)

    if dataloader_kwargs.get("generator") is not None:
        raise ValueError(
            "loader() draws the order and the workers' seeds from the tree, so generator= would be ignored: "
            "drop it (for another order, pass another tree, e.g. tree / 'run-2')"
        )
    dataloader_kwargs.pop("generator", None)
    if isinstance(dataset, (IterableDataset, streaming.ShardedStream)) or streaming.is_hf_iterable(dataset):
        stream_dl = streaming.stream_loader(
            dataset,
            tree,
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            bind_globals=bind_globals,
            rank=rank,
            world_size=world_size,
            drop_uneven=drop_uneven,
            worker_hook=worker_init_fn,
            **dataloader_kwargs,
        )
        stream_dl.seedtree_rebuild = rebuild
        return stream_dl
    check_tree(tree, "loader")
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise TypeError(
            "seedtree.torch.loader needs a map-style dataset (with __getitem__ and __len__), a ShardedStream "
            "or an HF datasets.IterableDataset"
        )
    check_positive(batch_size, "batch_size")
    if dataloader_kwargs.get("in_order") is False:
        raise ValueError(
            "in_order=False delivers batches in the order workers finish them, so the resume cursor would not "
            "match what you received; seedtree's loader keeps in_order=True (drop the argument)"
        )
    for refused in ("shuffle_generator", "generator_per_worker"):
        dataloader_kwargs.pop(refused, None)
    if sampler is not None and batch_sampler is not None:
        raise ValueError("give sampler= or batch_sampler=, not both")
    source = batch_sampler if batch_sampler is not None else sampler
    if batch_sampler is not None and (
        isinstance(batch_sampler, (str, bytes)) or not hasattr(batch_sampler, "__iter__")
    ):
        raise TypeError(
            f"batch_sampler must be an iterable of index lists (a BatchSampler, a Sampler yielding lists, a list of "
            f"lists), got {type(batch_sampler).__name__}"
        )
    keeper = SeedTreeSampler(
        len(dataset),
        tree,
        batch_size,
        shuffle,
        drop_last,
        rank,
        world_size,
        drop_uneven,
        source=source,
        source_batches=batch_sampler is not None,
    )
    # A per-worker node would make dataset-owned generators depend on the worker layout:
    # in this loader, per-sample randomness comes from the sample's node.
    init = worker_init_fn(
        tree / "loader",
        then=dataloader_kwargs.pop("worker_init_fn", None),
        rank=rank,
        bind_globals=bind_globals,
        reseed_dataset=False,
        lazy_rank=rank is None,
    )
    dataloader_kwargs.setdefault("generator", (tree / "loader").torch())
    dl = SeedTreeLoader(
        _SampleBound(dataset, tree, bind_globals, reseed_dataset),
        batch_sampler=SeedTreeBatchSampler(keeper, batch_size, drop_last),
        worker_init_fn=init,
        **dataloader_kwargs,
    )
    dl.seedtree_rebuild = rebuild
    return dl


_LAYOUT_KEYS = frozenset(
    {"num_workers", "persistent_workers", "multiprocessing_context", "prefetch_factor", "generator", "timeout"}
)
