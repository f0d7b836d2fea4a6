"""seedtree's loader over a plain ``IterableDataset`` (no shards: the dataset decides what
each worker reads), each sample keyed by (epoch, rank, workers, worker, position).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ..core.optional import require
from ..core.tree import SeedTree
from ..runtime.capture import isolate
from ..runtime.controllers import REGISTRY
from ..runtime.tasks import run_keyed
from .ranks import rank_info
from .torch_hooks import worker_init_fn

torch = require("torch", "seedtree.torch")
from torch.utils.data import (  # noqa: E402
    DataLoader,
    IterableDataset,
    IterDataPipe,  # noqa: E402
    get_worker_info,
)
from torch.utils.data.graph_settings import apply_random_seed, apply_sharding  # noqa: E402


class _IterBound(IterableDataset):
    """A plain ``IterableDataset``, read with sample p of worker w of W (epoch e, rank r)
    produced under ``tree / e / "iterable" / r / W / w / p`` (the global RNGs with
    ``bind_globals``, and ``seedtree.rng()``). The epoch and rank are set by the loader
    before each iteration; a persistent worker's copy counts its own iterations on."""

    def __init__(self, dataset: Any, tree: SeedTree, bind_globals: bool) -> None:
        self.dataset, self.tree, self.bind_globals = dataset, tree, bind_globals
        self.epoch, self.rank = 0, 0
        self._started = False  # this copy has iterated (a persistent worker's next iteration is the next epoch)
        self._sharded = False  # a DataPipe takes this worker's share once per worker

    def __iter__(self) -> Iterator[Any]:
        if self._started:
            self.epoch += 1
        self._started = True
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        node = self.tree.child(self.epoch, "iterable", self.rank, workers, worker)
        if isinstance(self.dataset, IterDataPipe):
            # What torch does to a DataPipe it iterates (it cannot see it inside this view):
            # every worker shuffles alike, from the tree and the epoch, then takes its share.
            apply_random_seed(self.dataset, self.tree.child(self.epoch, "datapipe").torch())
            if info is not None and not self._sharded:
                apply_sharding(self.dataset, workers, worker)
                self._sharded = True
        modules = REGISTRY.loaded_modules() if self.bind_globals else ()
        main = info is None and self.bind_globals
        source = iter(self.dataset)
        position = 0
        while True:
            with contextlib.ExitStack() as stack:
                if main:  # the caller's global RNGs are put back after each sample
                    stack.enter_context(isolate(ambient=False))
                try:
                    value = run_keyed(next, node, position, (source,), {}, modules)
                except StopIteration:
                    return
            yield value
            position += 1

    def __len__(self) -> int:
        return len(self.dataset)

    def seedtree_unwrapped(self) -> Any:
        """Your dataset (``worker_init_fn`` hands it to ``get_worker_info().dataset``)."""
        return self.dataset

    def __getattr__(self, name: str) -> Any:
        if name in ("dataset", "tree", "bind_globals", "epoch", "rank", "_started", "_sharded"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


def _iterable_worker_hook(tree: SeedTree, then: Any) -> worker_init_fn:
    hook = worker_init_fn(tree / "loader", then=then, rank=0, bind_globals=False, reseed_dataset=False)
    hook.unwrap_dataset = True
    return hook


class IterableLoader(DataLoader):
    """The DataLoader ``loader()`` returns for a plain ``IterableDataset`` (see
    ``loader``): ``dataset`` is yours; each iteration is the next epoch (or ``set_epoch``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        bound = self.dataset
        if isinstance(bound, _IterBound):
            object.__setattr__(self, "_seedtree_bound", bound)
            object.__setattr__(self, "dataset", bound.dataset)
        self._next_epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration reads (persistent workers count on by themselves, so
        they take only the next epoch in turn)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
        if self.persistent_workers and self._iterator is not None and epoch != self._next_epoch:
            raise ValueError(
                f"set_epoch({epoch}): persistent workers of a plain IterableDataset read epoch {self._next_epoch} "
                "next; describe the data as a ShardedStream to choose epochs freely"
            )
        self._next_epoch = epoch

    def _get_iterator(self) -> Any:
        bound = self.__dict__.get("_seedtree_bound")
        if bound is None:
            return super()._get_iterator()
        object.__setattr__(self, "dataset", bound)  # what torch's iterator and workers read
        try:
            return super()._get_iterator()
        finally:
            object.__setattr__(self, "dataset", bound.dataset)

    def __iter__(self) -> Any:
        bound = self.__dict__.get("_seedtree_bound")
        if bound is not None and not (self.persistent_workers and self._iterator is not None):
            bound.epoch, bound._started = self._next_epoch, False
            bound.rank = rank_info().rank
        self._next_epoch += 1
        return super().__iter__()
