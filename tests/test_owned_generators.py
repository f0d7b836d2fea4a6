"""Generators a dataset's transforms own (MONAI ``Randomizable``, albumentations ``Compose``,
any object with ``seedtree_reseed``) are re-keyed per sample by ``seedtree.torch.loader``
without a hook on the dataset: the batches are bit-identical to the single-process run for
forked, persistent and spawned workers, and no two samples share a stream."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

import seedtree as st
from seedtree.torch import loader, sample_node

monai = pytest.importorskip("monai")
A = pytest.importorskip("albumentations")

from monai.data import CacheDataset, list_data_collate  # noqa: E402
from monai.data import Dataset as MonaiDataset  # noqa: E402
from monai.transforms import Compose, RandAffined, RandFlipd, RandGaussianNoised, ScaleIntensityd  # noqa: E402

N = 12
TREE = st.SeedTree(31) / "data"
LAYOUTS = [
    {"num_workers": 2, "multiprocessing_context": "fork"},
    {"num_workers": 2, "multiprocessing_context": "fork", "persistent_workers": True},
]


def monai_transform(deterministic_prefix: bool = False) -> Compose:
    steps = [ScaleIntensityd(keys="img")] if deterministic_prefix else []
    steps += [
        RandAffined(keys="img", prob=1.0, rotate_range=0.5, padding_mode="zeros"),
        RandGaussianNoised(keys="noise", prob=1.0, std=1.0),  # "noise" starts at zero: it holds the field
        RandFlipd(keys=["img", "noise"], prob=0.5, spatial_axis=1),
    ]
    return Compose(steps)


def monai_data() -> list[dict[str, np.ndarray]]:
    ramp = np.arange(64, dtype=np.float32).reshape(1, 8, 8)
    return [{"img": ramp * (i + 1), "noise": np.zeros((1, 8, 8), np.float32)} for i in range(N)]


def monai_dataset(cache: bool = False) -> Dataset:
    if cache:  # caches the deterministic prefix, runs the random part per item
        return CacheDataset(monai_data(), monai_transform(deterministic_prefix=True), progress=False)
    return MonaiDataset(monai_data(), monai_transform())


def monai_epochs(dataset: Dataset, n_epochs: int = 2, **kwargs) -> list[dict[str, torch.Tensor]]:
    dl = loader(dataset, TREE, batch_size=4, collate_fn=list_data_collate, **kwargs)
    out = []
    for _ in range(n_epochs):
        batches = list(dl)
        out.append(
            {
                key: torch.cat([torch.as_tensor(b[key]).as_subclass(torch.Tensor) for b in batches])
                for key in ("img", "noise")
            }
        )
    return out


def repeats(samples: list[np.ndarray]) -> int:
    """How many samples repeat an earlier one's draws (compared as multisets of values, so
    a flipped copy of the same field counts as a repeat)."""
    seen: set[bytes] = set()
    count = 0
    for sample in samples:
        key = np.sort(np.asarray(sample, dtype=np.float64).ravel()).tobytes()
        count += key in seen
        seen.add(key)
    return count


class Images(Dataset):
    """A plain torch Dataset holding an albumentations pipeline, with no hook of its own."""

    def __init__(self) -> None:
        self.images = np.full((N, 8, 8, 3), 128, dtype=np.uint8)
        self.transform = A.Compose([A.GaussNoise(std_range=(0.2, 0.4), p=1.0), A.HorizontalFlip(p=0.5)])

    def __len__(self) -> int:
        return N

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.transform(image=self.images[i])["image"].astype(np.int16))


class Jitter:
    """A user's object that owns a generator and says how to re-key it."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    def seedtree_reseed(self, node: st.SeedTree) -> None:
        self.rng = node.numpy()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x + self.rng.standard_normal(x.shape)


class HoldsJitter(Dataset):
    def __init__(self) -> None:
        self.parts = {"name": "jitter", "jitter": Jitter()}

    def __len__(self) -> int:
        return N

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.parts["jitter"](np.zeros(4)))


def plain_epochs(dataset_factory, n_epochs: int = 2, **kwargs) -> list[torch.Tensor]:
    dl = loader(dataset_factory(), TREE, batch_size=4, **kwargs)
    return [torch.cat(list(dl)) for _ in range(n_epochs)]


# -- MONAI -------------------------------------------------------------------------------


