"""The binding registry: full-width seeding of each library, capture/restore of each
library's global generator and of the ambient stream, isolate(), saving states."""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import seedtree as st
from seedtree.core.layout import MT_WORDS, WORDS_NUMPY_GLOBAL, WORDS_RANDOM, WORDS_TORCH_CPU
from seedtree.core.tree import SeedTree
from seedtree.runtime import capture as bindings_capture
from seedtree.runtime import controllers as bindings
from seedtree.runtime import rawmem

pytestmark = pytest.mark.usefixtures("clean_seedtree")
ROOT = Path(__file__).resolve().parents[1]
NO_GPU = "no CUDA device on this machine (torch.cuda.is_available() is False)"


def _draw_all() -> tuple:
    """One draw from every global generator and from the ambient stream."""
    return (
        random.random(),
        random.gauss(0, 1),
        np.random.random_sample(),
        np.random.standard_normal(),
        torch.rand(2).tolist(),
        torch.randn(2).tolist(),
        st.rng().integers(0, 2**63),
    )


# -- seeding through the widest channel ---------------------------------------------------


def test_seed_globals_writes_each_librarys_whole_state() -> None:
    node = SeedTree(31) / "g"
    np.random.standard_normal()  # leave a cached Gaussian behind: seeding must drop it
    random.gauss(0, 1)
    names = st.seed_globals(node)
    assert names[:3] == ["random", "numpy", "torch"]
    assert ("torch_cuda" in names) == torch.cuda.is_available()

    assert random.getstate() == node.python_random_state() == node.random().getstate()
    state = random.getstate()[1]
    np.testing.assert_array_equal(state[:MT_WORDS], node.globals_words(WORDS_RANDOM, MT_WORDS))
    assert state[MT_WORDS] == 0  # the words are a fresh block: the first draws read them

    _, key, pos, has_gauss, gauss = np.random.get_state()
    np.testing.assert_array_equal(key, node.globals_words(WORDS_NUMPY_GLOBAL, MT_WORDS))
    assert (pos, has_gauss, gauss) == (0, 0, 0.0)
    ref = np.random.RandomState()
    ref.set_state(("MT19937", node.globals_words(WORDS_NUMPY_GLOBAL, MT_WORDS), 0))
    assert np.random.standard_normal(3).tolist() == ref.standard_normal(3).tolist()

    image = torch.get_rng_state().numpy()
    np.testing.assert_array_equal(
        image[24 : 24 + 8 * MT_WORDS].view("<u8"), node.globals_words(WORDS_TORCH_CPU, MT_WORDS)
    )
    assert torch.equal(torch.get_rng_state(), node.torch().get_state())  # the same whole image, seed included
    assert torch.initial_seed() == node.torch().initial_seed()
    assert torch.rand(3).tolist() == torch.rand(3, generator=node.torch()).tolist()


def test_numpy_global_fast_path_equals_set_state() -> None:
    # The controller writes the key with memmove when its self-check passes; compare it with
    # the slow, public set_state for many nodes, with and without a pending Gaussian.
    controller = bindings.NumpyGlobal()
    for i in range(20):
        node = SeedTree(i) / "np"
        if i % 2:
            np.random.standard_normal()
        controller.seed(node)
        fast = np.random.random_sample(5).tolist() + np.random.standard_normal(3).tolist()
        np.random.set_state(("MT19937", node.globals_words(WORDS_NUMPY_GLOBAL, MT_WORDS), 0))
        slow = np.random.random_sample(5).tolist() + np.random.standard_normal(3).tolist()
        assert fast == slow
    assert controller._fast is not None


def test_libraries_get_distinct_streams() -> None:
    st.seed_globals(SeedTree(8))
    a = random.getrandbits(32), int(np.random.randint(0, 2**32, dtype=np.uint64)), int(torch.randint(0, 2**32, (1,)))
    assert len(set(a)) == 3
    st.seed_globals(SeedTree(8) / 0)
    assert (random.getrandbits(32), int(np.random.randint(0, 2**32, dtype=np.uint64))) != a[:2]


# -- capture and restore -----------------------------------------------------------------


