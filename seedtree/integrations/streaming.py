"""Streaming data for the torch DataLoader: per-sample, layout-invariant, resumable randomness.

Samples read from a stream (JSONL or Parquet files read in order, tar shards, an HF
``datasets.IterableDataset``) are keyed by *what* they are, never by which worker read them:
sample ``p`` of shard ``s`` in epoch ``e`` is read and transformed with the global RNGs and
``seedtree.rng()`` bound to ``tree / e / "shard" / s / p`` (the ``next()`` on the reader that
produces it, and before sample 0 the call that opens the shard), in the uninterrupted epoch
and after a resume alike.

The layout. An epoch deals its shards (in an order drawn from ``tree / "order" / e``) to a
fixed number of *lanes* L: lane l reads shards ``order[l], order[l + L], ...`` one after the
other, optionally through a shuffle buffer drawn from ``tree / "buffer" / e / l``, and cuts
its output into batches of its own. The epoch's batch sequence is fixed: round k holds batch
k of lane 0, of lane 1, ... of lane L-1 (lanes that have run out are skipped). Consumer c of
C (``rank + world_size * worker``) runs lanes c, c + C, ... and emits, per round, slot i =
lane c + C * i; torch's DataLoader takes one item from each worker in turn, so as long as
every worker of a rank emits the same number of items per round (an empty marker stands in
for a lane it lacks or that has run out, and the loader drops it), a rank's batches come in
lane order whatever its number of workers. Rank r's batches are those of lanes r, r + W, ...

Nothing here is imported by ``seedtree.integrations.torch`` except through ``loader()``,
which hands iterable datasets and ``ShardedStream`` to ``stream_loader``.
"""

from __future__ import annotations

import inspect
import itertools
import math
import pickle
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from ..core.codec import path_to_json
from ..core.keys import KEY_LIMIT
from ..core.optional import require
from ..core.tree import SeedTree
from ..runtime import ambient
from ..runtime.capture import isolate
from ..runtime.controllers import REGISTRY
from ..runtime.owned import OwnedGenerators
from ..runtime.tasks import run_keyed_batch
from ._checks import check_tree
from .ranks import rank_info

torch = require("torch", "seedtree.torch")
from torch.utils.data import DataLoader, IterableDataset, Sampler, get_worker_info  # noqa: E402
from torch.utils.data._utils.collate import default_collate  # noqa: E402

__all__ = [
    "DEFAULT_LANES",
    "STREAM_STATE_FORMAT",
    "HFShards",
    "ShardedStream",
    "StreamCursor",
    "StreamLoader",
    "StreamReadError",
    "merge_stream_states",
    "stream_loader",
]

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


_END = object()
_DROPPED = object()  # a sample read only to replay the reader up to a position, then dropped


