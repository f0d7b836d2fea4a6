"""SeedTree: a stream named by (root entropy, path).

A node is an immutable value. Its whole identity is ``(entropy, path)``; it pickles to
those, compares and hashes by them, and every generator it makes is a pure function of
them. For an all-int path, ``node.seed_sequence()`` equals
``numpy.random.SeedSequence(entropy, spawn_key=path)`` and ``node.numpy()`` draws exactly
what NumPy's canonical ``Generator(PCG64(SeedSequence(entropy, spawn_key=path)))`` draws.

The words each library reads are given by ``seedtree.core.layout``; the manifest, the
process-wide controllers and the command line all build on this value, never the reverse.
"""

from __future__ import annotations

import functools
import os
import secrets
import warnings
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from . import mixing
from .bitgen import BIT_GENERATORS, SEED_REQUEST, NodeSeed, as_uint64, bit_generator_class
from .keys import KEY_LIMIT, Key, check_int_keys, check_key, key_words
from .layout import (
    GLOBALS_WORDS,
    JAX_WORDS,
    MT_WORDS,
    WORD_LIMIT,
    WORDS_CUDA,
    WORDS_GLOBALS_KEY,
    WORDS_JAX,
    WORDS_RANDOM,
    WORDS_TORCH_CPU,
    expand_globals,
    python_random_state,
    torch_cpu_image,
)
from .optional import require

__all__ = ["BIT_GENERATORS", "ChildGenerators", "SeedTree"]

_NodeSeed = NodeSeed  # the name that pickles made by seedtree 0.1 refer to

if TYPE_CHECKING:
    import random as _random

    import jax as _jax
    import torch as _torch


def _range_keys(keys: range) -> np.ndarray:
    """A range of valid keys as a uint32 array."""
    return np.arange(
        keys.start,
        keys.stop,
        keys.step,
        dtype=np.int64,  # pragma: no mutate - NumPy's default here, but Windows' int32 would overflow
    ).astype(np.uint32)


