"""The per-sample loader with your own samplers, dataset-owned generators, elastic resume,
the O(1)-memory shuffle, and bad input."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch
from scipy import stats
from torch.utils.data import DistributedSampler, RandomSampler, WeightedRandomSampler

import seedtree as st
from seedtree.core.shuffle import KeyedPermutation
from seedtree.torch import loader

TREE = st.SeedTree(99) / "data"


class Noisy(torch.utils.data.Dataset):
    def __init__(self, n: int = 16) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor([float(i), float(np.random.rand()), torch.rand(1).item(), st.rng().random()])


def _epochs(dl, k: int = 2) -> list[torch.Tensor]:
    return [torch.cat(list(dl)) for _ in range(k)]


# -- the keyed shuffle ------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 16, 17, 255, 256, 257, 1000, 4099])
def test_keyed_permutation_is_a_permutation(n):
    perm = KeyedPermutation(TREE / "order" / 0, n)
    assert sorted(perm[np.arange(n)].tolist()) == list(range(n))


def test_keyed_permutation_in_blocks_is_the_position_by_position_order():
    """Long inputs are evaluated block by block (cycle-walking within each block): every
    position must get what it gets alone, across block edges and in any input order."""
    n = 3 * (1 << 16) + 37  # three whole blocks and a short one; the domain is 2**18
    perm = KeyedPermutation(TREE / "order" / 1, n)
    whole = perm[np.arange(n)]
    assert sorted(whole.tolist()) == list(range(n)) and whole.dtype == np.int64
    picks = np.random.default_rng(3).integers(0, n, 400)
    assert [perm[int(p)] for p in picks] == whole[picks].tolist()
    reversed_order = perm[np.arange(n)[::-1].copy()]
    np.testing.assert_array_equal(reversed_order, whole[::-1])
    assert perm[np.arange(6).reshape(2, 3)].shape == (2, 3)


def test_keyed_permutation_handles_2_40_without_building_it():
    perm = KeyedPermutation(TREE, 1 << 40)
    picked = perm[np.array([0, 1, (1 << 40) - 1])]
    assert all(0 <= int(v) < 1 << 40 for v in picked) and len(set(picked.tolist())) == 3
    with pytest.raises(IndexError):
        perm[np.array([1 << 40])]
    with pytest.raises(ValueError, match=r"2\*\*40"):
        KeyedPermutation(TREE, (1 << 40) + 1)


def _serial_chi2(order: np.ndarray, n: int, cells: int = 16) -> float:
    """p-value of a chi-square test on (order[p], order[p+1]) pairs binned into cells x cells:
    a shuffle whose neighbouring positions are correlated fails it."""
    a = order[:-1] * cells // n
    b = order[1:] * cells // n
    table = np.bincount(a * cells + b, minlength=cells * cells)
    return float(stats.chisquare(table).pvalue)


def test_keyed_shuffle_positions_are_not_visibly_correlated():
    n = 1 << 16
    good = [_serial_chi2(KeyedPermutation(TREE / "order" / e, n)[np.arange(n)], n) for e in range(5)]
    assert min(good) > 1e-4
    weak = (np.arange(n) * 40503 + 7) % n  # a multiplicative "shuffle": a permutation, badly correlated
    assert _serial_chi2(weak, n) < 1e-10


# -- your samplers ----------------------------------------------------------------------


def test_weighted_sampler_is_reproducible_differs_by_epoch_and_keys_every_occurrence():
    weights = torch.tensor([8.0] + [1.0] * 15)  # index 0 is drawn again and again

    def make(workers: int) -> torch.utils.data.DataLoader:
        return loader(
            Noisy(),
            TREE,
            batch_size=4,
            num_workers=workers,
            sampler=WeightedRandomSampler(weights, 16, replacement=True),
        )

    a, b = _epochs(make(0)), _epochs(make(2))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0][:, 0], a[1][:, 0])  # the order differs by epoch
    zeros = a[0][a[0][:, 0] == 0]
    assert len(zeros) >= 2, "index 0 should repeat in the epoch"
    assert len(set(zeros[:, 1].tolist())) == len(zeros)  # each occurrence its own augmentation


def test_any_sampler_is_bit_identical_across_layouts():
    for make_sampler in (lambda: RandomSampler(range(16)), lambda: RandomSampler(range(16), replacement=True)):
        ref = _epochs(loader(Noisy(), TREE, batch_size=4, sampler=make_sampler()))
        for workers, persistent in ((1, False), (2, True)):
            got = _epochs(
                loader(
                    Noisy(),
                    TREE,
                    batch_size=4,
                    sampler=make_sampler(),
                    num_workers=workers,
                    persistent_workers=persistent,
                )
            )
            assert all(torch.equal(x, y) for x, y in zip(ref, got, strict=True))


class Bucketing:
    """A length-bucketing batch sampler of the kind NLP code uses: shuffles within buckets
    with the global torch RNG, yields batches of similar lengths."""

    def __init__(self, lengths: list[int], batch_size: int) -> None:
        self.lengths, self.batch_size = lengths, batch_size

    def __iter__(self):
        order = sorted(range(len(self.lengths)), key=lambda i: (self.lengths[i], torch.rand(1).item()))
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for j in torch.randperm(len(batches)).tolist():
            yield batches[j]

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)


def test_a_bucketing_batch_sampler_is_reproducible_and_sharded_by_batch():
    lengths = [i % 5 for i in range(16)]
    one = _epochs(loader(Noisy(), TREE, batch_sampler=Bucketing(lengths, 3)))
    two = _epochs(loader(Noisy(), TREE, batch_sampler=Bucketing(lengths, 3), num_workers=2))
    assert all(torch.equal(x, y) for x, y in zip(one, two, strict=True))
    assert not torch.equal(one[0][:, 0], one[1][:, 0])
    shards = [
        torch.cat(list(loader(Noisy(), TREE, batch_sampler=Bucketing(lengths, 3), rank=r, world_size=2)))
        for r in range(2)
    ]
    assert sorted(torch.cat(shards)[:, 0].tolist()) == list(range(16))


def test_a_distributed_sampler_is_not_sharded_twice():
    shards = [
        torch.cat(
            list(
                loader(
                    Noisy(),
                    TREE,
                    batch_size=2,
                    rank=r,
                    world_size=2,
                    sampler=DistributedSampler(range(16), num_replicas=2, rank=r),
                )
            )
        )
        for r in range(2)
    ]
    assert sorted(torch.cat(shards)[:, 0].tolist()) == list(range(16))


def test_set_epoch_is_reachable_where_frameworks_call_it():
    dl = loader(Noisy(), TREE, batch_size=4)
    for target in (dl.sampler, dl.batch_sampler, dl.batch_sampler.sampler):
        target.set_epoch(3)
        assert dl.state_dict()["epoch"] == 3
        dl.set_epoch(0)
    assert isinstance(dl.sampler, DistributedSampler)  # so Lightning neither injects nor wraps one


def test_a_pending_resume_survives_set_epoch_of_the_same_epoch():
    ref = _epochs(loader(Noisy(), TREE, batch_size=4), 2)
    dl = loader(Noisy(), TREE, batch_size=4)
    dl.load_state_dict({**dl.state_dict(), "epoch": 1, "batches_done": 2})
    dl.sampler.set_epoch(1)  # what Lightning does at the start of the resumed epoch
    assert torch.equal(torch.cat(list(dl)), ref[1][8:])


# -- dataset-owned generators -------------------------------------------------------------


class Augmented(torch.utils.data.Dataset):
    """An albumentations pipeline: it owns its generators, so seedtree re-keys it per sample."""

    def __init__(self) -> None:
        self.transform = A.Compose([A.HorizontalFlip(p=0.5), A.RandomBrightnessContrast(p=1.0)])
        self.images = np.random.default_rng(0).integers(0, 255, size=(12, 8, 8, 3), dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.images)

    def seedtree_reseed(self, node: st.SeedTree) -> None:
        self.transform.set_random_state(node.numpy(), node.random())  # albumentations 2.x

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.transform(image=self.images[i])["image"].astype(np.float32))


def test_albumentations_compose_is_per_sample_and_layout_invariant():
    a = _epochs(loader(Augmented(), TREE, batch_size=4))
    b = _epochs(loader(Augmented(), TREE, batch_size=4, num_workers=2))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], a[1])
    c = _epochs(loader(Augmented(), TREE, batch_size=4, reseed_dataset=False))
    d = _epochs(loader(Augmented(), TREE, batch_size=4, reseed_dataset=False))
    assert not all(torch.equal(x, y) for x, y in zip(c, d, strict=True)), "without re-keying it is not reproducible"


# -- elastic resume -------------------------------------------------------------------------


def _rank_loaders(world: int, state: dict | None = None) -> list:
    loaders = [loader(Noisy(24), TREE, batch_size=2, rank=r, world_size=world) for r in range(world)]
    if state is not None:
        for dl in loaders:
            dl.load_state_dict(state)
    return loaders


@pytest.mark.parametrize(("before", "after"), [(2, 1), (1, 2), (2, 3)])
def test_elastic_resume_reads_exactly_the_rest_of_the_epoch(before, after):
    full = torch.cat(list(loader(Noisy(24), TREE, batch_size=2)))
    old = _rank_loaders(before)
    its = [iter(dl) for dl in old]
    seen = [next(it) for _ in range(2) for it in its]  # two steps on every rank, in step as DDP goes
    state = old[0].state_dict()
    rest = [torch.cat(list(dl)) for dl in _rank_loaders(after, state)]
    got = torch.cat(seen + rest)
    assert sorted(got[:, 0].tolist()) == list(range(24)), "nothing skipped, nothing read twice"
    key = {row[0].item(): row for row in full}
    assert all(torch.equal(row, key[row[0].item()]) for row in got)  # each sample with its own streams


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (None, "must be the dict"),
        ({"epoch": -1}, "epoch=-1"),
        ({"batches_done": "3"}, "batches_done='3'"),
        ({"batches_done": 99}, "past the end"),
        ({"n": 17}, "n=17"),
        ({"entropy": "5"}, "entropy"),
        ({"world_size": 3, "rank": 0, "consumed": 99}, "consumed=99"),
        ({"world_size": 3, "rank": 0, "consumed": -2}, "consumed=-2"),
    ],
)
def test_a_bad_state_is_refused_with_one_clear_line(change, message):
    dl = loader(Noisy(), TREE, batch_size=4)
    state = None if change is None else {**dl.state_dict(), **change}
    before = dl.state_dict()
    with pytest.raises(ValueError, match=message):
        dl.load_state_dict(state)
    assert dl.state_dict() == before


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, "4", True])
def test_batch_size_must_be_a_positive_int(batch_size):
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        loader(Noisy(), TREE, batch_size=batch_size)


def test_in_order_false_is_refused():
    with pytest.raises(ValueError, match="in_order=False"):
        loader(Noisy(), TREE, batch_size=4, in_order=False)
