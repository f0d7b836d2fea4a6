"""SeedSequence's hash, re-expressed so it can be applied incrementally and vectorised.

NumPy's ``SeedSequence`` (after M. E. O'Neill's ``seed_seq_fe``) mixes an entropy array
into a pool of four 32-bit words, then expands the pool into as many output words as a
bit generator asks for. The mixing consumes the array one word at a time and its hash
constant advances by a fixed schedule, so the pool after ``entropy + path[:-1]`` plus the
constant reached there is a complete summary of a parent node: a child needs only its
own key words mixed in. That is what makes per-child derivation cheap, and what lets
many children be derived at once as array operations.

Everything here is checked bit for bit against ``numpy.random.SeedSequence`` by the tests.
The constants are the published ones of ``seed_seq_fe``/NumPy.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = [
    "BLOCK",
    "INIT_A",
    "INIT_B",
    "MASK32",
    "MIX_MULT_L",
    "MIX_MULT_R",
    "MULT_A",
    "MULT_B",
    "POOL_SIZE",
    "XSHIFT",
    "absorb",
    "absorb_many",
    "derive_states",
    "expand",
    "expand_at",
    "initial_state",
    "int_to_words",
]

POOL_SIZE = 4
INIT_A = 0x43B0D7E5
MULT_A = 0x931E8875
INIT_B = 0x8B51F9DD
MULT_B = 0x58F38DED
MIX_MULT_L = 0xCA01F9DD
MIX_MULT_R = 0x4973F715
XSHIFT = 16
MASK32 = 0xFFFFFFFF

# A mixing state: the four pool words and the hash constant to use next.
MixState = tuple[tuple[int, int, int, int], int]


def int_to_words(value: int) -> tuple[int, ...]:
    """Split a non-negative int into little-endian 32-bit words, as NumPy does (0 -> (0,))."""
    if value == 0:
        return (0,)
    words = []
    while value:
        words.append(value & MASK32)
        value >>= 32
    return tuple(words)


def _hashmix(value: int, hash_const: int) -> tuple[int, int]:
    value ^= hash_const
    hash_const = (hash_const * MULT_A) & MASK32
    value = (value * hash_const) & MASK32
    value ^= value >> XSHIFT
    return value, hash_const


def _mix(x: int, y: int) -> int:
    result = (MIX_MULT_L * x - MIX_MULT_R * y) & MASK32
    return result ^ (result >> XSHIFT)


@lru_cache(maxsize=256)
def initial_state(run_words: tuple[int, ...]) -> MixState:
    """The mixing state after a root's run entropy (what every node of that root shares).
    Cached: tasks unpickled in a worker each rebuild their node from the root."""
    hash_const = INIT_A
    mixer = [0, 0, 0, 0]
    for i in range(POOL_SIZE):
        word = run_words[i] if i < len(run_words) else 0
        mixer[i], hash_const = _hashmix(word, hash_const)
    for i_src in range(POOL_SIZE):
        for i_dst in range(POOL_SIZE):
            if i_src != i_dst:
                hashed, hash_const = _hashmix(mixer[i_src], hash_const)
                mixer[i_dst] = _mix(mixer[i_dst], hashed)
    return absorb(((mixer[0], mixer[1], mixer[2], mixer[3]), hash_const), run_words[POOL_SIZE:])


def absorb(state: MixState, words: tuple[int, ...]) -> MixState:
    """Mix further entropy words (a node's key words) into a state."""
    (p0, p1, p2, p3), c0 = state
    # _hashmix and _mix written out: this runs for every sample the DataLoader
    # integration binds, and the calls would cost more than the arithmetic.
    for word in words:
        c1 = (c0 * MULT_A) & MASK32
        h = ((word ^ c0) * c1) & MASK32
        h = (MIX_MULT_L * p0 - MIX_MULT_R * (h ^ (h >> XSHIFT))) & MASK32
        p0 = h ^ (h >> XSHIFT)
        c2 = (c1 * MULT_A) & MASK32
        h = ((word ^ c1) * c2) & MASK32
        h = (MIX_MULT_L * p1 - MIX_MULT_R * (h ^ (h >> XSHIFT))) & MASK32
        p1 = h ^ (h >> XSHIFT)
        c3 = (c2 * MULT_A) & MASK32
        h = ((word ^ c2) * c3) & MASK32
        h = (MIX_MULT_L * p2 - MIX_MULT_R * (h ^ (h >> XSHIFT))) & MASK32
        p2 = h ^ (h >> XSHIFT)
        c0 = (c3 * MULT_A) & MASK32
        h = ((word ^ c3) * c0) & MASK32
        h = (MIX_MULT_L * p3 - MIX_MULT_R * (h ^ (h >> XSHIFT))) & MASK32
        p3 = h ^ (h >> XSHIFT)
    return (p0, p1, p2, p3), c0


def _level_constants(hash_const: int, depth: int) -> tuple[list[list[tuple[np.uint32, np.uint32]]], int]:
    """Per key level and pool word: the (xor, multiply) constants of that hashmix."""
    levels = []
    for _ in range(depth):
        pairs = []
        for _ in range(POOL_SIZE):
            xor_const = hash_const
            hash_const = (hash_const * MULT_A) & MASK32
            pairs.append((np.uint32(xor_const), np.uint32(hash_const)))
        levels.append(pairs)
    return levels, hash_const


_U16 = np.uint32(XSHIFT)
_L = np.uint32(MIX_MULT_L)
_R = np.uint32(MIX_MULT_R)


def _absorb_level(
    pool: list[np.ndarray],
    scalar_pool: tuple[int, ...] | None,
    column: np.ndarray,
    pairs: list[tuple[np.uint32, np.uint32]],
    h: np.ndarray,
    t: np.ndarray,
) -> None:
    """Mix one key word per child (``column``) into the pool rows, in place.

    Every step writes into preallocated buffers: fresh temporaries would cost more than the
    arithmetic. ``scalar_pool`` is the shared parent pool on the first level (then ``L * x``
    is one constant per pool word).
    """
    for dst in range(POOL_SIZE):
        xor_const, mul_const = pairs[dst]
        row = pool[dst]
        np.bitwise_xor(column, xor_const, out=h)  # hashmix(key word)
        np.multiply(h, mul_const, out=h)
        np.right_shift(h, _U16, out=t)
        np.bitwise_xor(h, t, out=h)
        np.multiply(h, _R, out=h)  # mix(pool word, h) = (L*x - R*h) ^ >> 16
        if scalar_pool is not None:
            np.subtract(np.uint32((MIX_MULT_L * scalar_pool[dst]) & MASK32), h, out=row)
        else:
            np.multiply(row, _L, out=row)
            np.subtract(row, h, out=row)
        np.right_shift(row, _U16, out=t)
        np.bitwise_xor(row, t, out=row)


def _expand_rows(pool: list[np.ndarray], n_words: int, out: np.ndarray, h: np.ndarray, t: np.ndarray) -> None:
    """``out[:, j]`` = output word j of each child's pool (``generate_state``)."""
    _, xor_c, mul_c = _expand_constants(0, n_words)
    for j in range(n_words):
        np.bitwise_xor(pool[j % POOL_SIZE], xor_c[j], out=h)
        np.multiply(h, mul_c[j], out=h)
        np.right_shift(h, _U16, out=t)
        np.bitwise_xor(h, t, out=out[:, j])


@lru_cache(maxsize=256)
def _level_columns(hash_const: int, depth: int) -> tuple[tuple[tuple[np.ndarray, np.ndarray], ...], int]:
    """``_level_constants`` as (4, 1) columns per level (xor, multiply), for absorbing one
    key word into all four pool words of many children in one array operation each."""
    levels, hash_const = _level_constants(hash_const, depth)
    columns = []
    for pairs in levels:
        xor_c = np.array([[x] for x, _ in pairs], dtype=np.uint32)
        mul_c = np.array([[m] for _, m in pairs], dtype=np.uint32)
        xor_c.setflags(write=False)
        mul_c.setflags(write=False)
        columns.append((xor_c, mul_c))
    return tuple(columns), hash_const


@lru_cache(maxsize=256)
def _scaled_pool(pool: tuple[int, int, int, int]) -> np.ndarray:
    """``L * x`` for each word x of a parent pool, as a (4, 1) column (the first key level's
    half of ``mix``, the same for every child of that parent)."""
    scaled = np.array([[(MIX_MULT_L * p) & MASK32] for p in pool], dtype=np.uint32)
    scaled.setflags(write=False)
    return scaled


def absorb_many(state: MixState, keys: np.ndarray) -> tuple[np.ndarray, int]:
    """Vectorised ``absorb``: one child per row of ``keys`` (shape (n,) or (n, depth), uint32).

    Returns the children's pools as a (4, n) array (row i: pool word i of every child) and
    the (shared) next hash constant. The four pool words are updated together: nine array
    operations per key level, whatever n (a DataLoader batch of 64 pays for calls, not
    arithmetic).
    """
    keys = keys[:, None] if keys.ndim == 1 else keys
    n, depth = keys.shape
    levels, hash_const = _level_columns(state[1], depth)
    if depth == 0:
        return np.repeat(np.array(state[0], dtype=np.uint32)[:, None], n, axis=1), hash_const
    pool = np.empty((POOL_SIZE, n), dtype=np.uint32)
    h = np.empty((POOL_SIZE, n), dtype=np.uint32)
    t = np.empty((POOL_SIZE, n), dtype=np.uint32)
    for level in range(depth):
        xor_c, mul_c = levels[level]
        np.bitwise_xor(keys[:, level], xor_c, out=h)  # hashmix(key word), per pool word
        np.multiply(h, mul_c, out=h)
        np.right_shift(h, _U16, out=t)
        np.bitwise_xor(h, t, out=h)
        np.multiply(h, _R, out=h)  # mix(pool word, h) = (L*x - R*h) ^ >> 16
        if level == 0:
            np.subtract(_scaled_pool(state[0]), h, out=pool)
        else:
            np.multiply(pool, _L, out=pool)
            np.subtract(pool, h, out=pool)
        np.right_shift(pool, _U16, out=t)
        np.bitwise_xor(pool, t, out=pool)
    return pool, hash_const


# Children derived per block in ``derive_states``: the block's working set (six uint32
# rows, 768 KiB) stays in a 1 MiB L2 cache, and the ~50 ufunc calls per block cost
# about 1.5 ns per child.
BLOCK = 32768
SMALL = 1024  # up to this many children, absorb_many + expand_at (fewer calls) is faster


def derive_states(state: MixState, keys: np.ndarray, n_words: int) -> np.ndarray:
    """``generate_state(n_words)`` of each child of ``state``: row i absorbs ``keys[i]``
    (shape (n,) or (n, depth), uint32). Equal to ``expand_at(absorb_many(...)[0], 0, n_words)``,
    computed block by block in reused buffers (cache-sized, no temporaries)."""
    keys = keys[:, None] if keys.ndim == 1 else keys
    n, depth = keys.shape
    if 0 < n <= SMALL and depth:  # pragma: no mutate - which algorithm is speed only: the same words
        # A few children (a DataLoader batch): the same words with a third of the ufunc
        # calls, which cost more than the arithmetic at this size.
        return np.ascontiguousarray(expand_at(absorb_many(state, keys)[0], 0, n_words))
    out = np.empty((n, n_words), dtype=np.uint32)
    if n == 0:
        return out
    if depth == 0:
        out[:] = expand(state[0], 0, n_words)
        return out
    levels, _ = _level_constants(state[1], depth)
    size = min(n, BLOCK)
    rows = np.empty((POOL_SIZE, size), dtype=np.uint32)
    h = np.empty(size, dtype=np.uint32)
    t = np.empty(size, dtype=np.uint32)
    column_buf = np.empty(size, dtype=np.uint32)
    for lo in range(0, n, size):
        hi = min(n, lo + size)
        m = hi - lo
        pool = [rows[d, :m] for d in range(POOL_SIZE)]
        for level in range(depth):
            column = keys[lo:hi, level]
            if not column.flags.c_contiguous:  # pragma: no mutate - a copy or not: speed only
                np.copyto(column_buf[:m], column)
                column = column_buf[:m]
            _absorb_level(pool, state[0] if level == 0 else None, column, levels[level], h[:m], t[:m])
        _expand_rows(pool, n_words, out[lo:hi], h[:m], t[:m])
    return out


def expand_at(pools: Any, start: int, count: int, out: np.ndarray | None = None) -> np.ndarray:
    """Vectorised ``expand(pool, start, count)`` for many pools (a (4, n) array, as
    ``absorb_many`` gives, or four arrays of pool words): shape (n, count), each row
    contiguous; written into ``out`` (a C-contiguous uint32 array of that shape) when
    given. Row-major, for few children and many words (per-batch seeding); for many
    children and few words ``derive_states`` is faster."""
    pools = np.asarray(pools)  # four arrays of pool words are taken too
    n = pools.shape[1]
    phase = start % POOL_SIZE
    padded = -(-count // POOL_SIZE) * POOL_SIZE
    if out is None or padded != count:
        buf = np.empty((n, padded), dtype=np.uint32)
    else:
        if out.shape != (n, count) or out.dtype != np.uint32 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous uint32 array of shape {(n, count)}")
        buf = out
    # Word i reads pool word (start + i) % 4: lay the four pool words of each child side
    # by side in that phase, and tile them across the row (one copy).
    unit = np.roll(pools, -phase, axis=0) if phase else pools  # pragma: no mutate - a roll by 0: the same
    np.copyto(buf.reshape(n, padded // POOL_SIZE, POOL_SIZE), unit.T[:, None, :])
    _, xor_c, mul_c = _expand_constants(start, padded)
    np.bitwise_xor(buf, xor_c, out=buf)
    np.multiply(buf, mul_c, out=buf)
    t = _scratch(buf.size)[: buf.size].reshape(buf.shape)
    np.right_shift(buf, _U16, out=t)
    np.bitwise_xor(buf, t, out=buf)
    if buf is out:
        return out
    if out is not None:
        np.copyto(out, buf[:, :count])
        return out
    return buf[:, :count]  # a view (C-contiguous when no column is cut)


_SCRATCH = threading.local()


def _scratch(size: int) -> np.ndarray:
    """A per-thread scratch buffer of at least ``size`` words, kept between calls (a fresh
    half-megabyte temporary per DataLoader batch costs page faults, not arithmetic)."""
    # Not mutated: a cache only; a new buffer every call gives the same words.
    buf = getattr(_SCRATCH, "buf", None)  # pragma: no mutate
    if buf is None or buf.size < size:  # pragma: no mutate
        buf = _SCRATCH.buf = np.empty(size, dtype=np.uint32)
    return buf


@lru_cache(maxsize=64)
def _expand_constants(start: int, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output word i: which pool word it reads, the xor constant and the multiplier."""
    index = np.arange(start, start + count, dtype=np.int64)
    xor_c = np.empty(count, dtype=np.uint32)
    mul_c = np.empty(count, dtype=np.uint32)
    hash_const = (INIT_B * pow(MULT_B, start, 1 << 32)) & MASK32
    for i in range(count):
        xor_c[i] = hash_const
        hash_const = (hash_const * MULT_B) & MASK32
        mul_c[i] = hash_const
    for arr in (xor_c, mul_c):
        arr.setflags(write=False)
    pick = (index % POOL_SIZE).astype(np.intp)
    pick.setflags(write=False)
    return pick, xor_c, mul_c


def expand(pool: tuple[int, int, int, int], start: int, count: int) -> np.ndarray:
    """Output words ``start .. start+count`` of a pool; ``expand(pool, 0, n)`` is
    ``SeedSequence.generate_state(n)``. Words far apart (offsets below 2**30) use distinct
    hash constants, so disjoint ranges give unrelated words."""
    pick, xor_c, mul_c = _expand_constants(start, count)
    out = np.asarray(pool, dtype=np.uint32)[pick]
    out ^= xor_c
    out *= mul_c
    out ^= out >> XSHIFT
    result: np.ndarray = out
    return result
