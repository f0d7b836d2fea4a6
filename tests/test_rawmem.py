"""The memory-level paths (seedtree/runtime/rawmem.py): the switch, and the fallback to the
libraries' public API whenever a check fails. ``make test`` runs this file, the controller,
loader and isolation tests a second time with ``SEEDTREE_FAST_PATHS=0``."""

from __future__ import annotations

import os
import random
import sys
import types

import numpy as np
import pytest

import seedtree as st
from seedtree import SeedTree
from seedtree.core.layout import MT_FRESH, MT_WORDS, WORDS_NUMPY_GLOBAL, python_random_state
from seedtree.runtime import rawmem
from seedtree.runtime.controllers import REGISTRY, NumpyGlobal, PythonRandom

FAST = os.environ.get("SEEDTREE_FAST_PATHS", "").strip() != "0"


def _states() -> tuple[object, object]:
    return random.getstate(), np.random.get_state(legacy=False)


def _assert_seeded_from(node: SeedTree) -> None:
    """The globals hold exactly what the public API gives for ``node``."""
    rnd_words = node.globals_words(*PythonRandom.words)[1:]
    assert random.getstate() == python_random_state(rnd_words)
    _, key, pos, has_gauss, gauss = np.random.get_state()
    np.testing.assert_array_equal(key, node.globals_words(WORDS_NUMPY_GLOBAL, MT_WORDS))
    assert (pos, has_gauss, gauss) == (MT_FRESH, 0, 0.0)


def test_the_switch_decides_which_path_this_process_uses() -> None:
    """Run twice by ``make test``: with the paths on, the built-in controllers seed in
    place; with ``SEEDTREE_FAST_PATHS=0`` they never do."""
    assert rawmem.enabled() is FAST
    with st.isolate():
        st.seed_globals(SeedTree(4) / "switch")
        REGISTRY.get("numpy").snapshot()  # type: ignore[union-attr]  # decides numpy's path too
        used = {name: REGISTRY.get(name)._fast for name in ("random", "numpy")}  # type: ignore[union-attr]
        _assert_seeded_from(SeedTree(4) / "switch")
    assert used == {"random": FAST, "numpy": FAST}


def test_zero_turns_every_memory_path_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEEDTREE_FAST_PATHS", "0")
    assert not rawmem.enabled()
    assert rawmem.random_memory() is None and rawmem.numpy_memory() is None
    for cls in (PythonRandom, NumpyGlobal):
        controller = cls()
        node = SeedTree(9) / cls.name
        with st.isolate():
            controller.seed_words(node.globals_words(*cls.words))
            assert controller._fast is False and controller._mem is None
            other = cls()
            other._fast = None
            assert other.snapshot() is not None and other._fast is False


@pytest.mark.skipif(not FAST, reason="the paths are switched off in this run (SEEDTREE_FAST_PATHS=0)")
def test_other_interpreters_and_free_threading_get_no_memory_path(monkeypatch: pytest.MonkeyPatch) -> None:
    assert rawmem.enabled()
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: False, raising=False)
    assert not rawmem.enabled() and rawmem.random_memory() is None and rawmem.numpy_memory() is None
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: True, raising=False)
    assert rawmem.enabled()
    monkeypatch.setattr(sys, "implementation", types.SimpleNamespace(name="pypy"))
    assert not rawmem.enabled() and rawmem.random_memory() is None


@pytest.mark.skipif(not FAST, reason="the paths are switched off in this run (SEEDTREE_FAST_PATHS=0)")
@pytest.mark.parametrize(
    "damage",
    ["random-offset", "random-write", "numpy-address", "numpy-write", "numpy-raises"],
)
def test_a_failed_check_falls_back_to_the_public_api(monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    """Each probe fails in turn (a wrong layout read back, a write that does not equal the
    public API's, an error): no view is handed out, the generators are as they were, and
    the controller seeds exactly through the public API."""
    assert rawmem.random_memory() is not None and rawmem.numpy_memory() is not None  # sound as shipped
    if damage == "random-offset":
        monkeypatch.setattr(rawmem, "RANDOM_OFFSET", rawmem.RANDOM_OFFSET + 8)
    elif damage == "random-write":
        real = rawmem.RandomMemory.write
        monkeypatch.setattr(rawmem.RandomMemory, "write", lambda self, state: real(self, state[::-1].copy()))
    elif damage == "numpy-address":
        real_address = rawmem._state_address
        monkeypatch.setattr(rawmem, "_state_address", lambda rs: real_address(rs) + 4)
    elif damage == "numpy-write":

        def keep_gauss(self: rawmem.NumpyMemory, key: np.ndarray) -> None:
            self.has_gauss = self.gauss = None  # as if the cached Gaussian were never dropped
            self.words[:MT_WORDS] = key
            self.words[MT_WORDS] = MT_WORDS

        monkeypatch.setattr(rawmem.NumpyMemory, "write", keep_gauss)
        np.random.standard_normal()
    else:
        monkeypatch.setattr(rawmem.NumpyMemory, "_find_gauss", lambda self, rs: 1 / 0)
    library = "random" if damage.startswith("random") else "numpy"
    cls = PythonRandom if library == "random" else NumpyGlobal
    random.gauss(0.0, 1.0)
    np.random.standard_normal()
    before = _states()
    probe = rawmem.random_memory if library == "random" else rawmem.numpy_memory
    assert probe() is None
    after = _states()
    assert after[0] == before[0] and repr(after[1]) == repr(before[1])  # nothing changed by the failed probe
    controller = cls()
    node = SeedTree(12) / damage
    with st.isolate():
        controller.seed_words(node.globals_words(*cls.words))
        assert controller._fast is False
        if library == "random":
            assert random.getstate() == python_random_state(node.globals_words(*cls.words)[1:])
        else:
            _, key, pos, has_gauss, gauss = np.random.get_state()
            np.testing.assert_array_equal(key, node.globals_words(WORDS_NUMPY_GLOBAL, MT_WORDS))
            assert (pos, has_gauss, gauss) == (MT_FRESH, 0, 0.0)