@pytest.mark.parametrize("library", ["random", "numpy", "torch", "ambient"])
def test_capture_restore_each_library(library: str) -> None:
    st.seed_everything(5)
    st.rng().random()  # the ambient generator exists and has moved
    np.random.standard_normal()  # numpy: a cached Gaussian is pending
    random.gauss(0, 1)  # random: so is python's
    torch.randn(1)
    state = st.capture([library])
    assert set(state) == {"format", library}
    first = _draw_all()
    st.restore(state)
    again = _draw_all()
    index = {"random": [0, 1], "numpy": [2, 3], "torch": [4, 5], "ambient": [6]}[library]
    for i in range(7):
        if i in index:
            assert again[i] == first[i], f"{library} was not restored (draw {i})"
        else:
            assert again[i] != first[i], f"restoring {library} touched draw {i}"


def test_numpy_pending_gaussian_survives_capture() -> None:
    st.seed_everything(6)
    np.random.standard_normal()  # Box-Muller makes two normals; one is now cached
    state = st.capture()
    assert state["numpy"]["has_gauss"] == 1 and state["numpy"]["gauss"] != 0.0
    expected = np.random.standard_normal(3).tolist()
    st.restore(state)
    assert np.random.standard_normal(3).tolist() == expected


def test_restore_everything_at_once() -> None:
    st.seed_everything(7)
    _draw_all()
    state = st.capture()
    assert {"format", "random", "numpy", "torch", "ambient"} <= set(state)
    first = _draw_all()
    _draw_all()
    st.restore(state)
    assert _draw_all() == first


def test_ambient_capture_before_any_draw_rewinds() -> None:
    root = st.seed_everything(9)
    state = st.capture(["ambient"])
    assert state["ambient"]["state"] is None  # nothing drawn yet
    first = st.rng().random(3).tolist()
    st.restore(state)
    assert st.rng().random(3).tolist() == first == root.numpy().random(3).tolist()


def test_ambient_state_follows_the_bound_node() -> None:
    st.seed_everything(10)
    node = SeedTree(10) / "task" / 3
    with st.bound(node):
        st.rng().random(4)
        state = st.capture(["ambient"])
        assert state["ambient"]["node"] == {"entropy": "10", "path": ["task", 3]}
        assert state["ambient"]["default"] == {"entropy": "10", "path": []}
        expected = st.rng().random(3).tolist()
        st.restore(state)
        assert st.rng().random(3).tolist() == expected
        assert st.current() == node
    assert st.current() == SeedTree(10)


def test_state_saves_with_torch_save_and_weights_only_load(tmp_path: Path) -> None:
    st.seed_everything(2**100 + 11)  # big entropy: ints beyond 64 bits in the state
    st.rng().random()
    np.random.standard_normal()
    state = st.capture()
    torch.save(state, tmp_path / "rng.pt")
    loaded = torch.load(tmp_path / "rng.pt", weights_only=True)
    expected = _draw_all()
    st.restore(loaded)
    assert _draw_all() == expected


