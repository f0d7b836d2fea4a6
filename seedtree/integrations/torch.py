"""torch DataLoader integration: per-worker hooks and a layout-invariant per-sample loader.

- ``worker_init_fn(tree)``: every worker of every epoch and rank gets its own node
  ``tree / "worker" / rank / epoch-seed / worker_id`` (a path, never a sum), seeds python
  ``random``, numpy's global and torch from it and binds ``seedtree.rng()``. Cheap, and what
  most people want; the samples a worker draws still depend on which worker loaded them.
- ``loader(dataset, tree, ...)``: a real ``DataLoader`` in which ``dataset[i]`` of epoch e
  runs with the global RNGs and ``seedtree.rng()`` bound to ``tree / e / i``. Batches are
  then bit-identical for any ``num_workers``, persistent or not, any number of ranks, and
  after a resume from ``state_dict()`` mid-epoch. It takes torch's arguments, checks and
  attributes (``docs/integrations/torch-compat.md`` lists each, and each difference).

This module holds ``loader()`` and the loader class; the parts live beside it:
``torch_hooks`` (the worker hook, the names of a sample's stream), ``torch_dataset`` (the
per-sample fetch), ``torch_order`` and ``torch_cursor`` (the sampler's epoch order and its
cursor), ``torch_sampler`` (the samplers), ``torch_accelerate`` (the wrappers that iterate
them) and ``torch_iterable`` (a plain ``IterableDataset``).
"""

from __future__ import annotations

from typing import Any

from ..core.optional import require
from ..core.tree import SeedTree
from . import streaming
from ._checks import check_positive, check_tree
from .streaming import ShardedStream
from .torch_dataset import _SampleBound
from .torch_hooks import RESEED_METHOD, SampleKey, sample_node, worker_init_fn
from .torch_iterable import IterableLoader, _iterable_worker_hook, _IterBound
from .torch_sampler import SeedTreeBatchSampler, SeedTreeSampler

torch = require("torch", "seedtree.torch")
from torch.utils.data import (  # noqa: E402
    DataLoader,
    IterableDataset,
    IterDataPipe,
)
from torch.utils.data.dataloader import (  # noqa: E402  # the iterators it counts through
    _MultiProcessingDataLoaderIter,
    _SingleProcessDataLoaderIter,
)
from torch.utils.data.graph_settings import apply_shuffle_settings  # noqa: E402

__all__ = [
    "RESEED_METHOD",
    "IterableLoader",
    "SampleKey",
    "SeedTreeBatchSampler",
    "SeedTreeLoader",
    "SeedTreeSampler",
    "ShardedStream",
    "loader",
    "sample_node",
    "worker_init_fn",
]


class _Counting:
    """Mixed into torch's own iterators (``iter(loader)`` is a ``_BaseDataLoaderIter``):
    the cursor advances by one batch for each batch handed out, and for each batch whose
    fetch raised (its place in the epoch is used: torch goes on with the next batch when
    you call ``next()`` again, and so does the cursor)."""

    _seedtree_sampler: SeedTreeSampler
    _seedtree_taken = 0  # batches whose indices the single-process iterator has drawn

    def __next__(self) -> Any:
        before = self._seedtree_position()
        try:
            batch = super().__next__()  # type: ignore[misc]
        except StopIteration:
            self._seedtree_sampler._ran_empty()
            raise
        except BaseException:
            if self._seedtree_position() != before:
                self._seedtree_sampler._delivered()  # that batch's place in the epoch is used
            raise
        self._seedtree_sampler._delivered()
        return batch

    def _seedtree_position(self) -> int:
        return int(getattr(self, "_rcvd_idx", self._seedtree_taken))


class _SingleProcessIter(_Counting, _SingleProcessDataLoaderIter):
    def _next_index(self) -> Any:
        index = super()._next_index()
        self._seedtree_taken += 1
        return index


class _MultiProcessIter(_Counting, _MultiProcessingDataLoaderIter):
    pass


