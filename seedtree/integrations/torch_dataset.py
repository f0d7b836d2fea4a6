"""The per-sample fetch of seedtree's map-style loader: a transparent view of your dataset
whose item ``(epoch, index, occurrence)`` is ``dataset[index]`` produced under that
sample's node.
"""

from __future__ import annotations

from typing import Any

from ..core.optional import require
from ..core.tree import SeedTree
from ..runtime.ambient import current
from ..runtime.capture import isolate
from ..runtime.controllers import REGISTRY
from ..runtime.owned import OwnedGenerators
from ..runtime.tasks import run_keyed, run_keyed_batch
from .torch_hooks import Item, SampleKey

torch = require("torch", "seedtree.torch")
import numpy as np  # noqa: E402
from torch.utils.data import (  # noqa: E402
    Dataset,
    get_worker_info,
)


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
    randomness (dropout) never follows the data's.

    It is transparent, so that ``loader.dataset`` reads as your dataset:
    ``isinstance(loader.dataset, YourDataset)`` holds, attributes are read from and written
    to your dataset, ``len`` is its length and ``loader.dataset[i]`` (an index of yours, not
    an item of seedtree's sampler) is ``dataset[i]``. Its own state lives under
    ``_seedtree_*`` names so that none of your attribute names is shadowed."""

    _OWN = frozenset(
        {"_seedtree_dataset", "_seedtree_tree", "_seedtree_bind", "_seedtree_reseed", "_seedtree_epoch"}
        | {"_seedtree_owned", "seedtree_probe"}
    )

    def __init__(self, dataset: Any, tree: SeedTree, bind_globals: bool, reseed: bool, probe: bool = False) -> None:
        put = object.__setattr__
        put(self, "_seedtree_dataset", dataset)
        put(self, "_seedtree_tree", tree)
        put(self, "_seedtree_bind", bind_globals)
        put(self, "_seedtree_reseed", reseed)
        put(self, "_seedtree_epoch", None)  # (epoch, tree / epoch), kept between samples
        # Found in each process at its first sample (a pickled copy searches again).
        put(self, "_seedtree_owned", OwnedGenerators(dataset))
        # Set by seedtree.testing.check_loader: each sample comes back with its RNG digests.
        put(self, "seedtree_probe", probe)

    # -- transparency: what you read and write is your dataset's --------------------------

    @property  # type: ignore[misc]  # isinstance(loader.dataset, YourDataset) holds
    def __class__(self) -> type:  # noqa: D105
        return type(self._seedtree_dataset)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_seedtree_") or name == "seedtree_probe":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self._seedtree_dataset, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self._seedtree_dataset, name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._seedtree_dataset, name)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled by its constructor (isinstance's __class__ would mislead pickle's default).
        return (
            _SampleBound,
            (
                self._seedtree_dataset,
                self._seedtree_tree,
                self._seedtree_bind,
                self._seedtree_reseed,
                self.seedtree_probe,
            ),
        )

    def __repr__(self) -> str:
        return repr(self._seedtree_dataset)

    def seedtree_unwrapped(self) -> Any:
        """Your dataset (``worker_init_fn`` hands it to ``get_worker_info().dataset``)."""
        return self._seedtree_dataset

    def __len__(self) -> int:
        return len(self._seedtree_dataset)

    # -- the fetch ------------------------------------------------------------------------

    def _seedtree_epoch_node(self, epoch: int) -> SeedTree:
        """``tree / epoch``, kept: its mixing state is computed once per epoch, so each
        sample costs one key's worth of hashing."""
        cached = self._seedtree_epoch
        if cached is None or cached[0] != epoch:
            cached = (epoch, self._seedtree_tree / epoch)
            object.__setattr__(self, "_seedtree_epoch", cached)
        return cached[1]

    def __getitem__(self, item: Any) -> Any:
        if type(item) is SampleKey:  # from seedtree's sampler without automatic batching
            if isinstance(item[1], list):
                return self._bulk(item[0], item[1], item[2])
            return self.__getitems__([tuple(item)])[0]
        return self._seedtree_dataset[item]  # your own index: your dataset's own answer

    def _bulk(self, epoch: int, indices: list[int], place: int) -> Any:
        """``dataset[indices]`` (a sampler yielding lists, without automatic batching: your
        dataset reads them at once) under ``tree / epoch / "bulk" / place``, the node of
        that list's place in the epoch."""
        modules = REGISTRY.loaded_modules() if self._seedtree_bind else ()
        get = self._get if self._seedtree_reseed and self._seedtree_owned else self._seedtree_dataset.__getitem__
        node = self._seedtree_epoch_node(epoch) / "bulk"
        if get_worker_info() is None and self._seedtree_bind:
            with isolate(ambient=False):
                return run_keyed(get, node, place, (indices,), {}, modules)
        return run_keyed(get, node, place, (indices,), {}, modules)

    def __getitems__(self, items: list[Item]) -> list[Any]:
        fetch = self._probed if self.seedtree_probe else self._fetch
        if get_worker_info() is None and self._seedtree_bind:
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
        modules = REGISTRY.loaded_modules() if self._seedtree_bind else ()
        # Datasets owning generators go through _get, which re-keys them; the others are
        # fetched directly (one Python call less per sample).
        get = self._get if self._seedtree_reseed and self._seedtree_owned else self._seedtree_dataset.__getitem__
        epoch = epochs[0]
        if epochs.count(epoch) == len(epochs) and not any(occurrences):
            # The common case: one vectorised derivation seeds every sample of the batch.
            return run_keyed_batch(self._seedtree_epoch_node(epoch), list(indices), get, indices, modules)
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
                got = run_keyed_batch(self._seedtree_epoch_node(e), keys, get, [indices[j] for j in where], modules)
                for j, value in zip(where, got, strict=True):
                    out[j] = value
        return out

    def _probed(self, items: list[Item]) -> list[Any]:
        """``_fetch`` with each sample wrapped with what the RNG libraries were left at
        right after it ran, still under its binding (``seedtree.testing``)."""
        from .loader_check import Probed, probe_digest

        inner = self._seedtree_dataset

        class _Digesting:  # the dataset, answering each index with (sample, digests)
            def __getitem__(self, index: int) -> Any:
                value = inner[index]
                return value, probe_digest()

            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

        object.__setattr__(self, "_seedtree_dataset", _Digesting())
        try:
            got = self._fetch(items)
        finally:
            object.__setattr__(self, "_seedtree_dataset", inner)
        return [Probed(item, digests, value) for item, (value, digests) in zip(items, got, strict=True)]

    def _get(self, index: int) -> Any:
        self._seedtree_owned.reseed(current())
        return self._seedtree_dataset[index]
