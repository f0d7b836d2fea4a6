"""Every read and write seedtree makes into interpreter memory, in one place.

Seeding Python's ``random`` through ``random.setstate`` costs about 20 µs (a 625-int tuple
is built and parsed) and NumPy's legacy global through ``np.random.set_state`` about 35 µs;
a loader seeds both for every sample. Writing the 625 words straight into the generators'
C structs costs about 0.1 µs. This module is the only one that does so; the controllers
(``lib_random``, ``lib_numpy``) ask it for a located, verified view and fall back to the
libraries' public API when it gives none.

Contract
--------
What it assumes (the layouts of CPython 3.11-3.13 and NumPy 1.25-2.x):

* ``random``'s module instance is a C ``RandomObject``: ``{PyObject_HEAD; int index;
  uint32_t state[624]}``, so the position and the words start ``RANDOM_OFFSET`` (16) bytes
  after ``id(random._inst)``;
* NumPy's legacy generator's MT19937 state is ``{uint32_t key[624]; int pos}`` at the
  address its bit generator publishes (``bit_generator.ctypes.state_address``, a documented
  attribute), and its cached Gaussian is ``{int has_gauss; double gauss}`` somewhere inside
  the ``RandomState`` object.

How it verifies them, before the first write, every time a view is made:

* each location is found by *reading* only: a known state is set through the public API
  and must be read back, byte for byte, at the assumed place (the Gaussian's place is the
  one offset where two different known states both read back, or nothing);
* then one write is made through the view and compared with the public API's result for
  the same words (the state read back, and the next draws, Gaussians included); the
  generator's state from before is put back either way.

When it falls back (returns no view, and the controller uses the public API):

* ``SEEDTREE_FAST_PATHS=0`` in the environment (read when a view is made, i.e. at the
  first seeding of a controller);
* an interpreter other than CPython, or a free-threaded CPython with the GIL off
  (``sys._is_gil_enabled()`` false): there another thread could read a half-written
  state, while with the GIL a 2.5 KiB copy is one C call no Python thread interrupts;
* any check above failing, or raising.

A view of NumPy's generator is tied to the objects it was made for:
``NumpyMemory.current()`` says whether ``np.random`` still uses them
(``np.random.set_bit_generator`` swaps them); the controller makes a new view otherwise.
"""

from __future__ import annotations

import _random
import ctypes
import functools
import os
import random
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.layout import MT_FRESH, MT_WORDS, python_random_state

__all__ = ["ENV", "RANDOM_OFFSET", "NumpyMemory", "RandomMemory", "copier", "enabled", "numpy_memory", "random_memory"]

ENV = "SEEDTREE_FAST_PATHS"
RANDOM_OFFSET = 16
"""Bytes from a CPython ``RandomObject``'s address to its ``index`` field (the object
header: a reference count and a type pointer)."""


def enabled() -> bool:
    """Whether memory-level paths may be used in this process now (see the module's
    contract): CPython, with the GIL, and ``SEEDTREE_FAST_PATHS`` not ``0``."""
    if os.environ.get(ENV, "").strip() == "0":
        return False
    if sys.implementation.name != "cpython":
        return False
    gil_enabled = getattr(sys, "_is_gil_enabled", None)
    return gil_enabled is None or bool(gil_enabled())


def copier(destination: np.ndarray, source: np.ndarray) -> Callable[[], None]:
    """A call that copies ``source`` over ``destination`` (the same number of bytes, both
    contiguous): a memoryview slice assignment, a memcpy behind one C-level call (a
    NumPy slice assignment costs six times as much)."""
    if destination.nbytes != source.nbytes:
        raise ValueError(f"cannot copy {source.nbytes} bytes over {destination.nbytes}")
    # As bytes: memoryviews of ctypes memory carry formats ("<I") that cannot be assigned.
    target: Any = destination.view(np.uint8)
    data: Any = source.view(np.uint8)
    return functools.partial(memoryview(target).__setitem__, slice(None), memoryview(data))


def _view(address: int, ctype: Any, n: int) -> np.ndarray:
    """``n`` values of ``ctype`` at ``address`` as a NumPy array sharing that memory."""
    return np.ctypeslib.as_array((ctype * n).from_address(address))


def _read(address: int, dtype: Any, n: int) -> np.ndarray:
    """A copy of ``n`` values of ``dtype`` at ``address`` (reading only)."""
    return np.frombuffer(ctypes.string_at(address, np.dtype(dtype).itemsize * n), dtype=dtype).copy()


class RandomMemory:
    """``random``'s module generator, in place: ``words`` is ``{index; state[624]}``."""

    def __init__(self, inst: Any) -> None:
        self.inst = inst  # kept alive with the view
        self.words = _view(id(inst) + RANDOM_OFFSET, ctypes.c_uint32, MT_WORDS + 1)

    def write(self, state: np.ndarray) -> None:
        """The state ``random.setstate`` gives for ``state`` (624 words): fresh position,
        no cached Gaussian."""
        self.words[1:] = state
        self.words[0] = MT_FRESH
        self.inst.gauss_next = None

    def row_writer(self, row: np.ndarray) -> tuple[Callable[[], None], Callable[[], None]]:
        """Two calls that seed from ``row`` (``{index; state[624]}``, the index already
        ``MT_FRESH``): copy it in, drop the cached Gaussian."""
        return copier(self.words, row), functools.partial(setattr, self.inst, "gauss_next", None)


