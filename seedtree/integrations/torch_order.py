"""The epoch order of seedtree's map-style loader: the keyed shuffle or your sampler's
order (its randomness drawn from the tree), each occurrence of an index numbered, and this
rank's share of it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from typing import Any

from ..core.optional import require
from ..core.shuffle import KeyedPermutation
from ..core.tree import SeedTree
from ..runtime.capture import isolate
from ..runtime.controllers import REGISTRY
from .ranks import current_ranks

torch = require("torch", "seedtree.torch")
import numpy as np  # noqa: E402
from torch.utils.data import (  # noqa: E402
    BatchSampler,
    DistributedSampler,
    Sampler,
)


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


def _number_occurrences(order: list[Any], batches: bool, bulk: bool = False) -> list[Any]:
    """The order with each index paired with its occurrence number in the epoch (0 for
    its first appearance), batch by batch for a batch source. With ``bulk`` (no automatic
    batching), an item that is a list of indices is handed to the dataset whole: it is
    paired with its place in the epoch, which names its stream."""
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
    if bulk:
        return [
            ([int(i) for i in index], place) if isinstance(index, (list, tuple)) else number(index)
            for place, index in enumerate(order)
        ]
    return [number(i) for i in order]


class _EpochOrder:
    """``SeedTreeSampler``'s epoch order: which global positions this rank takes and what
    sits there (the keyed permutation, ``0..n-1``, or your sampler's order with each
    occurrence numbered), evaluated a chunk at a time; and how many units and batches
    that makes. The attributes are ``SeedTreeSampler``'s."""

    tree: SeedTree
    batch_size: int
    shuffle: bool
    drop_last: bool
    drop_uneven: bool
    source: Any
    source_batches: bool
    epoch: int
    start: int
    _sized: Any
    _n: int
    _ranks: tuple[int, int] | None
    _view: tuple[int, int] | None
    _cache: tuple[int, int, Any, int] | None
    keys: bool

    @property
    def n(self) -> int:
        """The dataset's length, read now (a dataset that grows is seen at the next epoch)."""
        return self._n if self._sized is None else len(self._sized)

    def _layout(self) -> tuple[int, int]:
        return self._view if self._view is not None else current_ranks(self._ranks)

    @property
    def units(self) -> str:
        """What the cursor counts: ``"samples"``, or ``"batches"`` with a batch source."""
        return "batches" if self.source is not None and self.source_batches else "samples"

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
        cached, n = self._cache, self.n
        if cached is not None and cached[0] == epoch and cached[1] == world and cached[3] == n:
            return rank, world, cached[2]
        order: Any = None
        if self.source is not None:
            order = _number_occurrences(self._source_order(epoch), self.units == "batches", self.keys)
        elif self.shuffle:
            order = KeyedPermutation(self.tree / "order" / epoch, self.n)
        self._cache = (epoch, world, order, n)
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
                yield _first_items(epoch, part)
            elif isinstance(order, KeyedPermutation):
                picked = np.asarray(order[np.arange(part.start, part.stop, part.step, dtype=np.int64)])
                yield _first_items(epoch, picked.tolist())
            elif self.units == "batches":
                yield [[(epoch, i, k) for i, k in order[p]] for p in part]
            else:
                yield [(epoch, i, k) for i, k in (order[p] for p in part)]

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

    def _remaining_batches(self) -> int:
        return self._batches(self.start)


def _first_items(epoch: int, indices: Sequence[int]) -> list[tuple[int, int, int]]:
    """``[(epoch, i, 0) for i in indices]``, the tuples built by zip in C (a fifth less)."""
    n = len(indices)
    return list(zip(itertools.repeat(epoch, n), indices, itertools.repeat(0, n), strict=True))
