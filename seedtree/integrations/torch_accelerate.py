"""What seedtree's batch sampler needs to know about the wrappers that iterate it: accelerate's
``BatchSamplerShard`` (deals batches out to processes and pads them), its
``DataLoaderDispatcher`` (``dispatch_batches=True``) and ``DataLoaderShard`` (reads one batch
ahead), and torch's iterator behind them (``_Driver``: which batches were trained).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from types import FrameType
from typing import Any

from ..core.optional import require

torch = require("torch", "seedtree.torch")
from torch.utils.data.dataloader import _BaseDataLoaderIter  # noqa: E402  # who draws a loader's batches


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
        if getattr(type(owner), "seedtree_counts_batches", False):
            return None, None  # seedtree's own loader: it counts what it delivers
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
