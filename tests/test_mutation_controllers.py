"""The RNG controllers layer, pinned exactly: the memory views of ``rawmem`` (where they
point, what each check refuses, the fast path against the portable one), the built-in
controllers' ``validate`` messages, fingerprints and caches, the base ``LibController``,
and which controllers a ``Plan`` seeds from its rows and which from the node.

Every test sets ``SEEDTREE_FAST_PATHS`` itself where it matters, so the file passes with
the switch on or off; the in-place tests need CPython with the GIL (as the suite runs)."""

from __future__ import annotations

import pickle
import random
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

import seedtree as st
from seedtree import SeedTree
from seedtree.core.layout import GLOBALS_WORDS, MT_FRESH, MT_WORDS, python_random_state
from seedtree.runtime import rawmem
from seedtree.runtime.lib_numpy import NumpyGlobal
from seedtree.runtime.lib_random import PythonRandom
from seedtree.runtime.lib_torch import TorchCPU, TorchCUDA
from seedtree.runtime.libcontroller import LibController
from seedtree.runtime.plan import Plan

IN_PLACE = sys.implementation.name == "cpython" and getattr(sys, "_is_gil_enabled", lambda: True)()
needs_in_place = pytest.mark.skipif(not IN_PLACE, reason="the memory paths need CPython with the GIL")