class SeedTree:
    """A node of the seed tree: root entropy plus a path of keys.

    Guarantees:

    - *Purity*: every stream a node makes depends only on ``(entropy, path)``: not on the
      process, thread, worker, rank or device that makes it, nor on what ran before.
    - *Independence*: distinct paths of one root give distinct SeedSequence pools
      (collision chance about n**2 / 2**128 for n nodes); str keys are 128-bit hashes (see
      ``seedtree.keys``). Roots below 2**128 (what ``SeedTree()`` draws) never alias each
      other's nodes. A larger entropy is NumPy's concatenation of words, so it can alias a
      smaller root with a longer path: ``SeedTree(2**128)`` draws what ``SeedTree(0) / 1``
      draws, as NumPy's ``SeedSequence`` does.
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
        if seed_sequence.pool_size != mixing.POOL_SIZE:
            raise ValueError(
                f"this SeedSequence has pool_size={seed_sequence.pool_size}; a SeedTree is NumPy's default "
                f"pool of {mixing.POOL_SIZE} words, so it would draw different numbers"
            )
        return cls(int(entropy), tuple(int(k) for k in seed_sequence.spawn_key))

    if TYPE_CHECKING:
        # Deprecated entry points of seedtree 0.1, attached at import by the layer that owns
        # each concept (seedtree/runtime/deprecated.py), so that this module imports nothing
        # above it; declared here for type checkers only. They go in seedtree 1.0.

        @classmethod
        def from_env(cls, default: int | None = None) -> SeedTree | None: ...

        @classmethod
        def from_manifest(cls, path: str | os.PathLike[str]) -> SeedTree: ...

        def manifest(self, **fields: Any) -> Any: ...

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

    def children(self, keys: Iterable[Key] | np.ndarray) -> list[SeedTree]:
        """``[self / k for k in keys]``; int keys (a list, range or array) are validated
        all at once, then each child costs one small object (a DataLoader batch, a chunk
        of tasks)."""
        if not isinstance(keys, (np.ndarray, range)):
            keys = list(keys)
        arr = self._int_keys(keys)
        if arr is None:
            return [self / k for k in keys]
        if arr.ndim != 1:
            return [self.child(*row) for row in arr.tolist()]
        new, cls, path = SeedTree.__new__, SeedTree, self._path
        nodes = []
        for key in arr.tolist():
            node = new(cls)
            node._entropy = self._entropy
            node._path = path + (key,)
            node._parent = self
            node._state = None
            node._spawn_key = None
            nodes.append(node)
        return nodes

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
            words: list[int] = []
            for key in self._path:
                words.extend(key_words(key))
            self._spawn_key = tuple(words)
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
        return (_unpickle, (self._entropy, self._path))

    # -- derivation ---------------------------------------------------------------------

    def _mix_state(self) -> mixing.MixState:
        state = self._state  # pragma: no mutate - a cached state is speed only (the walk below finds it)
        if state is not None:
            return state
        # Walk up to the nearest ancestor whose state is known (a loop, not recursion: a
        # path built by ``/`` may be thousands of levels deep), then absorb the keys down.
        chain = []
        node = self
        # Where the walk stops is speed only: absorbing the whole path from the root gives
        # the same state as absorbing the keys below a cached ancestor.
        while node._state is None and node._parent is not None:  # pragma: no mutate
            chain.append(node)
            node = node._parent
        if node._state is None:  # made directly from (entropy, path): mix the whole path
            node._state = mixing.absorb(mixing.initial_state(mixing.int_to_words(node._entropy)), node.spawn_key)
        state = node._state
        for child in reversed(chain):
            state = child._state = mixing.absorb(state, key_words(child._path[-1]))
        return state

    @property
    def pool(self) -> tuple[int, int, int, int]:
        """The four pool words (equal to ``seed_sequence().pool``)."""
        return self._mix_state()[0]

    def seed_sequence(self) -> np.random.SeedSequence:
        """NumPy's ``SeedSequence(entropy, spawn_key=spawn_key)`` for this node."""
        return np.random.SeedSequence(self._entropy, spawn_key=self.spawn_key)

    def words(self, start: int, count: int) -> np.ndarray:
        """``count`` uint32 words of this node's expansion from offset ``start``.

        Offsets must stay below 2**30: the expansion's hash constants cycle with that
        period, so word ``2**30 + i`` would repeat word ``i`` (the NumPy seed words)."""
        if not 0 <= start <= start + count <= WORD_LIMIT:
            raise ValueError(
                f"words({start}, {count}) is outside the node's {WORD_LIMIT} distinct words [0, 2**30); "
                "offsets and counts must be non-negative and end below 2**30"
            )
        return mixing.expand(self._mix_state()[0], start, count)

    def generate_state(self, n_words: int, dtype: Any = np.uint32) -> np.ndarray:
        """Same as ``seed_sequence().generate_state(n_words, dtype)``."""
        return NodeSeed(self).generate_state(n_words, dtype)

    def seed_int(self, bits: int = 64, index: int = 0) -> int:
        """The ``index``-th ``bits``-bit int of this node, for APIs that only take an int
        (CUDA device d is seeded with ``seed_int(64, d)``)."""
        if isinstance(bits, bool) or not isinstance(bits, int) or bits < 1:
            raise ValueError(f"seed_int needs bits >= 1, got {bits!r}")
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
            raise ValueError(f"seed_int needs an index >= 0, got {index!r}")
        n = -(-bits // 32)
        words = self.words(WORDS_CUDA + int(index) * n, n)
        value = 0
        for i, w in enumerate(words.tolist()):
            value |= w << (32 * i)
        return value & ((1 << bits) - 1)

    def states(
        self, keys: Iterable[Key] | np.ndarray, n_words: int = 4, start: int = 0, out: np.ndarray | None = None
    ) -> np.ndarray:
        """The ``generate_state(n_words)`` words of each child ``self / k``, shape (n, n_words);
        with ``start``, its words ``start .. start + n_words`` (``(self / k).words(start, n_words)``).
        With ``out`` (a C-contiguous uint32 array of shape (n, n_words)), they are written
        there and ``out`` is returned (callers seeding batch after batch reuse one buffer).

        An int array (or range, or list of ints) of keys is derived vectorised, with no
        per-child Python work; a 2-D array (n, depth) derives ``self / k[0] / k[1] ...`` per
        row. Keys are validated like any path key (ints in [0, 2**32), no bools); a list
        holding str or bytes keys is derived one child at a time.
        """
        if isinstance(n_words, bool) or not isinstance(n_words, (int, np.integer)) or n_words < 1:
            raise ValueError(f"n_words must be an int of at least 1, got {n_words!r}")
        n_words = int(n_words)
        if not isinstance(keys, (np.ndarray, range)):
            keys = list(keys)
        valid_start = isinstance(start, (int, np.integer)) and not isinstance(start, bool)
        if not valid_start or not 0 <= start <= WORD_LIMIT - n_words:
            raise ValueError(f"start must be an int with start + n_words <= 2**30, got start={start!r}")
        arr = self._int_keys(keys)
        if out is not None:
            n = len(keys)  # a list, a range or an array (of rows): one key or row per child
            if not (
                isinstance(out, np.ndarray)
                and out.dtype == np.uint32
                and out.flags.c_contiguous
                and out.shape == (n, n_words)
            ):
                raise ValueError(f"out must be a C-contiguous uint32 array of shape {(n, n_words)}")
        if arr is None:
            # a list holding a str or bytes key, so never empty (an empty list is int keys)
            result = np.stack([(self / k).words(start, n_words) for k in keys])
        elif start == 0:
            result = mixing.derive_states(self._mix_state(), arr, n_words)
        elif len(arr) == 0:
            result = np.empty((0, n_words), np.uint32)
        else:
            return mixing.expand_at(mixing.absorb_many(self._mix_state(), arr)[0], int(start), n_words, out)
        if out is not None:
            np.copyto(out, result)
            return out
        return result

    def _int_keys(self, keys: list[Key] | range | np.ndarray) -> np.ndarray | None:
        """Validated uint32 keys (n,) or (n, depth), or None for a list holding str/bytes keys."""
        if isinstance(keys, range):
            return _range_keys(self._checked_range(keys))
        if isinstance(keys, list):
            # Which path checks a list is speed only for keys in range: check_int_keys refuses a
            # key outside [0, 2**32) with check_key's message at the same position, but keys
            # that int64 cannot hold must be named before the conversion.
            if keys and set(map(type, keys)) == {int}:
                ints = cast("list[int]", keys)  # pragma: no mutate - cast is for the type checker only
                if 0 <= min(ints) and max(ints) < KEY_LIMIT:  # plain in-range ints (a batch): checked
                    return np.asarray(ints, dtype=np.uint32)
            if any(not isinstance(k, (int, np.integer)) or isinstance(k, bool) for k in keys):
                for k in keys:
                    check_key(k, len(self._path))  # bools and floats fail here, with the key named
                return None
            for k in keys:  # plain ints: range-check each, so huge ones are named, not coerced
                if not 0 <= int(k) < KEY_LIMIT:  # ints (checked just above)
                    check_key(k, len(self._path))
            keys = np.asarray(keys, dtype=np.int64)
        return check_int_keys(keys, len(self._path))

    def _checked_range(self, keys: range) -> range:
        if len(keys):  # every key of a range lies between its first and its last
            check_key(keys[0], len(self._path))
            check_key(keys[-1], len(self._path))
        return keys

    def generators(
        self,
        keys: Iterable[Key] | np.ndarray,
        bit_generator: str | type = "PCG64",
        chunk: int = 4096,  # pragma: no mutate - memory only: any chunk gives the same generators
    ) -> Iterator[np.random.Generator]:
        """Yield a ready ``numpy.random.Generator`` for each child ``self / k`` (for a 2-D key
        array, ``self / k[0] / k[1] ...``); each draws exactly what ``(self / k).numpy(bit_generator)``
        draws. Keys are validated up front and derived ``chunk`` at a time, so memory stays
        bounded for any number of keys."""
        cls = bit_generator_class(bit_generator)
        if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
            raise ValueError(f"chunk must be a positive int, got {chunk!r}")
        if isinstance(keys, range):  # checked now, made into arrays a chunk at a time
            return self._generators(cls, self._checked_range(keys), int(chunk))
        if not isinstance(keys, np.ndarray):
            keys = list(keys)
        arr = self._int_keys(keys)
        if arr is None:
            return iter(ChildGenerators(self, cls, cast("list[Any]", keys), None))  # a list holding str or bytes
        return self._generators(cls, arr, int(chunk))

    def _generators(self, cls: type, keys: np.ndarray | range, chunk: int) -> Iterator[np.random.Generator]:
        for lo in range(0, len(keys), chunk):
            part = keys[lo : lo + chunk]
            yield from self._child_generators(cls, _range_keys(part) if isinstance(part, range) else part)

    def child_generators(
        self, keys: Iterable[Key] | np.ndarray, bit_generator: str | type = "PCG64"
    ) -> ChildGenerators:
        """The generators of the children ``self / k``, their seed words derived now in one
        vectorised call: ``child_generators(keys).make(i)`` is a new generator drawing
        exactly what ``(self / keys[i]).numpy(bit_generator)`` draws (``self.child(*keys[i])``
        for a row of a 2-D key array), made when asked for (about a microsecond: NumPy's own
        cost of a Generator). Keys are validated here. For a few thousand keys at most
        (their words are held); ``generators`` streams any number."""
        cls = bit_generator_class(bit_generator)
        if not isinstance(keys, (np.ndarray, range)):
            keys = list(keys)
        arr = self._int_keys(keys)
        if arr is None:
            return ChildGenerators(self, cls, cast("list[Any]", keys), None)  # a list holding str or bytes
        return self._child_generators(cls, arr)

    def _child_generators(self, cls: type, keys: np.ndarray) -> ChildGenerators:
        count, dtype = SEED_REQUEST.get(cls, (4, np.uint64))
        words = mixing.derive_states(self._mix_state(), keys, count * (2 if dtype is np.uint64 else 1))
        if dtype is np.uint64:
            words = as_uint64(words)
        # The keys as NodeSeed names them (a child's node is made from them if asked for).
        names: list[Any] = keys.tolist()
        if keys.ndim == 2:
            names = [tuple(k) for k in names]
        return ChildGenerators(self, cls, names, list(words))

    # -- generators for this node -------------------------------------------------------

    def numpy(self, bit_generator: str | type = "PCG64") -> np.random.Generator:
        """A NumPy Generator for this node; with the default PCG64 it is bit-identical to
        ``np.random.default_rng(node.seed_sequence())``."""
        # NumPy takes any ISpawnableSeedSequence as a seed; its stubs name only SeedSequence.
        generator: np.random.Generator = np.random.Generator(bit_generator_class(bit_generator)(NodeSeed(self)))  # type: ignore[arg-type]
        return generator

    def bit_generator(self, bit_generator: str | type = "PCG64") -> np.random.BitGenerator:
        """Just the bit generator of ``numpy(bit_generator)``."""
        made: np.random.BitGenerator = bit_generator_class(bit_generator)(NodeSeed(self))  # type: ignore[arg-type]
        return made

    def random_state(self) -> np.random.RandomState:
        """A legacy ``numpy.random.RandomState`` over MT19937 seeded from this node's whole
        SeedSequence (624 words, never a 32-bit int): what scikit-learn's ``random_state``
        takes. For an int path it equals
        ``RandomState(MT19937(SeedSequence(entropy, spawn_key=path)))``, bit for bit."""
        return np.random.RandomState(self.bit_generator("MT19937"))

    def jax(self, impl: str | None = None) -> _jax.Array:
        """A typed JAX key (``jax.random.wrap_key_data``) for this node; ``impl`` names a JAX
        PRNG implementation, ``"threefry2x32"`` when None (whatever JAX's configured default).

        The key data are the node's words ``layout.WORDS_JAX`` onwards, as many as the
        implementation takes (2 for threefry2x32, 4 for ``"rbg"`` and ``"unsafe_rbg"``): a
        function of ``(entropy, path)`` and ``impl`` only, never a 32-bit ``PRNGKey(int)``.
        ``tree.states(keys, n, start=WORDS_JAX)`` derives the key data of many children
        at once."""
        jax = require("jax", "SeedTree.jax()")
        impl = "threefry2x32" if impl is None else impl
        if not isinstance(impl, str):
            raise TypeError(f"impl must be a JAX PRNG implementation name such as 'rbg', got {type(impl).__name__}")
        shape = _jax_key_shape(impl)
        size = int(np.prod(shape))
        if size > JAX_WORDS:
            raise ValueError(f"the JAX PRNG {impl!r} takes {size} key words; seedtree reserves {JAX_WORDS} per node")
        data = self.words(WORDS_JAX, size)
        key: _jax.Array = jax.random.wrap_key_data(
            data.reshape(shape),  # pragma: no mutate - JAX's key shapes are all 1-D: reshape changes nothing
            impl=impl,
        )
        return key

    def random(self) -> _random.Random:
        """A ``random.Random`` whose whole 624-word MT19937 state is filled from this node
        (never a small int): the state the ``random`` controller gives the global module."""
        import random

        gen = random.Random()
        gen.setstate(self.python_random_state())
        return gen

    def random_seed(self) -> int:
        """Deprecated: a 128-bit int of this node (its globals key). Python's ``random`` is
        no longer seeded from an int: ``random.Random(node.random_seed())`` is *not*
        ``node.random()``; use ``node.random()`` or ``node.python_random_state()``."""
        warnings.warn(
            "SeedTree.random_seed() is deprecated: python's random now gets a whole state; use node.random() "
            "or node.python_random_state() (random.Random(node.random_seed()) is not node.random())",
            DeprecationWarning,
            stacklevel=2,
        )
        return int.from_bytes(self.words(WORDS_GLOBALS_KEY, 4).astype("<u4").tobytes(), "little")

    def python_random_state(self) -> tuple[int, tuple[int, ...], None]:
        """The ``random.setstate`` state this node gives python's ``random`` (see
        ``seedtree.core.layout.python_random_state``)."""
        return python_random_state(self.globals_words(WORDS_RANDOM, MT_WORDS))

    def globals_words(self, start: int = 0, count: int = GLOBALS_WORDS) -> np.ndarray:
        """Words ``start .. start + count`` of this node's globals expansion: what the
        global generators (python ``random``, NumPy's global, torch's CPU generator) are
        filled from (see ``seedtree.core.layout``)."""
        if not 0 <= start <= start + count <= GLOBALS_WORDS:
            raise ValueError(f"globals_words({start}, {count}) is outside [0, {GLOBALS_WORDS})")
        return expand_globals(self.words(WORDS_GLOBALS_KEY, 4)[None, :])[0, start : start + count]

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
        return gen  # type: ignore[no-any-return]  # torch is imported lazily, untyped here

    def torch_cpu_state(self) -> np.ndarray:
        """The byte image a torch CPU generator is given for this node."""
        words = self.globals_words(WORDS_TORCH_CPU, MT_WORDS + 2)
        # The seed torch reports (initial_seed()); the stream is the state words. Below 2**63,
        # as torch's own seeds are, so that it fits an int64 (a sample may return it).
        seed = (int(words[MT_WORDS]) | (int(words[MT_WORDS + 1]) << 32)) & (2**63 - 1)
        return torch_cpu_image(words[:MT_WORDS], seed)


@functools.cache
def _jax_key_shape(impl: str) -> tuple[int, ...]:
    """The key-data shape of a JAX PRNG implementation, read from JAX (abstractly: no
    computation runs); an unknown name or non-uint32 key data is refused."""
    jax = require("jax", "SeedTree.jax()")
    try:
        data = jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0, impl=impl)))
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{impl!r} is not a JAX PRNG implementation: {exc}") from None
    if data.dtype != np.uint32:
        raise ValueError(f"the JAX PRNG {impl!r} has {data.dtype} key data; seedtree fills uint32 key words only")
    return tuple(data.shape)


