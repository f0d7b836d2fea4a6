"""RNG-library controllers: one small class per library, registered by class.

Each controller knows how to seed its library's global generator from a node (through
the widest channel the library offers: whole state words, never one small int), and how
to capture and restore that state as plain values. ``REGISTRY`` holds one instance per
registered class, with the caches that make per-sample seeding cheap; ``capture``,
``restore``, ``isolate`` and ``seed_globals`` just loop over it, so supporting another
library is writing one subclass and calling ``register``.

Captured states hold only ints, floats, lists, dicts, strings and (for torch) uint8
tensors: they save with ``torch.save`` and load with ``torch.load(weights_only=True)``,
and are JSON-serialisable when torch is not in use.
"""

from __future__ import annotations

import _random
import ctypes
import functools
import importlib
import importlib.util
import pickle
import random
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..core.layout import (
    GLOBALS_WORDS,
    MT_FRESH,
    MT_WORDS,
    NUMPY_GLOBAL_IMAGE,
    RANDOM_IMAGE,
    TORCH_CPU_IMAGE_BYTES,
    WORDS_GLOBALS_KEY,
    WORDS_TORCH_CPU,
    expand_globals,
    python_random_state,
    torch_cpu_image,
)
from ..core.tree import SeedTree
from .state import NodeRef, resolve

__all__ = [
    "REGISTRY",
    "LibController",
    "Batch",
    "NumpyGlobal",
    "Plan",
    "PythonRandom",
    "Registry",
    "TorchCPU",
    "TorchCUDA",
    "register",
    "unregister",
]

ImportMissing = bool | Iterable[str]
"""Which registered libraries that are not imported yet to import before seeding: True
means every installed one, a collection names them, False none."""


class LibController(ABC):
    """One RNG library's global generator. Subclasses set ``name`` (unique) and ``module``
    (the import name); a controller is used only while its module is imported and
    ``usable()``.

    ``words = (start, count)`` says which words of a node's globals expansion the
    controller seeds from (see ``seedtree.core.layout``); controllers that set it
    implement ``seed_words``, and seeding many of them (for many nodes) costs one
    vectorised expansion. Others override ``seed``.
    """

    name: str = ""
    module: str = ""
    words: tuple[int, int] | None = None
    slots: tuple[int, ...] = ()
    """Words of ``words`` that a batch buffer holds this controller's position in, not
    the expansion's word (the controller's ``refresh`` writes it); no other controller
    may read them."""

    def usable(self) -> bool:
        """Whether the library's global generator exists right now (e.g. a GPU is there)."""
        return True

    def seed(self, node: SeedTree) -> None:
        """Seed the library's global generator from ``node``."""
        if self.words is None:
            raise NotImplementedError(f"{type(self).__name__} sets no words: override seed()")
        self.seed_words(node.globals_words(*self.words))

    def seed_words(self, words: np.ndarray) -> None:
        """Seed from this controller's ``words`` range of a node."""
        raise NotImplementedError(f"{type(self).__name__} sets no words: it seeds through seed()")

    def row_seeders(self, rows: np.ndarray) -> tuple[Callable[[], None] | None, list[Seeders]]:
        """For a batch buffer ``rows`` (n, this controller's word count; refilled batch
        after batch in place): ``(refresh, seeders)``, where ``refresh()`` runs once after
        each refill and calling each of ``seeders[j]`` in turn seeds from row j (the same
        state as ``seed_words(rows[j])``). Override to do per-batch work vectorised, and
        to seed a row with a few C-level calls. Buffers are pooled in power-of-two sizes:
        a batch fills only its first rows, and ``refresh`` must accept stale or
        uninitialised words in the others (no seeder reads them)."""
        return None, [(functools.partial(self.seed_words, rows[j]),) for j in range(len(rows))]

    def target(self) -> object:
        """The object whose state this controller's row seeders write, as the library
        holds it now (a library may swap its generator object: then seeders made for
        the old one would seed nothing). A pooled batch made for another target is
        rebuilt."""
        return None

    def snapshot(self) -> Any:
        """The state in whatever form ``put_back`` restores fastest (``isolate`` uses
        these; ``capture`` is the portable form)."""
        return self.capture()

    def put_back(self, snapshot: Any) -> None:
        """Restore what ``snapshot`` returned."""
        self.restore(snapshot)

    def fingerprint(self) -> Any:
        """A value, compared with ``==``, that changes whenever the global generator draws
        or is seeded (equal fingerprints: no draw in between, but for a chance of about
        2**-64 in the built-in controllers). It only reads: it is safe to take on any
        thread while others draw, and cheap (a threaded map takes one per chunk of tasks
        to refuse tasks that draw from the shared globals). None means "no state yet"
        (e.g. CUDA not started). The base pickles ``capture()``."""
        return pickle.dumps(self.capture(), protocol=pickle.HIGHEST_PROTOCOL)

    @abstractmethod
    def capture(self) -> Any:
        """The generator's state as plain values (or a torch tensor)."""

    @abstractmethod
    def restore(self, state: Any) -> None:
        """Put back a state that ``capture`` returned."""

    def validate(self, state: Any) -> None:  # noqa: B027  (optional: the base accepts what capture() gave)
        """Check that ``state`` is one ``restore`` accepts, without changing anything;
        raise ValueError naming the problem otherwise. ``seedtree.restore()`` validates
        every part of a captured state before it applies any, so a damaged state changes
        nothing; ``restore`` itself trusts its input (``isolate`` hands back what it captured)."""


