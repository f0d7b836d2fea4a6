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

import math
from collections.abc import Callable, Iterator
from typing import Any

from ..runtime.capture import isolate
from ..runtime.controllers import REGISTRY
from ..core.optional import require
from .ranks import rank_info
from ..core.codec import path_to_json
from ..runtime.seeding import bind_process
from ..runtime.tasks import run_keyed_batch
from ..core.tree import SeedTree

torch = require("torch", "seedtree.torch")
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler, get_worker_info  # noqa: E402

RESEED_METHOD = "seedtree_reseed"
"""A dataset (the worker's copy) with a method of this name is called as
``dataset.seedtree_reseed(node)`` whenever ``worker_init_fn`` binds a worker, so it can rebuild the
generators it owns (e.g. ``self.rng = node.numpy()``)."""


def _reseed_dataset(dataset: Any, node: SeedTree) -> None:
    method = getattr(dataset, RESEED_METHOD, None)
    if callable(method):
        method(node)


class worker_init_fn:
    """``DataLoader(..., worker_init_fn=seedtree.torch.worker_init_fn(tree))``.

    Worker w of a loader iteration on rank r binds ``tree / "worker" / r / hi / lo / w``
    where ``hi, lo`` are the two 32-bit halves of the iteration's base seed, which torch
    draws from the loader's ``generator`` once per iteration: non-persistent workers get new
    streams every epoch, and with ``generator=tree.torch()`` the whole run is reproducible.
    Then calls the dataset's ``seedtree_reseed(node)`` if it has one, then your own
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
    ) -> None:
        if not isinstance(tree, SeedTree):
            raise TypeError(f"worker_init_fn needs a SeedTree, got {type(tree).__name__}")
        self.tree = tree
        self.then = then
        self.rank = rank_info().rank if rank is None else rank
        self.bind_globals = bind_globals
        self.reseed_dataset = reseed_dataset

    def node(self, worker_id: int, base_seed: int) -> SeedTree:
        """The node of worker ``worker_id`` for an iteration with this base seed."""
        return self.tree.child("worker", self.rank, (base_seed >> 32) & 0xFFFFFFFF, base_seed & 0xFFFFFFFF, worker_id)

    def __call__(self, worker_id: int) -> None:
        info = get_worker_info()
        node = self.node(worker_id, info.seed - worker_id)
        bind_process(node, self.bind_globals)
        if self.reseed_dataset:
            _reseed_dataset(info.dataset, node)
        if self.then is not None:
            self.then(worker_id)


class _SampleBound(Dataset):
    """Wraps a map-style dataset; item ``(epoch, i)`` is ``dataset[i]`` run with
    ``tree / epoch / i`` bound."""

    def __init__(self, dataset: Any, tree: SeedTree, bind_globals: bool) -> None:
        self.dataset = dataset
        self.tree = tree
        self.bind_globals = bind_globals
        self._epoch_node: tuple[int, SeedTree] | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def epoch_node(self, epoch: int) -> SeedTree:
        """``tree / epoch``, kept: its mixing state is computed once per epoch, so each
        sample costs one key's worth of hashing."""
        cached = self._epoch_node
        if cached is None or cached[0] != epoch:
            cached = self._epoch_node = (epoch, self.tree / epoch)
        return cached[1]

    def __getitem__(self, item: tuple[int, int]) -> Any:
        return self.__getitems__([item])[0]

    def __getitems__(self, items: list[tuple[int, int]]) -> list[Any]:
        # DataLoader fetches a whole batch through this: the words that seed the global
        # RNGs of every sample in it are derived in one vectorised call.
        epoch = items[0][0]
        if any(e != epoch for e, _ in items):
            return [x for item in items for x in self.__getitems__([item])]
        modules = REGISTRY.loaded_modules() if self.bind_globals else ()
        indices = [i for _, i in items]
        return run_keyed_batch(self.epoch_node(epoch), indices, [(self.dataset.__getitem__, (i,), {}) for i in indices],
                               modules)

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)