def random_memory() -> RandomMemory | None:
    """A verified view of ``random``'s module generator, or None (then use
    ``random.setstate``). The generator's state is as it was after the call."""
    inst = getattr(random, "_inst", None)
    if (
        not enabled()
        or not isinstance(inst, _random.Random)
        or random.getstate.__self__ is not inst  # type: ignore[attr-defined]
        or _random.Random.__basicsize__ < RANDOM_OFFSET + 4 * (MT_WORDS + 1)
    ):
        return None
    saved = random.getstate()
    try:
        probe = np.arange(1000, 1000 + MT_WORDS, dtype=np.uint32)
        random.setstate((3, (*probe.tolist(), 17), None))
        seen = _read(id(inst) + RANDOM_OFFSET, np.uint32, MT_WORDS + 1)
        if seen[0] != 17 or not np.array_equal(seen[1:], probe):
            return None
        memory = RandomMemory(inst)
        words = np.arange(5, 5 + MT_WORDS, dtype=np.uint32) * np.uint32(2654435761)
        random.gauss(0.0, 1.0)  # a cached Gaussian the write must drop
        memory.write(words)
        written, draws = random.getstate(), [random.random(), random.gauss(0.0, 1.0)]
        expected = python_random_state(words)
        random.setstate(expected)
        ok = written == expected and draws == [random.random(), random.gauss(0.0, 1.0)]
    except Exception:
        ok = False
    finally:
        random.setstate(saved)
    return memory if ok else None


class NumpyMemory:
    """NumPy's legacy global generator, in place: ``words`` is ``{key[624]; pos}``;
    ``has_gauss`` and ``gauss`` its cached Gaussian, or None where it was not found."""

    def __init__(self, rs: Any, address: int) -> None:
        self.owner = (rs, rs._bit_generator)  # kept alive with the views
        self.words = _view(address, ctypes.c_uint32, MT_WORDS + 1)
        self.has_gauss: np.ndarray | None = None
        self.gauss: np.ndarray | None = None

    def current(self) -> bool:
        """Whether ``np.random`` still uses the generator this view was made for."""
        rs = np.random.mtrand._rand
        return rs is self.owner[0] and rs._bit_generator is self.owner[1]

    def write(self, key: np.ndarray) -> None:
        """The state ``np.random.set_state(("MT19937", key, 624, 0, 0.0))`` gives."""
        if self.has_gauss is None or self.gauss is None:
            np.random.seed(0)  # the public way to drop a cached Gaussian that was not found
        else:
            self.has_gauss[0] = 0
            self.gauss[0] = 0.0
        self.words[:MT_WORDS] = key
        self.words[MT_WORDS] = MT_FRESH

    def row_writer(self, row: np.ndarray) -> tuple[Callable[[], None], ...]:
        """Calls that seed from ``row`` (``{key[624]; pos}``, the position already
        ``MT_FRESH``); only for a view that found the cached Gaussian."""
        if self.has_gauss is None or self.gauss is None:
            raise RuntimeError("the cached Gaussian was not located: seed through write()")
        no_gauss = (copier(self.has_gauss, np.zeros(1, np.int32)), copier(self.gauss, np.zeros(1, np.float64)))
        return copier(self.words, row), *no_gauss

    def _find_gauss(self, rs: Any) -> None:
        size = type(rs).__basicsize__
        key = np.arange(7, 7 + MT_WORDS, dtype=np.uint32)
        found: set[int] | None = None
        for has_gauss, gauss in ((1, 1.2345678901234567e-301), (0, -9.876543210987654e299)):
            np.random.set_state(("MT19937", key, MT_WORDS, has_gauss, gauss))
            raw = ctypes.string_at(id(rs), size)
            doubles = {o for o in range(8, size - 7) if np.frombuffer(raw, np.float64, 1, o)[0] == gauss}
            matches = {o for o in doubles if np.frombuffer(raw, np.int32, 1, o - 8)[0] == has_gauss}
            found = matches if found is None else found & matches
        if found is not None and len(found) == 1:
            offset = found.pop()
            self.has_gauss = _view(id(rs) + offset - 8, ctypes.c_int32, 1)
            self.gauss = _view(id(rs) + offset, ctypes.c_double, 1)


def _state_address(rs: Any) -> int:
    return int(rs._bit_generator.ctypes.state_address)


def numpy_memory() -> NumpyMemory | None:
    """A verified view of ``np.random``'s legacy generator, or None (then use
    ``np.random.set_state``). The generator's state is as it was after the call."""
    if not enabled():
        return None
    saved = np.random.get_state()
    try:
        rs = np.random.mtrand._rand
        address = _state_address(rs)
        key = np.arange(7, 7 + MT_WORDS, dtype=np.uint32)
        np.random.set_state(("MT19937", key, 123, 0, 0.0))
        seen = _read(address, np.uint32, MT_WORDS + 1)
        if not (np.array_equal(seen[:MT_WORDS], key) and seen[MT_WORDS] == 123):
            return None
        memory = NumpyMemory(rs, address)
        if type(rs).__basicsize__ >= 24:
            memory._find_gauss(rs)
        key = np.arange(11, 11 + MT_WORDS, dtype=np.uint32) * np.uint32(2246822519)
        np.random.standard_normal()  # a cached Gaussian the write must drop
        memory.write(key)
        written: Any = np.random.get_state()
        draws = np.random.random_sample(3).tolist() + np.random.standard_normal(3).tolist()
        np.random.set_state(("MT19937", key, MT_FRESH, 0, 0.0))
        ok = (
            np.array_equal(written[1], key)
            and written[2:] == (MT_FRESH, 0, 0.0)
            and draws == np.random.random_sample(3).tolist() + np.random.standard_normal(3).tolist()
        )
    except Exception:
        ok = False
    finally:
        np.random.set_state(saved)
    return memory if ok else None
