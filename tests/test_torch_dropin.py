"""seedtree's loader as a drop-in for torch's DataLoader: what torch's own behaviour and
attributes are, the loader has too (the differences that the per-sample promise requires
are refused loudly or documented in docs/integrations/torch-compat.md)."""

from __future__ import annotations

import pytest
import torch
from _workloads import MixedDataset
from torch.utils.data import BatchSampler, SequentialSampler, get_worker_info
from torch.utils.data.dataloader import _BaseDataLoaderIter

import seedtree as st
from seedtree.torch import loader

TREE = st.SeedTree(5) / "dropin"


class Failing(MixedDataset):
    """Sample 9 cannot be read."""

    def __getitem__(self, i: int):
        if i == 9:
            raise KeyError("sample 9 is damaged")
        return super().__getitem__(i)


def _drain(it) -> tuple[list[torch.Tensor], int]:
    got, errors = [], 0
    while True:
        try:
            got.append(next(it))
        except KeyError:
            errors += 1
        except StopIteration:
            return got, errors


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_failing_sample_costs_its_batch_not_the_rest_of_the_epoch(num_workers: int) -> None:
    """As torch: after a batch whose fetch raised, next() goes on with the next batch; the
    cursor counts the failed batch as used, so the epoch ends and a resume is exact."""
    whole = torch.cat(list(loader(MixedDataset(), TREE, batch_size=4, shuffle=True)))
    dl = loader(Failing(), TREE, batch_size=4, shuffle=True, num_workers=num_workers)
    got, errors = _drain(iter(dl))
    assert errors == 1 and len(got) == 9  # 10 batches of 37 samples, one lost
    lost = next(j for j in range(10) if 9 in whole[4 * j : 4 * j + 4, 0].tolist())
    assert torch.equal(torch.cat(got), torch.cat([whole[: 4 * lost], whole[4 * lost + 4 :]]))
    assert dl.sampler.epoch == 1  # the epoch is over

    dl = loader(Failing(), TREE, batch_size=4, shuffle=True, num_workers=num_workers)
    it = iter(dl)
    seen = 0
    while seen <= lost:  # up to and including the failed batch
        try:
            next(it)
        except KeyError:
            pass
        seen += 1
    resumed = loader(Failing(), TREE, batch_size=4, shuffle=True)
    resumed.load_state_dict(dl.state_dict())
    assert torch.equal(torch.cat(list(resumed)), whole[4 * lost + 4 :])


def test_batch_size_and_drop_last_read_as_given() -> None:
    dl = loader(MixedDataset(), TREE, batch_size=4, drop_last=True)
    assert (dl.batch_size, dl.drop_last, len(dl)) == (4, True, 9)
    plain = loader(MixedDataset(), TREE)
    assert (plain.batch_size, plain.drop_last) == (1, False)  # torch's defaults
    by_batches = loader(MixedDataset(), TREE, batch_sampler=BatchSampler(SequentialSampler(range(37)), 5, False))
    assert (by_batches.batch_size, by_batches.drop_last) == (None, False)  # as torch: the batch sampler batches
    for name in ("batch_size", "drop_last", "dataset", "sampler", "batch_sampler"):
        with pytest.raises(ValueError, match="should not be set after"):
            setattr(dl, name, 3)


class Sharded(MixedDataset):
    """Reads ``self.offset``, which only a worker_init_fn sets (the common per-worker set-up)."""

    def __getitem__(self, i: int):
        return super().__getitem__(i) + self.offset


def _configure(worker_id: int) -> None:
    info = get_worker_info()
    assert isinstance(info.dataset, Sharded)
    info.dataset.offset = 1000.0


@pytest.mark.usefixtures("clean_seedtree")
def test_the_dataset_is_yours_in_the_loader_and_in_the_workers() -> None:
    data = Sharded()
    data.offset = 0.0
    dl = loader(data, TREE, batch_size=4, num_workers=2, worker_init_fn=_configure)
    assert isinstance(dl.dataset, Sharded) and len(dl.dataset) == 37
    dl.dataset.marker = "set through the loader"
    assert data.marker == "set through the loader"  # attributes are your dataset's
    st.seed_everything(1)
    direct = dl.dataset[3]  # your index, your dataset's answer
    st.seed_everything(1)
    assert torch.equal(direct, data[3])
    got = torch.cat(list(dl))
    assert (got[:, 0] >= 1000).all()  # the worker_init_fn configured the dataset the workers read
    reference = torch.cat(list(loader(MixedDataset(), TREE, batch_size=4)))
    assert torch.allclose(got - 1000.0, reference, rtol=0, atol=1e-9)  # the same per-sample streams


