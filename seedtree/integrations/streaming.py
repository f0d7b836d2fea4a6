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

import itertools
import math
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..core.codec import path_to_json
from ..core.keys import KEY_LIMIT
from ..core.optional import require
from ..core.tree import SeedTree
from ..runtime.capture import isolate
from ..runtime.controllers import REGISTRY
from ._checks import check_positive, check_ranks, check_tree
from .ranks import current_ranks
from .stream_lanes import END, SKIP, Emitted, Lane, fresh_lane_state, lane_shards, lanes_of
from .stream_sources import DEFAULT_LANES, STREAM_STATE_FORMAT, HFShards, ShardedStream, StreamReadError, is_hf_iterable
from .stream_state import DAMAGED, merge_stream_states, show, state_shape

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
            raise ValueError(f"epoch must be an int in [0, 2**32), got {show(epoch)}")
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


class _StreamDataset(IterableDataset[Emitted]):
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
        ranks: tuple[int, int] | None,
        num_workers: int,
    ) -> None:
        self.stream, self.tree, self.cursor = stream, tree, cursor
        self.batch_size, self.drop_last, self.shuffle = batch_size, drop_last, shuffle
        self.bind_globals, self.collate_fn = bind_globals, collate_fn
        self.ranks, self.num_workers = ranks, num_workers  # ranks as given, or None: read per epoch
        self.layout: tuple[int, int] | None = None  # (rank, world_size) now; workers get it with their copy

    def resolve(self) -> tuple[int, int]:
        """``(rank, world_size)`` now (``seedtree.ranks.current_ranks``), checked against
        the lanes and kept for the workers. The loader calls it when an epoch starts."""
        rank, world = current_ranks(self.ranks)
        self.check_lanes(world)
        self.layout = (rank, world)
        return rank, world

    def check_lanes(self, world: int) -> None:
        """Refuse a layout with more consumers (``num_workers * world_size``) than lanes."""
        consumers = world * max(1, self.num_workers)
        if consumers > self.stream.lanes:
            raise ValueError(
                f"num_workers * world_size = {consumers} exceeds the stream's {self.stream.lanes} lanes, so some "
                f"would get no data; pass lanes= a multiple of {consumers}"
            )

    @property
    def rank(self) -> int:
        return (self.layout or self.resolve())[0]

    @property
    def world_size(self) -> int:
        return (self.layout or self.resolve())[1]

    def set_epoch(self, epoch: int) -> None:
        """accelerate calls this on the dataset: same as ``loader.set_epoch``."""
        self.cursor.set_epoch(epoch)

    def lane_shards(self, epoch: int) -> list[list[int]]:
        return lane_shards(len(self.stream.shards), self.stream.lanes, self.tree, epoch, self.shuffle)

    def __iter__(self) -> Iterator[Emitted]:
        epoch, resuming = (int(v) for v in self.cursor.control.tolist())
        info = get_worker_info()
        worker = 0 if info is None else info.id
        consumers = self.world_size * max(1, self.num_workers)
        consumer = self.rank + self.world_size * worker
        states = self.cursor.resume if resuming and self.cursor.resume is not None else {}
        return self._run(epoch, consumer, consumers, states)

    def _run(self, epoch: int, consumer: int, consumers: int, states: dict[int, dict[str, Any]]) -> Iterator[Emitted]:
        stream, n_lanes = self.stream, self.stream.lanes
        active = min(n_lanes, len(stream.shards))  # lanes beyond the shard count never hold a shard
        per_round = math.ceil(active / consumers)
        pad = self.num_workers > 1  # markers only matter between this loader's workers
        modules = REGISTRY.loaded_modules() if self.bind_globals else ()
        epoch_node = self.tree / epoch
        shards = self.lane_shards(epoch)
        mine = lanes_of(consumer, consumers, active)
        lanes = [
            Lane(
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
                    yield Emitted(self.collate_fn(batch), mine[i], lane.state())
                elif pad:
                    yield SKIP
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
        before = dataset.layout
        rank, _ = layout = dataset.resolve()
        if self._iterator is not None and before is not None and layout != before:  # persistent workers
            raise RuntimeError(
                f"the ranks changed from {before} to {layout} (rank, world_size) while persistent workers run "
                "with the old ones; build the loader again after torch.distributed starts"
            )
        hook = self.worker_init_fn
        if getattr(hook, "lazy_rank", False):
            hook.rank = rank  # type: ignore[union-attr]  # seedtree's worker_init_fn, read now
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
                    item = next(iterator, END)
            else:
                item = next(iterator, END)
            if not isinstance(item, Emitted):  # the end
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
                state = fresh_lane_state()
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
        state = state_shape(state, "stream state")
        for key, mine in self._identity().items():
            if state[key] != mine or type(state[key]) is not type(mine):
                raise ValueError(
                    f"stream state was saved with {key}={show(state[key])} but this loader has {key}={mine!r}; "
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
            raise ValueError(f"{where}.shard={m} is past the lane's {len(shards)} shards in epoch {epoch}; " + DAMAGED)
        if m == len(shards) and position:
            raise ValueError(f"{where}.position={position} after the lane's last shard must be 0; " + DAMAGED)
        if m < len(shards) and lengths is not None and position > lengths[shards[m]]:
            raise ValueError(
                f"{where}.position={position} is past the end of shard #{shards[m]} ({lengths[shards[m]]} samples); "
                "the state is damaged, or lengths= differs from the run that saved it"
            )
        capacity = ds.stream.shuffle_buffer if ds.shuffle else 0
        if len(buffer) > capacity:
            raise ValueError(
                f"{where}.buffer holds {len(buffer)} samples but this loader's shuffle buffer holds {capacity}; "
                + DAMAGED
            )
        rank_of = {s: k for k, s in enumerate(shards)}
        seen: set[tuple[int, int]] = set()
        for i, (s, p) in enumerate(buffer):
            k = rank_of.get(s)
            if k is None or k > m or (k == m and p >= position):
                raise ValueError(
                    f"{where}.buffer[{i}]=[{s}, {p}] is not a sample the lane had read (its shards in this epoch: "
                    f"{shards}, read up to shard {m} position {position}); " + DAMAGED
                )
            if lengths is not None and p >= lengths[s]:
                raise ValueError(f"{where}.buffer[{i}]=[{s}, {p}] is past the end of shard #{s}; " + DAMAGED)
            if (s, p) in seen:
                raise ValueError(f"{where}.buffer[{i}]=[{s}, {p}] appears twice; " + DAMAGED)
            seen.add((s, p))
        draws, batches = saved["draws"], saved["batches"]
        if not capacity and draws:
            raise ValueError(f"{where}.draws={draws} must be 0 without a shuffle buffer; " + DAMAGED)
        if saved["done"]:
            if buffer:
                raise ValueError(f"{where}.buffer must be empty for a finished lane (done=True); " + DAMAGED)
            if draws > batches * ds.batch_size:
                raise ValueError(f"{where}.draws={draws} exceeds the {batches} batches of {ds.batch_size}; " + DAMAGED)
            # Finished: either it ran out of samples (past its last shard), or it is the
            # untouched lane of a rank that had finished the epoch (merge_stream_states).
            if (m, position, batches, draws) != (0, 0, 0, 0) and m != len(shards):
                raise ValueError(f"{where}.done=True but the lane stands at shard {m} of its {len(shards)}; " + DAMAGED)
            total = sum(lengths[s] for s in shards) if lengths is not None else None
            if batches and total is not None:
                if capacity and draws != total:
                    raise ValueError(
                        f"{where}.draws={draws} must be the lane's {total} samples for a finished lane; " + DAMAGED
                    )
                if not (batches - 1) * ds.batch_size < total <= batches * ds.batch_size:
                    raise ValueError(
                        f"{where}.batches={batches} cannot hold the lane's {total} samples in batches of "
                        f"{ds.batch_size}; " + DAMAGED
                    )
            return
        # A lane that has not run out has handed out `batches` full batches: each sample
        # one draw of the buffer, and every sample read is handed out or in the buffer.
        if capacity and draws != batches * ds.batch_size:
            raise ValueError(
                f"{where}.draws={draws} must be batches * batch_size = {batches * ds.batch_size} for a lane "
                "that has not finished; " + DAMAGED
            )
        read = draws + len(buffer) if capacity else batches * ds.batch_size
        if lengths is not None or m == 0:
            before = sum(lengths[s] for s in shards[:m]) if lengths is not None else 0
            if read != before + position:
                raise ValueError(
                    f"{where}: shard {m} position {position} is sample {before + position} of the lane, but its "
                    f"batches, draws and buffer account for {read} samples read; " + DAMAGED
                )
        elif read < position:
            raise ValueError(
                f"{where}.position={position} is past the {read} samples its batches, draws and buffer account "
                "for; " + DAMAGED
            )


def _as_is(item: Any) -> Any:
    return item


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
    batch_size = check_positive(batch_size, "batch_size")
    if stream.shuffle_buffer and not shuffle:
        raise ValueError(
            f"shuffle_buffer={stream.shuffle_buffer} mixes samples only with shuffle=True, and the loader does not "
            "shuffle unless asked (as torch's DataLoader): pass shuffle=True, or shuffle_buffer=0"
        )
    for refused in ("sampler", "batch_sampler"):
        if dataloader_kwargs.get(refused) is not None:
            raise TypeError(f"loader() derives the sample order itself and does not take {refused}=; drop it")
    ranks = check_ranks(rank, world_size)
    num_workers = int(dataloader_kwargs.get("num_workers", 0))
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
        ranks=ranks,
        num_workers=num_workers,
    )
    # Refused now, not at the first epoch: too many consumers for the lanes (with the ranks
    # given; else for this process's workers alone, the ranks being read per epoch).
    worker_ds.check_lanes(1 if ranks is None else ranks[1])
    init = worker_hook(
        tree / "loader",
        then=dataloader_kwargs.pop("worker_init_fn", None),
        rank=None if ranks is None else ranks[0],
        bind_globals=bind_globals,
        reseed_dataset=False,
        lazy_rank=ranks is None,
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
