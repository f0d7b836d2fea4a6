"""torch DataLoader hooks: the per-worker ``worker_init_fn``, and the names of a sample's
stream (``sample_node``; the ``(epoch, index, occurrence)`` items the samplers hand out).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.optional import require
from ..core.tree import SeedTree
from ..runtime.owned import reseed_owned
from ..runtime.seeding import bind_process
from ._checks import check_tree
from .ranks import rank_info

torch = require("torch", "seedtree.torch")
from torch.utils.data import (  # noqa: E402
    get_worker_info,
)

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
        self.unwrap_dataset = False  # set by loader(): get_worker_info().dataset is your dataset

    def node(self, worker_id: int, base_seed: int) -> SeedTree:
        """The node of worker ``worker_id`` for an iteration with this base seed."""
        return self.tree.child("worker", self.rank, (base_seed >> 32) & 0xFFFFFFFF, base_seed & 0xFFFFFFFF, worker_id)

    def __call__(self, worker_id: int) -> None:
        info = get_worker_info()
        if info is None:
            raise RuntimeError("seedtree.torch.worker_init_fn runs in DataLoader workers only (DataLoader calls it)")
        node = self.node(worker_id, info.seed - worker_id)
        unwrap = getattr(type(info.dataset), "seedtree_unwrapped", None)
        if self.unwrap_dataset and unwrap is not None:
            # Your hook configures the dataset the worker fetches from (file handles,
            # sharding), as with torch's DataLoader: not seedtree's view of it.
            object.__setattr__(info, "dataset", unwrap(info.dataset))
        bind_process(node, self.bind_globals)
        if self.reseed_dataset:
            _reseed_dataset(info.dataset, node)
        if self.then is not None:
            self.then(worker_id)


Item = tuple[int, int, int]
"""What the sampler hands a worker for one sample: ``(epoch, index, occurrence)``. The
epoch travels with the index, so persistent workers (whose dataset copies never see
``set_epoch``) still bind the right node."""


class SampleKey(tuple):
    """An ``Item`` handed out on its own (``batch_size=None``: no automatic batching), so
    that the dataset view tells it from an index of yours (``loader.dataset[i]``)."""

    __slots__ = ()


def sample_node(tree: SeedTree, epoch: int, index: int, occurrence: int = 0) -> SeedTree:
    """The node that sample ``index`` is produced under in ``epoch``: ``tree / epoch / index``
    for its first occurrence in the epoch, ``tree / epoch / index / k`` for its k-th repeat
    (a sampler drawing with replacement), so every occurrence has a stream of its own."""
    node = tree / epoch / index
    return node / occurrence if occurrence else node
