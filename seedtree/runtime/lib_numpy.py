"""The controller of NumPy's legacy global generator (``np.random.rand`` & co.)."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.layout import MT_FRESH, MT_WORDS, NUMPY_GLOBAL_IMAGE
from . import rawmem
from .libcontroller import LibController, Seeders

__all__ = ["NumpyGlobal"]


class NumpyGlobal(LibController):
    """NumPy's legacy global ``RandomState`` (``np.random.rand`` & co.): its whole
    624-word MT19937 key is written from the node."""

    name = "numpy"
    module = "numpy"
    words = NUMPY_GLOBAL_IMAGE  # its 624 key words, then the slot of its position
    slots = (NUMPY_GLOBAL_IMAGE[0] + MT_WORDS,)

    def __init__(self) -> None:
        self._fast: bool | None = None  # whether the in-place path is used; decided at first use
        self._mem: rawmem.NumpyMemory | None = None  # the in-place view: only while _fast

    def _decide(self) -> rawmem.NumpyMemory | None:
        """The in-place view of ``np.random``'s generator now, or None; a new one is made
        when ``np.random.set_bit_generator`` swapped the generator since."""
        if self._fast is None or (self._mem is not None and not self._mem.current()):
            self._mem = rawmem.numpy_memory()
            self._fast = self._mem is not None
        return self._mem

    def target(self) -> object:
        return np.random.mtrand._rand._bit_generator

    def seed_words(self, words: np.ndarray) -> None:
        key = words[:MT_WORDS]
        mem = self._decide()
        if mem is not None:
            # set_state copies the key word by word in Python (~35 us): it goes in place.
            mem.write(key)
        else:
            np.random.set_state(("MT19937", key, MT_FRESH, 0, 0.0))

    def row_seeders(self, rows: np.ndarray) -> tuple[Callable[[], None] | None, list[Seeders]]:
        mem = self._decide()
        if mem is None or mem.cached is None:
            return super().row_seeders(rows)

        def refresh() -> None:
            rows[:, MT_WORDS] = MT_FRESH  # the slot: each row is now {key[624]; int pos}

        return refresh, [mem.row_writer(rows[j]) for j in range(len(rows))]

    def snapshot(self) -> Any:
        mem = self._decide()
        if mem is not None and mem.cached is not None:
            return (mem.words.copy(), int(mem.cached["has_gauss"][0]), float(mem.cached["gauss"][0]))
        return np.random.get_state()

    def put_back(self, snapshot: Any) -> None:
        if isinstance(snapshot, tuple) and len(snapshot) == 3:
            words, has_gauss, gauss = snapshot
            # Not mutated: without the raw view, the portable way puts back the same state.
            mem = self._mem  # pragma: no mutate
            if mem is not None and mem.current() and mem.cached is not None:
                mem.words[:] = words
                mem.cached["has_gauss"] = has_gauss
                mem.cached["gauss"] = gauss
            else:  # the generator was swapped since: its state, the portable way
                np.random.set_state(("MT19937", words[:MT_WORDS], int(words[MT_WORDS]), has_gauss, gauss))
        else:
            np.random.set_state(snapshot)

    def fingerprint(self) -> Any:
        # Never decides here (that writes the state): the in-place read only once it is
        # decided and still points at np.random's generator.
        mem = self._mem
        if mem is not None and mem.cached is not None and mem.current():
            words = mem.words
            return (
                int(words[MT_WORDS]),
                int(words[0]),
                int(words[MT_WORDS - 1]),
                int(mem.cached["has_gauss"][0]),
                float(mem.cached["gauss"][0]),
            )
        return pickle.dumps(np.random.get_state())

    def capture(self) -> dict[str, Any]:
        _, key, pos, has_gauss, gauss = np.random.get_state(legacy=True)
        return {"key": np.asarray(key).tolist(), "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)}

    def validate(self, state: Any) -> None:
        if not isinstance(state, dict) or set(state) != {"key", "pos", "has_gauss", "gauss"}:
            raise ValueError("numpy: expected {key, pos, has_gauss, gauss} as capture() writes it")
        key = state["key"]
        if not isinstance(key, (list, tuple)) or len(key) != MT_WORDS:
            raise ValueError(f"numpy: 'key' must be a list of {MT_WORDS} words")
        if not all(isinstance(w, int) and not isinstance(w, bool) and 0 <= w < 2**32 for w in key):
            raise ValueError("numpy: every word of 'key' must be an int in [0, 2**32)")
        pos, has_gauss, gauss = state["pos"], state["has_gauss"], state["gauss"]
        if isinstance(pos, bool) or not isinstance(pos, int) or not 0 <= pos <= MT_WORDS:
            raise ValueError(f"numpy: 'pos' must be an int in [0, {MT_WORDS}], got {pos!r}")
        if has_gauss not in (0, 1) or isinstance(has_gauss, bool) or not isinstance(gauss, (int, float)):
            raise ValueError("numpy: 'has_gauss' must be 0 or 1 and 'gauss' a number")
        try:  # what set_state itself refuses (a gauss too large for a float...)
            np.random.RandomState().set_state(("MT19937", key, pos, has_gauss, gauss))  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"numpy: the state is refused by numpy ({exc})") from None

    def restore(self, state: Any) -> None:
        # set_state converts each word of the list itself (validate() checked them).
        np.random.set_state(("MT19937", state["key"], state["pos"], state["has_gauss"], state["gauss"]))