Seeders = tuple[Callable[[], None], ...]
"""The calls that seed one row of a batch, in order."""


def _copier(destination: np.ndarray, source: np.ndarray) -> Callable[[], None]:
    """A call that copies ``source`` over ``destination`` (the same number of bytes, both
    contiguous): a memoryview slice assignment, a memcpy behind one C-level call (a
    NumPy slice assignment costs six times as much)."""
    if destination.nbytes != source.nbytes:
        raise ValueError(f"cannot copy {source.nbytes} bytes over {destination.nbytes}")
    # As bytes: memoryviews of ctypes memory carry formats ("<I") that cannot be assigned.
    target: Any = destination.view(np.uint8)
    data: Any = source.view(np.uint8)
    return functools.partial(memoryview(target).__setitem__, slice(None), memoryview(data))


def _memory(address: int, ctype: Any, n: int) -> np.ndarray:
    """``n`` values of ``ctype`` at ``address`` as a NumPy array sharing that memory."""
    return np.ctypeslib.as_array((ctype * n).from_address(address))


class PythonRandom(LibController):
    """Python's ``random`` module: its whole 624-word MT19937 state is written from the node
    (``seedtree.core.layout.python_random_state``)."""

    name = "random"
    module = "random"
    words = RANDOM_IMAGE  # the slot of its position, then its 624 words
    slots = (RANDOM_IMAGE[0],)

    def __init__(self) -> None:
        self._fast: bool | None = None  # decided on first use by a self-check
        self._inst: Any = None  # the module's own Random instance (kept alive with the view)
        self._mem: np.ndarray | None = None  # its position and state words, in place

    def seed_words(self, words: np.ndarray) -> None:
        if self._fast is None:
            self._fast = self._check_fast_path(words)
        mem = self._mem
        if self._fast and mem is not None:
            # random.setstate wants a 625-int tuple (~20 us to build from an array, 3 us to
            # apply); random.seed() runs init_by_array (~4 us). Instead the state words and the
            # position are written in place, where the self-check found them.
            mem[1:] = words[1:]
            mem[0] = MT_FRESH
            self._inst.gauss_next = None
        else:
            random.setstate(python_random_state(words[1:]))

    def row_seeders(self, rows: np.ndarray) -> tuple[Callable[[], None] | None, list[Seeders]]:
        if self._fast is None:
            self._fast = self._check_fast_path(np.arange(MT_WORDS + 1, dtype=np.uint32))
        mem = self._mem
        if not self._fast or mem is None:
            return super().row_seeders(rows)

        def refresh() -> None:
            rows[:, 0] = MT_FRESH  # the slot: each row is now the C object's {index; state}

        drop_gauss = functools.partial(setattr, self._inst, "gauss_next", None)
        return refresh, [(_copier(mem, rows[j]), drop_gauss) for j in range(len(rows))]

    def _locate(self) -> np.ndarray | None:
        """The C ``RandomObject`` of ``random``'s instance is ``{PyObject_HEAD; int index;
        uint32_t state[624]}`` in CPython: find it by reading (never writing) a known state
        there, or give up."""
        inst = getattr(random, "_inst", None)
        if (
            sys.implementation.name != "cpython"
            or not isinstance(inst, _random.Random)
            or random.getstate.__self__ is not inst  # type: ignore[attr-defined]
            or _random.Random.__basicsize__ < 16 + 4 * (MT_WORDS + 1)
        ):
            return None
        probe = np.arange(1000, 1000 + MT_WORDS, dtype=np.uint32)
        saved = random.getstate()
        try:
            random.setstate((3, (*probe.tolist(), 17), None))
            seen = np.frombuffer(ctypes.string_at(id(inst) + 16, 4 * (MT_WORDS + 1)), dtype=np.uint32)
            if seen[0] != 17 or not np.array_equal(seen[1:], probe):
                return None
        finally:
            random.setstate(saved)
        self._inst = inst
        return _memory(id(inst) + 16, ctypes.c_uint32, MT_WORDS + 1)

    def _check_fast_path(self, words: np.ndarray) -> bool:
        saved = random.getstate()
        try:
            self._mem = self._locate()
            if self._mem is None:
                return False
            random.gauss(0.0, 1.0)  # a cached Gaussian the fast path must drop
            self._fast = True
            self.seed_words(words)
            expected = python_random_state(words[1:])
            fast_state, fast_draw = random.getstate(), [random.random(), random.gauss(0.0, 1.0)]
            random.setstate(expected)
            ok = fast_state == expected and fast_draw == [random.random(), random.gauss(0.0, 1.0)]
        except Exception:
            ok = False
        finally:
            random.setstate(saved)
        if not ok:
            self._mem = None
        return ok

    def snapshot(self) -> Any:
        if self._fast and self._mem is not None:  # the C state's bytes: no 625-int tuple built
            return (self._mem.copy(), self._inst.gauss_next)
        return random.getstate()

    def put_back(self, snapshot: Any) -> None:
        if len(snapshot) == 2 and self._mem is not None:
            self._mem[:] = snapshot[0]
            self._inst.gauss_next = snapshot[1]
        else:
            random.setstate(snapshot)

    def fingerprint(self) -> Any:
        mem = self._mem
        if self._fast and mem is not None:
            # The position moves with every draw; a twist rewrites the first and last words.
            return (int(mem[0]), int(mem[1]), int(mem[MT_WORDS]), self._inst.gauss_next)
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