class _ShardReader:
    """Reads one shard from a position, each sample under its node
    ``epoch_node / "shard" / s / p``; ``take(n)`` returns up to n ``(p, sample)``.

    A reader without ``start=`` is opened at position 0 and every ``next()`` runs under the
    node of the sample it produces, so what comes before the position it hands out from
    (``skip_to``) is read and dropped in exactly the bindings of a read from the start; a
    seekable reader not yet opened seeks instead."""

    SKIP_CHUNK = 256  # samples read through per vectorised binding call when dropping

    def __init__(self, stream: ShardedStream, epoch_node: SeedTree, s: int, start: int, modules: tuple[str, ...]):
        self.stream, self.s, self.modules = stream, s, modules
        self.node = epoch_node / "shard" / s
        self.owned = stream.owned()
        self.iterator: Iterator[Any] | None = None
        self.finished = False
        self.pos = 0  # the position the next next() produces
        self.keep = 0  # the transform runs from this position on: those before are dropped
        self.wanted: frozenset[int] = frozenset()  # kept by read_through though below `keep`
        self.skip_to(start)

    def skip_to(self, p: int) -> None:
        """Hand out nothing before position ``p`` (at or after where the reader stands)."""
        if p < self.pos:
            raise ValueError(f"internal: shard #{self.s} cannot skip back from position {self.pos} to {p}")
        if self.iterator is None and self.stream.seekable:
            self.pos = p
        self.keep = p

    @property
    def position(self) -> int:
        """The next position handed out."""
        return max(self.pos, self.keep)

    def _one(self, p: int) -> Any:
        stream = self.stream
        self.owned.reseed(ambient.current())
        step = "reading"
        try:
            if self.iterator is None:
                self.iterator = stream.open(self.s, p)
            sample = next(self.iterator, _END)
            if sample is not _END and stream.transform is not None and p >= self.keep:
                step = "transforming the sample of"
                sample = stream.transform(sample)
        except Exception as exc:
            raise StreamReadError(
                f"{step} shard {stream.shards[self.s]!r} (shard #{self.s}) at position {p} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return sample

    def _pick(self, p: int) -> Any:
        """Sample ``p`` (transformed) if it is wanted; else read it, untransformed, and drop it."""
        if p in self.wanted:
            self.keep = p
            return self._one(p)
        self.keep = p + 1
        return _END if self._one(p) is _END else _DROPPED

    def read_through(self, last: int, wanted: Iterable[int] = ()) -> list[tuple[int, Any]]:
        """Read every position from where the reader stands up to ``last``, each under its
        own node; hand back the ``wanted`` ones, drop the others. A shard that ends first
        counts as finished (it is an error if a wanted sample is missing)."""
        self.wanted = frozenset(wanted)
        out: list[tuple[int, Any]] = []
        try:
            while self.pos <= last:
                positions = list(range(self.pos, min(last + 1, self.pos + self.SKIP_CHUNK)))
                got = run_keyed_batch(self.node, positions, self._pick, positions, self.modules)
                for p, sample in zip(positions, got, strict=True):
                    if sample is _END:
                        self.finished = True
                        if any(q >= p for q in self.wanted):
                            raise ValueError(
                                f"cannot rebuild the shuffle buffer: shard #{self.s} ends at position {p}, before "
                                f"position {max(self.wanted)} that the buffer holds; " + _DAMAGED
                            )
                        self._check_length(p)
                        return out
                    if sample is not _DROPPED:
                        out.append((p, sample))
                self.pos = positions[-1] + 1
        finally:
            self.wanted = frozenset()
            self.keep = max(self.keep, self.pos)
        return out

    def take(self, n: int) -> list[tuple[int, Any]]:
        if self.pos < self.keep and not self.finished:
            self.read_through(self.keep - 1)  # a reader without start= replays up to its resume point
        if self.finished:
            return []
        start = self.pos
        positions = list(range(start, start + n))
        got = run_keyed_batch(self.node, positions, self._one, positions, self.modules)
        out = []
        for p, sample in enumerate(got, start):
            if sample is _END:
                self.finished = True
                self._check_length(p)
                break
            out.append((p, sample))
        self.pos = start + len(out)
        return out

    def _check_length(self, count: int) -> None:
        lengths = self.stream.lengths
        if lengths is not None and lengths[self.s] != count:
            raise ValueError(
                f"shard {self.stream.shards[self.s]!r} (shard #{self.s}) yielded {count} samples but lengths says "
                f"{lengths[self.s]}; fix lengths= (drop_uneven and len() rely on it)"
            )


def _lane_shards(n_shards: int, lanes: int, tree: SeedTree, epoch: int, shuffle: bool) -> list[list[int]]:
    """Shards of each lane in ``epoch``: the epoch's shard order dealt round-robin."""
    order = (tree / "order" / epoch).numpy().permutation(n_shards) if shuffle else np.arange(n_shards)
    return [[int(s) for s in order[lane::lanes]] for lane in range(lanes)]


def _fresh_lane_state() -> dict[str, Any]:
    return {"shard": 0, "position": 0, "buffer": [], "draws": 0, "batches": 0, "done": False}


class _Lane:
    """One lane of one epoch: its shards in order, a read-ahead queue, the optional shuffle
    buffer, and a batch counter. ``state()`` after a batch describes everything needed to
    continue exactly from there (the buffer as (shard, position) pairs)."""

    CHUNK = 32  # samples read per vectorised binding call

    def __init__(
        self,
        stream: ShardedStream,
        epoch_node: SeedTree,
        buffer_node: SeedTree,
        shards: list[int],
        batch_size: int,
        drop_last: bool,
        buffer: int,
        modules: tuple[str, ...],
        state: dict[str, Any] | None,
    ) -> None:
        self.stream, self.epoch_node, self.shards = stream, epoch_node, shards
        self.batch_size, self.drop_last, self.buffer_size, self.modules = batch_size, drop_last, buffer, modules
        state = _fresh_lane_state() if state is None else state
        self.m, self.batches, self.draws, self.done = (
            int(state["shard"]),
            int(state["batches"]),
            int(state["draws"]),
            bool(state["done"]),
        )
        self.reader: _ShardReader | None = None
        self.pending: deque[tuple[int, int, int, Any]] = deque()  # (m, shard, position, sample)
        self.next_pos = int(state["position"])
        self.gen = buffer_node.numpy() if buffer else None
        if self.gen is not None and self.draws:
            self.gen.bit_generator.advance(self.draws)  # type: ignore[attr-defined]  # PCG64 has it
        # The buffer: samples, and beside them their (shard, position) keys kept as an
        # array, so that describing the buffer after every batch costs one copy.
        saved = self._rebuild(state["buffer"]) if len(state["buffer"]) else []
        self.buf: list[Any] = [x for _, _, x in saved]
        self.keys = np.zeros((buffer, 2), dtype=np.int64)
        if saved:
            self.keys[: len(saved)] = [(s, p) for s, p, _ in saved]

    def _rebuild(self, pairs: Any) -> list[tuple[int, int, Any]]:
        """Re-read the samples the buffer held, each under its own node: bit-identical.
        The samples between them are read and dropped (a reader without ``start=`` from the
        shard's start); the reader of the shard the lane stands in goes on to its position
        rather than reading the shard again."""
        pairs = [(int(s), int(p)) for s, p in pairs]
        current = self.shards[self.m] if self.m < len(self.shards) else None
        found: dict[tuple[int, int], Any] = {}
        for s in sorted({s for s, _ in pairs}):
            wanted = sorted(p for t, p in pairs if t == s)
            reader = _ShardReader(self.stream, self.epoch_node, s, wanted[0], self.modules)
            found.update(((s, p), x) for p, x in reader.read_through(wanted[-1], wanted))
            if s == current and not self.stream.seekable:
                reader.skip_to(self.next_pos)
                self.reader = reader
        return [(s, p, found[s, p]) for s, p in pairs]

    def _next_input(self) -> tuple[int, int, Any] | None:
        while not self.pending:
            if self.m >= len(self.shards):
                return None
            if self.reader is None:
                self.reader = _ShardReader(
                    self.stream, self.epoch_node, self.shards[self.m], self.next_pos, self.modules
                )
            got = self.reader.take(min(self.CHUNK, self.batch_size))
            self.pending.extend((self.m, self.reader.s, p, x) for p, x in got)
            if self.reader.finished:
                self.m, self.next_pos, self.reader = self.m + 1, 0, None
        _, s, p, x = self.pending.popleft()
        return s, p, x

    def _next_output(self) -> tuple[int, int, Any] | None:
        if self.gen is None:
            return self._next_input()
        buf, keys = self.buf, self.keys
        while len(buf) < self.buffer_size:
            item = self._next_input()
            if item is None:
                break
            keys[len(buf)] = item[:2]
            buf.append(item[2])
        if not buf:
            return None
        incoming = self._next_input()
        j = int(self.gen.random() * len(buf))  # one 64-bit draw per pick: resume advances by draws
        self.draws += 1
        out = (int(keys[j, 0]), int(keys[j, 1]), buf[j])
        if incoming is not None:
            keys[j] = incoming[:2]
            buf[j] = incoming[2]
        else:
            keys[j] = keys[len(buf) - 1]
            buf[j] = buf[-1]
            buf.pop()
        return out

    def next_batch(self) -> list[Any] | None:
        """The lane's next batch of samples, or None when it has run out."""
        if self.done:
            return None
        items: list[Any] = []
        while len(items) < self.batch_size:
            item = self._next_output()
            if item is None:
                break
            items.append(item[2])
        if len(items) < self.batch_size:
            self.done = True
            if not items or self.drop_last:
                return None
        self.batches += 1
        return items

    def state(self) -> dict[str, Any]:
        if self.pending:
            m, _, position, _ = self.pending[0]
        else:
            m, position = self.m, (self.reader.position if self.reader is not None else self.next_pos)
        return {
            "shard": m,
            "position": position,
            "buffer": self.keys[: len(self.buf)].copy(),
            "draws": self.draws,
            "batches": self.batches,
            "done": self.done,
        }


class _Emitted(NamedTuple):
    """What a worker yields: a collated batch with its lane and that lane's state after it;
    lane -1 is the empty marker that keeps the workers' turns aligned."""

    batch: Any
    lane: int
    state: Any


_SKIP = _Emitted(None, -1, None)


def _as_is(item: Any) -> Any:
    return item


def lanes_of(consumer: int, consumers: int, lanes: int) -> list[int]:
    """The lanes consumer ``c`` of ``C`` runs: c, c + C, ... below ``lanes``."""
    return list(range(consumer, lanes, consumers))


class StreamCursor(Sampler[None]):
    """Where the stream stands: the epoch and, per lane, its state after the last batch the
    loader handed out. It is the loader's ``.sampler``, so Lightning's and accelerate's
    ``set_epoch`` calls reach it; the epoch travels to (persistent) workers through a small
    shared-memory tensor, read whenever a worker starts an epoch."""

    def __init__(self, n_lanes: int) -> None:
        self.n_lanes = n_lanes
        self.epoch = 0
        self.progress: dict[int, dict[str, Any]] = {}
        self.resume: dict[int, dict[str, Any]] | None = None
        self.control = torch.zeros(2, dtype=torch.int64).share_memory_()  # [epoch, resuming]

    def __iter__(self) -> Iterator[None]:
        return itertools.repeat(None)  # what workers are handed is ignored: they read `control`

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` from its beginning at the next iteration; a resume loaded for
        this same epoch (``load_state_dict``) is kept, and dropping a mid-epoch resume for
        another epoch is refused."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch < KEY_LIMIT:
            # the epoch is a path key: past 2**32 the workers could not derive its node
            raise ValueError(f"epoch must be an int in [0, 2**32), got {_show(epoch)}")
        if self.resume is not None:
            if epoch == self.epoch:
                return  # frameworks call set_epoch(e) before iterating a resumed epoch e: keep the resume
            # A loaded resume, mid-epoch or at an epoch's start, is never dropped silently.
            raise ValueError(
                f"set_epoch({epoch}) would drop the resume into epoch {self.epoch} that load_state_dict() loaded; "
                f"call set_epoch({self.epoch}) first (or do not call it: the loader resumes by itself)"
            )
        self.epoch, self.progress, self.resume = epoch, {}, None

    def begin(self) -> None:
        """An iteration starts: resume if ``load_state_dict`` asked for it, else start the epoch."""
        if self.resume is None:
            self.progress = {}
        self.control[0] = self.epoch
        self.control[1] = 0 if self.resume is None else 1

    def delivered(self, lane: int, state: dict[str, Any]) -> None:
        """Record ``lane``'s state after a batch the loader handed to you."""
        self.progress[lane] = state

    def finished(self) -> None:
        """The epoch ended: the next iteration starts the next epoch from its first batch."""
        self.epoch, self.progress, self.resume = self.epoch + 1, {}, None

    def broken_off(self) -> None:
        """The resume has been used: a later iteration starts an epoch over, as torch does."""
        self.resume = None


class _StreamDataset(IterableDataset[_Emitted]):
    """The worker-side dataset: runs the lanes of its consumer for the cursor's epoch."""

    def __init__(
        self,
        stream: ShardedStream,
        tree: SeedTree,
        cursor: StreamCursor,
        *,
        batch_size: int,
        drop_last: bool,
        shuffle: bool,
        bind_globals: bool,
        collate_fn: Callable[[list[Any]], Any],
        rank: int,
        world_size: int,
        num_workers: int,
    ) -> None:
        self.stream, self.tree, self.cursor = stream, tree, cursor
        self.batch_size, self.drop_last, self.shuffle = batch_size, drop_last, shuffle
        self.bind_globals, self.collate_fn = bind_globals, collate_fn
        self.rank, self.world_size, self.num_workers = rank, world_size, num_workers

    def set_epoch(self, epoch: int) -> None:
        """accelerate calls this on the dataset: same as ``loader.set_epoch``."""
        self.cursor.set_epoch(epoch)

    def lane_shards(self, epoch: int) -> list[list[int]]:
        return _lane_shards(len(self.stream.shards), self.stream.lanes, self.tree, epoch, self.shuffle)

    def __iter__(self) -> Iterator[_Emitted]:
        epoch, resuming = (int(v) for v in self.cursor.control.tolist())
        info = get_worker_info()
        worker = 0 if info is None else info.id
        consumers = self.world_size * max(1, self.num_workers)
        consumer = self.rank + self.world_size * worker
        states = self.cursor.resume if resuming and self.cursor.resume is not None else {}
        return self._run(epoch, consumer, consumers, states)

    def _run(self, epoch: int, consumer: int, consumers: int, states: dict[int, dict[str, Any]]) -> Iterator[_Emitted]:
        stream, n_lanes = self.stream, self.stream.lanes
        active = min(n_lanes, len(stream.shards))  # lanes beyond the shard count never hold a shard
        per_round = math.ceil(active / consumers)
        pad = self.num_workers > 1  # markers only matter between this loader's workers
        modules = REGISTRY.loaded_modules() if self.bind_globals else ()
        epoch_node = self.tree / epoch
        shards = self.lane_shards(epoch)
        mine = lanes_of(consumer, consumers, active)
        lanes = [
            _Lane(
                stream,
                epoch_node,
                self.tree / "buffer" / epoch / lane,
                shards[lane],
                self.batch_size,
                self.drop_last,
                stream.shuffle_buffer if self.shuffle else 0,
                modules,
                states.get(lane),
            )
            for lane in mine
        ]
        rank_lanes = [states[lane] for lane in lanes_of(self.rank, self.world_size, active) if lane in states]
        live_rounds = [int(s["batches"]) for s in rank_lanes if not s["done"]]
        round_ = min(live_rounds) if live_rounds else 0
        while not all(lane.done for lane in lanes):
            for i in range(per_round):
                lane = lanes[i] if i < len(lanes) else None
                batch = None
                if lane is not None and lane.batches <= round_:
                    batch = lane.next_batch()
                if lane is not None and batch is not None:
                    yield _Emitted(self.collate_fn(batch), mine[i], lane.state())
                elif pad:
                    yield _SKIP
            round_ += 1


class StreamLoader(DataLoader[Any]):
    """The DataLoader ``loader()`` returns for a stream. Iterating it hands out the lanes'
    batches in the epoch's fixed order (dropping the workers' alignment markers) and moves
    the cursor; with ``num_workers=0`` the caller's global RNG states are put back after
    each batch. ``len()`` works when the stream has ``lengths``."""

    cursor: StreamCursor

    @property
    def _stream_ds(self) -> _StreamDataset:
        return self.dataset  # type: ignore[return-value]  # always a _StreamDataset here

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]  # a generator, as SeedTreeLoader
        cursor, dataset = self.cursor, self._stream_ds
        limit = self._rank_batches(cursor.epoch) if self.drop_uneven else None
        cursor.begin()
        delivered = sum(int(s["batches"]) for s in cursor.progress.values())
        iterator = super().__iter__()
        cursor.broken_off()
        isolating = self.num_workers == 0 and dataset.bind_globals
        while True:
            if limit is not None and delivered >= limit:
                cursor.finished()
                return
            if isolating:
                with isolate(ambient=False):
                    item = next(iterator, _END)
            else:
                item = next(iterator, _END)
            if not isinstance(item, _Emitted):  # the end
                cursor.finished()
                return
            if item.lane < 0:
                continue
            cursor.delivered(item.lane, item.state)
            delivered += 1
            yield item.batch

    drop_uneven = False  # set by stream_loader: every rank stops at the fewest batches any rank has

    def _rank_batches(self, epoch: int) -> int:
        return min(self.batches_of(epoch, r) for r in range(self._stream_ds.world_size))

    def batches_of(self, epoch: int, rank: int) -> int:
        """Batches rank ``rank`` gets in ``epoch`` (needs the stream's ``lengths``)."""
        ds = self._stream_ds
        lengths = ds.stream.lengths
        if lengths is None:
            raise TypeError("the stream has no lengths: pass ShardedStream(..., lengths=[samples per shard])")
        active = min(ds.stream.lanes, len(lengths))
        total = 0
        for lane in lanes_of(rank, ds.world_size, active):
            n = sum(lengths[s] for s in ds.lane_shards(epoch)[lane])
            total += n // ds.batch_size if ds.drop_last else math.ceil(n / ds.batch_size)
        return total

    def __len__(self) -> int:
        epoch = self.cursor.epoch
        return self._rank_batches(epoch) if self.drop_uneven else self.batches_of(epoch, self._stream_ds.rank)

    def set_epoch(self, epoch: int) -> None:
        """Same as ``loader.sampler.set_epoch(epoch)``."""
        self.cursor.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        """The epoch and, for each lane this rank runs, its shard, position, shuffle buffer
        (as (shard, position) pairs) and batch count; other ranks' lanes are None (merge the
        ranks' states with ``merge_stream_states`` to resume on another layout). Plain ints,
        bools, strings and lists: it saves with JSON or ``torch.save(weights_only=True)``."""
        ds, cursor = self._stream_ds, self.cursor
        active = min(ds.stream.lanes, len(ds.stream.shards))
        lanes: list[dict[str, Any] | None] = [None] * ds.stream.lanes
        for lane in lanes_of(ds.rank, ds.world_size, ds.stream.lanes):
            state = cursor.progress.get(lane)
            if state is None:
                state = _fresh_lane_state()
                state["done"] = lane >= active
            lanes[lane] = {k: (np.asarray(v).tolist() if k == "buffer" else v) for k, v in state.items()}
        return {"format": STREAM_STATE_FORMAT, "epoch": cursor.epoch, "lanes": lanes, **self._identity()}

    def _identity(self) -> dict[str, Any]:
        ds = self._stream_ds
        return {
            "n_shards": len(ds.stream.shards),
            "n_lanes": ds.stream.lanes,
            "batch_size": ds.batch_size,
            "shuffle": ds.shuffle,
            "shuffle_buffer": ds.stream.shuffle_buffer,
            "drop_last": ds.drop_last,
            "entropy": str(ds.tree.entropy),
            "path": path_to_json(ds.tree.path),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly where ``state`` stood, at the next iteration, with this or any
        other number of workers and ranks. Refuses, with one line naming the field, a state
        from another stream, batching, shuffling or tree, one that lacks a lane this rank
        runs (merge the ranks' states), and a damaged one (wrong types or keys, an epoch,
        shard, position, buffer entry or count out of range or inconsistent with the
        others); everything is checked before anything is applied, so a refused state
        leaves the cursor as it was."""
        if isinstance(state, (list, tuple)):
            state = merge_stream_states(list(state))
        state = _state_shape(state, "stream state")
        for key, mine in self._identity().items():
            if state[key] != mine or type(state[key]) is not type(mine):
                raise ValueError(
                    f"stream state was saved with {key}={_show(state[key])} but this loader has {key}={mine!r}; "
                    "resume with the same shards, lanes, batching, shuffling and tree"
                )
        ds = self._stream_ds
        epoch = state["epoch"]
        shards = ds.lane_shards(epoch)
        for lane, saved in enumerate(state["lanes"]):
            if saved is not None:
                self._check_lane(saved, lane, epoch, shards[lane])
        resume = {}
        for lane in lanes_of(ds.rank, ds.world_size, ds.stream.lanes):
            saved = state["lanes"][lane]
            if saved is None:
                raise ValueError(
                    f"the stream state has no position for lane {lane}, which rank {ds.rank} of {ds.world_size} runs: "
                    "it was saved by another rank; gather every rank's state_dict() and pass "
                    "merge_stream_states([...]) (or the list) to load_state_dict"
                )
            resume[lane] = dict(saved, buffer=np.asarray(saved["buffer"], dtype=np.int64).reshape(-1, 2))
        # Everything is checked: only now is the cursor touched.
        cursor = self.cursor
        cursor.epoch, cursor.resume, cursor.progress = epoch, resume, dict(resume)
        if self.persistent_workers and self._iterator is not None:
            self._iterator = None  # workers started earlier hold no resume state: start fresh ones

    def _check_lane(self, saved: dict[str, Any], lane: int, epoch: int, shards: list[int]) -> None:
        """Refuse a lane state (already well-formed) that this stream's lane could not have
        saved in the epoch whose shards are ``shards``: a shard index past the lane's list,
        a position past its shard, buffer entries not yet read or read twice, counts that
        disagree with each other (where the shard lengths are known, with them too)."""
        ds = self._stream_ds
        where = f"stream state lanes[{lane}]"
        lengths = ds.stream.lengths
        m, position, buffer = saved["shard"], saved["position"], saved["buffer"]
        if m > len(shards):
            raise ValueError(f"{where}.shard={m} is past the lane's {len(shards)} shards in epoch {epoch}; " + _DAMAGED)
        if m == len(shards) and position:
            raise ValueError(f"{where}.position={position} after the lane's last shard must be 0; " + _DAMAGED)
        if m < len(shards) and lengths is not None and position > lengths[shards[m]]:
            raise ValueError(
                f"{where}.position={position} is past the end of shard #{shards[m]} ({lengths[shards[m]]} samples); "
                "the state is damaged, or lengths= differs from the run that saved it"
            )
        capacity = ds.stream.shuffle_buffer if ds.shuffle else 0
        if len(buffer) > capacity:
            raise ValueError(
                f"{where}.buffer holds {len(buffer)} samples but this loader's shuffle buffer holds {capacity}; "
                + _DAMAGED
            )
        rank_of = {s: k for k, s in enumerate(shards)}
        seen: set[tuple[int, int]] = set()
        for i, (s, p) in enumerate(buffer):
            k = rank_of.get(s)
            if k is None or k > m or (k == m and p >= position):
                raise ValueError(
                    f"{where}.buffer[{i}]=[{s}, {p}] is not a sample the lane had read (its shards in this epoch: "
                    f"{shards}, read up to shard {m} position {position}); " + _DAMAGED
                )
            if lengths is not None and p >= lengths[s]:
                raise ValueError(f"{where}.buffer[{i}]=[{s}, {p}] is past the end of shard #{s}; " + _DAMAGED)
            if (s, p) in seen:
                raise ValueError(f"{where}.buffer[{i}]=[{s}, {p}] appears twice; " + _DAMAGED)
            seen.add((s, p))
        draws, batches = saved["draws"], saved["batches"]
        if not capacity and draws:
            raise ValueError(f"{where}.draws={draws} must be 0 without a shuffle buffer; " + _DAMAGED)
        if saved["done"]:
            if buffer:
                raise ValueError(f"{where}.buffer must be empty for a finished lane (done=True); " + _DAMAGED)
            if draws > batches * ds.batch_size:
                raise ValueError(f"{where}.draws={draws} exceeds the {batches} batches of {ds.batch_size}; " + _DAMAGED)
            # Finished: either it ran out of samples (past its last shard), or it is the
            # untouched lane of a rank that had finished the epoch (merge_stream_states).
            if (m, position, batches, draws) != (0, 0, 0, 0) and m != len(shards):
                raise ValueError(
                    f"{where}.done=True but the lane stands at shard {m} of its {len(shards)}; " + _DAMAGED
                )
            total = sum(lengths[s] for s in shards) if lengths is not None else None
            if batches and total is not None:
                if capacity and draws != total:
                    raise ValueError(
                        f"{where}.draws={draws} must be the lane's {total} samples for a finished lane; " + _DAMAGED
                    )
                if not (batches - 1) * ds.batch_size < total <= batches * ds.batch_size:
                    raise ValueError(
                        f"{where}.batches={batches} cannot hold the lane's {total} samples in batches of "
                        f"{ds.batch_size}; " + _DAMAGED
                    )
            return
        # A lane that has not run out has handed out `batches` full batches: each sample
        # one draw of the buffer, and every sample read is handed out or in the buffer.
        if capacity and draws != batches * ds.batch_size:
            raise ValueError(
                f"{where}.draws={draws} must be batches * batch_size = {batches * ds.batch_size} for a lane "
                "that has not finished; " + _DAMAGED
            )
        read = draws + len(buffer) if capacity else batches * ds.batch_size
        if lengths is not None or m == 0:
            before = sum(lengths[s] for s in shards[:m]) if lengths is not None else 0
            if read != before + position:
                raise ValueError(
                    f"{where}: shard {m} position {position} is sample {before + position} of the lane, but its "
                    f"batches, draws and buffer account for {read} samples read; " + _DAMAGED
                )
        elif read < position:
            raise ValueError(
                f"{where}.position={position} is past the {read} samples its batches, draws and buffer account "
                "for; " + _DAMAGED
            )


_IDENTITY_KEYS = (
    "format",
    "n_shards",
    "n_lanes",
    "batch_size",
    "shuffle",
    "shuffle_buffer",
    "drop_last",
    "entropy",
    "path",
)
_STATE_KEYS = frozenset({*_IDENTITY_KEYS, "epoch", "lanes"})
_LANE_KEYS = frozenset({"shard", "position", "buffer", "draws", "batches", "done"})
_DAMAGED = "the state is damaged: resume from the state_dict() as it was saved"
_COUNT_LIMIT = 2**63  # batches and draws: far past any run, and within what PCG64's advance takes


def _show(value: Any) -> str:
    """``value`` for an error message: short, and safe for ints too long for ``repr``."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"{'-' if value < 0 else ''}<a {value.bit_length()}-bit int>"
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        return f"<a {type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _check_keys(value: dict[Any, Any], expected: frozenset[str], name: str) -> None:
    """Refuse a dict without exactly the ``expected`` keys, naming the first missing or extra one."""
    missing = sorted(expected - set(value))
    if missing:
        raise ValueError(f"{name} has no {missing[0]!r} (missing {missing}); " + _DAMAGED)
    extra = [k for k in value if k not in expected]
    if extra:
        raise ValueError(f"{name} has an unexpected key {_show(extra[0])}; " + _DAMAGED)


def _int_field(value: Any, name: str, limit: int) -> int:
    """``value`` as an int in [0, limit); else ValueError naming the field."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {type(value).__name__} {_show(value)}; " + _DAMAGED)
    if not 0 <= value < limit:
        raise ValueError(f"{name}={_show(value)} must be in [0, {limit}); " + _DAMAGED)
    return int(value)


def _lane_shape(saved: Any, name: str) -> dict[str, Any]:
    """A lane state with exactly its keys and types, as plain ints and lists."""
    if not isinstance(saved, dict):
        raise ValueError(f"{name} must be a dict or None, got {type(saved).__name__} {_show(saved)}")
    _check_keys(saved, _LANE_KEYS, name)
    buffer = saved["buffer"]
    if isinstance(buffer, np.ndarray):
        buffer = buffer.tolist()
    if not isinstance(buffer, (list, tuple)):
        raise ValueError(f"{name}.buffer must be a list of [shard, position] pairs, got {type(buffer).__name__}")
    pairs = []
    for i, pair in enumerate(buffer):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"{name}.buffer[{i}] must be a [shard, position] pair, got {_show(pair)}")
        pairs.append(
            [
                _int_field(pair[0], f"{name}.buffer[{i}][0]", KEY_LIMIT),
                _int_field(pair[1], f"{name}.buffer[{i}][1]", KEY_LIMIT),
            ]
        )
    if not isinstance(saved["done"], bool):
        raise ValueError(f"{name}.done must be True or False, got {_show(saved['done'])}; " + _DAMAGED)
    return {
        "shard": _int_field(saved["shard"], f"{name}.shard", KEY_LIMIT),
        "position": _int_field(saved["position"], f"{name}.position", KEY_LIMIT),
        "buffer": pairs,
        "draws": _int_field(saved["draws"], f"{name}.draws", _COUNT_LIMIT),
        "batches": _int_field(saved["batches"], f"{name}.batches", _COUNT_LIMIT),
        "done": saved["done"],
    }


def _state_shape(state: Any, name: str) -> dict[str, Any]:
    """A stream state with exactly its keys, an epoch that is a path key, and ``n_lanes``
    lanes each None or a well-formed lane state (a copy; ``state`` is not changed)."""
    if not isinstance(state, dict) or state.get("format") != STREAM_STATE_FORMAT:
        raise ValueError(f"{name} is not a stream state (expected format={STREAM_STATE_FORMAT!r} from state_dict())")
    _check_keys(state, _STATE_KEYS, name)
    epoch = _int_field(state["epoch"], f"{name} epoch", KEY_LIMIT)
    n_lanes, lanes = state["n_lanes"], state["lanes"]
    if isinstance(n_lanes, bool) or not isinstance(n_lanes, int) or n_lanes < 1:
        raise ValueError(f"{name} n_lanes={_show(n_lanes)} must be a positive int; " + _DAMAGED)
    if not isinstance(lanes, (list, tuple)) or len(lanes) != n_lanes:
        got = f"{len(lanes)} entries" if isinstance(lanes, (list, tuple)) else f"a {type(lanes).__name__}"
        raise ValueError(f"{name} lanes must be a list of n_lanes={n_lanes} entries, got {got}; " + _DAMAGED)
    checked = [None if s is None else _lane_shape(s, f"{name} lanes[{i}]") for i, s in enumerate(lanes)]
    return dict(state, epoch=epoch, lanes=checked)


def merge_stream_states(states: list[dict[str, Any]]) -> dict[str, Any]:
    """One state from every rank's ``state_dict()``: each lane's position from the rank that
    ran it. A rank whose lanes had all finished (its state already at the next epoch) counts
    as having finished them in the common epoch. Refuses (ValueError naming the field) a
    damaged state, states of different runs or epochs, and a lane given by two states."""
    if not isinstance(states, (list, tuple)) or not states:
        raise ValueError("merge_stream_states needs a non-empty list of the ranks' state_dict()s")
    checked = [_state_shape(s, f"stream state #{i}") for i, s in enumerate(states)]
    first = checked[0]
    epoch = min(s["epoch"] for s in checked)
    merged = dict(first, epoch=epoch, lanes=[None] * len(first["lanes"]))
    for i, s in enumerate(checked):
        for k in _IDENTITY_KEYS:
            if s[k] != first[k] or type(s[k]) is not type(first[k]):
                raise ValueError(
                    f"stream state #{i} has {k}={_show(s[k])} but #0 has {_show(first[k])}: these come from "
                    "different streams, batching or trees; merge one run's"
                )
        later = s["epoch"] - epoch
        apart = f"stream states from epochs {epoch} and {s['epoch']} cannot be merged: save them at the same step"
        if later not in (0, 1):
            raise ValueError(apart)
        for lane, saved in enumerate(s["lanes"]):
            if saved is None:
                continue
            if merged["lanes"][lane] is not None:
                raise ValueError(
                    f"stream state #{i} gives lane {lane} again (an earlier state has it): pass each rank's state once"
                )
            if later:
                if saved["batches"] or saved["shard"] or saved["position"]:
                    raise ValueError(apart)
                saved = dict(saved, done=True)
            merged["lanes"][lane] = saved
    return merged


def stream_loader(
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
    worker_hook: Callable[..., Any] | None = None,
    **dataloader_kwargs: Any,
) -> StreamLoader:
    """``loader()`` for a ``ShardedStream`` or an HF ``datasets.IterableDataset``.

    ``worker_hook`` makes each worker's initialiser (``seedtree.torch.loader`` passes its
    ``worker_init_fn`` class: this module builds on the map-style one, never imports it).

    Guarantees: sample p of shard s in epoch e is read (and transformed) with
    ``seedtree.rng()`` and, with ``bind_globals``, python ``random``, numpy's global and torch
    bound to ``tree / e / "shard" / s / p``; a rank's batches are bit-identical for every
    ``num_workers``, persistent or not; rank r gets exactly the batches of lanes r,
    r + world_size, ..., and when ``world_size`` divides the lanes in use (the lane count,
    or the shard count if smaller) the ranks' batches interleaved in rank order are the
    single-process sequence while every lane still has batches; otherwise every epoch holds
    the same batches with the same per-sample randomness in another order. The
    shard order is drawn from ``tree / "order" / e``, the shuffle buffer of lane l from
    ``tree / "buffer" / e / l``; ``state_dict()``/``load_state_dict()`` resume mid-epoch
    exactly: the rest of the epoch, every sample with the draws of the uninterrupted epoch
    (a reader without ``start=`` is replayed from its shard's start, sample by sample under
    each sample's node, whatever it draws; one with ``start=`` seeks and must draw per
    sample only, see ``ShardedStream``). ``drop_uneven`` (needs the stream's ``lengths``) cuts every rank to the batch
    count of the rank with the fewest, dropping the last batches of the others. Each
    (epoch, shard, position) is read once per epoch (a shard listed twice has two indices),
    so no sample's stream is ever used twice.

    ``lanes=`` and ``shuffle_buffer=`` override the stream's. ``collate_fn`` runs in the
    workers on each lane batch. ``sampler`` and ``batch_sampler`` are refused.
    """
    check_tree(tree, "loader")
    overrides = {k: dataloader_kwargs.pop(k) for k in ("lanes", "shuffle_buffer") if k in dataloader_kwargs}
    if isinstance(dataset, ShardedStream):
        stream = dataset
        if overrides:
            stream = ShardedStream(
                stream.shards,
                stream.read,
                transform=stream.transform,
                lengths=stream.lengths,
                **{"lanes": stream.lanes, "shuffle_buffer": stream.shuffle_buffer, **overrides},
            )
    elif is_hf_iterable(dataset):
        stream = ShardedStream.from_hf(dataset, **overrides)
    else:
        raise TypeError(
            f"seedtree.torch.loader takes a map-style dataset, a ShardedStream or an HF datasets.IterableDataset; "
            f"a plain {type(dataset).__name__} (an IterableDataset without shards) cannot be keyed by shard and "
            "position: describe it as ShardedStream(shards, read), or use "
            "DataLoader(..., worker_init_fn=seedtree.torch.worker_init_fn(tree))"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if stream.shuffle_buffer and not shuffle:
        raise ValueError(
            f"shuffle_buffer={stream.shuffle_buffer} mixes samples only with shuffle=True, and the loader does not "
            "shuffle unless asked (as torch's DataLoader): pass shuffle=True, or shuffle_buffer=0"
        )
    for refused in ("sampler", "batch_sampler"):
        if dataloader_kwargs.get(refused) is not None:
            raise TypeError(f"loader() derives the sample order itself and does not take {refused}=; drop it")
    if rank is None or world_size is None:
        info = rank_info()
        rank = info.rank if rank is None else rank
        world_size = info.world_size if world_size is None else world_size
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} must be in [0, world_size={world_size})")
    num_workers = int(dataloader_kwargs.get("num_workers", 0))
    consumers = world_size * max(1, num_workers)
    if consumers > stream.lanes:
        raise ValueError(
            f"num_workers * world_size = {consumers} exceeds the stream's {stream.lanes} lanes, so some would get "
            f"no data; pass lanes= a multiple of {consumers}"
        )
    if drop_uneven and stream.lengths is None:
        raise ValueError(
            "drop_uneven needs every shard's sample count to give all ranks the same number of batches: "
            "pass ShardedStream(..., lengths=[...])"
        )
    context = dataloader_kwargs.get("multiprocessing_context")
    method = context if isinstance(context, str) or context is None else getattr(context, "_name", None)
    if method is None:
        method = torch.multiprocessing.get_start_method(allow_none=True)
    if num_workers > 0 and method in ("spawn", "forkserver"):  # workers get a pickled copy
        _check_picklable(stream)
    if worker_hook is None:
        raise TypeError("stream_loader() needs worker_hook=seedtree.torch.worker_init_fn; call seedtree.torch.loader()")

    cursor = StreamCursor(stream.lanes)
    collate = dataloader_kwargs.pop("collate_fn", None) or default_collate
    worker_ds = _StreamDataset(
        stream,
        tree,
        cursor,
        batch_size=batch_size,
        drop_last=drop_last,
        shuffle=shuffle,
        bind_globals=bind_globals,
        collate_fn=collate,
        rank=rank,
        world_size=world_size,
        num_workers=num_workers,
    )
    init = worker_hook(
        tree / "loader",
        then=dataloader_kwargs.pop("worker_init_fn", None),
        rank=rank,
        bind_globals=bind_globals,
        reseed_dataset=False,
    )
    dataloader_kwargs.setdefault("generator", (tree / "loader").torch())
    dl = StreamLoader(worker_ds, batch_size=None, collate_fn=_as_is, worker_init_fn=init, **dataloader_kwargs)
    # DataLoader refuses a sampler for an IterableDataset; the cursor is what set_epoch
    # callers (Lightning: loader.sampler) must find, and workers ignore what it yields.
    object.__setattr__(dl, "sampler", cursor)
    object.__setattr__(dl, "cursor", cursor)
    object.__setattr__(dl, "drop_uneven", drop_uneven)
    return dl


def _check_picklable(stream: ShardedStream) -> None:
    for name, obj in (("read", stream.read), ("transform", stream.transform), ("shards", stream.shards)):
        try:
            pickle.dumps(obj)
        except Exception as exc:  # noqa: BLE001 - any pickling failure means the same thing here
            raise TypeError(
                f"the stream's {name} ({obj!r:.60}) cannot be pickled for spawned workers "
                f"({type(exc).__name__}: {exc}); "
                "define it at module level (no lambda or local function), or use num_workers=0"
            ) from None
