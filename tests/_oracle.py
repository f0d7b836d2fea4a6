"""The invariance oracle: a configuration of the loader, run, and compared with the
single-process uninterrupted run of the same sampler and data.

A configuration is (data kind, sampler, batch size, drop_last, ranks, num_workers,
persistent, start method, wrapper, resume point and the layout resumed into). The
reference is that data and sampler with ``num_workers=0``, one rank, no wrapper and no
resume. The checks (``check``):

- every epoch holds the reference's samples, as a multiset of (key, RNG digests,
  content): nothing lost, nothing repeated, and every sample drew exactly the reference's
  randomness from every library;
- on one rank the order is the reference's too (workers, persistence, start method and
  resume never change it).

Used by tests/test_oracle.py (a CI budget of configurations drawn by hypothesis) and
benchmarks/oracle.py (the long run).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, RandomSampler, Sampler, WeightedRandomSampler

import seedtree as st
from seedtree.integrations.loader_check import Probed, _instrument, _record, probe_digest
from seedtree.streaming import ShardedStream
from seedtree.torch import loader

TREE = st.SeedTree(2024) / "oracle"


class Probe(Dataset):
    """Each sample draws from every library, a data-dependent number of times."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        extra = float(np.random.rand(1 + i % 3).sum())
        return torch.tensor([float(i), extra, torch.rand(1).item(), random.random(), st.rng().random()])


