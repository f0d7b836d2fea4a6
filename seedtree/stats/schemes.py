"""Named stream schemes: how k "independent" streams are made from one root.

A scheme turns ``(root, i)`` into stream ``i``: something that hands out the stream's
64-bit words in order. The battery never sees how a stream was made; it only sees the
words, which is the point: the ``seedtree`` scheme builds its streams exactly as the
library does (``SeedTree(root).generators(...)``), the others exactly as the recipes they
name do. Each scheme has a ``kind``:

- ``good``: claimed independent; the battery must pass them.
- ``control``: known bad (negative controls); the battery must FAIL them, or it proves nothing.
- ``common``: recipes seen in the wild, reported as measured (no claim either way).
- ``user``: a function ``i -> numpy.random.Generator`` given by the user.

A stream's 64-bit word is what ``Generator.integers(0, 2**64, dtype=uint64)`` returns:
the bit generator's raw 64-bit output for PCG64/SFC64/Philox, two 32-bit outputs (high
word first) for MT19937, and torch's ``random64`` for torch generators.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..core.tree import SeedTree

__all__ = [
    "CONTROLS",
    "GOOD",
    "GeneratorStream",
    "MASK64",
    "PCG_DEFAULT_INCREMENT_128",
    "PyRandomStream",
    "RandomStateStream",
    "SCHEMES",
    "SHIFT_DRAWS",
    "Scheme",
    "TorchStream",
    "WordStream",
    "get_scheme",
    "user_scheme",
]

# PCG's default 128-bit stream increment (pcg_random.hpp, PCG_DEFAULT_INCREMENT_128): the
# "same increment" every naive-pcg64 stream shares.
PCG_DEFAULT_INCREMENT_128 = 117397592171526113268558934119004209487
SHIFT_DRAWS = 1000
MASK64 = (1 << 64) - 1


class WordStream(Protocol):
    """One stream: ``take(n)`` returns its next ``n`` 64-bit words (uint64 array)."""

    def take(self, n: int) -> np.ndarray: ...


# Bit generators whose raw output is their 64-bit word: for them ``random_raw`` returns
# exactly what ``integers(0, 2**64)`` does, with less call overhead for short runs.
_RAW64 = (np.random.PCG64, np.random.PCG64DXSM, np.random.SFC64, np.random.Philox)
_RAW_BELOW = 4096  # integers() is faster per word beyond this


class GeneratorStream:
    """Words of a numpy Generator (``integers`` over the full 64-bit range, no rejection)."""

    __slots__ = ("_gen", "_raw")

    def __init__(self, gen: np.random.Generator) -> None:
        if not isinstance(gen, np.random.Generator):
            raise TypeError(f"a scheme must give numpy.random.Generator objects, got {type(gen).__name__}")
        self._gen = gen
        self._raw = gen.bit_generator.random_raw if type(gen.bit_generator) in _RAW64 else None

    def take(self, n: int) -> np.ndarray:
        if self._raw is not None and n < _RAW_BELOW:
            return self._raw(n)
        return self._gen.integers(0, 1 << 64, size=n, dtype=np.uint64)


class RandomStateStream:
    """Words of a legacy ``RandomState`` (two MT19937 outputs per word, high first)."""

    __slots__ = ("_rs",)

    def __init__(self, rs: np.random.RandomState) -> None:
        self._rs = rs

    def take(self, n: int) -> np.ndarray:
        return self._rs.randint(0, 1 << 64, size=n, dtype=np.uint64)


class TorchStream:
    """Words of a torch CPU generator: ``random_`` over the full int64 range (torch's random64)."""

    __slots__ = ("_gen", "_torch")

    def __init__(self, gen: Any) -> None:
        import torch

        self._torch = torch
        self._gen = gen

    def take(self, n: int) -> np.ndarray:
        out = self._torch.empty(n, dtype=self._torch.int64).random_(-(1 << 63), None, generator=self._gen)
        return out.numpy().view(np.uint64)


def _bit_gen_stream(bit_generator: np.random.BitGenerator) -> GeneratorStream:
    return GeneratorStream(np.random.Generator(bit_generator))


# -- the named schemes: each maps (root, indices) to streams ---------------------------------


def _seedtree(root: int, idx: range) -> list[WordStream]:
    # Exactly the library's own children: SeedTree(root) / i, as ready Generators.
    return [GeneratorStream(g) for g in SeedTree(root).generators(idx)]


def _numpy_spawn(root: int, idx: range) -> list[WordStream]:
    # SeedSequence(root).spawn(n)[i] is by NumPy's definition SeedSequence(root, spawn_key=(i,));
    # building it directly lets the "first outputs" stream start at any child index.
    return [GeneratorStream(np.random.default_rng(np.random.SeedSequence(root, spawn_key=(i,)))) for i in idx]


def _default_rng_plus_i(root: int, idx: range) -> list[WordStream]:
    return [GeneratorStream(np.random.default_rng(root + i)) for i in idx]


def _torch_generator(seed: int) -> TorchStream:
    from ..core.optional import require

    torch = require("torch", "the torch stream schemes")
    gen = torch.Generator()
    gen.manual_seed(seed)
    return TorchStream(gen)


def _torch_worker(root: int, idx: range) -> list[WordStream]:
    # torch.utils.data workers: worker i runs torch.manual_seed(base_seed + i).
    return [_torch_generator((root + i) & MASK64) for i in idx]


def _duplicated(root: int, idx: range) -> list[WordStream]:
    # Every stream starts from the same state, as forked workers that inherit one RNG do.
    return [GeneratorStream(np.random.default_rng(root)) for _ in idx]


def _shifted(root: int, idx: range) -> list[WordStream]:
    # One PCG64 stream; stream i starts SHIFT_DRAWS * i draws into it (overlapping streams).
    streams: list[WordStream] = []
    for i in idx:
        bg = np.random.PCG64(root)
        bg.advance(SHIFT_DRAWS * i)
        streams.append(_bit_gen_stream(bg))
    return streams


def _pcg64_with(state: int, inc: int) -> GeneratorStream:
    bg = np.random.PCG64()
    bg.state = {
        "bit_generator": "PCG64",
        "state": {"state": state % (1 << 128), "inc": inc % (1 << 128)},
        "has_uint32": 0,
        "uinteger": 0,
    }
    return _bit_gen_stream(bg)


def _naive_pcg64(root: int, idx: range) -> list[WordStream]:
    return [_pcg64_with(root + i, PCG_DEFAULT_INCREMENT_128) for i in idx]


def _pcg64_increments(root: int, idx: range) -> list[WordStream]:
    return [_pcg64_with(root, 2 * i + 1) for i in idx]


def _naive_mt19937(root: int, idx: range) -> list[WordStream]:
    # RandomState(seed + i); legacy seeding takes 32-bit ints, as such code always uses.
    return [RandomStateStream(np.random.RandomState((root + i) % (1 << 32))) for i in idx]


def _torch_32bit(root: int, idx: range) -> list[WordStream]:
    # Seeds that differ only above bit 32: torch's CPU manual_seed keeps the low 32 bits.
    return [_torch_generator(((root & 0xFFFFFFFF) | ((i + 1) << 32)) & MASK64) for i in idx]


class PyRandomStream:
    """Words of a python ``random.Random`` (two 32-bit outputs per word, low first: the
    order ``getrandbits`` fills a wide int)."""

    __slots__ = ("_r",)

    def __init__(self, r: Any) -> None:
        self._r = r

    def take(self, n: int) -> np.ndarray:
        return np.frombuffer(self._r.getrandbits(64 * n).to_bytes(8 * n, "little"), dtype="<u8").astype(np.uint64)


def _loader_globals(root: int, idx: range) -> list[WordStream]:
    # The global RNGs as seedtree's per-sample loader seeds them, sample after sample:
    # streams 3s, 3s + 1, 3s + 2 are python's random, NumPy's global RandomState and torch's
    # CPU generator of sample s of epoch 0 (node SeedTree(root) / 0 / s), built from the
    # word layout, whose states the controllers write (the binding tests check they match).
    from ..core.layout import MT_FRESH, MT_WORDS, WORDS_NUMPY_GLOBAL

    epoch = SeedTree(root) / 0
    streams: list[WordStream] = []
    for i in idx:
        node, library = epoch / (i // 3), i % 3
        if library == 0:
            streams.append(PyRandomStream(node.random()))
        elif library == 1:
            rs = np.random.RandomState()
            rs.set_state(("MT19937", node.globals_words(WORDS_NUMPY_GLOBAL, MT_WORDS), MT_FRESH, 0, 0.0))
            streams.append(RandomStateStream(rs))
        else:
            streams.append(TorchStream(node.torch()))
    return streams


@dataclass(frozen=True)
class Scheme:
    """A named way to make streams ``0, 1, 2, ...`` from a root.

    ``make(root, indices)`` returns one ``WordStream`` per index; stream ``i`` depends only
    on ``(root, i)``, so any range of streams can be built on its own.
    """

    name: str
    kind: str
    about: str
    make: Callable[[int, range], list[WordStream]]
    needs: str | None = None  # optional library the scheme imports

    def streams(self, root: int, indices: range) -> list[WordStream]:
        """The streams ``indices`` of this scheme for ``root``."""
        return self.make(root, indices)


SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in [
        Scheme("seedtree", "good", "children SeedTree(root) / i (the library's own derivation)", _seedtree),
        Scheme("numpy-spawn", "good", "SeedSequence(root).spawn(k): NumPy's recommended recipe", _numpy_spawn),
        Scheme("default-rng-plus-i", "common", "np.random.default_rng(root + i)", _default_rng_plus_i),
        Scheme(
            "torch-worker",
            "common",
            "torch.manual_seed(base_seed + i), DataLoader's worker formula",
            _torch_worker,
            needs="torch",
        ),
        Scheme("duplicated", "control", "every stream the same (forked workers sharing one RNG)", _duplicated),
        Scheme("shifted", "control", f"one PCG64 stream, stream i shifted by {SHIFT_DRAWS}*i draws", _shifted),
        Scheme("naive-pcg64", "control", "PCG64 with raw states root + i, one shared increment", _naive_pcg64),
        Scheme("naive-mt19937", "control", "np.random.RandomState(root + i)", _naive_mt19937),
        Scheme("pcg64-increments", "control", "one PCG64 state, increments 2i + 1", _pcg64_increments),
        Scheme(
            "torch-32bit",
            "control",
            "torch CPU generators seeded root + (i << 32) (only 32 bits kept)",
            _torch_32bit,
            needs="torch",
        ),
        Scheme(
            "loader-globals",
            "good",
            "random, numpy's global and torch as seedtree's loader seeds them, "
            "sample after sample (stream 3s + l: library l of sample s)",
            _loader_globals,
            needs="torch",
        ),
    ]
}

GOOD = tuple(n for n, s in SCHEMES.items() if s.kind == "good")
CONTROLS = tuple(n for n, s in SCHEMES.items() if s.kind == "control")


def user_scheme(func: Callable[[int], np.random.Generator], name: str | None = None) -> Scheme:
    """A scheme from a function ``i -> numpy.random.Generator`` (the root is not used: the
    function already holds whatever seed it derives from)."""
    if not callable(func):
        raise TypeError(f"a user scheme must be a function i -> numpy.random.Generator, got {func!r}")

    def make(root: int, idx: range) -> list[WordStream]:
        return [GeneratorStream(func(i)) for i in idx]

    label = name or getattr(func, "__qualname__", None) or repr(func)
    return Scheme(label, "user", f"user function {label}(i) -> Generator", make)


def get_scheme(scheme: str | Scheme | Callable[[int], np.random.Generator]) -> Scheme:
    """Resolve a scheme: a name from ``SCHEMES``, ``"module:function"`` naming a function
    ``i -> Generator``, a ``Scheme``, or such a function itself."""
    if isinstance(scheme, Scheme):
        return scheme
    if callable(scheme):
        return user_scheme(scheme)
    if not isinstance(scheme, str):
        raise TypeError(f"scheme must be a name, 'module:function' or a function, got {scheme!r}")
    if scheme in SCHEMES:
        return SCHEMES[scheme]
    if ":" in scheme:
        module_name, _, attr = scheme.partition(":")
        try:
            func = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(
                f"cannot load user scheme {scheme!r}: {exc}; give 'module:function' where "
                "function(i) returns a numpy.random.Generator"
            ) from None
        return user_scheme(func, name=scheme)
    raise ValueError(
        f"unknown scheme {scheme!r}; use one of {', '.join(SCHEMES)}, or 'module:function' "
        "for your own function i -> numpy.random.Generator"
    )
