"""A keyed permutation of [0, n) evaluated per position, in O(1) memory.

``KeyedPermutation(node, n)[positions]`` is the index at each position of a shuffled
order of ``range(n)``; nothing of size n is ever built, so a rank computes only its own
positions, for n up to 2**40. It is a balanced Feistel network on the smallest even
number of bits that covers n (a bijection on [0, 2**bits)), made a bijection on [0, n)
by cycle-walking: a position whose image falls outside [0, n) is mapped again until it
falls inside (Black and Rogaway, "Ciphers with Arbitrary Finite Domains", CT-RSA 2002).
The domain is under 4n, so fewer than 4 walks are needed on average.

The four round keys are 64-bit words of the node (``node.words(0, 8)``); the round
function is a 64-bit multiply-xorshift mix of (half, key), vectorised with NumPy. It is
a shuffle for data order, not a cipher: its job is that the order is a pure function of
the node and that nearby positions are not visibly correlated (see the tests).
"""

from __future__ import annotations

import numpy as np

from .tree import SeedTree

__all__ = ["MAX_N", "KeyedPermutation"]

MAX_N = 1 << 40
ROUNDS = 4
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S1 = np.uint64(31)
_S2 = np.uint64(29)
_BLOCK = 1 << 16  # positions per block: a block's five uint64 arrays fit a core's L2 cache
TABLE_BITS = 16  # halves of at most this many bits are looked up in round tables