class NumpyGlobal(LibController):
    """NumPy's legacy global ``RandomState`` (``np.random.rand`` & co.): its whole
    624-word MT19937 key is written from the node."""

    name = "numpy"
    module = "numpy"
    words = NUMPY_GLOBAL_IMAGE  # its 624 key words, then the slot of its position
    slots = (NUMPY_GLOBAL_IMAGE[0] + MT_WORDS,)

    def __init__(self) -> None:
        self._fast: bool | None = None  # decided on first use by a self-check
        self._mem: Any = None  # the legacy generator's key and position, in place
        self._has_gauss: Any = None  # its cached Gaussian, in place (None: not found)
        self._gauss: Any = None
        self._owner: tuple[Any, Any] | None = None  # (RandomState, bit generator) located: kept alive with the views

    def _still_located(self) -> bool:
        """Whether ``np.random``'s legacy generator is still the one whose memory was
        located (``np.random.set_bit_generator`` swaps it)."""
        owner, rs = self._owner, np.random.mtrand._rand
        return owner is not None and rs is owner[0] and rs._bit_generator is owner[1]

    def _decide(self, key: np.ndarray) -> None:
        if self._fast is None or (self._fast and not self._still_located()):
            self._fast = self._check_fast_path(key)

    def target(self) -> object:
        return np.random.mtrand._rand._bit_generator

    def seed_words(self, words: np.ndarray) -> None:
        key = words[:MT_WORDS]
        self._decide(key)
        if self._fast:
            self._write(key)
        else:
            np.random.set_state(("MT19937", key, MT_FRESH, 0, 0.0))

    def row_seeders(self, rows: np.ndarray) -> tuple[Callable[[], None] | None, list[Seeders]]:
        self._decide(np.arange(MT_WORDS, dtype=np.uint32))
        if not self._fast or self._gauss is None:
            return super().row_seeders(rows)

        def refresh() -> None:
            rows[:, MT_WORDS] = MT_FRESH  # the slot: each row is now {key[624]; int pos}

        no_gauss = (_copier(self._has_gauss, np.zeros(1, np.int32)), _copier(self._gauss, np.zeros(1, np.float64)))
        return refresh, [(_copier(self._mem, rows[j]), *no_gauss) for j in range(len(rows))]

    def _write(self, key: np.ndarray) -> None:
        # set_state copies the key word by word in Python (~35 us) and np.random.seed(0)
        # costs ~1.3 us: instead the key and position are written in place through the bit
        # generator's documented ctypes state address, and the cached Gaussian where the
        # self-check found it (or, if it was not found, reset by seed(0) first).
        mem = self._mem
        if self._gauss is None:
            np.random.seed(0)
        else:
            self._has_gauss[0] = 0
            self._gauss[0] = 0.0
        mem[:MT_WORDS] = key
        mem[MT_WORDS] = MT_FRESH

    def _locate(self) -> None:
        """The key and position (``mt19937_state {uint32 key[624]; int pos}`` at the
        documented state address, checked by reading a known state back), and the legacy
        generator's cached Gaussian: ``{int has_gauss; double gauss}`` inside the
        RandomState object, found by reading (never writing) two known states there."""
        rs = np.random.mtrand._rand
        self._owner = (rs, rs._bit_generator)
        self._mem = _memory(rs._bit_generator.ctypes.state_address, ctypes.c_uint32, MT_WORDS + 1)
        self._has_gauss = self._gauss = None
        key = np.arange(7, 7 + MT_WORDS, dtype=np.uint32)
        np.random.set_state(("MT19937", key, 123, 0, 0.0))
        if not (np.array_equal(self._mem[:MT_WORDS], key) and self._mem[MT_WORDS] == 123):
            raise RuntimeError("the MT19937 state is not where its ctypes address says")
        size = type(rs).__basicsize__
        if sys.implementation.name != "cpython" or size < 24:
            return
        found = None
        for has_gauss, gauss in ((1, 1.2345678901234567e-301), (0, -9.876543210987654e299)):
            np.random.set_state(("MT19937", key, MT_WORDS, has_gauss, gauss))
            raw = ctypes.string_at(id(rs), size)
            doubles = {o for o in range(8, size - 7) if np.frombuffer(raw, np.float64, 1, o)[0] == gauss}
            matches = {o for o in doubles if np.frombuffer(raw, np.int32, 1, o - 8)[0] == has_gauss}
            found = matches if found is None else found & matches
        if found is not None and len(found) == 1:
            offset = found.pop()
            self._has_gauss = _memory(id(rs) + offset - 8, ctypes.c_int32, 1)
            self._gauss = _memory(id(rs) + offset, ctypes.c_double, 1)

    def _check_fast_path(self, key: np.ndarray) -> bool:
        saved = np.random.get_state()
        try:
            self._locate()
            np.random.standard_normal()  # a cached Gaussian the fast path must drop
            self._write(key)
            fast_state: Any = np.random.get_state()
            fast_draw = np.random.random_sample(3).tolist() + np.random.standard_normal(3).tolist()
            np.random.set_state(("MT19937", key, MT_FRESH, 0, 0.0))
            ok = (
                np.array_equal(fast_state[1], key)
                and fast_state[2:] == (MT_FRESH, 0, 0.0)
                and fast_draw == np.random.random_sample(3).tolist() + np.random.standard_normal(3).tolist()
            )
        except Exception:
            ok = False
        finally:
            np.random.set_state(saved)
        return ok

    def snapshot(self) -> Any:
        self._decide(np.arange(MT_WORDS, dtype=np.uint32))
        if self._fast and self._gauss is not None:
            return (self._mem.copy(), int(self._has_gauss[0]), float(self._gauss[0]))
        return np.random.get_state()

    def put_back(self, snapshot: Any) -> None:
        if isinstance(snapshot, tuple) and len(snapshot) == 3:
            words, has_gauss, gauss = snapshot
            if self._still_located() and self._gauss is not None:
                self._mem[:] = words
                self._has_gauss[0] = has_gauss
                self._gauss[0] = gauss
            else:  # the generator was swapped since: its state, the portable way
                np.random.set_state(("MT19937", words[:MT_WORDS], int(words[MT_WORDS]), has_gauss, gauss))
        else:
            np.random.set_state(snapshot)

    def fingerprint(self) -> Any:
        # Never the self-check here (it writes the state): the fast path only once it is
        # decided and still points at np.random's generator.
        if self._fast and self._gauss is not None and self._still_located():
            mem = self._mem
            return (
                int(mem[MT_WORDS]),
                int(mem[0]),
                int(mem[MT_WORDS - 1]),
                int(self._has_gauss[0]),
                float(self._gauss[0]),
            )
        state = np.random.get_state(legacy=False)
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

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
            np.random.RandomState().set_state(("MT19937", np.asarray(key, dtype=np.uint32), pos, has_gauss, gauss))
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"numpy: the state is refused by numpy ({exc})") from None

    def restore(self, state: Any) -> None:
        key = np.asarray(state["key"], dtype=np.uint32)
        np.random.set_state(("MT19937", key, state["pos"], state["has_gauss"], state["gauss"]))


