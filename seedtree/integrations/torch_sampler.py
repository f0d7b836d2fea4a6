"""seedtree's samplers for the map-style loader: ``SeedTreeSampler`` (the epoch's order and
the cursor, a ``DistributedSampler`` so frameworks leave it alone) and
``SeedTreeBatchSampler`` (its batches, aware of the wrappers that iterate it).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from typing import Any

from ..core.optional import require
from ..core.tree import SeedTree
from ._checks import check_positive, check_ranks
from .torch_accelerate import _dispatching_caller, _Driver, _find_driver, _padding_rounds, _sharding_caller
from .torch_cursor import _Cursor
from .torch_hooks import Item, SampleKey
from .torch_order import _is_batch_source

torch = require("torch", "seedtree.torch")
from torch.utils.data import (  # noqa: E402
    BatchSampler,
    DistributedSampler,
)


class SeedTreeSampler(_Cursor, DistributedSampler):
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
        n: Any,
        tree: SeedTree,
        batch_size: int = 1,
        shuffle: bool = True,
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        drop_uneven: bool = False,
        source: Any = None,
        source_batches: bool | None = None,
        keys: bool = False,
    ) -> None:
        batch_size = check_positive(batch_size, "batch_size")
        # n: the dataset length, or the dataset itself (its length is then read when asked,
        # as torch's samplers do: a dataset that grows between epochs is seen).
        self._sized = None if isinstance(n, int) else n
        self._n = len(n) if self._sized is not None else n
        if isinstance(self._n, bool) or not isinstance(self._n, int) or self._n < 0:
            raise ValueError(f"the dataset length must be a non-negative int, got {self._n!r}")
        self._ranks = check_ranks(rank, world_size)
        # Not DistributedSampler.__init__: it would ask torch.distributed for the rank now.
        self.tree, self.batch_size = tree, batch_size
        self.keys = keys  # yields SampleKey items one at a time (a loader with batch_size=None)
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
        self._cache: tuple[int, int, Any, int] | None = None  # (epoch, world_size, the rank's plan, n)
        if source is not None and (isinstance(source, (str, bytes)) or not hasattr(source, "__iter__")):
            what = "batch_sampler must be an iterable of index lists" if self.source_batches else "sampler must be"
            raise TypeError(f"{what} an iterable of indices, got {type(source).__name__}")

    in_order = True  # False: the loader delivers batches as workers finish them (state_dict refuses mid-epoch)

    @property
    def dataset(self) -> range:  # type: ignore[override]  # what DistributedSampler reads: its length
        """``range(n)``: what ``DistributedSampler`` reads (its length), read now."""
        return range(self.n)

    # -- ranks ------------------------------------------------------------------------

    @property
    def num_replicas(self) -> int:  # type: ignore[override]
        """The number of ranks: as given, else read from ``rank_info()`` now."""
        return self._layout()[1]

    @property
    def rank(self) -> int:  # type: ignore[override]
        """This process's rank: as given, else read from ``rank_info()`` now."""
        return self._layout()[0]

    # -- iteration --------------------------------------------------------------------

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
        items = self._items(order, positions, epoch)
        return map(SampleKey, items) if self.keys else items

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

    def __len__(self) -> int:
        return self._share(0)  # what DistributedSampler's len means: this rank's units

    def num_batches(self) -> int:
        """This rank's number of batches in a whole epoch."""
        return self._batches(0)


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
