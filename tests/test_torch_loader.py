"""The per-sample DataLoader and the per-worker hook, with real DataLoader workers."""

from __future__ import annotations

import functools
import random

import numpy as np
import pytest
import torch
from _workloads import MixedDataset
from torch.utils.data import DataLoader

import seedtree as st
from seedtree.torch import SeedTreeSampler, ShardedStream, worker_init_fn
from seedtree.torch import loader as _loader

# These tests exercise the shuffled order (loader() shuffles only when asked, as DataLoader).
loader = functools.partial(_loader, shuffle=True)

TREE = st.SeedTree(2024)


def epochs(n_epochs: int = 2, **kwargs) -> list[torch.Tensor]:
    dl = loader(MixedDataset(), TREE, batch_size=4, **kwargs)
    return [torch.cat(list(dl)) for _ in range(n_epochs)]


@pytest.fixture(scope="module")
def reference() -> list[torch.Tensor]:
    return epochs(num_workers=0)


@pytest.mark.parametrize("num_workers", [1, 2, 4])
@pytest.mark.parametrize("persistent", [False, True])
def test_batches_identical_for_any_worker_layout(reference, num_workers, persistent):
    got = epochs(num_workers=num_workers, persistent_workers=persistent)
    for epoch, (a, b) in enumerate(zip(got, reference, strict=True)):
        assert torch.equal(a, b), f"epoch {epoch} differs with num_workers={num_workers} persistent={persistent}"


def test_spawn_workers_identical(reference):
    got = epochs(1, num_workers=2, multiprocessing_context="spawn")
    assert torch.equal(got[0], reference[0])


def test_epochs_differ_and_every_sample_appears_once(reference):
    e0, e1 = reference
    assert not torch.equal(e0, e1)
    assert sorted(e0[:, 0].tolist()) == list(range(37))
    assert not torch.equal(e0[:, 0], e1[:, 0]), "the shuffle order must change with the epoch"
    # all five generators are bound per sample: no value repeats anywhere
    values = torch.cat([e0[:, 1:], e1[:, 1:]]).flatten().tolist()
    assert len(set(values)) == len(values)


def test_sample_stream_is_the_path(reference):
    row = reference[1][0]
    index = int(row[0])
    node = TREE / 1 / index
    assert row[4].item() == node.numpy().random()
    assert row[1].item() == node.random().random()


def test_resume_mid_epoch_equals_uninterrupted(reference):
    dl = loader(MixedDataset(), TREE, batch_size=4, num_workers=2, prefetch_factor=4)
    it = iter(dl)
    first = [next(it) for _ in range(3)]
    state = dl.state_dict()
    del it
    assert state["epoch"] == 0 and state["batches_done"] == 3
    resumed = loader(MixedDataset(), TREE, batch_size=4, num_workers=1)
    resumed.load_state_dict(state)
    epoch0 = torch.cat(first + list(resumed))
    assert torch.equal(epoch0, reference[0])
    assert torch.equal(torch.cat(list(resumed)), reference[1]), "after the resumed epoch the next one follows"


def test_peeking_then_iterating_gives_the_whole_epoch(reference):
    dl = loader(MixedDataset(), TREE, batch_size=4, num_workers=2)
    peek = next(iter(dl))
    assert torch.equal(peek, reference[0][:4])
    assert torch.equal(torch.cat(list(dl)), reference[0]), "a new iteration starts the epoch over"
    assert torch.equal(torch.cat(list(dl)), reference[1])


def test_state_from_another_tree_or_order_is_refused():
    state = loader(MixedDataset(), TREE / "7", batch_size=4).state_dict()
    with pytest.raises(ValueError, match="path"):
        loader(MixedDataset(), TREE / 7, batch_size=4).load_state_dict(state)
    with pytest.raises(ValueError, match="shuffle"):
        loader(MixedDataset(), TREE / "7", batch_size=4, shuffle=False).load_state_dict(state)
    with pytest.raises(ValueError, match="no 'n'"):
        loader(MixedDataset(), TREE, batch_size=4).load_state_dict({"epoch": 0, "batches_done": 1})


def test_loader_chains_the_users_worker_init_fn(tmp_path):
    marker = tmp_path / "workers"
    dl = loader(MixedDataset(), TREE, batch_size=4, num_workers=2, worker_init_fn=_Mark(str(marker)))
    list(dl)
    assert sorted(marker.read_text().split()) == ["0", "1"]