class TorchCPU(LibController):
    """torch's default CPU generator: the whole MT19937 state from the node (torch's
    ``manual_seed`` keeps only 32 bits)."""

    name = "torch"
    module = "torch"
    words = (WORDS_TORCH_CPU, MT_WORDS + 2)

    def __init__(self) -> None:
        # One state image reused for every seeding (set_state copies it), and the tensor
        # that shares its memory.
        self._image: np.ndarray | None = None
        self._tensor: Any = None
        self._state_words: np.ndarray | None = None
        self._seed_words: np.ndarray | None = None

    def seed_words(self, words: np.ndarray) -> None:
        torch = sys.modules["torch"]
        if self._image is None or self._state_words is None or self._seed_words is None:
            self._image = torch_cpu_image(words[:MT_WORDS], 0)
            self._tensor = torch.from_numpy(self._image)
            self._state_words = self._image[24 : 24 + 8 * MT_WORDS].view("<u8")
            self._seed_words = self._image[0:8].view("<u4")
        np.copyto(self._state_words, words[:MT_WORDS])
        np.copyto(self._seed_words, words[MT_WORDS:])  # the 64-bit initial seed, low word first
        torch.default_generator.set_state(self._tensor)

    def row_seeders(self, rows: np.ndarray) -> tuple[Callable[[], None] | None, list[Seeders]]:
        # One generator image per row, filled for the whole batch by one vectorised copy
        # (a 32-to-64-bit copy per sample costs more than torch's set_state itself).
        torch = sys.modules["torch"]
        n = len(rows)
        images = np.empty((n, TORCH_CPU_IMAGE_BYTES), dtype=np.uint8)
        images[:] = torch_cpu_image(np.zeros(MT_WORDS, dtype=np.uint32), 0)
        states = images[:, 24 : 24 + 8 * MT_WORDS].view("<u8")
        seeds = images[:, 0:8].view("<u4")

        def refresh() -> None:
            np.copyto(states, rows[:, :MT_WORDS])
            np.copyto(seeds, rows[:, MT_WORDS:])

        set_state = torch.default_generator.set_state
        return refresh, [(functools.partial(set_state, torch.from_numpy(images[j])),) for j in range(n)]

    def snapshot(self) -> Any:
        return sys.modules["torch"].default_generator.get_state()

    def put_back(self, snapshot: Any) -> None:
        sys.modules["torch"].default_generator.set_state(snapshot)

    def fingerprint(self) -> Any:
        return sys.modules["torch"].default_generator.get_state().numpy().tobytes()

    def capture(self) -> Any:
        return sys.modules["torch"].get_rng_state()

    def validate(self, state: Any) -> None:
        torch = sys.modules.get("torch") or importlib.import_module("torch")
        if not isinstance(state, torch.Tensor):
            if not isinstance(state, (list, tuple)) or not all(
                isinstance(b, int) and not isinstance(b, bool) and 0 <= b < 256 for b in state
            ):
                raise ValueError("torch: the state must be a uint8 tensor or a list of bytes, as get_rng_state() gives")
            state = torch.tensor(state, dtype=torch.uint8)
        if state.dtype != torch.uint8 or state.dim() != 1:
            raise ValueError(
                f"torch: the state must be a 1-D uint8 tensor, got {state.dtype} of shape {tuple(state.shape)}"
            )
        probe = torch.Generator()
        try:
            probe.set_state(state)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise ValueError(f"torch: the state is refused by torch ({str(exc).splitlines()[0]})") from None
        # torch ignores some bytes (the unused high half of each state word): a state that
        # does not read back as given was not written by torch, so it is damaged.
        kept = probe.get_state()
        if kept.shape != state.shape or not torch.equal(kept, state):
            first = int((kept != state).nonzero()[0, 0]) if kept.shape == state.shape else -1
            raise ValueError(f"torch: the state is damaged (byte {first} is not one torch writes there)")

    def restore(self, state: Any) -> None:
        torch = sys.modules["torch"]
        if not isinstance(state, torch.Tensor):
            state = torch.tensor(state, dtype=torch.uint8)
        torch.set_rng_state(state)


