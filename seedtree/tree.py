"""SeedTree: a stream named by (root entropy, path).

A node is an immutable value. Its whole identity is ``(entropy, path)``; it pickles to
those, compares and hashes by them, and every generator it makes is a pure function of
them. For an all-int path, ``node.seed_sequence()`` equals
``numpy.random.SeedSequence(entropy, spawn_key=path)`` and ``node.numpy()`` draws exactly
what NumPy's canonical ``Generator(PCG64(SeedSequence(entropy, spawn_key=path)))`` draws.

Word layout. A node's pool expands into a long sequence of 32-bit words
(``generate_state``); each consumer reads its own far-apart range of it, so the
generators a node makes for different libraries never share seed material:

==================  ===================  ========================================
words               used by              how
==================  ===================  ========================================
[0, n)              NumPy bit generators  exactly SeedSequence.generate_state
[2**24, +4)         ``random``            ``random.seed(128-bit int)``
[2*2**24, +624)     NumPy's global        whole MT19937 key
[3*2**24, +624)     torch CPU             whole MT19937 state (not 32-bit manual_seed)
[4*2**24 + 2d, +2)  torch CUDA device d   64-bit Philox seed (``seed_int(64, d)``)
==================  ===================  ========================================
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.random.bit_generator import ISpawnableSeedSequence

from . import mixing
from ._optional import require
from .keys import Key, check_int_keys, check_key, key_words

if TYPE_CHECKING:
    import random as _random

    import torch as _torch

    from .manifest import Manifest

WORDS_RANDOM = 1 << 24
WORDS_NUMPY_GLOBAL = 2 << 24
WORDS_TORCH_CPU = 3 << 24
WORDS_CUDA = 4 << 24
MT_WORDS = 624
ENV_ENTROPY = "SEEDTREE_ENTROPY"

BIT_GENERATORS = {
    "PCG64": np.random.PCG64,
    "PCG64DXSM": np.random.PCG64DXSM,
    "SFC64": np.random.SFC64,
    "Philox": np.random.Philox,
    "MT19937": np.random.MT19937,
}

_BIG_ENDIAN = sys.byteorder == "big"


def _bit_generator_class(bit_generator: str | type) -> type:
    if isinstance(bit_generator, type) and issubclass(bit_generator, np.random.BitGenerator):
        return bit_generator
    try:
        return BIT_GENERATORS[bit_generator]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown bit generator {bit_generator!r}; use one of {sorted(BIT_GENERATORS)} "
            "or a numpy.random.BitGenerator subclass"
        ) from None


class _NodeSeed(ISpawnableSeedSequence):
    """What a bit generator made by seedtree sees as its seed sequence.

    It hands out the same words as the node's SeedSequence would, from precomputed words
    when it has them (that is what makes a ready Generator cost about a microsecond), and
    spawns like NumPy's (statefully, from the real SeedSequence).
    """

    __slots__ = ("_node", "_prefix", "_real")

    def __init__(self, node: SeedTree, prefix: np.ndarray | None = None) -> None:
        self._node = node
        self._prefix = prefix
        self._real: np.random.SeedSequence | None = None

    def generate_state(self, n_words: int, dtype: Any = np.uint32) -> np.ndarray:
        dtype = np.dtype(dtype)
        if dtype == np.uint32:
            count = n_words
        elif dtype == np.uint64:
            count = 2 * n_words
        else:
            raise ValueError("only support uint32 or uint64")
        prefix = self._prefix
        if prefix is not None and count <= len(prefix):
            words = prefix[:count].copy()
        else:
            words = self._node.words(0, count)
        if dtype == np.uint64:
            if _BIG_ENDIAN:
                words = words.byteswap()
            return words.view(np.uint64)
        return words

    def _seed_sequence(self) -> np.random.SeedSequence:
        if self._real is None:
            self._real = self._node.seed_sequence()
        return self._real

    def spawn(self, n_children: int) -> list[np.random.SeedSequence]:
        return self._seed_sequence().spawn(n_children)

    @property
    def entropy(self) -> int:
        return self._node.entropy

    @property
    def spawn_key(self) -> tuple[int, ...]:
        return self._node.spawn_key

    @property
    def n_children_spawned(self) -> int:
        return self._seed_sequence().n_children_spawned

    pool_size = mixing.POOL_SIZE

    def __repr__(self) -> str:
        return f"<seed of {self._node!r}>"


def torch_cpu_state(words: np.ndarray, initial_seed: int) -> np.ndarray:
    """The byte image of a torch CPU generator whose whole MT19937 state is ``words``.

    Layout of torch's CPUGeneratorImplState (5056 bytes): initial seed u64, left i32,
    seeded i32, next u64, state u64[624], then cached normals (zeroed: none pending).
    """
    image = np.zeros(5056, dtype=np.uint8)
    image[0:8] = np.frombuffer(int(initial_seed).to_bytes(8, "little"), dtype=np.uint8)
    image[8:16] = np.frombuffer((1).to_bytes(4, "little") * 2, dtype=np.uint8)  # left, seeded
    image[24 : 24 + 8 * MT_WORDS].view("<u8")[:] = words
    return image


class SeedTree:
    """A node of the seed tree: root entropy plus a path of keys.

    Guarantees:

    - *Purity*: every stream a node makes depends only on ``(entropy, path)``: not on the
      process, thread, worker, rank or device that makes it, nor on what ran before.
    - *Independence*: distinct paths give distinct SeedSequence pools (collision chance
      about n**2 / 2**128 for n nodes); str keys are 128-bit hashes (see ``seedtree.keys``).
    - *NumPy compatibility*: for an int path, ``seed_sequence()`` is
      ``SeedSequence(entropy, spawn_key=path)`` and ``numpy()`` draws what NumPy's
      canonical ``Generator(PCG64(...))`` draws, bit for bit.
    - *Immutability*: a node never changes; ``spawn`` is stateless (the same n children
      every call), unlike ``SeedSequence.spawn``.

    ``SeedTree()`` with no entropy draws 128 fresh bits from the OS and keeps them, so the
    run can still be replayed from ``entropy`` or the manifest.
    """

    __slots__ = ("_entropy", "_path", "_parent", "_state", "_spawn_key", "__weakref__")

    def __init__(self, entropy: int | None = None, path: Iterable[Key] = ()) -> None:
        if entropy is None:
            entropy = secrets.randbits(128)
        elif isinstance(entropy, (bool, np.bool_)) or not isinstance(entropy, (int, np.integer)):
            raise TypeError(
                f"entropy must be a non-negative int (any size), got {type(entropy).__name__} "
                f"{entropy!r}; for a SeedSequence use SeedTree.from_seed_sequence(ss)"
            )
        entropy = int(entropy)
        if entropy < 0:
            raise ValueError(f"entropy must be non-negative, got {entropy}; use abs() or a fresh SeedTree()")
        if isinstance(path, (str, bytes)):
            raise TypeError("path must be a sequence of keys, e.g. ('data',), not a bare str")
        self._entropy = entropy
        self._path = tuple(check_key(k, i) for i, k in enumerate(path))
        self._parent: SeedTree | None = None
        self._state: mixing.MixState | None = None
        self._spawn_key: tuple[int, ...] | None = None

    # -- construction ----------------------------------------------------------------

    @classmethod
    def from_seed_sequence(cls, seed_sequence: np.random.SeedSequence) -> SeedTree:
        """The node equal to a NumPy SeedSequence with int entropy (its spawn key as path)."""
        entropy = seed_sequence.entropy
        if not isinstance(entropy, (int, np.integer)):
            raise TypeError("only SeedSequences with int entropy map onto a SeedTree")
        return cls(int(entropy), tuple(int(k) for k in seed_sequence.spawn_key))

    @classmethod
    def from_env(cls, default: int | None = None) -> SeedTree | None:
        """The root handed over by ``seedtree run`` (env ``SEEDTREE_ENTROPY``); else
        ``SeedTree(default)`` if a default is given, else None."""
        value = os.environ.get(ENV_ENTROPY)
        if value is None or not value.strip():
            return None if default is None else cls(default)
        try:
            entropy = int(value.strip(), 0)
        except ValueError:
            raise ValueError(f"{ENV_ENTROPY}={value!r} is not an int; unset it or give decimal/hex entropy") from None
        return cls(entropy)

    @classmethod
    def from_manifest(cls, path: str | os.PathLike[str]) -> SeedTree:
        """Rebuild the root recorded in a manifest file (see ``seedtree.manifest``)."""
        from .manifest import Manifest

        return Manifest.load(path).root

    def child(self, *keys: Key) -> SeedTree:
        """The node ``self / k1 / k2 / ...``."""
        node = self
        for key in keys:
            node = node / key
        return node

    def __truediv__(self, key: Key) -> SeedTree:
        key = check_key(key, len(self._path))
        node = SeedTree.__new__(SeedTree)
        node._entropy = self._entropy
        node._path = self._path + (key,)
        node._parent = self
        node._state = None
        node._spawn_key = None
        return node

    def spawn(self, n: int, start: int = 0) -> list[SeedTree]:
        """Children ``self / start`` .. ``self / (start + n - 1)``.

        For a root, ``spawn(n)[i]`` equals ``SeedSequence(entropy).spawn(n)[i]``.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"spawn needs a non-negative int count, got {n!r}")
        return [self / (start + i) for i in range(int(n))]

    # -- identity -----------------------------------------------------------------------

    @property
    def entropy(self) -> int:
        """The root entropy (an int of any size)."""
        return self._entropy

    @property
    def path(self) -> tuple[Key, ...]:
        """The keys from the root to this node."""
        return self._path

    @property
    def parent(self) -> SeedTree | None:
        """The node one level up, or None for a root."""
        if not self._path:
            return None
        return self._parent if self._parent is not None else SeedTree(self._entropy, self._path[:-1])

    @property
    def root(self) -> SeedTree:
        """The node with this entropy and an empty path."""
        return SeedTree(self._entropy)

    @property
    def name(self) -> str:
        """The path as text, e.g. ``'data/augment/7'`` (``''`` for a root)."""
        return "/".join(k if isinstance(k, str) else repr(k) if isinstance(k, bytes) else str(k) for k in self._path)

    @property
    def spawn_key(self) -> tuple[int, ...]:
        """The path as SeedSequence spawn-key words (equal to ``path`` for int paths)."""
        if self._spawn_key is None:
            words: tuple[int, ...] = ()
            for key in self._path:
                words += key_words(key)
            self._spawn_key = words
        return self._spawn_key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SeedTree):
            return NotImplemented
        return self._entropy == other._entropy and self._path == other._path

    def __hash__(self) -> int:
        return hash((self._entropy, self._path))

    def __repr__(self) -> str:
        if self._path:
            return f"SeedTree({self._entropy}, path={self._path!r})"
        return f"SeedTree({self._entropy})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (SeedTree, (self._entropy, self._path))

    # -- derivation ---------------------------------------------------------------------

    def _mix_state(self) -> mixing.MixState:
        if self._state is None:
            parent = self._parent
            if parent is not None:
                self._state = mixing.absorb(parent._mix_state(), key_words(self._path[-1]))
            else:
                state = mixing.initial_state(mixing.int_to_words(self._entropy))
                self._state = mixing.absorb(state, self.spawn_key)
        return self._state

    @property
    def pool(self) -> tuple[int, int, int, int]:
        """The four pool words (equal to ``seed_sequence().pool``)."""
        return self._mix_state()[0]

    def seed_sequence(self) -> np.random.SeedSequence:
        """NumPy's ``SeedSequence(entropy, spawn_key=spawn_key)`` for this node."""
        return np.random.SeedSequence(self._entropy, spawn_key=self.spawn_key)

    def words(self, start: int, count: int) -> np.ndarray:
        """``count`` uint32 words of this node's expansion from offset ``start``."""
        return mixing.expand(self._mix_state()[0], start, count)

    def generate_state(self, n_words: int, dtype: Any = np.uint32) -> np.ndarray:
        """Same as ``seed_sequence().generate_state(n_words, dtype)``."""
        return _NodeSeed(self).generate_state(n_words, dtype)

    def seed_int(self, bits: int = 64, index: int = 0) -> int:
        """The ``index``-th ``bits``-bit int of this node, for APIs that only take an int
        (CUDA device d is seeded with ``seed_int(64, d)``)."""
        n = -(-bits // 32)
        words = self.words(WORDS_CUDA + index * n, n)
        value = 0
        for i, w in enumerate(words.tolist()):
            value |= w << (32 * i)
        return value & ((1 << bits) - 1)

    def states(self, keys: Iterable[Key] | np.ndarray, n_words: int = 4) -> np.ndarray:
        """The ``generate_state(n_words)`` words of each child ``self / k``, shape (n, n_words).

        An int array (or range) of keys is derived vectorised, with no per-child Python
        work; a 2-D array (n, depth) derives ``self / k[0] / k[1] ...`` per row.
        """
        if n_words < 1:
            raise ValueError(f"n_words must be at least 1, got {n_words}")
        if isinstance(keys, range):
            keys = np.arange(keys.start, keys.stop, keys.step, dtype=np.int64)
        elif not isinstance(keys, np.ndarray):
            keys = list(keys)
            if any(not isinstance(k, (int, np.integer)) or isinstance(k, bool) for k in keys):
                rows = [(self / k).generate_state(n_words) for k in keys]
                return np.stack(rows) if rows else np.empty((0, n_words), np.uint32)
        arr = check_int_keys(keys, len(self._path))
        if len(arr) == 0:
            return np.empty((0, n_words), dtype=np.uint32)
        pools, _ = mixing.absorb_many(self._mix_state(), arr)
        return mixing.expand_many(pools, n_words)

    def generators(
        self, keys: Iterable[Key] | np.ndarray, bit_generator: str | type = "PCG64", chunk: int = 4096
    ) -> Iterator[np.random.Generator]:
        """Yield a ready ``numpy.random.Generator`` for each child ``self / k``; each draws
        exactly what ``(self / k).numpy(bit_generator)`` draws. Keys are derived ``chunk``
        at a time, so memory stays bounded for any number of keys."""
        cls = _bit_generator_class(bit_generator)
        if isinstance(keys, range):
            keys = np.arange(keys.start, keys.stop, keys.step, dtype=np.int64)
        if not isinstance(keys, np.ndarray):
            keys = list(keys)
        for lo in range(0, len(keys), chunk):
            part = keys[lo : lo + chunk]
            states = self.states(part, n_words=8)
            for key, words in zip(part, states, strict=True):
                node = self / (int(key) if isinstance(key, np.integer) else key)
                yield np.random.Generator(cls(_NodeSeed(node, words)))

    # -- generators for this node -------------------------------------------------------

    def numpy(self, bit_generator: str | type = "PCG64") -> np.random.Generator:
        """A NumPy Generator for this node; with the default PCG64 it is bit-identical to
        ``np.random.default_rng(node.seed_sequence())``."""
        return np.random.Generator(_bit_generator_class(bit_generator)(_NodeSeed(self)))

    def bit_generator(self, bit_generator: str | type = "PCG64") -> np.random.BitGenerator:
        """Just the bit generator of ``numpy(bit_generator)``."""
        return _bit_generator_class(bit_generator)(_NodeSeed(self))

    def random(self) -> _random.Random:
        """A ``random.Random`` seeded with 128 bits of this node (never a small int)."""
        import random

        return random.Random(self.random_seed())

    def random_seed(self) -> int:
        """The 128-bit int this node seeds python's ``random`` with."""
        return int.from_bytes(self.words(WORDS_RANDOM, 4).astype("<u4").tobytes(), "little")

    def torch(self, device: Any = "cpu") -> _torch.Generator:
        """A ``torch.Generator`` on ``device`` for this node.

        On CPU the whole 624-word Mersenne Twister state is filled from the node (torch's
        ``manual_seed`` would keep only 32 bits); on CUDA the Philox generator gets a full
        64-bit seed.
        """
        torch = require("torch", "SeedTree.torch()")
        dev = torch.device(device)
        gen = torch.Generator(device=dev)
        if dev.type == "cpu":
            gen.set_state(torch.from_numpy(self.torch_cpu_state()))
        else:
            gen.manual_seed(self.seed_int(64, dev.index or 0))
        return gen

    def torch_cpu_state(self) -> np.ndarray:
        """The byte image a torch CPU generator is given for this node."""
        words = self.words(WORDS_TORCH_CPU, MT_WORDS + 2)
        seed = int(words[MT_WORDS]) | (int(words[MT_WORDS + 1]) << 32)
        return torch_cpu_state(words[:MT_WORDS], seed)

    # -- provenance ---------------------------------------------------------------------

    def manifest(self, **fields: Any) -> Manifest:
        """A provenance manifest for a run rooted here (see ``seedtree.manifest``)."""
        from .manifest import Manifest

        return Manifest.collect(self, **fields)