@functools.lru_cache(maxsize=256)
def _unpickle(entropy: int, path: tuple[Key, ...]) -> SeedTree:
    # Workers unpickle the same tree for task after task (joblib batches, Dask tasks):
    # handing back one shared node keeps its mixing state, so each task pays only for its
    # own key. Nodes are immutable values, so sharing them is safe.
    return SeedTree(entropy, path)


class ChildGenerators:
    """Generators for a run of children of one node (``SeedTree.child_generators``): the
    children's seed words were derived together, and ``make(i)`` builds child i's
    generator from its row. Immutable; safe to share between threads."""

    __slots__ = ("_tree", "_cls", "_keys", "_rows")

    def __init__(self, tree: SeedTree, cls: type, keys: list[Any], rows: list[np.ndarray] | None) -> None:
        self._tree, self._cls, self._keys, self._rows = tree, cls, keys, rows

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[np.random.Generator]:
        """A new generator for each child in turn (``make(i)`` for each i, written out: a
        call per child would cost a tenth of making its generator)."""
        tree, cls, generator, rows = self._tree, self._cls, np.random.Generator, self._rows
        if rows is None:
            for key in self._keys:
                yield generator(cls(NodeSeed(tree / key)))
        else:
            for key, row in zip(self._keys, rows, strict=True):  # pragma: no mutate - one row per key
                yield generator(cls(NodeSeed(None, tree, key, row)))

    def make(self, i: int) -> np.random.Generator:
        """A new generator for child i, drawing exactly what ``(tree / keys[i]).numpy()``
        (``tree.child(*keys[i])`` for a row of a 2-D key array) draws with the bit generator
        asked for (each call a fresh one)."""
        rows = self._rows
        if rows is None:  # keys holding str or bytes: their nodes, one by one
            seed = NodeSeed(self._tree / self._keys[i])
        else:
            seed = NodeSeed(None, self._tree, self._keys[i], rows[i])
        made: np.random.Generator = np.random.Generator(self._cls(seed))
        return made