class TorchCUDA(LibController):
    """torch's CUDA generators: device d gets its own 64-bit seed ``node.seed_int(64, d)``
    (``manual_seed_all`` would give every device the same stream)."""

    name = "torch_cuda"
    module = "torch"

    def __init__(self) -> None:
        self._available: bool | None = None  # asked once: it does not change in a process

    def usable(self) -> bool:
        if self._available is None:
            torch = sys.modules.get("torch")
            if torch is None:
                return False
            self._available = bool(torch.cuda.is_available())
        return self._available

    def seed(self, node: SeedTree) -> None:
        torch = sys.modules["torch"]
        seeds = [node.seed_int(64, d) for d in range(torch.cuda.device_count())]

        def seed_devices() -> None:
            for device, seed in enumerate(seeds):
                torch.cuda.default_generators[device].manual_seed(seed)

        if torch.cuda.is_initialized():
            seed_devices()
        else:
            # Seeding must not create a CUDA context (that breaks fork-based workers);
            # torch queues the call until CUDA starts, as its own manual_seed_all does.
            lazy_call = getattr(torch.cuda, "_lazy_call", None)
            if lazy_call is not None:
                lazy_call(seed_devices, seed_all=True)
            else:
                seed_devices()

    def capture(self) -> Any:
        torch = sys.modules["torch"]
        if not torch.cuda.is_initialized():
            return None
        return torch.cuda.get_rng_state_all()

    def fingerprint(self) -> Any:
        states = self.capture()
        return None if states is None else tuple(state.numpy().tobytes() for state in states)

    def validate(self, state: Any) -> None:
        if state is None:
            return
        torch = sys.modules.get("torch") or importlib.import_module("torch")
        if not isinstance(state, (list, tuple)) or not all(isinstance(s, torch.Tensor) for s in state):
            raise ValueError("torch_cuda: the state must be a list of uint8 tensors, one per device, or None")
        if len(state) != torch.cuda.device_count():
            raise ValueError(
                f"torch_cuda: the state has {len(state)} devices, this process sees {torch.cuda.device_count()}"
            )
        for device, value in enumerate(state):
            if value.dtype != torch.uint8 or value.dim() != 1:
                raise ValueError(f"torch_cuda: device {device}'s state must be a 1-D uint8 tensor, got {value.dtype}")
            probe = torch.Generator(device=f"cuda:{device}")
            try:  # what set_rng_state_all would refuse half-way through the devices
                probe.set_state(value.cpu())
            except (RuntimeError, TypeError, ValueError) as exc:
                raise ValueError(f"torch_cuda: device {device}'s state is refused by torch ({exc})") from None

    def restore(self, state: Any) -> None:
        if state is not None:
            sys.modules["torch"].cuda.set_rng_state_all(state)