@pytest.mark.parametrize("cache", [False, True], ids=["Dataset", "CacheDataset"])
def test_monai_batches_identical_for_any_worker_layout(cache: bool) -> None:
    reference = monai_epochs(monai_dataset(cache), num_workers=0)
    again = monai_epochs(monai_dataset(cache), num_workers=0)
    for epoch, (a, b) in enumerate(zip(reference, again, strict=True)):
        for key in ("img", "noise"):
            assert torch.equal(a[key], b[key]), f"{key} of epoch {epoch} is not reproducible in one process"
    for layout in LAYOUTS:
        got = monai_epochs(monai_dataset(cache), **layout)
        for epoch, (a, b) in enumerate(zip(reference, got, strict=True)):
            for key in ("img", "noise"):
                assert torch.equal(a[key], b[key]), f"{key} of epoch {epoch} differs with {layout}"


@pytest.mark.parametrize("cache", [False, True], ids=["Dataset", "CacheDataset"])
def test_monai_no_two_samples_share_a_noise_field(cache: bool) -> None:
    for layout in [{"num_workers": 0}, *LAYOUTS]:
        epochs = monai_epochs(monai_dataset(cache), **layout)
        fields = [field.numpy() for epoch in epochs for field in epoch["noise"]]
        assert len(fields) == 2 * N
        assert repeats(fields) == 0, f"{repeats(fields)} of {len(fields)} samples repeat a noise field with {layout}"


@pytest.mark.slow
def test_monai_spawned_workers_identical() -> None:
    reference = monai_epochs(monai_dataset(), n_epochs=1, num_workers=0)
    got = monai_epochs(monai_dataset(), n_epochs=1, num_workers=2, multiprocessing_context="spawn")
    for key in ("img", "noise"):
        assert torch.equal(reference[0][key], got[0][key])


# -- albumentations ----------------------------------------------------------------------


def test_albumentations_batches_identical_and_distinct() -> None:
    reference = plain_epochs(Images, num_workers=0)
    assert all(torch.equal(a, b) for a, b in zip(reference, plain_epochs(Images, num_workers=0), strict=True))
    for layout in LAYOUTS:
        got = plain_epochs(Images, **layout)
        for epoch, (a, b) in enumerate(zip(reference, got, strict=True)):
            assert torch.equal(a, b), f"epoch {epoch} differs with {layout}"
        images = [image.numpy() for epoch in got for image in epoch]
        assert repeats(images) == 0, f"{repeats(images)} of {len(images)} images repeat another's noise with {layout}"


# -- an object with seedtree_reseed, in a dict attribute ---------------------------------


def test_hook_in_a_dict_attribute_is_called_per_sample() -> None:
    reference = plain_epochs(HoldsJitter, num_workers=0)
    for layout in LAYOUTS:
        got = plain_epochs(HoldsJitter, **layout)
        for epoch, (a, b) in enumerate(zip(reference, got, strict=True)):
            assert torch.equal(a, b), f"epoch {epoch} differs with {layout}"
    rows = [row.numpy() for epoch in reference for row in epoch]
    assert repeats(rows) == 0
    # Each found object gets a sub-stream of the sample's node, never the node itself.
    dl = loader(HoldsJitter(), TREE, batch_size=N, shuffle=False)
    first = next(iter(dl))
    for i in range(N):
        expected = (sample_node(TREE, 0, i) / "owned" / 0).numpy().standard_normal(4)
        assert np.array_equal(first[i].numpy(), expected)


# -- the search and the streams (seedtree.runtime.owned) ---------------------------------

import copy  # noqa: E402
import functools  # noqa: E402
import pickle  # noqa: E402
import random  # noqa: E402
import warnings  # noqa: E402

from seedtree.runtime import owned as owned_module  # noqa: E402
from seedtree.runtime.owned import OwnedGenerators, Owner, UnkeyedGeneratorWarning  # noqa: E402

NODE = st.SeedTree(99) / 4 / 7


class Hooked:
    def __init__(self, inner: object = None) -> None:
        self.inner = inner
        self.nodes: list[st.SeedTree] = []

    def seedtree_reseed(self, node: st.SeedTree) -> None:
        self.nodes.append(node)


class Holder:
    """Plain attributes, containers, a cycle, a shared object, and places never searched."""

    def __init__(self) -> None:
        self.first = Hooked(inner=Hooked())  # the inner one belongs to the outer's hook
        self.items = [Hooked(), {"name": "x", "deep": (Hooked(),)}]
        self.again = self.first  # the same object: found once, at its first path
        self.me = self  # a cycle
        self.many = [Hooked() for _ in range(owned_module.MAX_ITEMS + 1)]  # data, not searched
        self.bag = {Hooked()}  # a set: its order differs between processes, not searched
        hooked = Hooked()
        self.method = Hooked().seedtree_reseed  # a bound method: its __self__
        self.partial = functools.partial(print, Hooked())
        self.closure = lambda: hooked  # noqa: PLW0108  # closure cells are searched