class KeyedPermutation:
    """A bijection of [0, n) keyed by a node (see the module docstring). Indexing with an
    int returns an int; with an integer array, an int64 array of the same shape."""

    __slots__ = ("n", "_half", "_mask", "_keys", "_tables")

    def __init__(self, node: SeedTree, n: int) -> None:
        if not isinstance(node, SeedTree):
            raise TypeError(f"KeyedPermutation needs a SeedTree node, got {type(node).__name__}")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= MAX_N:
            raise ValueError(f"n must be an int in [0, 2**40], got {n!r}")
        self.n = int(n)
        bits = max(2, (self.n - 1).bit_length())  # at least 2: n = 0 gives (-1).bit_length() = 1
        bits += bits % 2
        self._half = np.uint64(bits >> 1)
        self._mask = np.uint64((1 << (bits // 2)) - 1)
        words = node.words(
            0,
            2 * ROUNDS,  # pragma: no mutate - more words: only the first 2 * ROUNDS are read
        ).astype(np.uint64)
        self._keys = [words[2 * r] | (words[2 * r + 1] << np.uint64(32)) for r in range(ROUNDS)]
        self._tables: list[np.ndarray] | None = None

    def _round_tables(self) -> list[np.ndarray]:
        """Each round's function of the right half, for every half value: a half has at most
        ``TABLE_BITS`` bits here, so a round becomes one table lookup and one xor instead of
        nine passes of arithmetic (the same values: the tables are the round function)."""
        tables = self._tables  # pragma: no mutate - tables built again are the same tables
        if tables is None:
            # Not mutated: a longer table or more scratch rows hold entries never read.
            halves = np.arange(1 << int(self._half), dtype=np.uint64)  # pragma: no mutate
            scratch = np.empty((2, len(halves)), dtype=np.uint64)  # pragma: no mutate
            tables = []
            for key in self._keys:
                f = scratch[0]
                np.bitwise_xor(halves, key, out=f)
                self._mix(f, scratch[1])
                np.bitwise_and(f, self._mask, out=f)
                tables.append(f.astype(np.int64))  # pragma: no mutate - below 2**16: float64 holds them too
            self._tables = tables  # built twice by racing threads at worst: the same tables
        return tables

    @staticmethod
    def _mix(f: np.ndarray, tmp: np.ndarray) -> None:
        """The round function's 64-bit multiply-xorshift, in place (before the mask)."""
        np.multiply(f, _M1, out=f)
        np.right_shift(f, _S1, out=tmp)
        np.bitwise_xor(f, tmp, out=f)
        np.multiply(f, _M2, out=f)
        np.right_shift(f, _S2, out=tmp)
        np.bitwise_xor(f, tmp, out=f)

    def _rounds(self, x: np.ndarray, scratch: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The Feistel network applied to ``x`` (uint64, left unchanged), computed in
        ``scratch`` (shape (4, len(x)) or more columns); returns ``out`` (of x's length and
        dtype) holding the result, or a view into the scratch when no ``out`` is given."""
        half, mask = self._half, self._mask
        left: np.ndarray = scratch[0, : len(x)]
        right: np.ndarray = scratch[1, : len(x)]
        f: np.ndarray = scratch[2, : len(x)]
        tmp: np.ndarray = scratch[3, : len(x)]
        np.right_shift(x, half, out=left)
        np.bitwise_and(x, mask, out=right)
        for key in self._keys:  # in place: a few passes over memory per round
            np.bitwise_xor(right, key, out=f)
            self._mix(f, tmp)
            np.bitwise_and(f, mask, out=f)
            np.bitwise_xor(f, left, out=f)
            left, right, f = right, f, left
        return self._joined(left, right, out)

    def _joined(self, left: np.ndarray, right: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        """``left << half | right``, written into ``out`` (or over ``left``)."""
        dest = left if out is None else out
        np.left_shift(left, int(self._half), out=dest)
        np.bitwise_or(dest, right, out=dest)
        return dest

    def _looked_up(self, x: np.ndarray, scratch: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``_rounds`` through the round tables: ``x`` int64 (left unchanged), ``scratch``
        int64 of shape (3, len(x)) or more columns, ``out`` as there."""
        half, mask, tables = int(self._half), int(self._mask), self._round_tables()
        left: np.ndarray = scratch[0, : len(x)]
        right: np.ndarray = scratch[1, : len(x)]
        f: np.ndarray = scratch[2, : len(x)]  # pragma: no mutate - any third row of the scratch
        np.right_shift(x, half, out=left)
        np.bitwise_and(x, mask, out=right)
        for table in tables:
            # Not mutated: every half is below the table's length, so no mode ever clips.
            table.take(right, out=f, mode="clip")  # pragma: no mutate
            np.bitwise_xor(f, left, out=f)
            left, right, f = right, f, left
        return self._joined(left, right, out)

    def __getitem__(self, positions: int | np.ndarray) -> int | np.ndarray:
        scalar = np.ndim(positions) == 0
        pos = np.asarray(positions)
        if pos.dtype.kind not in ("i", "u"):
            raise TypeError(f"positions must be integers, got dtype {pos.dtype}")
        if pos.size and (pos.min() < 0 or pos.max() >= self.n):
            raise IndexError(f"positions must be in [0, {self.n}), got {int(pos.min())}..{int(pos.max())}")
        flat = pos.reshape(-1)  # pragma: no mutate (NumPy reads any negative size as "the rest")
        out = np.empty(flat.size, dtype=np.int64)
        # Many positions of a domain of at most 2**32: the rounds by table (built once per
        # permutation, at most 2**16 entries a round), else the arithmetic itself.
        tabled = self._half <= TABLE_BITS and flat.size >= 1 << int(self._half)
        rounds, dtype = (self._looked_up, np.int64) if tabled else (self._rounds, np.uint64)
        # Block by block: the passes over memory run on arrays that stay in the CPU's
        # cache, instead of streaming the whole epoch through memory a pass at a time.
        scratch = np.empty((4, min(flat.size, _BLOCK)), dtype=dtype)  # pragma: no mutate (more rows: unused)
        n = dtype(self.n)
        # The rounds write each block straight into the result: every value is below 2**40,
        # so the int64 result read as uint64 holds the same bits (the arithmetic's dtype).
        result_as = out.view(dtype)
        for start in range(0, flat.size, _BLOCK):
            # Not mutated: the rounds only read their input, so a copy or a view is the same.
            x = flat[start : start + _BLOCK].astype(dtype, copy=False)  # pragma: no mutate
            block = rounds(x, scratch, result_as[start : start + len(x)])
            walk = np.flatnonzero(block >= n)
            while walk.size:  # cycle-walking: map again until inside [0, n)
                # block[walk] is a copy, so the rounds may use the scratch again.
                block[walk] = rounds(block[walk], scratch)
                walk = walk[block[walk] >= n]
        result = out.reshape(pos.shape)
        return int(result) if scalar else result

    def __len__(self) -> int:
        return self.n

    def __getstate__(self) -> dict[str, object]:
        # The round tables are a cache (up to 2 MB): rebuilt on demand, never pickled.
        return {"n": self.n, "_half": self._half, "_mask": self._mask, "_keys": self._keys}

    def __setstate__(self, state: dict[str, object] | tuple[None, dict[str, object]]) -> None:
        # A pickle made before the tables existed holds the default (None, slots) form.
        slots = state[1] if isinstance(state, tuple) else state
        for name, value in slots.items():
            setattr(self, name, value)
        self._tables = None