class Plan:
    """How to seed a set of controllers from one node: the node's globals expansion
    (computed once for every word-seeded controller), and each controller's slice of it.
    Callers seeding many nodes at once (a DataLoader batch, a chunk of tasks) take a
    ``Batch`` of all their rows, derived in one vectorised call, and seed row by row."""

    def __init__(self, chosen: list[LibController]) -> None:
        self.controllers = chosen
        self.names = [c.name for c in chosen]
        # Controllers whose words lie in the globals expansion are seeded from it (one
        # expansion for all of them); any other seeds itself from the node.
        batched = [c for c in chosen if c.words is not None and 0 <= c.words[0] < sum(c.words) <= GLOBALS_WORDS]
        self.start = 0
        self.count = GLOBALS_WORDS if batched else 0
        self.steps: list[tuple[LibController, int, int]] = []
        for c in chosen:
            if c in batched and c.words is not None:
                self.steps.append((c, c.words[0], c.words[0] + c.words[1]))
            else:
                self.steps.append((c, 0, 0))
        self.node_seeders = [c.seed for c, _, hi in self.steps if not hi]
        """Controllers that seed from the node itself (not from the batch's rows)."""
        self._free: dict[int, list[Batch]] = {}  # by size: batches handed back, for reuse

    def seed(self, node: SeedTree, words: np.ndarray | None = None) -> list[str]:
        """Seed every controller from ``node``; ``words`` are the node's words
        ``start .. start + count`` if the caller has them already."""
        if words is None and self.count:
            words = node.globals_words()
        for controller, lo, hi in self.steps:
            if hi and words is not None:
                controller.seed_words(words[lo:hi])
            else:
                controller.seed(node)
        return list(self.names)

    def batch(self, tree: SeedTree, keys: list[int]) -> Batch:
        """The words of every child ``tree / k`` (int keys), derived in one vectorised
        call; seed child j with ``batch.seed(j, node)``. Hand it back with ``release``."""
        n = len(keys)
        # Buffers come in power-of-two sizes, the first n rows used: chunks of varying
        # length (a parallel map's guided chunks) reuse a few buffers instead of building
        # seeders for every new length.
        size = 1 << max(n - 1, 0).bit_length()
        try:
            batch = self._free.setdefault(size, []).pop()
        except IndexError:
            batch = Batch(self, size)
        else:
            if any(made is not now for made, now in zip(batch.targets, self._targets(), strict=True)):
                batch = Batch(self, size)  # a library swapped its generator since this one was made
        if self.count:
            expand_globals(tree.states(keys, 4, WORDS_GLOBALS_KEY), out=batch.rows[:n])
            batch.refresh()
        return batch

    def _targets(self) -> list[object]:
        return [controller.target() for controller, _, hi in self.steps if hi]

    def release(self, batch: Batch) -> None:
        """Hand a batch's buffers back for the next ``batch`` call (a few are kept)."""
        free = self._free.setdefault(len(batch.rows), [])
        if len(free) < 4 and len(self._free) < 16:
            free.append(batch)