def test_search_order_paths_and_keys() -> None:
    finder = OwnedGenerators(Holder())
    assert finder.found == (
        Owner(0, "first", "seedtree_reseed"),
        Owner(1, "items[0]", "seedtree_reseed"),
        Owner(2, "items[1]['deep'][0]", "seedtree_reseed"),
        Owner(3, "method.__self__", "seedtree_reseed"),
        Owner(4, "partial.args[0]", "seedtree_reseed"),
        Owner(5, "closure.__closure__[0]", "seedtree_reseed"),
    )
    holder = finder.roots[0]
    finder.reseed(NODE)
    assert holder.first.nodes == [NODE / "owned" / 0] and holder.first.inner.nodes == []
    assert holder.items[1]["deep"][0].nodes == [NODE / "owned" / 2]
    assert all(not h.nodes for h in holder.many) and not next(iter(holder.bag)).nodes


def test_a_root_with_a_hook_gets_the_node_itself_and_is_not_searched() -> None:
    root = Hooked(inner=Hooked())
    finder = OwnedGenerators(root, None, Hooked(), names=("reader", "transform", "other"))
    assert finder.found == (
        Owner(None, "reader", "root hook"),
        Owner(None, "other", "root hook"),
    )
    finder.reseed(NODE)
    assert root.nodes == [NODE] and root.inner.nodes == []


def test_several_roots_share_one_numbering() -> None:
    read, transform = Holder(), Compose([RandGaussianNoised(keys="x", prob=1.0)])
    finder = OwnedGenerators(read, transform, names=("read", "transform"))
    kinds = [(o.key, o.path, o.kind) for o in finder.found]
    assert kinds[-3:] == [
        (6, "transform", "monai"),
        (7, "transform.transforms[0]", "monai"),
        (8, "transform.transforms[0].rand_gaussian_noise", "monai"),
    ]
    assert len({o.key for o in finder.found}) == len(kinds)


def _monai_states(finder: OwnedGenerators) -> list:
    out = []
    for owner in finder.found:
        obj = eval("root." + owner.path, {"root": finder.roots[0]}) if owner.path != "<root>" else finder.roots[0]
        out.append(obj.R.get_state())
    return out


def test_monai_objects_get_the_documented_states() -> None:
    nested = Compose([RandFlipd(keys="x", prob=0.5), Compose([RandGaussianNoised(keys="x", prob=1.0)])])
    finder = OwnedGenerators(nested)
    assert [o.path for o in finder.found] == [
        "<root>",
        "transforms[0]",
        "transforms[1]",
        "transforms[1].transforms[0]",
        "transforms[1].transforms[0].rand_gaussian_noise",
    ]
    for _ in range(2):  # the second time, after draws (and a cached Gaussian), gives the same states
        finder.reseed(NODE)
        for owner, (name, key, pos, has_gauss, gauss) in zip(finder.found, _monai_states(finder), strict=True):
            assert name == "MT19937" and (pos, has_gauss, gauss) == (0, 0, 0.0)
            assert np.array_equal(key, (NODE / "owned" / owner.key).globals_words(0, 624))
        nested.transforms[1].transforms[0].R.standard_normal()
    rs = [s[1].tobytes() for s in _monai_states(finder)]
    assert len(set(rs)) == len(rs), "every object has a stream of its own"


def test_monai_state_replaced_by_someone_else_is_keyed_again() -> None:
    from monai.data.utils import set_rnd

    dataset = monai_dataset()
    finder = OwnedGenerators(dataset)
    finder.reseed(NODE)
    before = [np.asarray(s[1]).copy() for s in _monai_states(finder)]
    set_rnd(dataset, 123)  # what monai.data.DataLoader's worker hook does
    finder.reseed(NODE)
    assert all(np.array_equal(a, s[1]) for a, s in zip(before, _monai_states(finder), strict=True))


def test_albumentations_gets_the_documented_generators() -> None:
    pipeline = A.Compose([A.GaussNoise(p=1.0), A.HorizontalFlip(p=0.5)])
    finder = OwnedGenerators({"aug": pipeline})
    assert finder.found == (Owner(0, "['aug']", "albumentations"),)
    for _ in range(2):
        finder.reseed(NODE)
        node = NODE / "owned" / 0
        assert all(t.random_generator is pipeline.random_generator for t in pipeline.transforms)
        assert pipeline.random_generator.random(3).tolist() == node.numpy().random(3).tolist()
        assert pipeline.py_random.getstate() == node.random().getstate()
        pipeline.py_random.gauss(0.0, 1.0)