@pytest.fixture(autouse=True)
def _globals_put_back(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The fast paths on, and ``random``'s and NumPy's global states as they were after."""
    monkeypatch.delenv(rawmem.ENV, raising=False)
    py_state, np_state = random.getstate(), np.random.get_state()
    yield
    random.setstate(py_state)
    np.random.set_state(np_state)


def _words(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**32, MT_WORDS, dtype=np.uint32)


def _numpy_state() -> tuple[Any, ...]:
    name, key, pos, has_gauss, gauss = np.random.get_state()
    return (name, np.asarray(key).tolist(), pos, has_gauss, gauss)


# --- the switch -------------------------------------------------------------------------


def test_the_switch_is_off_only_for_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    assert rawmem.enabled() is IN_PLACE  # unset
    for value, on in (("0", False), (" 0\n", False), ("", True), ("1", True), ("00", True)):
        monkeypatch.setenv(rawmem.ENV, value)
        assert rawmem.enabled() is (on and IN_PLACE), value


# --- random's view ----------------------------------------------------------------------


@needs_in_place
def test_random_view_is_the_c_state_and_writes_what_setstate_gives() -> None:
    random.gauss()  # a cached Gaussian: the probe must leave it
    before = random.getstate()
    mem = rawmem.random_memory()
    assert mem is not None and random.getstate() == before
    _, internal, _ = before
    assert mem.words.tolist() == [internal[MT_WORDS], *internal[:MT_WORDS]]  # {index; state[624]}
    words = _words(1)
    mem.write(words)
    assert random.getstate() == python_random_state(words)
    random.gauss()
    row = np.array([MT_FRESH, *_words(2)], dtype=np.uint32)
    copy, drop_gauss = mem.row_writer(row)
    copy()
    assert random.getstate()[1] == python_random_state(row[1:])[1] and random.getstate()[2] is not None
    drop_gauss()
    assert random.getstate() == python_random_state(row[1:])


def misread_one_word(monkeypatch: pytest.MonkeyPatch, position: int) -> None:
    """Make the probes' raw reads see word ``position`` one off, as a layout they do not know would."""
    real = rawmem._read

    def misread(address: int, dtype: Any, n: int) -> np.ndarray:
        seen = real(address, dtype, n)
        seen[position] += 1
        return seen

    monkeypatch.setattr(rawmem, "_read", misread)


@needs_in_place
@pytest.mark.parametrize("damage", ["index", "word"])
def test_random_probe_reads_the_index_and_the_words_apart(monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    misread_one_word(monkeypatch, 0 if damage == "index" else 300)
    before = random.getstate()
    assert rawmem.random_memory() is None and random.getstate() == before


@needs_in_place
@pytest.mark.parametrize("library", ["random", "numpy"])
@pytest.mark.parametrize("damage", ["late word", "raises"])
def test_a_write_the_check_catches_gives_no_view_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, library: str, damage: str
) -> None:
    """A write wrong in word 300 (which feeds none of the few draws the check compares: only
    the state read back catches it), or one that raises: no view, and no state changed."""
    cls: Any = rawmem.RandomMemory if library == "random" else rawmem.NumpyMemory
    real = cls.write

    def broken(self: Any, words: np.ndarray) -> None:
        if damage == "raises":
            raise RuntimeError("write failed")
        words = words.copy()
        words[300] ^= 1
        real(self, words)

    monkeypatch.setattr(cls, "write", broken)
    probe = rawmem.random_memory if library == "random" else rawmem.numpy_memory
    before = (random.getstate(), _numpy_state())
    assert probe() is None
    assert (random.getstate(), _numpy_state()) == before


@needs_in_place
def test_a_module_without_its_instance_gets_no_view(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(random, "_inst")
    assert rawmem.random_memory() is None


@needs_in_place
def test_a_foreign_instance_is_never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_read(address: int, dtype: Any, n: int) -> np.ndarray:
        raise AssertionError("memory read")

    monkeypatch.setattr(rawmem, "_read", no_read)
    monkeypatch.setattr(random, "_inst", object())
    assert rawmem.random_memory() is None


@needs_in_place
def test_getstate_bound_to_another_instance_gives_no_view_and_touches_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_getstate = random.getstate
    random.gauss()
    before = real_getstate()
    other = random.Random(5)
    monkeypatch.setattr(random, "getstate", other.getstate)
    assert rawmem.random_memory() is None
    assert real_getstate() == before


# --- NumPy's view -----------------------------------------------------------------------


@needs_in_place
def test_numpy_view_finds_the_state_and_the_cached_gaussian() -> None:
    np.random.standard_normal()  # a cached Gaussian: the probe must leave it
    before = _numpy_state()
    mem = rawmem.numpy_memory()
    assert mem is not None and mem.cached is not None and mem.current()
    assert _numpy_state() == before
    key = _words(3)
    np.random.set_state(("MT19937", key, 17, 1, 0.625))
    assert mem.words.tolist() == [*key.tolist(), 17]  # {key[624]; pos}
    assert (int(mem.cached["has_gauss"][0]), float(mem.cached["gauss"][0])) == (1, 0.625)
    mem.cached["gauss"] = -2.5
    assert np.random.get_state()[3:] == (1, -2.5) and np.random.standard_normal() == -2.5
    assert int(mem.cached["has_gauss"][0]) == 0  # the draw used it up: read where NumPy keeps it
    np.random.standard_normal()
    words = _words(4)
    mem.write(words)
    assert _numpy_state() == ("MT19937", words.tolist(), MT_FRESH, 0, 0.0)
    np.random.standard_normal()
    row = np.array([*_words(5), MT_FRESH], dtype=np.uint32)
    copy, clear = mem.row_writer(row)
    copy()
    assert np.random.get_state()[3] == 1
    clear()
    assert _numpy_state() == ("MT19937", row[:MT_WORDS].tolist(), MT_FRESH, 0, 0.0)


@needs_in_place
@pytest.mark.parametrize("damage", ["pos", "word"])
def test_numpy_probe_reads_the_key_and_the_position_apart(monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    misread_one_word(monkeypatch, MT_WORDS if damage == "pos" else 300)
    before = _numpy_state()
    assert rawmem.numpy_memory() is None and _numpy_state() == before


@needs_in_place
def test_numpy_view_without_the_cached_gaussian(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the cached Gaussian is not found the view still writes the words (it drops
    the Gaussian through the public API), and the controller seeds rows the portable way."""
    monkeypatch.setattr(rawmem.NumpyMemory, "_find_gauss", lambda self, rs: None)
    mem = rawmem.numpy_memory()
    assert mem is not None and mem.cached is None
    np.random.standard_normal()
    words = _words(6)
    mem.write(words)
    assert _numpy_state() == ("MT19937", words.tolist(), MT_FRESH, 0, 0.0)
    with pytest.raises(RuntimeError) as info:
        mem.row_writer(np.zeros(MT_WORDS + 1, np.uint32))
    assert str(info.value) == "the cached Gaussian was not located: seed through write()"
    controller = NumpyGlobal()
    rows = np.array([[*_words(7), 9], [*_words(8), 9]], dtype=np.uint32)
    refresh, seeders = controller.row_seeders(rows)
    assert controller._fast is True and refresh is None and len(seeders) == 2
    np.random.standard_normal()
    for call in seeders[1]:
        call()
    assert _numpy_state() == ("MT19937", rows[1, :MT_WORDS].tolist(), MT_FRESH, 0, 0.0)
    snap = controller.snapshot()
    assert isinstance(snap, tuple) and len(snap) == 5  # np.random.get_state()'s form
    assert controller.fingerprint() == pickle.dumps(np.random.get_state())


def test_copier_copies_bytes_and_refuses_other_sizes() -> None:
    destination, source = np.zeros(4, np.uint32), np.arange(1, 5, dtype=np.uint32)
    rawmem.copier(destination, source)()
    assert destination.tolist() == [1, 2, 3, 4]
    with pytest.raises(ValueError) as info:
        rawmem.copier(np.zeros(3, np.uint8), np.zeros(4, np.uint8))
    assert str(info.value) == "cannot copy 4 bytes over 3"


# --- the controllers: fast path against portable path -------------------------------------


def _portable(cls: type[LibController]) -> Any:
    controller: Any = cls()
    controller._fast = False
    return controller


@pytest.mark.parametrize("cls", [PythonRandom, NumpyGlobal])
def test_fast_and_portable_controllers_leave_identical_states(cls: type[LibController]) -> None:
    node = SeedTree(31) / cls.name
    assert cls.words is not None
    words = node.globals_words(*cls.words)
    fast: Any = cls()

    def run(controller: Any) -> list[Any]:
        seen = []
        random.seed(7)  # the same start for both runs (the other library's state included)
        np.random.seed(7)
        random.gauss()
        np.random.standard_normal()
        controller.seed_words(words)
        seen.append((random.getstate(), _numpy_state()))
        snap = controller.snapshot()
        random.gauss(), np.random.standard_normal()  # both leave a cached Gaussian
        moved = (random.getstate(), _numpy_state())
        inner = controller.snapshot()
        controller.put_back(snap)
        seen.append((random.getstate(), _numpy_state()))
        controller.put_back(inner)
        seen.append((random.getstate(), _numpy_state()) == moved)
        rows = np.stack([SeedTree(32).globals_words(*cls.words), SeedTree(33).globals_words(*cls.words)])
        refresh, seeders = controller.row_seeders(rows)
        if refresh is not None:
            refresh()
        for j in (1, 0):
            random.gauss(), np.random.standard_normal()
            for call in seeders[j]:
                call()
            seen.append((random.getstate(), _numpy_state()))
        return seen

    fast_run = run(fast)
    assert fast._fast is IN_PLACE
    assert fast_run == run(_portable(cls))
    assert fast_run[2] is True


@needs_in_place
def test_python_random_fingerprint_reads_the_c_state() -> None:
    controller = PythonRandom()
    assert controller._fast is None and controller._mem is None  # undecided until the first seeding
    assert controller.fingerprint() == random.getstate()  # undecided: the portable form
    controller.seed_words(SeedTree(40).globals_words(*PythonRandom.words))
    random.gauss()
    _, internal, gauss_next = random.getstate()
    assert controller.fingerprint() == (internal[MT_WORDS], internal[0], internal[MT_WORDS - 1], gauss_next)
    assert _portable(PythonRandom).fingerprint() == random.getstate()


@needs_in_place
def test_numpy_fingerprint_reads_the_c_state() -> None:
    controller = NumpyGlobal()
    assert controller.fingerprint() == pickle.dumps(np.random.get_state())  # undecided
    controller.seed_words(SeedTree(41).globals_words(*NumpyGlobal.words))
    np.random.random_sample(5)
    np.random.standard_normal()
    _, key, pos, has_gauss, gauss = np.random.get_state()
    assert controller.fingerprint() == (pos, int(key[0]), int(key[MT_WORDS - 1]), has_gauss, gauss)
    portable = _portable(NumpyGlobal)
    before = portable.fingerprint()
    assert before == pickle.dumps(np.random.get_state())
    np.random.random_sample()
    assert portable.fingerprint() != before


def test_torch_cuda_usable_is_a_bool_asked_once() -> None:
    controller = TorchCUDA()
    assert controller.usable() is torch.cuda.is_available()
    assert controller._available is torch.cuda.is_available()


def test_torch_cpu_reuses_one_image() -> None:
    controller = TorchCPU()
    node = SeedTree(42)
    with st.isolate():
        controller.seed_words(node.globals_words(*TorchCPU.words))
        image = controller._image
        first = torch.get_rng_state()
        controller.seed_words((node / 1).globals_words(*TorchCPU.words))
        assert controller._image is image and not torch.equal(torch.get_rng_state(), first)
        controller.seed_words(node.globals_words(*TorchCPU.words))
        assert torch.equal(torch.get_rng_state(), first)


# --- validate: every refusal, exactly --------------------------------------------------


def _numpy_capture() -> dict[str, Any]:
    return NumpyGlobal().capture()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"extra": 1}, "numpy: expected {key, pos, has_gauss, gauss} as capture() writes it"),
        ({"key": list(range(MT_WORDS - 1))}, f"numpy: 'key' must be a list of {MT_WORDS} words"),
        ({"key": np.arange(MT_WORDS)}, f"numpy: 'key' must be a list of {MT_WORDS} words"),
        ({"key": [*range(MT_WORDS - 1), 2**32]}, "numpy: every word of 'key' must be an int in [0, 2**32)"),
        ({"key": [*range(MT_WORDS - 1), -1]}, "numpy: every word of 'key' must be an int in [0, 2**32)"),
        ({"key": [*range(MT_WORDS - 1), True]}, "numpy: every word of 'key' must be an int in [0, 2**32)"),
        ({"pos": MT_WORDS + 1}, f"numpy: 'pos' must be an int in [0, {MT_WORDS}], got {MT_WORDS + 1}"),
        ({"pos": -1}, f"numpy: 'pos' must be an int in [0, {MT_WORDS}], got -1"),
        ({"pos": "3"}, f"numpy: 'pos' must be an int in [0, {MT_WORDS}], got '3'"),
        ({"pos": True}, f"numpy: 'pos' must be an int in [0, {MT_WORDS}], got True"),
        ({"has_gauss": 2}, "numpy: 'has_gauss' must be 0 or 1 and 'gauss' a number"),
        ({"has_gauss": True}, "numpy: 'has_gauss' must be 0 or 1 and 'gauss' a number"),
        ({"gauss": "0.5"}, "numpy: 'has_gauss' must be 0 or 1 and 'gauss' a number"),
    ],
    ids=[f"numpy{i}" for i in range(13)],
)
def test_numpy_validate_refuses_exactly(change: dict[str, Any], message: str) -> None:
    state = {**_numpy_capture(), **change}
    with pytest.raises(ValueError) as info:
        NumpyGlobal().validate(state)
    assert str(info.value) == message


def test_numpy_validate_and_restore_take_the_edges() -> None:
    state = {"key": [0, *range(MT_WORDS - 2), 2**32 - 1], "pos": MT_WORDS, "has_gauss": 1, "gauss": 0.25}
    controller = NumpyGlobal()
    controller.validate(state)
    controller.restore(state)
    assert _numpy_state() == ("MT19937", state["key"], MT_WORDS, 1, 0.25)
    with pytest.raises(ValueError) as info:
        controller.validate({**state, "gauss": 10**400})
    assert str(info.value).startswith("numpy: the state is refused by numpy (")


def _random_capture(**change: Any) -> dict[str, Any]:
    return {**PythonRandom().capture(), **change}


_INTERNAL_MESSAGE = f"random: 'internal' must be {MT_WORDS} words below 2**32 and a position 0..{MT_WORDS}"
_VERSION_MESSAGE = "random: 'version' must be 3 and 'gauss_next' a float or None"


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (["version", "internal"], "random: expected {version, internal, gauss_next} as capture() writes it"),
        (_random_capture(extra=1), "random: expected {version, internal, gauss_next} as capture() writes it"),
        (_random_capture(internal=[*range(MT_WORDS), MT_WORDS + 1]), _INTERNAL_MESSAGE),
        (_random_capture(internal=[*range(MT_WORDS), -1]), _INTERNAL_MESSAGE),
        (_random_capture(internal=[*range(MT_WORDS), "3"]), _INTERNAL_MESSAGE),
        (_random_capture(internal=[*range(MT_WORDS - 1), 2**32, 0]), _INTERNAL_MESSAGE),
        (_random_capture(internal=[*range(MT_WORDS - 1), -1, 0]), _INTERNAL_MESSAGE),
        (_random_capture(internal=[*range(MT_WORDS - 1), False, 0]), _INTERNAL_MESSAGE),
        (_random_capture(internal=list(range(MT_WORDS))), _INTERNAL_MESSAGE),
        (_random_capture(version=2), _VERSION_MESSAGE),
        (_random_capture(gauss_next=1), _VERSION_MESSAGE),
        (_random_capture(gauss_next="0.5"), _VERSION_MESSAGE),
    ],
    ids=[f"random{i}" for i in range(12)],
)
def test_random_validate_refuses_exactly(state: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        PythonRandom().validate(state)
    assert str(info.value) == message


def test_random_validate_takes_the_edges_and_names_what_setstate_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    controller = PythonRandom()
    state = {"version": 3, "internal": [0, *range(MT_WORDS - 2), 2**32 - 1, MT_WORDS], "gauss_next": 0.5}
    controller.validate(state)
    controller.validate({**state, "gauss_next": None, "internal": [*state["internal"][:MT_WORDS], 0]})
    controller.restore(state)
    assert random.getstate() == (3, tuple(state["internal"]), 0.5)

    def refuse(self: random.Random, value: object) -> None:
        raise ValueError("no such state\nsecond line")

    monkeypatch.setattr(random.Random, "setstate", refuse)  # a refusal no check above foresees
    with pytest.raises(ValueError) as info:
        controller.validate(state)
    assert str(info.value) == "random: the state is refused by random.setstate (no such state\nsecond line)"


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ([0, 1, 256], "torch: the state must be a uint8 tensor or a list of bytes, as get_rng_state() gives"),
        ([0, -1], "torch: the state must be a uint8 tensor or a list of bytes, as get_rng_state() gives"),
        ([0, True], "torch: the state must be a uint8 tensor or a list of bytes, as get_rng_state() gives"),
        ("bytes", "torch: the state must be a uint8 tensor or a list of bytes, as get_rng_state() gives"),
        (
            torch.zeros((2, 3), dtype=torch.uint8),
            "torch: the state must be a 1-D uint8 tensor, got torch.uint8 of shape (2, 3)",
        ),
        (
            torch.zeros(5056, dtype=torch.int16),
            "torch: the state must be a 1-D uint8 tensor, got torch.int16 of shape (5056,)",
        ),
    ],
    ids=[f"torch{i}" for i in range(6)],
)
def test_torch_validate_refuses_exactly(state: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        TorchCPU().validate(state)
    assert str(info.value) == message


def test_torch_validate_quotes_torch_and_finds_the_damaged_byte() -> None:
    short = torch.zeros(10, dtype=torch.uint8)
    with pytest.raises(RuntimeError) as torch_says:
        torch.Generator().set_state(short)
    with pytest.raises(ValueError) as info:
        TorchCPU().validate(short.tolist())
    assert str(info.value) == f"torch: the state is refused by torch ({str(torch_says.value).splitlines()[0]})"
    state = torch.get_rng_state()
    TorchCPU().validate(state)
    TorchCPU().validate(state.tolist())
    damaged = state.clone()
    damaged[24 + 8 * 5 + 4] = 1  # the high half of state word 5, which torch does not keep
    with pytest.raises(ValueError) as info:
        TorchCPU().validate(damaged)
    assert str(info.value) == f"torch: the state is damaged (byte {24 + 8 * 5 + 4} is not one torch writes there)"


# --- the base controller ------------------------------------------------------------------


class _Recorder(LibController):
    """Records how a plan seeds it: from its words (``seed_words``) or from the node."""

    module = "random"

    def __init__(self, name: str, words: tuple[int, int] | None) -> None:
        self.name = name
        self.words = words
        self.calls: list[tuple[str, Any]] = []

    def seed(self, node: SeedTree) -> None:
        self.calls.append(("node", node))

    def seed_words(self, words: np.ndarray) -> None:
        self.calls.append(("words", words.tolist()))

    def capture(self) -> Any:
        return {"calls": len(self.calls)}

    def restore(self, state: Any) -> None:
        pass


class _Bare(LibController):
    name, module = "bare", "random"

    def capture(self) -> Any:
        return [1, 2]

    def restore(self, state: Any) -> None:
        pass


def test_the_base_seeds_rows_through_seed_words_and_refuses_without_words() -> None:
    with pytest.raises(NotImplementedError) as info:
        _Bare().seed_words(np.zeros(3, np.uint32))
    assert str(info.value) == "_Bare sets no words: it seeds through seed()"
    recorder = _Recorder("rec", (0, 3))
    rows = np.arange(9, dtype=np.uint32).reshape(3, 3)
    refresh, seeders = LibController.row_seeders(recorder, rows)
    assert refresh is None and len(seeders) == 3 and all(len(s) == 1 for s in seeders)
    rows[2] = 7  # seeders read the rows when called
    for j in (2, 0):
        seeders[j][0]()
    assert recorder.calls == [("words", [7, 7, 7]), ("words", [0, 1, 2])]
    assert _Bare().fingerprint() == pickle.dumps([1, 2])
    assert _Bare().usable() is True and _Bare().target() is None


# --- plans --------------------------------------------------------------------------------


def test_a_plan_seeds_controllers_within_the_expansion_from_its_words() -> None:
    first = _Recorder("first", (0, 3))  # from word 0
    last = _Recorder("last", (GLOBALS_WORDS - 2, 2))  # up to the last word
    plan = Plan([first, last])
    assert plan.names == ["first", "last"] and plan.count == GLOBALS_WORDS and plan.node_seeders == []
    node = SeedTree(50) / "plan"
    expansion = node.globals_words()
    assert plan.seed(node) == ["first", "last"]
    assert first.calls == [("words", expansion[:3].tolist())]
    assert last.calls == [("words", expansion[-2:].tolist())]
    given = (SeedTree(51) / "other").globals_words()
    plan.seed(node, given)  # the caller's words are used as they are
    assert first.calls[-1] == ("words", given[:3].tolist()) and last.calls[-1] == ("words", given[-2:].tolist())
    batch = plan.batch(SeedTree(52), [4, 5, 6])
    assert batch.rows.shape == (4, GLOBALS_WORDS)
    batch.seed(1, SeedTree(52) / 5)
    assert first.calls[-1] == ("words", (SeedTree(52) / 5).globals_words()[:3].tolist())


def test_a_plan_seeds_other_controllers_from_the_node() -> None:
    outside = [
        _Recorder("none", None),
        _Recorder("empty", (5, 0)),
        _Recorder("beyond", (GLOBALS_WORDS, 2)),
        _Recorder("across", (GLOBALS_WORDS - 1, 2)),
        _Recorder("negative", (-1, 3)),
    ]
    plan = Plan(list(outside))
    assert plan.count == 0 and len(plan.node_seeders) == len(outside)
    node = SeedTree(53) / "plan"
    plan.seed(node)
    assert all(c.calls == [("node", node)] for c in outside)
    batch = plan.batch(SeedTree(53), [1, 2, 3])
    assert batch.rows.shape == (4, 0)
    child = SeedTree(53) / 2
    batch.seed(1, child)
    assert all(c.calls[-1] == ("node", child) for c in outside)


@needs_in_place
def test_numpy_view_knows_when_the_bit_generator_was_swapped() -> None:
    mem = rawmem.numpy_memory()
    assert mem is not None and mem.current()
    original = np.random.get_bit_generator()
    try:
        np.random.set_bit_generator(np.random.MT19937(0))  # the same RandomState, another generator
        assert np.random.mtrand._rand is mem.owner[0] and not mem.current()
    finally:
        np.random.set_bit_generator(original)
    assert mem.current()


@needs_in_place
def test_numpy_put_back_follows_a_generator_swapped_since_the_snapshot() -> None:
    controller = NumpyGlobal()
    controller.seed_words(SeedTree(60).globals_words(*NumpyGlobal.words))
    np.random.standard_normal()
    snap = controller.snapshot()
    assert isinstance(snap, tuple) and len(snap) == 3  # the in-place form
    expected = _numpy_state()
    original = np.random.get_bit_generator()
    try:
        np.random.set_bit_generator(np.random.MT19937(0))
        controller.put_back(snap)
        assert _numpy_state() == expected
    finally:
        np.random.set_bit_generator(original)


@needs_in_place
def test_python_random_put_back_takes_the_public_form_too() -> None:
    controller = PythonRandom()
    controller.seed_words(SeedTree(61).globals_words(*PythonRandom.words))
    assert controller._fast is True
    random.gauss()
    state = random.getstate()
    random.random()
    controller.put_back(state)
    assert random.getstate() == state


def test_torch_cuda_is_not_usable_before_torch_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch")
    controller = TorchCUDA()
    assert controller.usable() is False and controller._available is None  # asked again once imported


def test_plan_batches_come_in_powers_of_two_and_are_reused() -> None:
    recorder = _Recorder("rec", (0, 3))
    plan = Plan([recorder])
    tree = SeedTree(62)
    assert [len(plan.batch(tree, list(range(n))).rows) for n in (1, 2, 3, 4, 5, 8, 9)] == [1, 2, 4, 4, 8, 8, 16]
    batch = plan.batch(tree, [1, 2, 3])
    plan.release(batch)
    again = plan.batch(tree, [4, 5, 6, 7])  # the same size class: the same buffers
    assert again is batch
    assert again.rows[:4].tolist() == [(tree / k).globals_words()[:GLOBALS_WORDS].tolist() for k in (4, 5, 6, 7)]
    assert plan.batch(tree, [1, 2, 3]) is not batch  # taken: a new one


def test_registry_active_skips_a_library_and_goes_on() -> None:
    from seedtree.runtime.controllers import Registry

    class Missing(_Bare):
        name, module = "missing", "no_such_module_for_seedtree"

    registry = Registry()
    missing, present = registry.register(Missing()), registry.register(_Bare())
    assert registry.all() == {"missing": missing, "bare": present}
    assert registry.active() == [present]  # skipped the first (not imported), kept the next
    assert registry.active(True) == [present]  # not installed: nothing to import
    assert registry.active(["random"]) == [present]  # not named
    assert registry.missing_modules() == frozenset() and registry.loaded_modules() == ("random",)
    assert registry.plan().names == ["bare"] and registry.plan() is registry.plan()


def test_a_released_batch_is_recycled_for_the_next_of_its_size() -> None:
    from seedtree.runtime.controllers import REGISTRY

    plan = REGISTRY.plan(("numpy",))
    tree = SeedTree(8) / "recycle"
    first = plan.batch(tree, [0, 1, 2])  # buffers of 4 rows
    plan.release(first)
    again = plan.batch(tree, [3, 4, 5, 6])
    assert again is first  # the same buffers, refilled
    np.testing.assert_array_equal(again.rows[:4], plan.batch(tree, [3, 4, 5, 6]).rows[:4])  # a fresh one: the same rows
    plan.release(again)
    assert plan.batch(tree, [7]) is not first  # another size: other buffers