class _Mark:
    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, worker_id: int) -> None:
        assert "worker" in st.current().path, "seedtree binds the worker before your hook"
        with open(self.path, "a") as fh:
            fh.write(f"{worker_id}\n")


def test_set_epoch_and_state_checks():
    dl = loader(MixedDataset(), TREE, batch_size=4)
    dl.set_epoch(1)
    assert dl.state_dict()["epoch"] == 1
    with pytest.raises(ValueError, match="batch_size=4"):
        loader(MixedDataset(), TREE, batch_size=5).load_state_dict(dl.state_dict())
    with pytest.raises(ValueError, match="entropy"):
        loader(MixedDataset(), st.SeedTree(1), batch_size=4).load_state_dict(dl.state_dict())
    with pytest.raises(ValueError, match="non-negative"):
        dl.set_epoch(-1)


def test_ranks_take_disjoint_shards_whose_union_is_the_epoch(reference):
    shards = [torch.cat(list(loader(MixedDataset(), TREE, batch_size=4, rank=r, world_size=3))) for r in range(3)]
    seen = [set(s[:, 0].tolist()) for s in shards]
    assert all(not (seen[i] & seen[j]) for i in range(3) for j in range(i + 1, 3))
    pooled = torch.cat(shards)
    ref = reference[0]
    assert torch.equal(pooled[pooled[:, 0].argsort()], ref[ref[:, 0].argsort()])


def test_drop_uneven_gives_equal_shards():
    lengths = {len(SeedTreeSampler(37, TREE, batch_size=1, rank=r, world_size=4, drop_uneven=True)) for r in range(4)}
    assert lengths == {9}


@pytest.mark.usefixtures("clean_seedtree")
def test_main_process_globals_untouched_with_num_workers_0():
    st.seed_everything(11)
    expected = (random.random(), float(np.random.rand()), torch.rand(1).item())
    st.seed_everything(11)
    list(loader(MixedDataset(), TREE, batch_size=4, num_workers=0))
    assert (random.random(), float(np.random.rand()), torch.rand(1).item()) == expected


def test_bad_input():
    with pytest.raises(TypeError, match="SeedTree"):
        loader(MixedDataset(), 42)
    with pytest.raises(TypeError, match="sampler"):
        loader(MixedDataset(), TREE, sampler=range(3))

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(range(3))

    with pytest.raises(TypeError, match="map-style"):
        loader(Stream(), TREE)
    with pytest.raises(ValueError, match="rank"):
        loader(MixedDataset(), TREE, rank=2, world_size=2)