class SeedTreeSampler(Sampler):
    """Batch sampler and cursor over epochs: yields lists of ``(epoch, index)``.

    The order of epoch e is a permutation drawn from ``tree / "order" / e`` (or 0..n-1
    without shuffling). With ``world_size`` > 1, rank r takes positions r, r + W, r + 2W,
    ... of that order, so the ranks' shards are disjoint and their union is the whole epoch
    (shards differ by at most one sample; ``drop_uneven=True`` drops the last n % W samples
    so every rank gets as many, as DDP needs).

    The cursor (epoch, batches delivered) advances as the loader hands batches to you, not
    as workers prefetch them, so ``state_dict()`` taken mid-epoch and loaded into a fresh
    loader resumes with exactly the next batch. A finished epoch moves the cursor to the
    next epoch; ``set_epoch(e)`` moves it to the start of epoch e. As with any DataLoader,
    a new iteration after one broken off (``next(iter(loader))`` to peek) starts the epoch
    over; only ``load_state_dict`` resumes mid-epoch.
    """

    def __init__(
        self,
        n: int,
        tree: SeedTree,
        batch_size: int = 1,
        shuffle: bool = True,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        drop_uneven: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} must be in [0, world_size={world_size})")
        self.n, self.tree, self.batch_size = n, tree, batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self.rank, self.world_size, self.drop_uneven = rank, world_size, drop_uneven
        self.epoch = 0
        self.batches_done = 0
        self._resume = False  # set by load_state_dict: the next iteration continues mid-epoch

    def order(self, epoch: int) -> list[int]:
        """The sample indices this rank visits in ``epoch``, in order."""
        if self.shuffle:
            order = (self.tree / "order" / epoch).numpy().permutation(self.n)
        else:
            order = range(self.n)
        usable = self.n - self.n % self.world_size if self.drop_uneven else self.n
        return [int(i) for i in order[self.rank : usable : self.world_size]]

    def __len__(self) -> int:
        usable = self.n - self.n % self.world_size if self.drop_uneven else self.n
        share = len(range(self.rank, usable, self.world_size))
        return share // self.batch_size if self.drop_last else math.ceil(share / self.batch_size)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        if not self._resume:
            self.batches_done = 0
        self._resume = False
        epoch, start = self.epoch, self.batches_done
        order = self.order(epoch)
        for b in range(start, len(self)):
            yield [(epoch, i) for i in order[b * self.batch_size : (b + 1) * self.batch_size]]

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` from its first batch at the next iteration."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
        self.epoch, self.batches_done, self._resume = epoch, 0, False

    def _delivered(self) -> None:
        self.batches_done += 1
        if self.batches_done >= len(self):
            self.epoch, self.batches_done = self.epoch + 1, 0

    def state_dict(self) -> dict[str, Any]:
        """The cursor, plus what it is only valid with (checked on load). Plain ints,
        bools, strings and lists: it saves with JSON or ``torch.save``."""
        return {
            "epoch": self.epoch,
            "batches_done": self.batches_done,
            "n": self.n,
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
            "drop_uneven": self.drop_uneven,
            "rank": self.rank,
            "world_size": self.world_size,
            "entropy": str(self.tree.entropy),
            "path": path_to_json(self.tree.path),
        }

    _MUST_MATCH = ("n", "batch_size", "shuffle", "drop_last", "drop_uneven", "rank", "world_size", "entropy", "path")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from ``state_dict()`` at the next iteration; refuses a state from another
        dataset size, batching, order, sharding or tree, which would silently replay
        different data."""
        mine = self.state_dict()
        for key in self._MUST_MATCH:
            if key not in state:
                raise ValueError(f"sampler state has no {key!r}: pass what SeedTreeSampler.state_dict() returned")
            if state[key] != mine[key]:
                raise ValueError(
                    f"sampler state was saved with {key}={state[key]!r} but this loader has {key}={mine[key]!r}; "
                    "resume with the same dataset, batching, shuffling, ranks and tree"
                )
        self.epoch, self.batches_done, self._resume = int(state["epoch"]), int(state["batches_done"]), True


class SeedTreeLoader(DataLoader):
    """The DataLoader ``loader()`` returns. It is a plain DataLoader whose iteration also
    advances its sampler's cursor as batches are delivered; with ``num_workers=0`` it puts
    the caller's global RNG states back after each batch (samples are loaded in this very
    process, and the training loop's own randomness must not follow the data's)."""

    def __iter__(self) -> Iterator[Any]:
        sampler: SeedTreeSampler = self.batch_sampler
        iterator = super().__iter__()
        while True:
            if self.num_workers == 0 and self.dataset.bind_globals:
                with isolate(ambient=False):
                    batch = next(iterator, _END)
            else:
                batch = next(iterator, _END)
            if batch is _END:
                return
            sampler._delivered()
            yield batch

    def set_epoch(self, epoch: int) -> None:
        """Same as ``loader.batch_sampler.set_epoch(epoch)``."""
        self.batch_sampler.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        """Same as ``loader.batch_sampler.state_dict()``."""
        return self.batch_sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Same as ``loader.batch_sampler.load_state_dict(state)``."""
        self.batch_sampler.load_state_dict(state)


_END = object()


def loader(
    dataset: Any,
    tree: SeedTree,
    *,
    batch_size: int = 1,
    shuffle: bool = True,
    drop_last: bool = False,
    bind_globals: bool = True,
    rank: int | None = None,
    world_size: int | None = None,
    drop_uneven: bool = False,
    **dataloader_kwargs: Any,
) -> SeedTreeLoader | streaming.StreamLoader:
    """A real ``torch.utils.data.DataLoader`` over ``dataset`` with per-sample streams.

    While ``dataset[i]`` runs in epoch e, ``seedtree.rng()`` (and, with ``bind_globals``,
    python ``random``, numpy's global and torch's CPU generator) are bound to
    ``tree / e / i``. Guarantees: the batches are bit-identical for every ``num_workers``,
    ``persistent_workers`` on or off, and ``prefetch_factor``; epochs differ; the order is
    drawn from ``tree / "order" / e``; ``state_dict()``/``load_state_dict()`` resume
    mid-epoch with exactly the batches the uninterrupted run would have yielded; with
    ``rank``/``world_size`` (default: ``seedtree.distributed.rank_info()``) the ranks take
    disjoint shards whose union is the single-process epoch.

    Generators the dataset owns are not reseeded here (``seedtree_reseed`` is the per-worker
    hook's protocol; per worker they would depend on the layout): draw from
    ``seedtree.rng()`` or the globals. A user ``worker_init_fn`` is chained.

    Other keyword arguments go to ``DataLoader`` (``num_workers``, ``collate_fn``,
    ``pin_memory``, ``persistent_workers``, ``worker_init_fn`` ...). ``sampler`` and
    ``batch_sampler`` are refused: the order is what this loader derives.
    """
    if isinstance(dataset, (IterableDataset, streaming.ShardedStream)) or streaming.is_hf_iterable(dataset):
        return streaming.stream_loader(
            dataset,
            tree,
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            bind_globals=bind_globals,
            rank=rank,
            world_size=world_size,
            drop_uneven=drop_uneven,
            **dataloader_kwargs,
        )
    if not isinstance(tree, SeedTree):
        raise TypeError(f"loader needs a SeedTree, got {type(tree).__name__}")
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise TypeError(
            "seedtree.torch.loader needs a map-style dataset (with __getitem__ and __len__), a ShardedStream "
            "or an HF datasets.IterableDataset"
        )
    for refused in ("sampler", "batch_sampler"):
        if dataloader_kwargs.get(refused) is not None:
            raise TypeError(f"loader() derives the sample order itself and does not take {refused}=; drop it")
    if rank is None or world_size is None:
        info = rank_info()
        rank = info.rank if rank is None else rank
        world_size = info.world_size if world_size is None else world_size
    batch_sampler = SeedTreeSampler(
        len(dataset), tree, batch_size, shuffle, drop_last, rank, world_size, drop_uneven
    )
    # A per-worker node would make dataset-owned generators depend on the worker layout:
    # in this loader, per-sample randomness comes from seedtree.rng() and the globals.
    init = worker_init_fn(tree / "loader", then=dataloader_kwargs.pop("worker_init_fn", None), rank=rank,
                          bind_globals=bind_globals, reseed_dataset=False)
    dataloader_kwargs.setdefault("generator", (tree / "loader").torch())
    return SeedTreeLoader(
        _SampleBound(dataset, tree, bind_globals),
        batch_sampler=batch_sampler,
        worker_init_fn=init,
        **dataloader_kwargs,
    )


from . import streaming  # noqa: E402  (after worker_init_fn, which streaming uses)
from .streaming import ShardedStream  # noqa: E402,F401