class Bucketing(Sampler[list[int]]):
    """A user's length-bucketing batch sampler: yields lists, has no ``batch_size``."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):  # type: ignore[no-untyped-def]
        g = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        sizes = [1 + (self.seed + k) % 4 for k in range(self.n)]
        out, i, k = [], 0, 0
        while i < self.n:
            out.append(sorted(order[i : i + sizes[k]]))
            i, k = i + sizes[k], k + 1
        return iter(out)

    def __len__(self) -> int:
        return len(list(iter(self)))


def read_shard(shard: tuple[int, int]):  # type: ignore[no-untyped-def]
    """A stream reader that draws while reading (no ``start=``: a resume re-reads and drops)."""
    base, length = shard
    for p in range(length):
        yield torch.tensor([float(base + p), float(np.random.rand()), st.rng().random()])


def _generate(shards: list[tuple[int, int]]):  # type: ignore[no-untyped-def]
    for base, n in shards:
        for p in range(n):
            yield {"x": base + p}


def _hf_draw(example: dict[str, Any]) -> dict[str, Any]:
    example["noise"] = float(np.random.rand())
    example["key"] = st.rng().random()
    return example


def hf_stream(shards: list[tuple[int, int]]) -> Any:
    """An HF ``IterableDataset`` with one data source per shard and a ``.map`` that draws."""
    import datasets

    return datasets.IterableDataset.from_generator(_generate, gen_kwargs={"shards": shards}).map(_hf_draw)


class OutsidePromise(Exception):
    """The drawn configuration is outside what the loader promises (not a divergence)."""


@dataclass
class Config:
    kind: str = "map"  # "map" or "stream"
    n: int = 23  # map: samples; stream: shards
    seed: int = 0
    sampler: str = "default"  # default | shuffle | random | random-replacement | weighted | distributed | bucketing
    batch_size: int = 4
    drop_last: bool = False
    world: int = 1
    workers: int = 0
    persistent: bool = False
    context: str = "fork"
    wrapper: str = "none"  # none | accelerate
    resume: tuple[int, int] | None = None  # (epoch, batches) to break off after, on every rank
    resume_world: int = 1
    resume_workers: int = 0
    lanes: int = 4
    buffer: int = 0
    hf: bool = False  # stream kind: an HF datasets.IterableDataset (from a generator, with a .map that draws)
    lengths: list[int] = field(default_factory=list)
    epochs: int = 2

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in vars(self).items())


def _source(cfg: Config) -> dict[str, Any]:
    n = cfg.n
    if cfg.sampler == "shuffle":
        return {"shuffle": True}
    if cfg.sampler == "random":
        return {"sampler": RandomSampler(range(n))}
    if cfg.sampler == "random-replacement":
        return {"sampler": RandomSampler(range(n), replacement=True, num_samples=n + 3)}
    if cfg.sampler == "weighted":
        weights = [1.0 + (i * 7 + cfg.seed) % 5 for i in range(n)]
        return {"sampler": WeightedRandomSampler(weights, n + 2, replacement=True)}
    if cfg.sampler == "distributed":  # the user's own DistributedSampler: it picks its share
        return {"sampler": DistributedSampler(range(n), num_replicas=2, rank=cfg.seed % 2, shuffle=True)}
    if cfg.sampler == "bucketing":
        return {"batch_sampler": Bucketing(n, cfg.seed)}
    return {}


def _layout(workers: int, cfg: Config) -> dict[str, Any]:
    out: dict[str, Any] = {"num_workers": workers}
    if workers:
        out["persistent_workers"] = cfg.persistent
        out["multiprocessing_context"] = cfg.context
        out["timeout"] = 120  # a hang fails the configuration instead of the whole run
    return out


def make(cfg: Config, rank: int, world: int, workers: int) -> Any:
    """The loader of ``cfg`` for this rank and worker count."""
    tree = TREE / cfg.seed
    if cfg.kind == "stream":
        lengths = cfg.lengths
        shards = [(1000 * s, n) for s, n in enumerate(lengths)]
        if cfg.hf:
            stream = hf_stream(shards)
            layout = {"lanes": cfg.lanes, "shuffle_buffer": cfg.buffer}
        else:
            stream = ShardedStream(shards, read_shard, lanes=cfg.lanes, shuffle_buffer=cfg.buffer, lengths=lengths)
            layout = {}
        return loader(
            stream,
            tree,
            batch_size=cfg.batch_size,
            drop_last=cfg.drop_last,
            shuffle=cfg.sampler != "default",
            rank=rank,
            world_size=world,
            **layout,
            **_layout(workers, cfg),
        )
    options = _source(cfg)
    batching = {} if "batch_sampler" in options else {"batch_size": cfg.batch_size, "drop_last": cfg.drop_last}
    return loader(Probe(cfg.n), tree, rank=rank, world_size=world, **batching, **options, **_layout(workers, cfg))


def _wrap(cfg: Config, dl: Any) -> Any:
    if cfg.wrapper == "accelerate":
        from accelerate import Accelerator

        return Accelerator(cpu=True).prepare(dl)
    return dl


Records = list[list[Any]]  # per epoch, the per-sample records of every batch, in order


def _records(batch: Any, probed: bool) -> list[Any]:
    return _record(batch, probed)


def run(cfg: Config, reference: bool = False) -> list[dict[int, Records]]:
    """Per epoch, per rank, the records of the batches that rank was handed."""
    world = 1 if reference else cfg.world
    workers = 0 if reference else cfg.workers
    resume = None if reference else cfg.resume
    loaders = [make(cfg, r, world, workers) for r in range(world)]
    probed = [_instrument(dl) for dl in loaders]
    wrapped = [dl if reference else _wrap(cfg, dl) for dl in loaders]
    out: list[dict[int, Records]] = []
    for e in range(cfg.epochs):
        got: dict[int, Records] = {r: [] for r in range(world)}
        if resume is not None and resume[0] == e:
            states = []
            for r in range(world):
                wrapped[r].set_epoch(e)
                it = iter(wrapped[r])
                for _ in range(resume[1]):
                    batch = next(it, None)
                    if batch is None:
                        break
                    got[r].append(_records(batch, probed[r]))
                states.append(loaders[r].state_dict())
                del it
            world = cfg.resume_world if cfg.kind == "map" else world
            loaders = [make(cfg, r, world, cfg.resume_workers) for r in range(world)]
            probed = [_instrument(dl) for dl in loaders]
            for dl in loaders:
                dl.load_state_dict(states[0] if cfg.kind == "map" else states)
            wrapped = [_wrap(cfg, dl) for dl in loaders]
            got.update({r: got.get(r, []) for r in range(world)})
            epochs_saved = {state["epoch"] for state in states}
            if cfg.kind == "map" and len(epochs_saved) > 1:
                # Some ranks had finished the epoch, others not: not a checkpoint in step, which
                # the map loader's cursor assumes (DDP steps ranks together; drop_uneven evens them).
                raise OutsidePromise(f"ranks out of step at the checkpoint ({cfg.describe()})")
            # Saved after the epoch's last batch: nothing of it is left. (A stream's ranks can
            # finish at different times: the merged state's epoch is the earliest.)
            if min(epochs_saved) > e:
                out.append(got)
                continue
        for r in range(world):
            wrapped[r].set_epoch(e)
            got.setdefault(r, []).extend(_records(b, probed[r]) for b in wrapped[r])
        out.append(got)
    return out


def _flat(batches: Records) -> list[Any]:
    return [tuple((k, tuple(sorted(d.items())), c)) for batch in batches for (k, d, c) in batch]


def check(cfg: Config) -> str | None:
    """None when ``cfg`` is invariant; else a line naming the first divergence.

    With ``drop_last`` on several ranks each rank drops its own short last batch (as
    torch's DistributedSampler does), so the ranks' samples are compared with the
    reference epoch *without* drop_last: every delivered sample is one of its samples,
    with its randomness, and at most ``world * (batch_size - 1)`` are not delivered."""
    per_rank_drop = cfg.kind == "map" and cfg.drop_last and (cfg.world > 1 or cfg.resume_world > 1)
    ref = run(replace(cfg, drop_last=False) if per_rank_drop else cfg, reference=True)
    got = run(cfg)
    for e, (ref_e, got_e) in enumerate(zip(ref, got, strict=True)):
        want = _flat(ref_e[0])
        if cfg.kind == "stream" and cfg.world > 1:
            # a stream's ranks hold whole lane batches: compare the batches as a multiset
            ours = Counter(tuple(_flat([b])) for r in got_e for b in got_e[r])
            theirs = Counter(tuple(_flat([b])) for b in ref_e[0])
            if ours != theirs:
                return f"epoch {e}: the ranks' batches are not the reference's ({cfg.describe()})"
            continue
        same_layout = cfg.world == 1 and (cfg.resume is None or cfg.resume_world == 1)
        if same_layout:  # one process (accelerate too): the very order of the reference
            have = _flat(got_e[0])
            if have != want:
                first = next(
                    (i for i, (a, b) in enumerate(zip(have, want, strict=False)) if a != b), min(len(have), len(want))
                )
                return f"epoch {e}: sample {first} differs from the reference ({cfg.describe()})"
            continue
        # Across layouts the batches are cut differently: compare the samples, not the
        # collated batches (map-style records carry both; the batch entries have no key).
        want = [x for x in want if x[0] is not None]
        have_all = Counter(x for r in got_e for x in _flat(got_e[r]) if x[0] is not None)
        if per_rank_drop:
            extra = have_all - Counter(want)
            missing = Counter(want) - have_all
            ranks = max(cfg.world, cfg.resume_world if cfg.resume else 1)
            if extra or sum(missing.values()) > ranks * (cfg.batch_size - 1) * (2 if cfg.resume else 1):
                return (
                    f"epoch {e}: {sum(extra.values())} samples not in the reference, {sum(missing.values())} "
                    f"missing ({cfg.describe()})"
                )
            continue
        if have_all != Counter(want):
            missing = Counter(want) - have_all
            extra = have_all - Counter(want)
            return (
                f"epoch {e}: {sum(missing.values())} reference samples missing, {sum(extra.values())} extra "
                f"({cfg.describe()})"
            )
    return None


__all__ = ["Config", "OutsidePromise", "Probed", "check", "probe_digest", "run"]