class Batch:
    """The words of a run of children for one ``Plan``, and each controller's seeders for
    each row, made once: the buffers are refilled batch after batch."""

    __slots__ = ("plan", "rows", "refreshers", "seeders", "targets")

    def __init__(self, plan: Plan, n: int) -> None:
        self.plan = plan
        self.rows = np.empty((n, plan.count), dtype=np.uint32)
        self.refreshers: list[Callable[[], None]] = []
        per_controller = []
        for controller, lo, hi in plan.steps:
            if hi:
                refresh, seeders = controller.row_seeders(self.rows[:, lo:hi])
                if refresh is not None:
                    self.refreshers.append(refresh)
                per_controller.append(seeders)
        self.seeders = [[f for seeders in row for f in seeders] for row in zip(*per_controller, strict=True)]
        if not per_controller:
            self.seeders = [[] for _ in range(n)]
        self.targets = plan._targets()  # what the seeders write into (see LibController.target)

    def refresh(self) -> None:
        """After the rows were refilled: let controllers do their per-batch work."""
        for refresh in self.refreshers:
            refresh()

    def seed(self, j: int, node: NodeRef) -> None:
        """Seed every controller of the plan for child ``j`` (whose node is ``node``,
        made only if a controller seeds from the node itself)."""
        for seed in self.seeders[j]:
            seed()
        if self.plan.node_seeders:
            resolved = resolve(node)
            for seed_node in self.plan.node_seeders:
                seed_node(resolved)


