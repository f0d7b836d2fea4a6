"""Streaming loader: per-sample keys (epoch, shard, position), layout invariance over the
canonical lanes, epochs, exact resume, uneven shards and ranks, bad input; with real
DataLoader workers, real HF datasets and two real gloo ranks."""

from __future__ import annotations

import itertools
import json
import random

import numpy as np
import pytest
import torch
import torch.multiprocessing as tmp
from _workloads import gloo_rank_stream, mixed_transform, read_jsonl, read_jsonl_no_seek, write_jsonl_shards
from torch.utils.data import IterableDataset

import seedtree as st
from seedtree.integrations.streaming import StreamReadError, merge_stream_states
from seedtree.torch import ShardedStream
from seedtree.torch import loader as _loader

TREE = st.SeedTree(4242)


def loader(*args, **kwargs):
    """``seedtree.torch.loader`` with the shard order and the shuffle buffer on (``shuffle``
    defaults to False): these tests are about the shuffled epoch."""
    kwargs.setdefault("shuffle", True)
    return _loader(*args, **kwargs)


LENGTHS = [5, 9, 3, 12, 0, 7, 1, 8, 6]  # uneven, one empty, 9 shards over 4 lanes
BATCH = 2


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> list[str]:
    return write_jsonl_shards(tmp_path_factory.mktemp("jsonl"), LENGTHS)


def stream_of(shards, **kwargs) -> ShardedStream:
    kwargs.setdefault("lanes", 4)
    return ShardedStream(shards, read_jsonl, transform=mixed_transform, **kwargs)


def epochs(stream, n: int = 2, **kwargs) -> list[torch.Tensor]:
    dl = loader(stream, TREE, batch_size=BATCH, **kwargs)
    return [torch.cat(list(dl)) for _ in range(n)]


def all_ids() -> list[int]:
    return sorted(1000 * i + j for i, n in enumerate(LENGTHS) for j in range(n))


@pytest.fixture(scope="module")
def reference(shards) -> list[torch.Tensor]:
    return epochs(stream_of(shards))


@pytest.fixture(scope="module")
def buffered(shards) -> list[torch.Tensor]:
    return epochs(stream_of(shards, shuffle_buffer=4))


@pytest.mark.slow
@pytest.mark.parametrize("num_workers", [1, 2, 3, 4])
@pytest.mark.parametrize("persistent", [False, True])
def test_batches_identical_for_every_worker_layout(shards, reference, num_workers, persistent):
    got = epochs(stream_of(shards), num_workers=num_workers, persistent_workers=persistent)
    for epoch, (a, b) in enumerate(zip(got, reference, strict=True)):
        assert torch.equal(a, b), f"epoch {epoch} differs with num_workers={num_workers} persistent={persistent}"


def test_ranks_not_dividing_the_lanes_keep_every_sample_and_its_randomness(shards, reference):
    ranks = [torch.cat(list(loader(stream_of(shards), TREE, batch_size=BATCH, rank=r, world_size=3))) for r in range(3)]
    pooled = torch.cat(ranks)
    assert torch.equal(pooled[pooled[:, 0].argsort()], reference[0][reference[0][:, 0].argsort()])


def test_every_sample_once_per_epoch_and_epochs_differ(reference):
    e0, e1 = reference
    assert sorted(e0[:, 0].tolist()) == all_ids() == sorted(e1[:, 0].tolist())
    assert not torch.equal(e0[:, 0], e1[:, 0]), "the shard order must change with the epoch"
    values = torch.cat([e0[:, 1:], e1[:, 1:]]).flatten().tolist()
    assert len(set(values)) == len(values), "every generator is bound per sample and epoch: no value repeats"


def test_sample_stream_is_the_epoch_shard_position_path(reference):
    for epoch in (0, 1):
        for row in reference[epoch][:5]:
            shard, position = divmod(int(row[0]), 1000)
            node = TREE / epoch / "shard" / shard / position
            assert row[1].item() == node.random().random()
            assert row[4].item() == node.numpy().random()


