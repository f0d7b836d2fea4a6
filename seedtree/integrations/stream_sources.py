"""What a stream is read from: ``ShardedStream`` (shards and a reader that yields each
shard's samples in the same order every time) and ``HFShards`` (the data sources of an HF
``datasets.IterableDataset``)."""

from __future__ import annotations

import inspect
import itertools
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from ..runtime.owned import OwnedGenerators

__all__ = ["DEFAULT_LANES", "STREAM_STATE_FORMAT", "HFShards", "ShardedStream", "StreamReadError", "is_hf_iterable"]

DEFAULT_LANES = 16
"""Lanes when none are given: every ``num_workers * world_size`` in 1, 2, 4, 8, 16 gives
bit-identical batches."""

STREAM_STATE_FORMAT = "seedtree.stream-state/1"


class StreamReadError(RuntimeError):
    """A reader or transform raised while producing one sample; the message names the
    shard, its index and the position."""


def _accepts_start(read: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(read).parameters
    except (TypeError, ValueError):
        return False
    return "start" in params


class ShardedStream:
    """A stream described by its shards and a reader: ``read(shard)`` yields the samples of
    one shard, in the same order every time.

    Where the randomness goes: the loader calls ``read(shard)``, then ``next()`` once per
    sample, each call under the node of the sample it produces (``tree / e / "shard" / s /
    p``, global RNGs and ``seedtree.rng()``): the call and the code before the first
    ``yield`` run under sample 0's node, the code between the yields of samples p - 1 and p
    under sample p's. Whatever the reader draws there is the sample's own randomness; a
    reader that shuffles a shard with a seed of its own would break the guarantees.

    Resuming mid-shard. A reader without a ``start`` parameter is read again from the start
    of the shard, every sample before the resume point under its own node (read, then
    dropped, never transformed): whatever it draws, at open or per sample, the resumed
    samples are bit-identical to the uninterrupted epoch's. ``read(shard, start=p)`` (a
    reader with a ``start`` parameter) must yield the samples from position ``p`` on, and a
    resume seeks: it is called, and runs to its first ``yield``, under sample p's node, so
    it is exact when it draws per sample only (each sample's draws made while producing it,
    nothing at open or while seeking); a reader that draws at open should not take
    ``start``. ``transform(sample)`` runs right after the read of each sample handed out,
    under the same node. The reader and the transform may own generators: before each
    sample, a reader or transform with a ``seedtree_reseed(node)`` method is called with
    that sample's node, and the MONAI ``Randomizable``s, albumentations pipelines and
    ``seedtree_reseed`` objects found inside them are re-keyed, object k from
    ``node / "owned" / k`` (``seedtree.runtime.owned``).

    ``lanes`` (default 16) is the number of shards read side by side; it bounds
    ``num_workers * world_size`` and fixes the order of the epoch's batches (a world size
    dividing it interleaves back to the single-process order). ``shuffle_buffer`` (0: off) mixes each lane's
    samples through a buffer of that size. ``lengths`` (optional, samples per shard) enables
    ``len(loader)`` and ``drop_uneven``; a shard that yields another count is an error.
    Everything here must pickle for spawned workers.
    """

    def __init__(
        self,
        shards: Sequence[Any],
        read: Callable[..., Iterable[Any]],
        *,
        transform: Callable[[Any], Any] | None = None,
        lanes: int = DEFAULT_LANES,
        shuffle_buffer: int = 0,
        lengths: Sequence[int] | None = None,
    ) -> None:
        if isinstance(shards, (str, bytes)) or not isinstance(shards, Sequence):
            raise TypeError(f"ShardedStream needs a list of shards, got {type(shards).__name__}")
        if len(shards) == 0:
            raise ValueError("ShardedStream got an empty shard list: pass at least one shard (check the glob)")
        if not callable(read):
            raise TypeError(f"ShardedStream needs read(shard) -> iterable of samples, got {type(read).__name__}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes must be a positive int, got {lanes!r}")
        if isinstance(shuffle_buffer, bool) or not isinstance(shuffle_buffer, int) or shuffle_buffer < 0:
            raise ValueError(f"shuffle_buffer must be a non-negative int, got {shuffle_buffer!r}")
        if lengths is not None:
            lengths = [int(n) for n in lengths]
            if len(lengths) != len(shards) or any(n < 0 for n in lengths):
                raise ValueError(f"lengths must give a non-negative sample count for each of the {len(shards)} shards")
        self.shards = list(shards)
        self.read = read
        self.transform = transform
        self.lanes = lanes
        self.shuffle_buffer = shuffle_buffer
        self.lengths = lengths
        self.seekable = _accepts_start(read)

    @classmethod
    def from_hf(cls, dataset: Any, **kwargs: Any) -> ShardedStream:
        """A stream over the shards (data sources) of an HF ``datasets.IterableDataset``."""
        reader = HFShards(dataset)
        return cls(list(range(reader.num_shards)), reader, **kwargs)

    def open(self, shard: int, start: int) -> Iterator[Any]:
        """The samples of shard number ``shard`` from position ``start`` on (without
        ``start=``, read from the shard's start and dropped up to ``start`` in the first
        ``next()``; the loader opens such a reader at 0 and drops sample by sample instead,
        each under its own node)."""
        if self.seekable:
            return iter(self.read(self.shards[shard], start=start))
        return itertools.islice(iter(self.read(self.shards[shard])), start, None)

    def owned(self) -> OwnedGenerators:
        """What the reader and the transform own (``seedtree.runtime.owned``), found once per
        process: re-keyed before each sample, object k from ``node / "owned" / k``."""
        found = self.__dict__.get("_owned")
        if found is None or found.roots[0] is not self.read or found.roots[1] is not self.transform:
            found = self._owned = OwnedGenerators(self.read, self.transform, names=("read", "transform"))
        return found

    def __repr__(self) -> str:
        return f"ShardedStream({len(self.shards)} shards, lanes={self.lanes}, shuffle_buffer={self.shuffle_buffer})"


def is_hf_iterable(dataset: object) -> bool:
    """Whether ``dataset`` is an HF ``datasets.IterableDataset`` (without importing datasets)."""
    module = sys.modules.get("datasets")
    cls = getattr(module, "IterableDataset", None)
    return cls is not None and isinstance(dataset, cls)


class HFShards:
    """Reader over an HF ``datasets.IterableDataset``: ``reader(i)`` yields the examples of
    its data source i, one at a time, formatted as the dataset's format says, so a ``.map``
    function runs under each example's own node. It takes no ``start``: HF's ``skip``
    would run the ``.map`` of every skipped example within one ``next()``, under the node of
    the first example kept, so a resume reads the source from its start sample by sample,
    each under its own node, and every example draws as in the uninterrupted epoch."""

    def __init__(self, dataset: Any) -> None:
        if not is_hf_iterable(dataset):
            raise TypeError(f"HFShards needs a datasets.IterableDataset, got {type(dataset).__name__}")
        node = getattr(dataset, "_ex_iterable", None)
        while node is not None:
            if type(node).__name__ == "BufferShuffledExamplesIterable":
                raise ValueError(
                    "this datasets.IterableDataset is shuffled with its own seed (.shuffle()); drop .shuffle() "
                    "and pass shuffle=True, shuffle_buffer=N to seedtree's loader instead, which draws it from the tree"
                )
            node = getattr(node, "ex_iterable", None)
        if getattr(dataset, "_distributed", None) is not None:
            raise ValueError(
                "this datasets.IterableDataset is already split by node (split_dataset_by_node); pass the whole "
                "dataset: seedtree's loader gives each rank its own lanes"
            )
        self.dataset = dataset
        self.num_shards = int(dataset.num_shards)

    def __call__(self, shard: int) -> Iterator[Any]:
        part = self.dataset.shard(num_shards=self.num_shards, index=shard, contiguous=True)
        # .iter() rather than iter(): inside a DataLoader worker HF's __iter__ would split
        # the (single) shard among the workers itself.
        for batch in part.iter(batch_size=1):
            yield _first_row(batch)


def _first_row(batch: Any) -> Any:
    """Row 0 of a one-row HF batch (a dict of columns, struct columns nested as dicts)."""
    if isinstance(batch, dict):
        return {k: _first_row(v) for k, v in batch.items()}
    return batch[0]