def _seed_matches(worker_id: int) -> None:
    info = get_worker_info()
    assert torch.initial_seed() == info.seed, "torch seeds the worker before your hook, as in torch"


def test_the_iterator_is_torchs_and_worker_init_sees_torchs_seed() -> None:
    dl = loader(MixedDataset(), TREE, batch_size=4, num_workers=2, worker_init_fn=_seed_matches)
    it = iter(dl)
    assert isinstance(it, _BaseDataLoaderIter)
    assert len(list(it)) == 10


def test_torchs_constructor_checks_with_torchs_messages() -> None:
    ds, sampler = MixedDataset(), SequentialSampler(range(37))
    batches = BatchSampler(sampler, 3, False)
    refused = [
        ({"num_workers": -1}, "num_workers option should be non-negative"),
        ({"timeout": -1}, "timeout option should be non-negative"),
        ({"batch_size": None, "drop_last": True}, "batch_size=None option disables auto-batching"),
        ({"sampler": sampler, "shuffle": True}, "sampler option is mutually exclusive with shuffle"),
        ({"batch_sampler": batches, "batch_size": 11}, "batch_sampler option is mutually exclusive with"),
        ({"batch_sampler": batches, "shuffle": True}, "batch_sampler option is mutually exclusive with"),
        ({"batch_sampler": batches, "drop_last": True}, "batch_sampler option is mutually exclusive with"),
        ({"batch_sampler": batches, "sampler": sampler}, "batch_sampler option is mutually exclusive with"),
        ({"num_workers": 0, "multiprocessing_context": "spawn"}, r"multi-process loading \(num_workers > 0\)"),
    ]
    for kwargs, message in refused:
        with pytest.raises(ValueError, match=message):
            loader(ds, TREE, **kwargs)


def test_batch_size_none_plain_samplers_and_batch_samplers() -> None:
    reference = torch.cat(list(loader(MixedDataset(), TREE, batch_size=4)))
    one = list(loader(MixedDataset(), TREE, batch_size=None, num_workers=2))
    assert len(one) == 37 and one[0].shape == (5,)  # uncollated, one sample at a time
    assert torch.equal(torch.stack(one), reference)  # the same per-sample streams
    ranged = torch.cat(list(loader(MixedDataset(), TREE, sampler=range(2, 12), batch_size=2)))
    assert torch.equal(ranged, reference[2:12])
    listed = list(loader(MixedDataset(), TREE, batch_sampler=[(0, 1), (2, 3, 4)]))
    assert [len(b) for b in listed] == [2, 3] and torch.equal(torch.cat(listed), reference[:5])


def test_a_growing_dataset_is_seen_at_the_next_epoch() -> None:
    data = [torch.ones(4) for _ in range(4)]
    for shuffle in (False, True):
        dl = loader(data, TREE, shuffle=shuffle)
        data.append(torch.ones(4))
        assert len(dl) == len(data) == len(list(dl))


class Counting(torch.utils.data.IterableDataset):
    def __iter__(self):
        info = get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        for i in range(start, 12, step):
            yield torch.tensor([float(i), float(st.rng().random()), torch.rand(1).item()])


def test_a_plain_iterable_dataset_is_read_with_keyed_samples() -> None:
    """No shards: sample p of worker w of W in epoch e is keyed (e, rank, W, w, p):
    reproducible per layout, epochs differ (documented: not layout-invariant)."""
    for workers in (0, 2):
        runs = [loader(Counting(), TREE, batch_size=3, num_workers=workers) for _ in range(2)]
        first = [torch.cat(list(dl)) for dl in runs]
        assert torch.equal(first[0], first[1])
        assert sorted(first[0][:, 0].tolist()) == [float(i) for i in range(12)]
        second_epoch = torch.cat(list(runs[0]))
        assert not torch.equal(second_epoch, first[0])
    single = torch.cat(list(loader(Counting(), TREE, batch_size=3)))
    assert single[0, 1] == (TREE.child(0, "iterable", 0, 1, 0) / 0).numpy().random()