def test_shuffle_buffer_changes_the_order_never_the_samples(shards, reference, buffered):
    for plain, mixed in zip(reference, buffered, strict=True):
        assert not torch.equal(plain[:, 0], mixed[:, 0])
        order = lambda t: t[t[:, 0].argsort()]  # noqa: E731
        assert torch.equal(order(plain), order(mixed)), "per-sample randomness must not depend on the buffer"
    got = epochs(stream_of(shards, shuffle_buffer=4), num_workers=2, persistent_workers=True)
    assert all(torch.equal(a, b) for a, b in zip(got, buffered, strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("buffer", [0, 4])
@pytest.mark.parametrize(("cut", "before", "after"), [(1, 0, 2), (6, 2, 4), (13, 4, 3), (9, 3, 0)])
def test_resume_mid_epoch_on_any_layout(shards, reference, buffered, buffer, cut, before, after):
    want = buffered if buffer else reference
    dl = loader(
        stream_of(shards, shuffle_buffer=buffer),
        TREE,
        batch_size=BATCH,
        num_workers=before,
        prefetch_factor=4 if before else None,
    )
    it = iter(dl)
    first = [next(it) for _ in range(cut)]
    state = json.loads(json.dumps(dl.state_dict()))  # plain JSON, nothing lost
    del it
    if buffer and cut > 1:
        assert any(lane and lane["buffer"] for lane in state["lanes"]), "the buffer is part of the state"
    resumed = loader(
        stream_of(shards, shuffle_buffer=buffer),
        TREE,
        batch_size=BATCH,
        num_workers=after,
        persistent_workers=after > 0,
    )
    resumed.load_state_dict(state)
    assert torch.equal(torch.cat(first + list(resumed)), want[0])
    assert torch.equal(torch.cat(list(resumed)), want[1]), "after the resumed epoch the next one follows"


def test_resume_skips_by_reading_when_the_reader_cannot_seek(shards, reference, tmp_path):
    plain = ShardedStream(shards, read_jsonl_no_seek, transform=mixed_transform, lanes=4)
    assert not plain.seekable and stream_of(shards).seekable
    dl = loader(plain, TREE, batch_size=BATCH)
    it = iter(dl)
    first = [next(it) for _ in range(7)]
    resumed = loader(plain, TREE, batch_size=BATCH)
    torch.save(dl.state_dict(), tmp_path / "state.pt")
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert torch.equal(torch.cat(first + list(resumed)), reference[0])


def test_set_epoch_reaches_persistent_workers_where_lightning_and_accelerate_call_it(shards, reference):
    from lightning.fabric.utilities.data import _set_sampler_epoch

    dl = loader(stream_of(shards), TREE, batch_size=BATCH, num_workers=2, persistent_workers=True)
    assert torch.equal(torch.cat(list(dl)), reference[0])
    _set_sampler_epoch(dl, 0)  # Lightning: loader.sampler.set_epoch
    assert torch.equal(torch.cat(list(dl)), reference[0]), "the persistent workers must see the epoch"
    dl.dataset.set_epoch(1)  # accelerate: loader.dataset.set_epoch
    assert torch.equal(torch.cat(list(dl)), reference[1])
    epoch2 = epochs(stream_of(shards), 3)[2]
    peek = next(iter(dl))
    assert torch.equal(peek, epoch2[:BATCH])
    assert torch.equal(torch.cat(list(dl)), epoch2), "a new iteration after a peek starts the epoch over"


def test_in_process_loading_leaves_the_callers_globals_alone(shards):
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    list(loader(stream_of(shards), TREE, batch_size=BATCH))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


class KeyedReader:
    """A reader owning a generator, re-keyed per sample through seedtree_reseed."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    def seedtree_reseed(self, node) -> None:
        self.rng = node.numpy()

    def __call__(self, path: str, start: int = 0):
        for sample in read_jsonl(path, start):
            yield torch.tensor([sample["id"], self.rng.random()], dtype=torch.float64)


def test_reader_owned_generators_are_reseeded_per_sample(shards):
    batch = next(iter(loader(ShardedStream(shards, KeyedReader(), lanes=4), TREE, batch_size=BATCH)))
    for ident, value in batch.tolist():
        shard, position = divmod(int(ident), 1000)
        assert value == (TREE / 0 / "shard" / shard / position).numpy().random()


def test_in_process_ranks_take_their_lanes_and_interleave_to_the_single_process_epoch(tmp_path):
    even = write_jsonl_shards(tmp_path, [4] * 8)
    single = epochs(stream_of(even), 1)[0]
    ranks = [
        list(loader(stream_of(even), TREE, batch_size=BATCH, rank=r, world_size=2, num_workers=1)) for r in range(2)
    ]
    interleaved = [b for pair in zip(*ranks, strict=True) for b in pair]
    assert torch.equal(torch.cat(interleaved), single)


def test_uneven_ranks_lose_and_repeat_nothing_and_drop_uneven_evens_them(shards, reference):
    ranks = [torch.cat(list(loader(stream_of(shards), TREE, batch_size=BATCH, rank=r, world_size=2))) for r in range(2)]
    assert sorted(torch.cat(ranks)[:, 0].tolist()) == all_ids()
    assert set(map(tuple, torch.cat(ranks).tolist())) == set(map(tuple, reference[0].tolist()))
    with pytest.raises(ValueError, match="drop_uneven needs every shard's sample count"):
        loader(stream_of(shards), TREE, batch_size=BATCH, rank=0, world_size=2, drop_uneven=True)
    counted = stream_of(shards, lengths=LENGTHS)
    dls = [loader(counted, TREE, batch_size=BATCH, rank=r, world_size=2, drop_uneven=True) for r in range(2)]
    full = [list(loader(counted, TREE, batch_size=BATCH, rank=r, world_size=2)) for r in range(2)]
    steps = min(len(f) for f in full)
    assert len(dls[0]) == len(dls[1]) == steps < max(len(f) for f in full)
    got = [list(d) for d in dls]
    assert len(got[0]) == len(got[1]) == steps
    for g, f in zip(got, full, strict=True):  # each rank's first batches, the rest of the longer rank dropped
        assert all(torch.equal(a, b) for a, b in zip(g, f[:steps], strict=True))


def test_merged_rank_states_resume_on_one_process(shards, reference):
    dls = [loader(stream_of(shards, shuffle_buffer=4), TREE, batch_size=BATCH, rank=r, world_size=2) for r in range(2)]
    its = [iter(d) for d in dls]
    seen = [next(i) for i in its for _ in range(3)]
    states = [d.state_dict() for d in dls]
    lone = loader(stream_of(shards, shuffle_buffer=4), TREE, batch_size=BATCH, num_workers=2)
    with pytest.raises(ValueError, match="no position for lane 1"):
        lone.load_state_dict(states[0])
    lone.load_state_dict(merge_stream_states(states))
    rows = torch.cat(seen + list(lone))
    buffered_epoch = epochs(stream_of(shards, shuffle_buffer=4), 1)[0]
    assert set(map(tuple, rows.tolist())) == set(map(tuple, buffered_epoch.tolist()))
    assert len(rows) == len(buffered_epoch)


def test_merging_a_rank_that_finished_its_epoch_with_one_still_in_it(shards):
    dls = [loader(stream_of(shards), TREE, batch_size=BATCH, rank=r, world_size=2) for r in range(2)]
    done = list(dls[0])  # rank 0 finished: its cursor is at the start of epoch 1
    it = iter(dls[1])
    seen = [next(it) for _ in range(2)]
    states = [d.state_dict() for d in dls]
    rest_of_rank1 = list(it)
    assert states[0]["epoch"] == 1 and states[1]["epoch"] == 0
    lone = loader(stream_of(shards), TREE, batch_size=BATCH)
    states[1] = json.loads(json.dumps(states[1]))
    lone.load_state_dict(states)
    assert torch.equal(torch.cat(list(lone)), torch.cat(rest_of_rank1)), "only rank 1's rest remains"
    assert len(done) and len(seen) == 2


@pytest.mark.slow
def test_two_gloo_ranks_stream_their_lanes(tmp_path, shards, reference):
    entropy = TREE.entropy
    tmp.spawn(gloo_rank_stream, args=(2, str(tmp_path / "init"), str(tmp_path), entropy, shards), nprocs=2, join=True)
    got = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for r in range(2):
        # the ranks (tests/_workloads.py) load with loader()'s defaults: shuffle=False
        alone = torch.cat(list(_loader(stream_of(shards), TREE, batch_size=BATCH, rank=r, world_size=2)))
        assert torch.equal(got[r], alone), f"rank {r} must see exactly its lanes' batches"
    assert not set(got[0][:, 0].tolist()) & set(got[1][:, 0].tolist())
    pooled = torch.cat(got)
    assert torch.equal(pooled[pooled[:, 0].argsort()], reference[0][reference[0][:, 0].argsort()])


@pytest.mark.slow
def test_spawned_workers_identical(shards, reference):
    got = epochs(stream_of(shards), 1, num_workers=2, multiprocessing_context="spawn")
    assert torch.equal(got[0], reference[0])


def _noisy(example: dict) -> dict:
    example["noise"] = float(np.random.rand())
    example["key"] = st.rng().random()
    return example


def _generate(shards: list[int]):
    for s in shards:
        for j in range(s % 4 + 1):
            yield {"id": 1000 * s + j}


def test_hf_streaming_json_files(shards, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    ds = datasets.load_dataset("json", data_files=shards, split="train", streaming=True)
    assert ds.num_shards == len(shards)
    ref = torch.cat([b["id"] for b in loader(ds, TREE, batch_size=BATCH)])
    got = torch.cat([b["id"] for b in loader(ds, TREE, batch_size=BATCH, num_workers=2)])
    assert torch.equal(ref, got) and sorted(ref.tolist()) == all_ids()


def test_hf_iterable_dataset_layout_invariant_and_keyed():
    datasets = pytest.importorskip("datasets")
    plain = datasets.Dataset.from_dict({"id": list(range(23))}).to_iterable_dataset(num_shards=5)
    ds = plain.map(_noisy)
    ref = list(loader(ds, TREE, batch_size=3))
    got = list(loader(ds, TREE, batch_size=3, num_workers=2))
    assert all(
        torch.equal(a["id"], b["id"]) and torch.equal(a["noise"], b["noise"]) for a, b in zip(got, ref, strict=True)
    )
    assert sorted(torch.cat([b["id"] for b in ref]).tolist()) == list(range(23))
    where = {ex["id"]: (s, p) for s in range(5) for p, ex in enumerate(plain.shard(5, s))}
    ids, keys = torch.cat([b["id"] for b in ref]).tolist(), torch.cat([b["key"] for b in ref]).tolist()
    for ident, key in zip(ids, keys, strict=True):
        shard, position = where[ident]
        assert key == (TREE / 0 / "shard" / shard / position).numpy().random()
    gen = datasets.IterableDataset.from_generator(_generate, gen_kwargs={"shards": list(range(6))})
    ids = torch.cat([b["id"] for b in loader(gen, TREE, batch_size=4, num_workers=2)]).tolist()
    assert sorted(ids) == sorted(1000 * s + j for s in range(6) for j in range(s % 4 + 1))
    dl = loader(gen, TREE, batch_size=4)
    it = iter(dl)
    first = [next(it)["id"] for _ in range(2)]
    resumed = loader(gen, TREE, batch_size=4, num_workers=2)
    resumed.load_state_dict(dl.state_dict())
    assert (
        torch.cat(first + [b["id"] for b in resumed]).tolist()
        == torch.cat([b["id"] for b in loader(gen, TREE, batch_size=4)]).tolist()
    )
    with pytest.raises(ValueError, match="shuffled with its own seed"):
        loader(gen.shuffle(seed=0), TREE)


def test_bad_input_one_clear_line_each(shards, tmp_path):
    with pytest.raises(ValueError, match="empty shard list"):
        ShardedStream([], read_jsonl)

    class Opaque(IterableDataset):
        def __iter__(self):
            return iter(range(3))

    with pytest.raises(TypeError, match="a plain Opaque .an IterableDataset without shards. cannot be keyed"):
        loader(Opaque(), TREE)
    with pytest.raises(ValueError, match="exceeds the stream's 4 lanes"):
        loader(stream_of(shards), TREE, num_workers=4, world_size=2, rank=0)
    with pytest.raises(TypeError, match="cannot be pickled for spawned workers"):
        loader(
            ShardedStream(shards, lambda path: read_jsonl(path)), TREE, num_workers=1, multiprocessing_context="spawn"
        )

    def broken(path: str, start: int = 0):
        for sample in read_jsonl(path, start):
            if sample["id"] == 3002:
                raise OSError("disk on fire")
            yield sample

    before = (random.getstate(), np.random.get_state()[1].tolist(), torch.get_rng_state())
    with pytest.raises(
        StreamReadError, match=r"shard-003.jsonl' \(shard #3\) at position 2 failed: OSError: disk on fire"
    ):
        list(loader(ShardedStream(shards, broken, lanes=4), TREE, batch_size=BATCH))
    after = (random.getstate(), np.random.get_state()[1].tolist(), torch.get_rng_state())
    assert before[:2] == after[:2] and torch.equal(before[2], after[2]), "a failed read leaves the globals alone"
    with pytest.raises(ValueError, match="yielded 5 samples but lengths says 6"):
        list(loader(stream_of(shards, lengths=[6] + LENGTHS[1:]), TREE, batch_size=BATCH))
    state = loader(stream_of(shards), TREE, batch_size=BATCH).state_dict()
    with pytest.raises(ValueError, match="saved with batch_size=2 but this loader has batch_size=3"):
        loader(stream_of(shards), TREE, batch_size=3).load_state_dict(state)


@pytest.mark.slow
def test_reader_error_in_a_worker_names_shard_and_position(shards):
    failing = ShardedStream(shards, read_jsonl, transform=_fails_on_7001, lanes=4)
    with pytest.raises(
        StreamReadError, match=r"transforming the sample of shard .* \(shard #7\) at position 1 failed: KeyError"
    ):
        list(loader(failing, TREE, batch_size=BATCH, num_workers=2))


def _fails_on_7001(sample: dict) -> dict:
    if sample["id"] == 7001:
        raise KeyError("label")
    return sample


def test_lanes_deal_shards_and_consumers_own_lanes():
    from seedtree.integrations.stream_lanes import lane_shards as _lane_shards
    from seedtree.integrations.stream_lanes import lanes_of

    dealt = _lane_shards(9, 4, TREE, 0, shuffle=True)
    assert sorted(itertools.chain(*dealt)) == list(range(9))
    assert [len(d) for d in dealt] == [3, 2, 2, 2]
    assert _lane_shards(9, 4, TREE, 1, True) != dealt
    assert lanes_of(1, 2, 8) == [1, 3, 5, 7]


@pytest.mark.slow
def test_lightning_fit_sees_the_reference_epochs(shards, reference):
    lightning = pytest.importorskip("lightning")

    class Recorder(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.seen: list[torch.Tensor] = []

        def training_step(self, batch, _):
            self.seen.append(batch.clone())
            return self.w * batch[:, 1].float().sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    model = Recorder()
    dl = loader(stream_of(shards), TREE, batch_size=BATCH, num_workers=2, persistent_workers=True)
    trainer = lightning.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, dl)
    assert torch.equal(torch.cat(model.seen), torch.cat(reference))


def _set(path: tuple, value) -> object:
    """A damage: ``state[path] = value`` (``...`` as value deletes the key)."""

    def damage(state: dict) -> None:
        *outer, last = path
        target = state
        for key in outer:
            target = target[key]
        if value is ...:
            del target[last]
        else:
            target[last] = value

    return damage


# The six kinds of damage a fuzz probe found (raw KeyError, IndexError, TypeError, and
# states accepted that then crashed on iteration), and neighbours of each.
DAMAGED = {
    "KeyError: no epoch": (_set(("epoch",), ...), "has no 'epoch'"),
    "KeyError: no lanes": (_set(("lanes",), ...), "has no 'lanes'"),
    "IndexError: lanes cut short": (lambda s: s.update(lanes=s["lanes"][:2]), "lanes must be a list of n_lanes=4"),
    "TypeError: lanes an int": (_set(("lanes",), -99999999), "lanes must be a list"),
    "TypeError: a lane a string": (_set(("lanes", 1), "x"), r"lanes\[1\] must be a dict or None"),
    "negative epoch": (_set(("epoch",), -1), "epoch=-1 must be in"),
    "epoch not a path key": (_set(("epoch",), 2**32), "epoch=4294967296 must be in"),
    "negative shard": (_set(("lanes", 0, "shard"), -1), r"lanes\[0\]\.shard=-1"),
    "shard past the lane": (_set(("lanes", 0, "shard"), 9), r"lanes\[0\]\.shard=9 is past the lane's"),
    "no batches": (_set(("lanes", 0, "batches"), ...), r"lanes\[0\] has no 'batches'"),
    "batches a bool": (_set(("lanes", 0, "batches"), True), r"lanes\[0\]\.batches must be an int"),
    "negative draws": (_set(("lanes", 2, "draws"), -3), r"lanes\[2\]\.draws=-3"),
    "draws off by one": (lambda s: s["lanes"][2].update(draws=s["lanes"][2]["draws"] + 1), r"lanes\[2\]\.draws="),
    "position past the shard": (_set(("lanes", 0, "position"), 99), r"lanes\[0\]\.position=99 is past the end"),
    "buffer entry not a pair": (_set(("lanes", 0, "buffer", 0), [3]), r"lanes\[0\]\.buffer\[0\] must be a"),
    "buffer entry out of range": (_set(("lanes", 0, "buffer", 0), [3, 50]), r"lanes\[0\]\.buffer\[0\]=\[3, 50\]"),
    "buffer entry twice": (
        lambda s: s["lanes"][0]["buffer"].__setitem__(1, s["lanes"][0]["buffer"][0]),
        r"lanes\[0\]\.buffer\[1\]=.* appears twice",
    ),
    "shuffle a 1": (_set(("shuffle",), 1), "saved with shuffle=1 but this loader has shuffle=True"),
    "an extra key": (_set(("lanes", 3, "note"), "x"), r"lanes\[3\] has an unexpected key 'note'"),
}


@pytest.mark.parametrize("kind", list(DAMAGED))
def test_a_damaged_stream_state_is_refused_naming_the_field_and_changes_nothing(shards, kind):
    damage, field = DAMAGED[kind]
    dl = loader(stream_of(shards, shuffle_buffer=4, lengths=LENGTHS), TREE, batch_size=BATCH)
    it = iter(dl)
    for _ in range(7):  # mid-epoch: every lane mid-shard with a full buffer
        next(it)
    state = json.loads(json.dumps(dl.state_dict()))
    assert all(lane["buffer"] and lane["batches"] for lane in state["lanes"]), "the damages need busy lanes"
    damage(state)
    before = json.loads(json.dumps(dl.state_dict()))
    with pytest.raises(ValueError, match=field) as caught:
        dl.load_state_dict(state)
    assert "\n" not in str(caught.value)
    assert dl.state_dict() == before and dl.cursor.resume is None, "a refused state must leave the cursor as it was"
    with pytest.raises(ValueError, match=field):  # the same, as a list of rank states (merged first)
        dl.load_state_dict([state])
    assert dl.state_dict() == before and dl.cursor.resume is None


def test_merge_refuses_damaged_or_overlapping_rank_states(shards):
    dls = [loader(stream_of(shards), TREE, batch_size=BATCH, rank=r, world_size=2) for r in range(2)]
    for d in dls:
        next(iter(d))
    states = [json.loads(json.dumps(d.state_dict())) for d in dls]
    with pytest.raises(ValueError, match="gives lane 0 again"):
        merge_stream_states([states[0], states[0]])
    del states[1]["lanes"][1]["position"]
    with pytest.raises(ValueError, match=r"stream state #1 lanes\[1\] has no 'position'"):
        merge_stream_states(states)
    with pytest.raises(ValueError, match="non-empty list"):
        merge_stream_states([])


def test_a_shuffle_buffer_without_shuffle_is_refused(shards) -> None:
    with pytest.raises(ValueError, match=r"shuffle_buffer=4 mixes samples only with shuffle=True"):
        _loader(stream_of(shards, shuffle_buffer=4), st.SeedTree(1), batch_size=4)
    with pytest.raises(ValueError, match=r"shuffle_buffer=3 mixes samples only with shuffle=True"):
        _loader(stream_of(shards), st.SeedTree(1), batch_size=4, shuffle_buffer=3)


def test_set_epoch_refuses_to_drop_a_loaded_stream_resume(shards) -> None:
    dl = loader(stream_of(shards), TREE, batch_size=4)
    list(dl)  # epoch 0 done: the state says epoch 1 from its start
    state = dl.state_dict()
    resumed = loader(stream_of(shards), TREE, batch_size=4)
    resumed.load_state_dict(state)
    with pytest.raises(ValueError, match=r"set_epoch\(0\) would drop the resume into epoch 1"):
        resumed.set_epoch(0)
    resumed.set_epoch(1)
