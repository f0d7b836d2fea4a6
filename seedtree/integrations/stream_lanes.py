"""The lanes of a stream epoch: each lane reads its shards one after the other, each sample
under its own node (``epoch_node / "shard" / s / p``), through an optional shuffle buffer,
and cuts its output into batches of its own; ``lanes_of`` says which lanes a consumer
(a worker of a rank) runs. See ``seedtree.integrations.streaming`` for the layout."""

from __future__ import annotations

import array
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import numpy as np

from ..core.tree import SeedTree
from ..runtime import ambient
from ..runtime.tasks import run_keyed_batch
from .stream_sources import ShardedStream, StreamReadError
from .stream_state import DAMAGED

__all__ = ["lanes_of"]

END = object()
DROPPED = object()  # a sample read only to replay the reader up to a position, then dropped


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
        owned = stream.owned()
        self.owned = owned if owned else None  # None: nothing re-keys from the sample's node
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
        if self.owned is not None:  # the node is made only for what re-keys from it
            self.owned.reseed(ambient.current())
        step = "reading"
        try:
            if self.iterator is None:
                self.iterator = stream.open(self.s, p)
            sample = next(self.iterator, END)
            if sample is not END and stream.transform is not None and p >= self.keep:
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
        return END if self._one(p) is END else DROPPED

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
                    if sample is END:
                        self.finished = True
                        if any(q >= p for q in self.wanted):
                            raise ValueError(
                                f"cannot rebuild the shuffle buffer: shard #{self.s} ends at position {p}, before "
                                f"position {max(self.wanted)} that the buffer holds; " + DAMAGED
                            )
                        self._check_length(p)
                        return out
                    if sample is not DROPPED:
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
            if sample is END:
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


def lane_shards(n_shards: int, lanes: int, tree: SeedTree, epoch: int, shuffle: bool) -> list[list[int]]:
    """Shards of each lane in ``epoch``: the epoch's shard order dealt round-robin."""
    order = (tree / "order" / epoch).numpy().permutation(n_shards) if shuffle else np.arange(n_shards)
    return [[int(s) for s in order[lane::lanes]] for lane in range(lanes)]


def fresh_lane_state() -> dict[str, Any]:
    return {"shard": 0, "position": 0, "buffer": [], "draws": 0, "batches": 0, "done": False}


class Lane:
    """One lane of one epoch: its shards in order, a read-ahead queue, the optional shuffle
    buffer, and a batch counter. ``state()`` after a batch describes everything needed to
    continue exactly from there (the buffer as (shard, position) pairs)."""

    CHUNK = 64  # samples read per vectorised binding call (a 64-sample batch: one call)
    PICK_BLOCK = 64  # shuffle-buffer draws made per call to the generator

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
        state = fresh_lane_state() if state is None else state
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
        self.picks: list[float] = []  # the buffer generator's next draws, drawn a block at a time
        # The buffer: samples, and beside them their (shard, position) keys as flat int64
        # words (shard, position, shard, ...): one scalar write or read costs a tenth of a
        # NumPy element's, and describing the buffer after every batch is one copy.
        saved = self._rebuild(state["buffer"]) if len(state["buffer"]) else []
        self.buf: list[Any] = [x for _, _, x in saved]
        self.keys = array.array("q", bytes(16 * buffer))
        for i, (s, p, _) in enumerate(saved):
            self.keys[2 * i], self.keys[2 * i + 1] = s, p

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
            keys[2 * len(buf)], keys[2 * len(buf) + 1] = item[0], item[1]
            buf.append(item[2])
        if not buf:
            return None
        incoming = self._next_input()
        if not self.picks:
            # The same doubles, in the same order, as one random() call per pick; a block
            # costs one call. ``draws`` counts the picks taken, which a resume advances by.
            self.picks = self.gen.random(self.PICK_BLOCK).tolist()[::-1]
        j = int(self.picks.pop() * len(buf))  # one 64-bit draw per pick
        self.draws += 1
        out = (keys[2 * j], keys[2 * j + 1], buf[j])
        if incoming is not None:
            keys[2 * j], keys[2 * j + 1] = incoming[0], incoming[1]
            buf[j] = incoming[2]
        else:
            last = len(buf) - 1
            keys[2 * j], keys[2 * j + 1] = keys[2 * last], keys[2 * last + 1]
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
            "buffer": np.frombuffer(self.keys, dtype=np.int64, count=2 * len(self.buf)).reshape(-1, 2).copy(),
            "draws": self.draws,
            "batches": self.batches,
            "done": self.done,
        }


class Emitted(NamedTuple):
    """What a worker yields: a collated batch with its lane and that lane's state after it;
    lane -1 is the empty marker that keeps the workers' turns aligned."""

    batch: Any
    lane: int
    state: Any


SKIP = Emitted(None, -1, None)


def lanes_of(consumer: int, consumers: int, lanes: int) -> list[int]:
    """The lanes consumer ``c`` of ``C`` runs: c, c + C, ... below ``lanes``."""
    return list(range(consumer, lanes, consumers))
