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
  one offset where a known cached Gaussian reads back as ``{int has_gauss; double gauss}``,
  or nothing);
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

# The known states the checks set through the public APIs, and the words they write (any
# distinctive values serve).
_RANDOM_PROBE = np.array([17, *range(1000, 1000 + MT_WORDS)], dtype=np.uint32)
"""``random``'s C state ``{index; state[624]}`` that ``_RANDOM_PROBE_STATE`` sets."""
_RANDOM_PROBE_STATE = (3, (*range(1000, 1000 + MT_WORDS), 17), None)
_RANDOM_WORDS = np.arange(5, 5 + MT_WORDS, dtype=np.uint32) * np.uint32(2654435761)
_NUMPY_PROBE = np.append(np.arange(7, 7 + MT_WORDS, dtype=np.uint32), np.uint32(123))
"""NumPy's MT19937 state ``{key[624]; pos}`` that ``_NUMPY_PROBE_STATE`` sets."""
_NUMPY_PROBE_STATE: Any = ("MT19937", _NUMPY_PROBE[:MT_WORDS], 123, 0, 0.0)
_NUMPY_WORDS = np.arange(11, 11 + MT_WORDS, dtype=np.uint32) * np.uint32(2246822519)
_NUMPY_WORDS_STATE: Any = ("MT19937", _NUMPY_WORDS, MT_FRESH, 0, 0.0)
"""What ``np.random.set_state`` gives for ``_NUMPY_WORDS``: no cached Gaussian."""
_GAUSS_PROBE_STATE: Any = ("MT19937", _NUMPY_PROBE[:MT_WORDS], MT_WORDS, 1, 1.2345678901234567e-301)
"""A state with a cached Gaussian (``has_gauss`` 1) that no other bytes of the object hold."""
_CACHED = np.dtype([("has_gauss", np.int32), ("gauss", np.float64)], align=True)
"""NumPy's ``{int has_gauss; double gauss}``: 16 bytes, the double 8 bytes after the int."""


def enabled() -> bool:
    """Whether memory-level paths may be used in this process now (see the module's
    contract): CPython, with the GIL, and ``SEEDTREE_FAST_PATHS`` not ``0``."""
    if ENV in os.environ and os.environ[ENV].strip() == "0":
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
        # Only a C struct smaller than CPython's takes this (the read below would go past
        # the object): no interpreter a test runs on can.
        or _random.Random.__basicsize__ < RANDOM_OFFSET + 4 * (MT_WORDS + 1)  # pragma: no mutate
    ):
        return None
    saved = random.getstate()
    try:
        random.setstate(_RANDOM_PROBE_STATE)
        if not np.array_equal(_read(id(inst) + RANDOM_OFFSET, np.uint32, len(_RANDOM_PROBE)), _RANDOM_PROBE):
            return None
        memory = RandomMemory(inst)
        random.gauss()  # a cached Gaussian the write must drop
        memory.write(_RANDOM_WORDS)
        written, draws = random.getstate(), [random.random(), random.gauss()]
        expected = python_random_state(_RANDOM_WORDS)
        random.setstate(expected)
        if written != expected or draws != [random.random(), random.gauss()]:
            return None
    except Exception:
        return None
    finally:
        random.setstate(saved)
    return memory


class NumpyMemory:
    """NumPy's legacy global generator, in place: ``words`` is ``{key[624]; pos}``;
    ``cached`` its cached Gaussian ``{int has_gauss; double gauss}`` as one record
    (``cached["has_gauss"][0]``, ``cached["gauss"][0]``), or None where it was not found."""

    def __init__(self, rs: Any, address: int) -> None:
        self.owner = (rs, rs._bit_generator)  # kept alive with the views
        self.words = _view(address, ctypes.c_uint32, MT_WORDS + 1)
        self.cached: np.ndarray | None = None

    def current(self) -> bool:
        """Whether ``np.random`` still uses the generator this view was made for."""
        rs = np.random.mtrand._rand
        return rs is self.owner[0] and rs._bit_generator is self.owner[1]

    def write(self, key: np.ndarray) -> None:
        """The state ``np.random.set_state(("MT19937", key, 624, 0, 0.0))`` gives."""
        if self.cached is None:
            # The public way to drop a cached Gaussian that was not found.
            np.random.seed(0)  # pragma: no mutate - any seed: the words are written next
        else:
            self.cached["has_gauss"] = 0
            self.cached["gauss"] = 0.0
        self.words[:MT_WORDS] = key
        self.words[MT_WORDS] = MT_FRESH

    def row_writer(self, row: np.ndarray) -> tuple[Callable[[], None], ...]:
        """Calls that seed from ``row`` (``{key[624]; pos}``, the position already
        ``MT_FRESH``); only for a view that found the cached Gaussian."""
        if self.cached is None:
            raise RuntimeError("the cached Gaussian was not located: seed through write()")
        # One copy of zeros clears both (and the padding between).
        return copier(self.words, row), copier(self.cached, np.zeros(1, _CACHED))

    def _find_gauss(self, rs: Any) -> None:
        """Point ``cached`` at the one place in ``rs`` where a known cached Gaussian (set
        through the public API) reads back; leave it None where there is not exactly one.
        Memory is only read here."""
        np.random.set_state(_GAUSS_PROBE_STATE)
        raw = np.frombuffer(ctypes.string_at(id(rs), type(rs).__basicsize__), np.uint8)
        records = np.lib.stride_tricks.sliding_window_view(raw, _CACHED.itemsize).copy().view(_CACHED)[:, 0]
        found = np.flatnonzero(
            (records["has_gauss"] == _GAUSS_PROBE_STATE[3]) & (records["gauss"] == _GAUSS_PROBE_STATE[4])
        )
        if len(found) == 1:
            self.cached = _view(id(rs) + int(found[0]), ctypes.c_uint8, _CACHED.itemsize).view(_CACHED)


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
        np.random.set_state(_NUMPY_PROBE_STATE)
        if not np.array_equal(_read(address, np.uint32, len(_NUMPY_PROBE)), _NUMPY_PROBE):
            return None
        memory = NumpyMemory(rs, address)
        memory._find_gauss(rs)
        np.random.standard_normal()  # a cached Gaussian the write must drop
        memory.write(_NUMPY_WORDS)
        written: Any = np.random.get_state()
        draws = np.random.random_sample(3).tolist() + np.random.standard_normal(3).tolist()
        np.random.set_state(_NUMPY_WORDS_STATE)
        if not (np.array_equal(written[1], _NUMPY_WORDS) and written[2:] == _NUMPY_WORDS_STATE[2:]) or draws != (
            np.random.random_sample(3).tolist() + np.random.standard_normal(3).tolist()
        ):
            return None
    except Exception:
        return None
    finally:
        np.random.set_state(saved)
    return memory
