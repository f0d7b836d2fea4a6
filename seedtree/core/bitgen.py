"""Bit generators seeded from a node: the names seedtree accepts, and ``NodeSeed``, the
seed sequence a bit generator made by seedtree sees (the node's words, handed over once)."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from numpy.random.bit_generator import ISpawnableSeedSequence

from . import mixing
from .keys import Key
from .layout import MT_WORDS

__all__ = ["BIT_GENERATORS", "SEED_REQUEST", "NodeSeed", "as_uint64", "bit_generator_class"]


class Node(Protocol):
    """What a ``NodeSeed`` asks of its node (a ``SeedTree``, which this module does not
    import: the tree imports this module)."""

    @property
    def entropy(self) -> int: ...

    @property
    def spawn_key(self) -> tuple[int, ...]: ...

    def child(self, *keys: Key) -> Node: ...

    def __truediv__(self, key: Key) -> Node: ...

    def words(self, start: int, count: int) -> np.ndarray: ...

    def seed_sequence(self) -> np.random.SeedSequence: ...


BIT_GENERATORS = {
    "PCG64": np.random.PCG64,
    "PCG64DXSM": np.random.PCG64DXSM,
    "SFC64": np.random.SFC64,
    "Philox": np.random.Philox,
    "MT19937": np.random.MT19937,
}


_LITTLE_WORDS = np.dtype("<u4")
_LITTLE_PAIRS = np.dtype("<u8")


def as_uint64(words: np.ndarray) -> np.ndarray:
    """uint32 words read in pairs as uint64, low word first (``w[2k] | w[2k+1] << 32``), on
    any machine: what NumPy's ``SeedSequence.generate_state(n, np.uint64)`` returns. On a
    little-endian machine it is a view; on a big-endian one, a swap of the 32-bit halves
    (swapping each word's bytes instead would give other seeds than NumPy's)."""
    # copy=False makes these views where the byte order allows (every node's numpy() passes
    # here); a copy would give the same words, so the flags are not mutated.
    pairs = words.astype(
        _LITTLE_WORDS,
        copy=False,  # pragma: no mutate
    ).view(_LITTLE_PAIRS)
    return pairs.astype(
        np.uint64,
        copy=False,  # pragma: no mutate
    )


def bit_generator_class(bit_generator: str | type) -> type[np.random.BitGenerator]:
    """The bit generator class named (or given); an unknown one is refused."""
    if isinstance(bit_generator, type) and issubclass(bit_generator, np.random.BitGenerator):
        return bit_generator
    try:
        return BIT_GENERATORS[bit_generator]  # type: ignore[index]  # a type that is not a BitGenerator: KeyError
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown bit generator {bit_generator!r}; use one of {sorted(BIT_GENERATORS)} "
            "or a numpy.random.BitGenerator subclass"
        ) from None


class NodeSeed(ISpawnableSeedSequence):
    """What a bit generator made by seedtree sees as its seed sequence.

    It hands out the same words as the node's SeedSequence would and spawns like NumPy's
    (statefully, from the real SeedSequence). ``generators`` builds it from a parent and a
    key plus the precomputed words of the child: the node itself is only made if someone
    asks for it, and the words are handed over once, uncopied, to the bit generator being
    built (that is what makes a ready Generator cost about a microsecond).
    """

    __slots__ = ("_node_", "_parent", "_key", "_prefix", "_real")

    def __init__(
        self, node: Node | None, parent: Node | None = None, key: Any = None, prefix: np.ndarray | None = None
    ) -> None:
        # Built once per ready Generator: keep it to the bare assignments.
        self._node_ = node
        self._parent = parent
        self._key = key
        self._prefix = prefix

    @property
    def _node(self) -> Node:
        node = self._node_
        if node is None:
            key, parent = self._key, self._parent
            assert parent is not None  # made either from a node or from (parent, key)
            node = self._node_ = parent.child(*key) if isinstance(key, tuple) else parent / key
        return node

    def generate_state(self, n_words: int, dtype: Any = np.uint32) -> np.ndarray:
        prefix = self._prefix
        if prefix is not None:
            # Only the first request (the bit generator's constructor) may take the shared
            # words as they are; anything later gets fresh ones.
            self._prefix = None
            if len(prefix) == n_words and (dtype is prefix.dtype.type or np.dtype(dtype) == prefix.dtype):
                return prefix
        dtype = np.dtype(dtype)
        if dtype == np.uint32:
            count = n_words
        elif dtype == np.uint64:
            count = 2 * n_words
        else:
            raise ValueError("only support uint32 or uint64")
        words = self._node.words(0, count)
        return as_uint64(words) if dtype == np.uint64 else words

    def _seed_sequence(self) -> np.random.SeedSequence:
        real: np.random.SeedSequence | None = getattr(self, "_real", None)
        if real is None:  # made on first use only
            real = self._real = self._node.seed_sequence()
        return real

    def spawn(self, n_children: int) -> list[np.random.SeedSequence]:  # type: ignore[override]
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

    def __reduce__(self) -> tuple[Any, ...]:
        real = getattr(self, "_real", None)  # keeps a stateful spawn count, as NumPy's pickles do
        return (NodeSeed, (self._node,), {"_real": real} if real is not None else None)

    def __setstate__(self, state: dict[str, Any] | None) -> None:
        if state:
            self._real = state["_real"]

    def __repr__(self) -> str:
        return f"<seed of {self._node!r}>"


# The first (and only) generate_state request each bit generator's constructor makes:
# (count, dtype). ``generators`` derives exactly these words for a whole block at once.
SEED_REQUEST: dict[type, tuple[int, type]] = {
    np.random.PCG64: (4, np.uint64),
    np.random.PCG64DXSM: (4, np.uint64),
    np.random.SFC64: (3, np.uint64),
    np.random.Philox: (2, np.uint64),
    np.random.MT19937: (MT_WORDS, np.uint32),
}