class OwnsGenerator:
    """A dataset that keeps its own generator and lets seedtree reseed it per worker."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)  # the same in every worker unless reseeded
        self.calls: list[int] = []

    def seedtree_reseed(self, node: st.SeedTree) -> None:
        self.rng = node.numpy()

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int):
        info = torch.utils.data.get_worker_info()
        return info.id, self.rng.random(), np.random.random(), random.random(), st.rng().random()


def test_worker_hook_distinct_per_worker_and_epoch_and_reproducible(tmp_path):
    marker = tmp_path / "chained"

    def run():
        gen = (TREE / "gen").torch()
        hook = worker_init_fn(TREE, then=_Mark(str(marker)), rank=0)
        dl = DataLoader(OwnsGenerator(), batch_size=2, num_workers=2, worker_init_fn=hook, generator=gen)
        return [[tuple(map(float, row)) for b in dl for row in zip(*b, strict=True)] for _ in range(2)]

    first, again = run(), run()
    assert first == again, "same tree and loader generator: same draws"
    assert len(marker.read_text().split()) == 8, "the user's hook ran in every worker of every epoch"
    by_worker_epoch = {}
    for epoch, rows in enumerate(first):
        for row in rows:
            by_worker_epoch.setdefault((epoch, int(row[0])), []).append(row[1:])
    firsts = [rows[0] for rows in by_worker_epoch.values()]
    for column in range(4):  # dataset's own rng, numpy global, random, ambient
        values = [r[column] for r in firsts]
        assert len(set(values)) == len(values), f"column {column} repeats across workers/epochs"


def test_worker_hook_rank_changes_the_path():
    a = worker_init_fn(TREE, rank=0).node(1, 99)
    b = worker_init_fn(TREE, rank=1).node(1, 99)
    assert a != b and a.path[:2] == ("worker", 0)
    with pytest.raises(TypeError, match="SeedTree"):
        worker_init_fn(7)


def test_an_empty_batch_fetches_nothing() -> None:
    from seedtree.integrations.torch import _SampleBound

    for bind_globals in (False, True):
        assert _SampleBound(list(range(10)), st.SeedTree(1), bind_globals, reseed=False).__getitems__([]) == []


@pytest.mark.parametrize("mid_epoch", [True, False])
def test_set_epoch_refuses_to_drop_a_loaded_resume(mid_epoch: bool) -> None:
    """A wrapper counting its epochs from 0 (accelerate's DataLoaderShard) calls
    set_epoch(0) on a loader resumed into epoch 1: refused, mid-epoch or at its start."""
    dl = loader(MixedDataset(), TREE, batch_size=4)
    list(dl)  # epoch 0
    if mid_epoch:
        it = iter(dl)
        next(it)
    state = dl.state_dict()
    assert state["epoch"] == 1
    resumed = loader(MixedDataset(), TREE, batch_size=4)
    resumed.load_state_dict(state)
    with pytest.raises(ValueError, match=r"set_epoch\(0\) would drop the resume into epoch 1"):
        resumed.set_epoch(0)
    resumed.set_epoch(1)  # the resumed epoch itself is fine


def test_a_length_query_by_a_wrapper_leaves_the_rank_view_alone() -> None:
    BatchSamplerShard = pytest.importorskip("accelerate.data_loader").BatchSamplerShard

    dl = loader(MixedDataset(), TREE, batch_size=4, rank=1, world_size=2)
    mine = len(dl)
    assert len(BatchSamplerShard(dl.batch_sampler, num_processes=2, process_index=1)) == 5  # whole epoch: 10 batches
    assert (len(dl), dl.sampler.rank, dl.sampler.num_replicas, dl.state_dict()["world_size"]) == (mine, 1, 2, 2)


def test_torch_defaults_no_shuffle_and_generator_refused() -> None:
    """loader() takes DataLoader's defaults (no shuffling unless asked) and refuses
    generator= rather than ignore it (two generators used to give the same order)."""
    plain = _loader(MixedDataset(), TREE, batch_size=4)  # the library's own default
    assert torch.cat(list(plain))[:, 0].tolist() == list(range(37))
    with pytest.raises(ValueError, match="generator= would be ignored"):
        _loader(MixedDataset(), TREE, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(1))
    stream = ShardedStream([3, 4], lambda n: iter(range(n)))
    with pytest.raises(ValueError, match="generator= would be ignored"):
        _loader(stream, TREE, generator=torch.Generator())


def test_a_sampler_yielding_lists_without_batch_size_is_a_batch_sampler() -> None:
    class Buckets(torch.utils.data.Sampler):
        def __init__(self) -> None:
            self.epochs: list[int] = []

        def set_epoch(self, epoch: int) -> None:
            self.epochs.append(epoch)

        def __iter__(self):  # noqa: ANN204
            return iter([[0, 1, 2], [3], [4, 5], [3, 6]])  # 3 twice: two occurrences

        def __len__(self) -> int:
            return 4

    buckets = Buckets()
    dl = _loader(MixedDataset(), TREE, batch_sampler=buckets, num_workers=2)
    got = [b[:, 0].tolist() for b in dl]
    assert got == [[0.0, 1.0, 2.0], [3.0], [4.0, 5.0], [3.0, 6.0]]
    assert buckets.epochs == [0]
    first, again = (torch.cat(list(_loader(MixedDataset(), TREE, batch_sampler=Buckets()))) for _ in range(2))
    assert torch.equal(first, again)
    assert not torch.equal(first[3], first[5])  # the two occurrences of sample 3 have their own streams
    resumed = _loader(MixedDataset(), TREE, batch_sampler=Buckets())
    it = iter(resumed)
    next(it), next(it)
    state = resumed.state_dict()
    again_dl = _loader(MixedDataset(), TREE, batch_sampler=Buckets())
    again_dl.load_state_dict(state)
    assert torch.equal(torch.cat(list(again_dl)), first[4:])  # resumes after the 2 batches done
    with pytest.raises(TypeError, match="iterable of index lists"):
        _loader(MixedDataset(), TREE, batch_sampler=7)