def test_state_writes_drop_cached_gaussians_and_give_the_documented_states() -> None:
    for k in range(3):
        node = NODE / "check" / k
        legacy = owned_module._LegacyState()
        legacy.rs.standard_normal()  # a cached Gaussian the write must drop
        legacy.write(node.globals_words(0, 624))
        fresh = np.random.RandomState()
        fresh.set_state(("MT19937", node.globals_words(0, 624), 0, 0, 0.0))  # as the module docs say
        assert legacy.rs.standard_normal(5).tolist() == fresh.standard_normal(5).tolist()
        py = owned_module._PyRandom()
        py.r.gauss(0.0, 1.0)
        py.write(node.globals_words(626, 624))
        assert py.r.getstate() == node.random().getstate()


def test_copies_search_again_and_find_the_same_keys() -> None:
    finder = OwnedGenerators(monai_dataset())
    finder.reseed(NODE)
    for copied in (pickle.loads(pickle.dumps(finder)), copy.deepcopy(finder)):
        assert copied.roots[0] is not finder.roots[0]
        assert copied.found == finder.found
        copied.reseed(NODE)
        for a, b in zip(_monai_states(finder), _monai_states(copied), strict=True):
            assert np.array_equal(a[1], b[1])


class BareGenerator(Dataset):
    def __init__(self) -> None:
        self.settings = {"rng": np.random.default_rng(0), "state": random.Random(0), "global": np.random.mtrand._rand}

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> float:
        return float(self.settings["rng"].random())


def test_a_bare_generator_is_reported_once() -> None:
    finder = OwnedGenerators(BareGenerator())
    with pytest.warns(UnkeyedGeneratorWarning, match=r"settings\['rng'\].*settings\['state'\]"):
        finder.reseed(NODE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        finder.reseed(NODE)
    assert finder.unkeyed == (
        "settings['rng'] (numpy.random._generator.Generator)",
        "settings['state'] (random.Random)",
    )


def test_a_search_that_stops_early_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(owned_module, "MAX_OBJECTS", 3)
    with pytest.warns(UnkeyedGeneratorWarning, match="stopped looking"):
        OwnedGenerators(Holder()).reseed(NODE)


def test_worker_init_fn_rekeys_what_each_worker_owns() -> None:
    """The per-worker hook on a plain DataLoader: each worker's MONAI transforms get a
    stream of their own (before, forked workers repeated each other's noise)."""
    from torch.utils.data import DataLoader

    from seedtree.torch import worker_init_fn

    dl = DataLoader(
        monai_dataset(),
        batch_size=2,
        num_workers=2,
        multiprocessing_context="fork",
        collate_fn=list_data_collate,
        worker_init_fn=worker_init_fn(TREE, rank=0),
        generator=(TREE / "gen").torch(),
    )
    fields = [field.numpy() for _ in range(2) for batch in dl for field in batch["noise"]]
    assert repeats(fields) == 0


# -- a stream whose transform owns a MONAI pipeline ----------------------------------------


def read_images(shard: int):  # noqa: ANN201
    for p in range(3 + shard % 3):
        ramp = np.arange(64, dtype=np.float32).reshape(1, 8, 8)
        yield {"img": ramp * (10 * shard + p + 1), "noise": np.zeros((1, 8, 8), np.float32)}


def stream_epochs(**kwargs) -> list[torch.Tensor]:  # noqa: ANN003
    from seedtree.streaming import ShardedStream

    stream = ShardedStream(list(range(5)), read_images, transform=monai_transform(), lanes=4)
    dl = loader(stream, TREE, batch_size=2, shuffle=True, collate_fn=list_data_collate, **kwargs)
    out = []
    for _ in range(2):
        out.append(torch.cat([torch.as_tensor(b["noise"]).as_subclass(torch.Tensor) for b in dl]))
    return out


def test_a_streams_transform_is_rekeyed_per_sample() -> None:
    """The MONAI pipeline a ShardedStream's transform holds is re-keyed from each sample's
    node: the same batches for 0 and 2 workers, and no sample repeats another's noise."""
    ref = stream_epochs()
    got = stream_epochs(num_workers=2, multiprocessing_context="fork")
    assert all(torch.equal(a, b) for a, b in zip(ref, got, strict=True))
    fields = [f.numpy() for epoch in ref for f in epoch]
    assert repeats(fields) == 0