class SeedTreeLoader(DataLoader):
    """The DataLoader ``loader()`` returns: a plain DataLoader whose ``sampler`` is the
    ``SeedTreeSampler`` (where Lightning calls ``set_epoch``) and whose iterator (torch's
    own, ``iter(loader)`` is a ``_BaseDataLoaderIter``) also advances the sampler's cursor
    as batches are delivered to you. ``batch_size`` and ``drop_last`` read as given (as
    torch's: ``None`` and ``False`` with a ``batch_sampler``)."""

    seedtree_counts_batches = True  # its iterator counts what it delivers (wrappers' are read by _Driver)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        keeper = self.batch_sampler if isinstance(self.batch_sampler, SeedTreeSampler) else None
        if keeper is None:
            keeper = getattr(self.batch_sampler, "sampler", None)
        if keeper is None and isinstance(self.sampler, SeedTreeSampler):
            keeper = self.sampler  # batch_size=None: the sampler hands out one item at a time
        if isinstance(keeper, SeedTreeSampler):
            # DataLoader put a SequentialSampler here (sampler and batch_sampler exclude each
            # other); frameworks look for set_epoch and for a DistributedSampler on .sampler.
            object.__setattr__(self, "sampler", keeper)
            if self.batch_sampler is not None and keeper.units == "samples":
                # The batching is seedtree's batch sampler's, but these read as you gave them
                # (frameworks and torch's own helpers read them).
                object.__setattr__(self, "batch_size", keeper.batch_size)
                object.__setattr__(self, "drop_last", keeper.drop_last)

    def _get_iterator(self) -> Any:
        it: Any = _SingleProcessIter(self) if self.num_workers == 0 else _MultiProcessIter(self)
        if self.num_workers:
            self.check_worker_number_rationality()
        it._seedtree_sampler = self.seedtree_sampler
        return it

    @property
    def seedtree_sampler(self) -> SeedTreeSampler:
        """The ``SeedTreeSampler`` behind this loader (found through any batch sampler
        wrapper a framework put around seedtree's)."""
        keeper: Any = self.batch_sampler if self.batch_sampler is not None else self.sampler
        while keeper is not None and not isinstance(keeper, SeedTreeSampler):
            inner = getattr(keeper, "sampler", None)  # not `or`: an empty share is a falsy sampler
            keeper = inner if inner is not None else getattr(keeper, "batch_sampler", None)
        if keeper is None:
            raise TypeError("this loader's batch sampler is not seedtree's: it was replaced by a framework")
        return keeper

    def __iter__(self) -> Any:
        sampler = self.seedtree_sampler
        hook = self.worker_init_fn
        if isinstance(hook, worker_init_fn) and hook.lazy_rank:
            hook.rank = sampler.rank  # read now: torch.distributed may start after the loader is made
        return super().__iter__()

    def __len__(self) -> int:
        index_sampler: Any = self.batch_sampler if self.batch_sampler is not None else self.sampler
        return len(index_sampler)

    def set_epoch(self, epoch: int) -> None:
        """Same as ``loader.sampler.set_epoch(epoch)``."""
        self.seedtree_sampler.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        """Same as ``loader.sampler.state_dict()``."""
        return self.seedtree_sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Same as ``loader.sampler.load_state_dict(state)``."""
        self.seedtree_sampler.load_state_dict(state)


def _check_like_torch(
    dataset: Any,
    batch_size: Any,
    shuffle: Any,
    sampler: Any,
    batch_sampler: Any,
    drop_last: Any,
    kwargs: dict[str, Any],
) -> None:
    """torch's own argument checks, in torch's order and with torch's messages, made before
    seedtree builds anything (so a conflict is reported as torch reports it)."""
    num_workers, timeout = kwargs.get("num_workers", 0), kwargs.get("timeout", 0)
    if num_workers < 0:
        raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable multiprocessing.")
    if timeout < 0:
        raise ValueError("timeout option should be non-negative")
    if _is_plain_iterable(dataset):
        if shuffle not in {False, None} and not isinstance(dataset, IterDataPipe):  # torch shuffles a DataPipe
            raise ValueError(
                f"DataLoader with IterableDataset: expected unspecified shuffle option, but got shuffle={shuffle}"
            )
        if sampler is not None:
            raise ValueError(
                f"DataLoader with IterableDataset: expected unspecified sampler option, but got sampler={sampler}"
            )
        if batch_sampler is not None:
            raise ValueError(
                "DataLoader with IterableDataset: expected unspecified batch_sampler option, but got "
                f"batch_sampler={batch_sampler}"
            )
    if sampler is not None and shuffle:
        raise ValueError("sampler option is mutually exclusive with shuffle")
    if batch_sampler is not None:
        if batch_size != 1 or shuffle or sampler is not None or drop_last:
            raise ValueError(
                "batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and drop_last"
            )
    elif batch_size is None and drop_last:
        raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive with drop_last")


def _is_plain_iterable(dataset: Any) -> bool:
    """A torch ``IterableDataset`` that is neither a ``ShardedStream`` nor an HF stream (those
    seedtree reads by shard and position)."""
    return (
        isinstance(dataset, IterableDataset)
        and not isinstance(dataset, streaming.ShardedStream)
        and not streaming.is_hf_iterable(dataset)
    )


def loader(
    dataset: Any,
    tree: SeedTree,
    *,
    batch_size: int | None = 1,
    shuffle: bool | None = None,
    drop_last: bool = False,
    bind_globals: bool = True,
    rank: int | None = None,
    world_size: int | None = None,
    drop_uneven: bool = False,
    sampler: Any = None,
    batch_sampler: Any = None,
    reseed_dataset: bool = True,
    **dataloader_kwargs: Any,
) -> SeedTreeLoader | streaming.StreamLoader | IterableLoader:
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

    It takes torch's ``DataLoader`` arguments with torch's defaults and checks (a conflict,
    such as ``shuffle=True`` beside a ``sampler``, raises torch's ``ValueError``), and its
    attributes read as torch's (``batch_size``, ``drop_last``, ``dataset`` as given; see
    ``docs/integrations/torch-compat.md``). ``generator=`` is refused: the order is drawn
    from the tree (use another tree for another order).

    ``sampler`` (any iterable of indices: a torch ``Sampler`` such as
    ``WeightedRandomSampler`` or ``DistributedSampler``, a ``range``, a list) or
    ``batch_sampler`` (any iterable of index lists, as torch accepts: a ``BatchSampler``, a
    length-bucketing ``Sampler`` that yields lists, a list of lists) replace the built-in
    shuffle; their randomness is drawn from the tree and the epoch (see ``SeedTreeSampler``).
    ``batch_size=None`` hands out samples one at a time, uncollated (a sampler yielding
    lists then hands each list to ``dataset[...]`` whole, bound to the node of its place in
    the epoch). ``in_order=False`` is accepted; the batches then arrive in the order the
    workers finish them, so ``state_dict()`` refuses mid-epoch (at an epoch boundary it is
    exact). Other keyword arguments go to ``DataLoader`` (``num_workers``, ``collate_fn``,
    ``pin_memory``, ``persistent_workers``, ``worker_init_fn`` (chained) ...).

    A plain ``IterableDataset`` (no shards: it decides itself what each worker reads) gives
    an ``IterableLoader``: sample p of worker w of W in epoch e on rank r is bound to
    ``tree / e / "iterable" / r / W / w / p``. Reproducible for a given ``num_workers``, but
    not across worker layouts, since the dataset's own split is not; describe it as a
    ``ShardedStream`` for layout invariance and resume.
    """
    # What rebuilds this loader with another layout (seedtree.testing.check_loader): every
    # argument as given, less the layout keywords.
    options = {k: v for k, v in locals().items() if k not in ("dataset", "tree", "dataloader_kwargs")}
    options.update((k, v) for k, v in dataloader_kwargs.items() if k not in _LAYOUT_KEYS)

    def rebuild(**layout: Any) -> SeedTreeLoader | streaming.StreamLoader | IterableLoader:
        """This loader again, with other layout keywords (``seedtree.testing.check_loader``)."""
        return loader(dataset, tree, **options, **layout)

    if dataloader_kwargs.get("generator") is not None:
        raise ValueError(
            "loader() draws the order and the workers' seeds from the tree, so generator= would be ignored: "
            "drop it (for another order, pass another tree, e.g. tree / 'run-2')"
        )
    dataloader_kwargs.pop("generator", None)
    _check_like_torch(dataset, batch_size, shuffle, sampler, batch_sampler, drop_last, dataloader_kwargs)
    if _is_plain_iterable(dataset):
        check_tree(tree, "loader")
        if isinstance(dataset, IterDataPipe) and shuffle is not None:
            dataset = apply_shuffle_settings(dataset, shuffle=shuffle)  # as torch does
        it_dl = IterableLoader(
            _IterBound(dataset, tree, bind_globals),
            batch_size=batch_size,
            drop_last=drop_last,
            worker_init_fn=_iterable_worker_hook(tree, dataloader_kwargs.pop("worker_init_fn", None)),
            generator=(tree / "loader").torch(),
            **dataloader_kwargs,
        )
        it_dl.seedtree_rebuild = rebuild
        return it_dl
    if isinstance(dataset, (IterableDataset, streaming.ShardedStream)) or streaming.is_hf_iterable(dataset):
        if batch_size is None:
            raise ValueError("batch_size=None: seedtree's stream loader batches its lanes; give a batch_size")
        stream_dl = streaming.stream_loader(
            dataset,
            tree,
            batch_size=batch_size,
            shuffle=bool(shuffle),
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
    one_at_a_time = batch_size is None
    if not one_at_a_time:
        batch_size = check_positive(batch_size, "batch_size")
    for refused in ("shuffle_generator", "generator_per_worker"):
        dataloader_kwargs.pop(refused, None)
    if batch_sampler is not None and (
        isinstance(batch_sampler, (str, bytes)) or not hasattr(batch_sampler, "__iter__")
    ):
        raise TypeError(
            f"batch_sampler must be an iterable of index lists (a BatchSampler, a Sampler yielding lists, a list of "
            f"lists), got {type(batch_sampler).__name__}"
        )
    if sampler is not None and (isinstance(sampler, (str, bytes)) or not hasattr(sampler, "__iter__")):
        raise TypeError(f"sampler must be an iterable of indices (a Sampler, a range, a list), got {sampler!r}")
    source = batch_sampler if batch_sampler is not None else sampler
    keeper = SeedTreeSampler(
        dataset,
        tree,
        1 if one_at_a_time else batch_size,  # type: ignore[arg-type]
        bool(shuffle),
        drop_last,
        rank,
        world_size,
        drop_uneven,
        source=source,
        source_batches=True if batch_sampler is not None else (False if sampler is not None else None),
        keys=one_at_a_time,
    )
    keeper.in_order = dataloader_kwargs.get("in_order", True) is not False
    # A per-worker node would make dataset-owned generators depend on the worker layout:
    # in this loader, per-sample randomness comes from the sample's node. The worker binds
    # seedtree.rng() only: the global RNGs keep torch's own per-worker seeding outside the
    # samples, so your worker_init_fn sees torch.initial_seed() == get_worker_info().seed.
    init = worker_init_fn(
        tree / "loader",
        then=dataloader_kwargs.pop("worker_init_fn", None),
        rank=rank,
        bind_globals=False,
        reseed_dataset=False,
        lazy_rank=rank is None,
    )
    init.unwrap_dataset = True
    dataloader_kwargs.setdefault("generator", (tree / "loader").torch())
    bound = _SampleBound(dataset, tree, bind_globals, reseed_dataset)
    if one_at_a_time:
        dl = SeedTreeLoader(bound, batch_size=None, sampler=keeper, worker_init_fn=init, **dataloader_kwargs)
    else:
        dl = SeedTreeLoader(
            bound,
            batch_sampler=SeedTreeBatchSampler(keeper, batch_size, drop_last),  # type: ignore[arg-type]
            worker_init_fn=init,
            **dataloader_kwargs,
        )
    dl.seedtree_rebuild = rebuild
    return dl


_LAYOUT_KEYS = frozenset(
    {"num_workers", "persistent_workers", "multiprocessing_context", "prefetch_factor", "generator", "timeout"}
)
