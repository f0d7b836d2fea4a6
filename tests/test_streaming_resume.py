"""Streaming resume as a property: for every batch boundary of an epoch, a loader resumed
from the state saved there hands out exactly the rest of the uninterrupted epoch, every
sample with the same draws, for readers that draw while reading (with and without
``start=``, drawing at open too), with and without a shuffle buffer, uneven shards, in
process and with forked workers, and for an HF ``IterableDataset`` whose ``.map`` draws."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from _workloads import read_jsonl, write_jsonl_shards

import seedtree as st
from seedtree.torch import ShardedStream, loader

TREE = st.SeedTree(2024) / "resume"
LENGTHS = [5, 9, 3, 12, 0, 7, 1, 8, 6]  # uneven, one empty
BATCH = 3


def _row(ident: int, opened: float) -> torch.Tensor:
    """One sample: its id, and a draw from every generator a reader's code might call."""
    values = [float(ident), opened, random.random(), float(np.random.rand()), torch.rand(1).item(), st.rng().random()]
    return torch.tensor(values, dtype=torch.float64)


def read_drawing(path: str):
    """No ``start=``: a resume reads the shard from its start. Draws at open (before its
    first yield, that is while reading sample 0) and per sample."""
    opened = st.rng().random()
    for sample in read_jsonl(path):
        yield _row(sample["id"], opened)


def read_drawing_list(path: str) -> list[torch.Tensor]:
    """No ``start=`` and not a generator: every draw happens when it is called (under
    sample 0's node), what it returns is iterated."""
    return [_row(sample["id"], 0.0) for sample in read_jsonl(path)]


def read_drawing_seek(path: str, start: int = 0):
    """With ``start=``: a resume seeks; it draws per sample only."""
    for sample in read_jsonl(path, start):
        yield _row(sample["id"], 0.0)


def _generate(sizes: list[int]):
    for s in sizes:
        for j in range(s % 100):
            yield {"id": 1000 * (s // 100) + j}


def _noisy(example: dict) -> dict:
    example["noise"] = float(np.random.rand())
    example["torch"] = torch.rand(1).item()
    example["key"] = st.rng().random()
    return example


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> list[str]:
    return write_jsonl_shards(tmp_path_factory.mktemp("jsonl"), LENGTHS)


def _source(kind: str, shards: list[str]):
    if kind == "hf":
        datasets = pytest.importorskip("datasets")
        gen = datasets.IterableDataset.from_generator(
            _generate, gen_kwargs={"sizes": [100 * s + n for s, n in enumerate(LENGTHS)]}
        )
        assert gen.num_shards == len(LENGTHS)
        return gen.map(_noisy)
    if kind == "hf-dict":
        datasets = pytest.importorskip("datasets")
        ids = [1000 * s + j for s, n in enumerate(LENGTHS) for j in range(n)]
        return datasets.Dataset.from_dict({"id": ids}).to_iterable_dataset(num_shards=7).map(_noisy)
    read = {"no-seek": read_drawing, "no-seek-list": read_drawing_list, "seek": read_drawing_seek}[kind]
    return ShardedStream(shards, read)


def _rows(batch) -> torch.Tensor:
    if isinstance(batch, dict):
        return torch.stack([batch[k].double() for k in ("id", "noise", "torch", "key")], dim=1)
    return batch


def _loader(source, buffer: int, num_workers: int):
    extra = {"multiprocessing_context": "fork"} if num_workers else {}
    return loader(
        source, TREE, batch_size=BATCH, shuffle=True, lanes=4, shuffle_buffer=buffer, num_workers=num_workers, **extra
    )


@pytest.mark.parametrize("num_workers", [0, pytest.param(2, marks=pytest.mark.slow)])
@pytest.mark.parametrize("buffer", [0, 4])
@pytest.mark.parametrize("kind", ["no-seek", "no-seek-list", "seek", "hf", "hf-dict"])
def test_resume_at_every_batch_boundary_replays_every_samples_draws(shards, kind, buffer, num_workers):
    source = _source(kind, shards)
    oracle = [_rows(b) for b in _loader(source, buffer, 0)]  # in process, uninterrupted
    dl = _loader(source, buffer, num_workers)
    seen, states = [], []
    for batch in dl:  # the same epoch, saving the state after every batch
        seen.append(_rows(batch))
        states.append(json.loads(json.dumps(dl.state_dict())))
    assert len(seen) == len(oracle) > 10
    assert all(torch.equal(a, b) for a, b in zip(seen, oracle, strict=True))
    want = torch.cat(oracle)
    assert len(set(want[:, 0].tolist())) == len(want) == sum(LENGTHS), "every sample once"
    assert len(set(want[:, -1].tolist())) == len(want), "every sample its own stream"
    failures = []
    for k, state in enumerate(states[:-1], start=1):  # resume after batch k
        resumed = _loader(source, buffer, num_workers)
        resumed.load_state_dict(state)
        got = torch.cat([_rows(b) for b in resumed])
        tail = want[sum(len(b) for b in oracle[:k]) :]
        if got.shape != tail.shape or not torch.equal(got[:, 0], tail[:, 0]):
            failures.append(f"after batch {k}: other samples or order")
        elif not torch.equal(got, tail):
            bad = (got != tail).any(dim=1)
            failures.append(f"after batch {k}: {int(bad.sum())} samples drew otherwise: ids {got[bad, 0].tolist()}")
    assert not failures, f"{len(failures)} of {len(states) - 1} resume points diverge:\n" + "\n".join(failures)


class CountingTransform:
    """Counts its calls: a resume hands out each remaining sample once and transforms
    nothing it drops."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, sample: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return sample


@pytest.mark.parametrize("kind", ["no-seek", "seek"])
@pytest.mark.parametrize("buffer", [0, 4])
def test_a_resume_transforms_only_what_it_hands_out(shards, kind, buffer):
    counting = CountingTransform()
    stream = ShardedStream(shards, _source(kind, shards).read, transform=counting, shuffle_buffer=buffer)
    dl = loader(stream, TREE, batch_size=BATCH, shuffle=True, lanes=4)
    it = iter(dl)
    first = [next(it) for _ in range(5)]
    resumed = loader(stream, TREE, batch_size=BATCH, shuffle=True, lanes=4)
    resumed.load_state_dict(dl.state_dict())
    counting.calls = 0
    rest = list(resumed)
    assert counting.calls == sum(len(b) for b in rest) == sum(LENGTHS) - sum(len(b) for b in first)
