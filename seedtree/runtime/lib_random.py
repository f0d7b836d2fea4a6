"""The controller of Python's ``random`` module."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.layout import MT_FRESH, MT_WORDS, RANDOM_IMAGE, python_random_state
from . import rawmem
from .libcontroller import LibController, Seeders

__all__ = ["PythonRandom"]


class PythonRandom(LibController):
    """Python's ``random`` module: its whole 624-word MT19937 state is written from the node
    (``seedtree.core.layout.python_random_state``)."""

    name = "random"
    module = "random"
    words = RANDOM_IMAGE  # the slot of its position, then its 624 words
    slots = (RANDOM_IMAGE[0],)

    def __init__(self) -> None:
        self._fast: bool | None = None  # whether the in-place path is used; decided at first use
        self._mem: rawmem.RandomMemory | None = None  # the in-place view: only while _fast

    def _decide(self) -> rawmem.RandomMemory | None:
        if self._fast is None:
            self._mem = rawmem.random_memory()
            self._fast = self._mem is not None
        return self._mem

    def seed_words(self, words: np.ndarray) -> None:
        mem = self._decide()
        if mem is not None:
            # random.setstate wants a 625-int tuple (~20 us to build from an array, 3 us to
            # apply); random.seed() runs init_by_array (~4 us): the words go in place.
            mem.write(words[1:])
        else:
            random.setstate(python_random_state(words[1:]))

    def row_seeders(self, rows: np.ndarray) -> tuple[Callable[[], None] | None, list[Seeders]]:
        # not mutated: the in-place writers are speed only, the base class's give the same state
        mem = self._decide()  # pragma: no mutate
        if mem is None:
            return super().row_seeders(rows)

        def refresh() -> None:
            rows[:, 0] = MT_FRESH  # the slot: each row is now the C object's {index; state}

        return refresh, [mem.row_writer(rows[j]) for j in range(len(rows))]

    def snapshot(self) -> Any:
        mem = self._decide()
        if mem is not None:  # the C state's bytes: no 625-int tuple built
            return (mem.words.copy(), mem.inst.gauss_next)
        return random.getstate()

    def put_back(self, snapshot: Any) -> None:
        if len(snapshot) == 2 and self._mem is not None:
            self._mem.words[:] = snapshot[0]
            self._mem.inst.gauss_next = snapshot[1]
        else:
            random.setstate(snapshot)

    def fingerprint(self) -> Any:
        mem = self._mem  # only read: never decides (that writes)
        if mem is not None:
            # The position moves with every draw; a twist rewrites the first and last words.
            words = mem.words
            return (int(words[0]), int(words[1]), int(words[MT_WORDS]), mem.inst.gauss_next)
        return random.getstate()

    def capture(self) -> dict[str, Any]:
        version, internal, gauss_next = random.getstate()
        return {"version": version, "internal": list(internal), "gauss_next": gauss_next}

    def validate(self, state: Any) -> None:
        if not isinstance(state, dict) or set(state) != {"version", "internal", "gauss_next"}:
            raise ValueError("random: expected {version, internal, gauss_next} as capture() writes it")
        internal = state["internal"]
        if (
            not isinstance(internal, (list, tuple))
            or len(internal) != MT_WORDS + 1
            or not all(isinstance(w, int) and not isinstance(w, bool) and 0 <= w < 2**32 for w in internal[:MT_WORDS])
            or not isinstance(internal[MT_WORDS], int)
            or not 0 <= internal[MT_WORDS] <= MT_WORDS
        ):
            raise ValueError(f"random: 'internal' must be {MT_WORDS} words below 2**32 and a position 0..{MT_WORDS}")
        gauss = state["gauss_next"]
        if state["version"] != 3 or not (gauss is None or isinstance(gauss, float)):
            raise ValueError("random: 'version' must be 3 and 'gauss_next' a float or None")
        try:
            random.Random().setstate((3, tuple(internal), gauss))
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"random: the state is refused by random.setstate ({exc})") from None

    def restore(self, state: Any) -> None:
        random.setstate((state["version"], tuple(state["internal"]), state["gauss_next"]))