def _check_slots(reader: LibController, writer: LibController) -> None:
    """Refuse ``reader`` reading an expansion word that ``writer`` overwrites in batches."""
    if reader.words is None:
        return
    start, count = reader.words
    clash = [w for w in writer.slots if start <= w < start + count]
    if clash:
        raise ValueError(
            f"controller {reader.name!r} reads globals word {clash[0]}, where batches hold {writer.name!r}'s "
            f"position (seedtree.core.layout): give it words outside {sorted(writer.slots)}"
        )


class Registry:
    """The registered controllers by name, and the caches built from them (which modules
    are installed, which registered modules are not imported yet, seeding plans). Any
    change of the registration empties the caches."""

    def __init__(self) -> None:
        self._controllers: dict[str, LibController] = {}
        self._installed: dict[str, bool] = {}
        self._plans: dict[tuple[LibController, ...], Plan] = {}
        self._missing_at = -1  # len(sys.modules) when ``_missing`` was computed
        self._missing: frozenset[str] = frozenset()

    def register(self, controller: LibController) -> LibController:
        """Add (or replace, by name) a controller; returns it."""
        if not isinstance(controller, LibController):
            raise TypeError(f"register() takes a LibController instance, got {type(controller).__name__}")
        if not controller.name or not controller.module:
            raise ValueError("a controller needs a non-empty name and module")
        for other in self._controllers.values():
            if other.name != controller.name:
                _check_slots(controller, other)
                _check_slots(other, controller)
        self._controllers[controller.name] = controller
        self._plans.clear()
        self._missing_at = -1
        return controller

    def unregister(self, name: str) -> None:
        """Remove the controller registered under ``name``."""
        del self._controllers[name]
        self._plans.clear()
        self._missing_at = -1

    def get(self, name: str) -> LibController | None:
        """The controller registered under ``name``, or None."""
        return self._controllers.get(name)

    def all(self) -> dict[str, LibController]:
        """The registered controllers by name (a copy)."""
        return dict(self._controllers)

    def installed(self, module: str) -> bool:
        """Whether ``module`` can be imported here (looked up once, then remembered)."""
        if module not in self._installed:
            self._installed[module] = importlib.util.find_spec(module) is not None
        return self._installed[module]

    def loaded_modules(self) -> tuple[str, ...]:
        """The registered libraries this process has imported (what a worker should seed)."""
        return tuple(sorted({c.module for c in self._controllers.values() if sys.modules.get(c.module) is not None}))

    def missing_modules(self) -> frozenset[str]:
        """Registered libraries that are installed but not imported yet (recomputed only
        after new imports)."""
        if self._missing_at != len(sys.modules):
            self._missing_at = len(sys.modules)
            self._missing = frozenset(
                c.module
                for c in self._controllers.values()
                if sys.modules.get(c.module) is None and self.installed(c.module)
            )
        return self._missing

    def active(self, import_missing: ImportMissing = False) -> list[LibController]:
        """The controllers whose library is loaded and usable. ``import_missing=True``
        imports every installed registered library first; a collection of module names
        imports just those."""
        wanted = None if isinstance(import_missing, bool) else set(import_missing)
        result = []
        for controller in self._controllers.values():
            if sys.modules.get(controller.module) is None:  # never imported, or blocked (None)
                if wanted is None:
                    if not (import_missing and self.installed(controller.module)):
                        continue
                elif controller.module not in wanted:
                    continue
                importlib.import_module(controller.module)
            if controller.usable():
                result.append(controller)
        return result

    def plan(self, import_missing: ImportMissing = False) -> Plan:
        """The (cached) plan for the controllers ``active(import_missing)`` returns now."""
        chosen = self.active(import_missing)
        key = tuple(chosen)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = Plan(chosen)
        return plan


REGISTRY = Registry()
for _cls in (PythonRandom, NumpyGlobal, TorchCPU, TorchCUDA):
    REGISTRY.register(_cls())


def register(controller: LibController) -> LibController:
    """Add (or replace, by name) a controller; returns it."""
    return REGISTRY.register(controller)


def unregister(name: str) -> None:
    """Remove a controller by name (KeyError if absent)."""
    REGISTRY.unregister(name)