def _json_types_only(value: object) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_types_only(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_json_types_only(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


def test_state_without_torch_is_plain_json() -> None:
    st.seed_everything(12)
    st.rng().random()
    np.random.standard_normal()
    random.gauss(0, 1)
    state = st.capture(["random", "numpy", "ambient"])
    assert _json_types_only(state)
    loaded = json.loads(json.dumps(state))
    expected = (random.random(), random.gauss(0, 1), np.random.standard_normal(), st.rng().random())
    st.restore(loaded)
    assert (random.random(), random.gauss(0, 1), np.random.standard_normal(), st.rng().random()) == expected


def test_captured_state_with_torch_loaded_round_trips_through_json(clean_seedtree: None) -> None:
    st.seed_everything(21)
    torch.rand(3)
    state = json.loads(json.dumps(st.capture()))  # torch's state included: it is plain ints
    assert "torch" in state and _json_types_only(state)
    expected = (random.random(), float(np.random.rand()), torch.rand(4).tolist(), float(st.rng().random()))
    st.restore(state)
    assert (random.random(), float(np.random.rand()), torch.rand(4).tolist(), float(st.rng().random())) == expected
    saved = io.BytesIO()
    torch.save(st.capture(), saved)  # and torch.save / torch.load(weights_only=True) as it is
    st.restore(torch.load(io.BytesIO(saved.getvalue()), weights_only=True))


def test_json_state_in_a_process_without_torch(tmp_path: Path) -> None:
    # In a fresh interpreter that never imports torch, capture() is JSON as it stands.
    script = textwrap.dedent(
        """
        import json, random, sys
        import numpy as np
        import seedtree as st
        root = st.SeedTree(13)
        st.seed_globals(root)  # seeds what is loaded; unlike seed_everything, imports nothing
        with st.bound(root):
            st.rng().random(); np.random.standard_normal(); random.random()
            text = json.dumps(st.capture())
            a = (random.random(), np.random.standard_normal(), st.rng().random())
            st.restore(json.loads(text))
            b = (random.random(), np.random.standard_normal(), st.rng().random())
        assert "torch" not in sys.modules, "torch was imported"
        print(json.dumps({"keys": sorted(json.loads(text)), "same": a == b}))
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"keys": ["ambient", "format", "numpy", "random"], "same": True}


def test_restore_refuses_what_it_cannot_put_back() -> None:
    with pytest.raises(ValueError, match="not a seedtree RNG state"):
        st.restore({"random": 1})
    with pytest.raises(ValueError, match="not a seedtree RNG state"):
        st.restore([1, 2])
    with pytest.raises(ValueError, match="the state holds 'jax', which no registered binding handles"):
        st.restore({"format": bindings_capture.STATE_FORMAT, "jax": {}})


# -- isolate ------------------------------------------------------------------------------


def test_isolate_as_context_manager_also_on_error() -> None:
    st.seed_everything(14)
    state = st.capture()
    with st.isolate():
        _draw_all()
    after = _draw_all()
    st.restore(state)
    assert _draw_all() == after
    st.restore(state)
    with pytest.raises(KeyError), st.isolate():
        _draw_all()
        raise KeyError("boom")
    assert _draw_all() == after


def test_isolate_as_decorator_and_nested() -> None:
    st.seed_everything(15)
    state = st.capture()
    reference = _draw_all()
    st.restore(state)

    @st.isolate()
    def noisy(depth: int) -> tuple:
        inner = _draw_all()
        if depth:
            noisy(depth - 1)  # re-entrant: the same decorator instance, nested
            assert _draw_all() != inner
        return inner

    assert noisy(3) == reference  # inside, the draws go on from where the caller was
    assert noisy(0) == reference
    with st.isolate():
        with st.isolate():
            _draw_all()
        _draw_all()
    assert _draw_all() == reference


def test_isolate_without_the_ambient_stream_leaves_it_where_it_went() -> None:
    st.seed_everything(17)
    state = st.capture()
    reference = [_draw_all() for _ in range(2)]
    st.restore(state)
    with st.isolate(ambient=False):
        inside = _draw_all()
    assert inside == reference[0]
    after = _draw_all()
    # the globals are put back (they draw their first numbers again); the ambient stream is not
    assert after[:-1] == reference[0][:-1] and after[-1] == reference[1][-1]
    st.restore(state)
    with st.isolate():
        _draw_all()
    assert _draw_all() == reference[0]


def test_restore_where_a_captured_library_is_absent(tmp_path: Path) -> None:
    # A state captured with torch in use, read back in a process where torch cannot be
    # imported: the torch part is skipped, whatever it holds, and every part after it in
    # the state is still put back.
    st.seed_everything(18)
    captured = st.capture()
    expected = (random.random(), np.random.random_sample(), st.rng().integers(0, 2**63))
    state = {"format": captured["format"], "torch": "a torch state this process cannot read"}
    state.update({k: v for k, v in captured.items() if k not in ("format", "torch")})
    assert list(state)[:2] == ["format", "torch"] and {"random", "numpy", "ambient"} <= set(state)
    script = textwrap.dedent(
        """
        import json, random, sys
        sys.modules["torch"] = None  # torch is absent here: importing it fails
        import numpy as np
        import seedtree as st
        state = json.loads(open(sys.argv[1]).read())
        random.seed(0); np.random.seed(0)
        st.restore(state)
        print(json.dumps([random.random(), np.random.random_sample(), int(st.rng().integers(0, 2**63))]))
        """
    )
    path = tmp_path / "state.json"
    path.write_text(json.dumps(state))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert tuple(json.loads(proc.stdout.strip().splitlines()[-1])) == expected


def test_restore_skips_a_library_absent_from_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    # The same as above in this process: torch made unimportable and not installed.
    st.seed_everything(18)
    captured = st.capture()
    expected = (random.random(), np.random.random_sample())
    state = {"format": captured["format"], "torch": "a torch state this process cannot read"}
    state.update({k: v for k, v in captured.items() if k not in ("format", "torch")})
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setattr(bindings.REGISTRY, "_installed", {**bindings.REGISTRY._installed, "torch": False})
    random.seed(0)
    np.random.seed(0)
    st.restore(state)
    assert (random.random(), np.random.random_sample()) == expected


def test_restore_skips_an_absent_library_only() -> None:
    st.seed_everything(19)
    captured = st.capture()
    with pytest.raises(ValueError, match="cannot restore the RNG state"):
        st.restore({**captured, "torch": "not a torch state"})  # torch is here: the part is checked


def test_capture_of_named_libraries_only() -> None:
    st.seed_everything(20)
    assert set(st.capture(["numpy"])) == {"format", "numpy"}
    assert set(st.capture(["random", "ambient"])) == {"format", "random", "ambient"}
    assert st.capture([]) == {"format": bindings_capture.STATE_FORMAT}
    assert set(st.capture()) == {"format", "random", "numpy", "torch", "ambient"}
    for bad in ("numpy", b"numpy"):
        with pytest.raises(TypeError, match=r"^capture\(\) takes a list of library names, e.g. \["):
            st.capture(bad)  # type: ignore[arg-type]


def test_the_ambient_part_of_a_state_round_trips_as_json() -> None:
    root = SeedTree(21)
    st.seed_everything(root)
    with st.bound(root / "a"):
        st.rng().random()
        part = st.capture(["ambient"])["ambient"]
    assert part["default"] == {"entropy": "21", "path": []}
    assert part["node"] == {"entropy": "21", "path": ["a"]}
    expected = (root / "a").numpy()
    expected.random()
    assert part["state"] == expected.bit_generator.state


@pytest.mark.parametrize(
    ("ambient_part", "message"),
    [
        ([], r"'ambient' must hold \{default, node, state\}"),
        ({"default": None, "node": None}, r"'ambient' must hold \{default, node, state\}"),
        ({"default": None, "node": None, "state": None, "x": 1}, r"'ambient' must hold \{default, node, state\}"),
        ({"default": {"entropy": "x", "path": []}, "node": None, "state": None}, r"the ambient node is damaged"),
        ({"default": None, "node": {"entropy": "1", "path": [-1]}, "state": None}, r"the ambient node is damaged"),
        ({"default": None, "node": None, "state": {"bit_generator": "PCG64"}}, "generator state has no node"),
        (
            {"default": None, "node": {"entropy": "1", "path": []}, "state": {"bit_generator": "MT19937"}},
            "the ambient generator state is damaged",
        ),
        (
            {"default": None, "node": {"entropy": "1", "path": []}, "state": 5},
            "the ambient generator state is damaged",
        ),
    ],
)
def test_a_damaged_ambient_part_is_refused_before_anything_changes(ambient_part: object, message: str) -> None:
    st.seed_everything(22)
    state = st.capture()
    before = _draw_all()
    st.restore(state)
    with pytest.raises(ValueError, match="^cannot restore the RNG state: .*" + message):
        st.restore({**state, "ambient": ambient_part})  # the other parts are valid: none is applied either
    assert _draw_all() == before  # nothing was put back, nothing was changed


def test_restore_names_a_foreign_part() -> None:
    fmt = bindings_capture.STATE_FORMAT
    with pytest.raises(ValueError, match=r"^the state holds 3, which no registered binding handles"):
        st.restore({"format": fmt, 3: {}})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r"not a seedtree RNG state \(expected a dict with format="):
        st.restore({"format": "seedtree.rng-state/2"})
    st.restore({"format": fmt})  # an empty state is a valid state: nothing to put back


# -- the registry ------------------------------------------------------------------------


class _Counter(st.Binding):
    """A library of our own: one global random.Random, to show adding a library is one class."""

    name = "counter"
    module = "random"
    gen = random.Random(0)

    def seed(self, node: SeedTree) -> None:
        type(self).gen = node.random()

    def capture(self) -> list:
        return list(self.gen.getstate()[1])

    def restore(self, state: list) -> None:
        self.gen.setstate((3, tuple(state), None))


def test_register_a_library() -> None:
    st.register(_Counter())
    try:
        assert "counter" in st.seed_globals(SeedTree(16))
        assert _Counter.gen.random() == SeedTree(16).random().random()
        state = st.capture()
        expected = _Counter.gen.random()
        st.restore(state)
        assert _Counter.gen.random() == expected
    finally:
        bindings.unregister("counter")
    assert "counter" not in st.seed_globals(SeedTree(16))
    with pytest.raises(ValueError, match="needs a non-empty name and module"):
        st.register(type("Nameless", (_Counter,), {"name": ""})())  # the base is abstract: a subclass without a name


def test_loaded_modules_and_importing_only_named_libraries() -> None:
    # What integrations hand a worker: the registered libraries the parent has imported.
    assert {"numpy", "random", "torch"} <= set(bindings.REGISTRY.loaded_modules())
    assert [b.name for b in bindings.REGISTRY.active(["torch"])][:3] == ["random", "numpy", "torch"]
    node = SeedTree(18)
    assert st.seed_globals(node, import_missing=["torch"])[:3] == ["random", "numpy", "torch"]
    assert torch.equal(torch.get_rng_state(), node.torch().get_state())


def test_seed_through_the_binding_interface_equals_seed_globals() -> None:
    # seed_globals expands one span of words for all word-seeded bindings; each binding's
    # own seed(node) must give the very same states.
    node = SeedTree(19) / "span"
    st.seed_globals(node)
    together = (random.getstate(), np.random.get_state()[1].tolist(), torch.get_rng_state())
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    for name in ("random", "numpy", "torch"):
        bindings.REGISTRY._controllers[name].seed(node)
    assert random.getstate() == together[0] and np.random.get_state()[1].tolist() == together[1]
    assert torch.equal(torch.get_rng_state(), together[2])


def test_torch_cuda_controller_on_this_machine() -> None:
    cuda = bindings.REGISTRY._controllers["torch_cuda"]
    assert cuda.usable() == torch.cuda.is_available()
    names = [b.name for b in bindings.REGISTRY.active()]
    assert ("torch_cuda" in names) == torch.cuda.is_available()


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)
def test_seed_everything_gives_each_cuda_device_its_own_seed() -> None:
    root = st.seed_everything(17)
    torch.cuda.init()
    seeds = [torch.cuda.default_generators[d].initial_seed() for d in range(torch.cuda.device_count())]
    assert seeds == [root.seed_int(64, d) for d in range(torch.cuda.device_count())]
    state = st.capture(["torch_cuda"])
    x = torch.rand(3, device="cuda")
    st.restore(state)
    assert torch.equal(torch.rand(3, device="cuda"), x)
    saved = io.BytesIO()
    torch.save(state, saved)
    saved.seek(0)
    st.restore(torch.load(saved, weights_only=True))
    assert torch.equal(torch.rand(3, device="cuda"), x)
    st.restore(json.loads(json.dumps(state)))  # the per-device states are JSON too
    assert torch.equal(torch.rand(3, device="cuda"), x)


# -- the batch path (DataLoader batches, chunks of tasks) --------------------------------


def _states_then_dirty(_: object) -> tuple:
    states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    random.gauss(0.0, 1.0)  # leave cached Gaussians and moved positions for the next item
    np.random.standard_normal()
    torch.randn(3)
    return states


def _assert_items_seeded_from_their_nodes(tree: SeedTree, keys: list[int], got: list[tuple]) -> None:
    """Each item saw exactly its node's random, numpy (no cached Gaussian) and torch states."""
    for key, (r, n, t) in zip(keys, got, strict=True):
        node = tree / key
        assert r == node.python_random_state()
        np.testing.assert_array_equal(n[1], node.globals_words(WORDS_NUMPY_GLOBAL, MT_WORDS))
        assert n[2:] == (0, 0, 0.0)
        assert torch.equal(t, torch.from_numpy(node.torch_cpu_state()))


def test_batch_seeding_gives_each_item_its_nodes_states_and_isolate_puts_everything_back() -> None:
    from seedtree.runtime.tasks import run_keyed_batch

    tree = SeedTree(8) / "batch"
    keys = [3, 0, 7, 2**32 - 1, 5]
    np.random.standard_normal()  # the caller's own cached Gaussians must come back too
    random.gauss(0.0, 1.0)
    before = st.capture()
    with st.isolate():
        got = run_keyed_batch(tree, keys, _states_then_dirty, [None] * len(keys), ("random", "numpy", "torch"))
    after = st.capture()
    assert after["random"] == before["random"] and after["numpy"] == before["numpy"]
    assert after["torch"] == before["torch"]
    _assert_items_seeded_from_their_nodes(tree, keys, got)


def test_batches_of_changing_lengths_reuse_buffers_and_seed_each_item_exactly() -> None:
    """Buffers come in power-of-two sizes and are reused: a batch of 5 after one of 7 (same
    buffer, stale rows beyond 5) must seed exactly as its own nodes say."""
    from seedtree.runtime.tasks import run_keyed_batch

    tree = SeedTree(81) / "lengths"
    with st.isolate():
        for lo, hi in ((0, 7), (7, 12), (12, 13), (13, 29), (29, 31), (31, 40)):
            keys = list(range(lo, hi))
            got = run_keyed_batch(tree, keys, _states_then_dirty, [None] * len(keys), ("random", "numpy", "torch"))
            _assert_items_seeded_from_their_nodes(tree, keys, got)


@pytest.mark.skipif(not rawmem.enabled(), reason="SEEDTREE_FAST_PATHS=0: no in-place path in this run")
def test_in_place_seeding_matches_the_portable_path() -> None:
    node = SeedTree(5) / "in-place"
    for cls in (bindings.PythonRandom, bindings.NumpyGlobal):
        words = node.globals_words(*cls.words)  # an image: the words and the slot of the position
        portable = cls()
        portable._fast = False
        fast = cls()
        with st.isolate():
            random.gauss(0.0, 1.0)
            np.random.standard_normal()
            fast.seed_words(words)
            got = fast.capture()
            random.gauss(0.0, 1.0)
            np.random.standard_normal()
            portable.seed_words(words)
            assert got == portable.capture()
        assert fast._fast is True, f"{cls.__name__}: the self-check should accept the in-place path on CPython"


def test_loader_globals_scheme_streams_are_what_the_batch_path_seeds() -> None:
    """The statistics scheme builds each sample's generators from the layout; the loader's
    batch path must seed exactly those, or the battery would test something else."""
    from seedtree.runtime.tasks import run_keyed_batch
    from seedtree.stats.schemes import SCHEMES

    streams = SCHEMES["loader-globals"].streams(77, range(9))

    def draw(_: object) -> tuple[int, int, int]:
        return (
            random.getrandbits(64),
            int(np.random.randint(0, 1 << 64, size=1, dtype=np.uint64)[0]),
            int(torch.empty(1, dtype=torch.int64).random_(-(1 << 63), None).numpy().view(np.uint64)[0]),
        )

    with st.isolate():
        got = run_keyed_batch(SeedTree(77) / 0, [0, 1, 2], draw, [None] * 3, ("random", "numpy", "torch"))
    assert got == [tuple(int(s.take(1)[0]) for s in streams[3 * k : 3 * k + 3]) for k in range(3)]


def test_numpy_swapping_its_global_generator_is_followed() -> None:
    """np.random.set_bit_generator replaces the memory seedtree located: per-item seeding
    (pooled batches included) and isolate must follow the new generator."""
    from seedtree.runtime.tasks import run_keyed_batch

    tree = SeedTree(3)
    key_of = lambda _: np.random.get_state()[1].copy()  # noqa: E731
    original = np.random.get_bit_generator()
    try:
        with st.isolate():
            run_keyed_batch(tree, [1, 2], key_of, [1, 2], ("numpy",))  # locates, pools a batch
        np.random.set_bit_generator(np.random.MT19937(0))
        before = np.random.get_state()
        with st.isolate():
            got = run_keyed_batch(tree, [1, 2], key_of, [1, 2], ("numpy",))
            np.random.standard_normal()
        after = np.random.get_state()
        assert after[0] == before[0] and np.array_equal(after[1], before[1]) and after[2:] == before[2:]
        for k, key in zip([1, 2], got, strict=True):
            np.testing.assert_array_equal(key, (tree / k).globals_words(WORDS_NUMPY_GLOBAL, MT_WORDS))
    finally:
        np.random.set_bit_generator(original)


def test_a_controller_reading_a_position_slot_is_refused_at_registration() -> None:
    from seedtree.core.layout import NUMPY_GLOBAL_IMAGE

    class Clashing(bindings.LibController):
        name, module, words = "clashing", "json", (NUMPY_GLOBAL_IMAGE[1] - 1, 1)  # reads word 624 only

        def capture(self) -> None:
            return None

        def restore(self, state: object) -> None:
            pass

    with pytest.raises(ValueError, match=r"controller 'clashing' reads globals word 624.*'numpy'"):
        st.register(Clashing())
    assert "clashing" not in bindings.REGISTRY.all()


def test_a_fresh_registry_and_its_caches() -> None:
    registry = bindings.Registry()
    assert registry.all() == {} and registry.get("counter") is None
    assert registry.loaded_modules() == () and registry.missing_modules() == frozenset() and registry.active() == []
    with pytest.raises(TypeError, match=r"^register\(\) takes a LibController instance, got str$"):
        registry.register("random")  # type: ignore[arg-type]

    class Nameless(_Counter):
        name = ""

    class NotImported(_Counter):  # installed, never imported here (only looked up)
        name = "not-imported"
        module = "antigravity"

    with pytest.raises(ValueError, match="^a controller needs a non-empty name and module$"):
        registry.register(Nameless())
    counter = _Counter()
    assert registry.register(counter) is counter
    assert registry.all() == {"counter": counter} and registry.get("counter") is counter
    assert registry.loaded_modules() == ("random",) and registry.active() == [counter]
    assert registry.installed("random") and not registry.installed("no_such_module_for_seedtree")
    plan = registry.plan()
    assert registry.plan() is plan  # cached while the registration stays
    registry.register(NotImported())
    assert registry.missing_modules() == frozenset({"antigravity"}) and "antigravity" not in sys.modules
    assert registry.active() == [counter]  # not imported: not active
    assert registry.plan() is not plan  # a registration empties the cache
    plan = registry.plan()
    registry.unregister("not-imported")
    assert registry.missing_modules() == frozenset() and registry.plan() is not plan
    registry.unregister("counter")
    assert registry.all() == {}
    with pytest.raises(KeyError):
        registry.unregister("counter")


@pytest.mark.parametrize("name", ["random", "numpy", "torch"])
def test_a_freshly_made_controller_does_what_the_registered_one_does(name: str) -> None:
    # The registered controllers are made once, at import; a fresh one starts with empty
    # caches and must fill them itself.
    registered = bindings.REGISTRY.get(name)
    assert registered is not None
    node = SeedTree(23) / name
    registered.seed(node)
    expected = registered.fingerprint()
    registered.seed(SeedTree(24))
    fresh = type(registered)()
    assert fresh.usable()
    fresh.seed(node)
    assert registered.fingerprint() == expected and fresh.fingerprint() == expected
    snap = fresh.snapshot()
    random.random(), np.random.random_sample(), torch.rand(1)
    fresh.put_back(snap)
    assert registered.fingerprint() == expected
    state = fresh.capture()
    fresh.validate(state)
    registered.seed(SeedTree(25))
    fresh.restore(state)
    assert registered.fingerprint() == expected


def test_the_base_controller_refuses_to_seed_without_words() -> None:
    class Bare(st.Binding):
        name = "bare"
        module = "random"

        def capture(self) -> int:
            return 0

        def restore(self, state: int) -> None:
            pass

    with pytest.raises(NotImplementedError, match="^Bare sets no words: override seed\\(\\)$"):
        Bare().seed(SeedTree(1))
    assert pickle.loads(Bare().fingerprint()) == 0
