"""Seed recovery for MT19937 streams seeded through ``init_genrand`` (a 32-bit seed).

``np.random.RandomState(seed)``, ``np.random.seed(seed)`` and ``torch.manual_seed(seed)``
(CPU) all fill MT19937's 624-word state with Matsumoto and Nishimura's 2002 ``init_genrand``
recurrence ``mt[0] = seed``, ``mt[j] = 1812433253 * (mt[j-1] ^ (mt[j-1] >> 30)) + j`` (mod
2**32), then twist once before the first output. Each step can be undone as far as
needed, so the first 624 32-bit outputs of such a stream give back the seed:

1. untemper each output (the tempering is an invertible GF(2)-linear map) to get the state
   after the first twist;
2. for j = 227..622 the twist wrote ``new[j] = new[j - 227] ^ twist(old[j], old[j + 1])``,
   and ``twist`` is invertible, so ``new[j] ^ new[j - 227]`` gives the top bit of ``old[j]``
   and the low 31 bits of ``old[j + 1]``: the full pre-twist words ``old[228..622]``;
3. those 395 words must follow the ``init_genrand`` recurrence (394 checks of 32 bits: a
   stream that is not seeded this way passes them with probability 2**-12608);
4. run the recurrence backwards (multiply by the inverse of 1812433253 mod 2**32, undo the
   ``x ^ (x >> 30)``) from ``old[228]`` to ``old[0]``, which is the seed.

References: M. Matsumoto and T. Nishimura, "Mersenne Twister: a 623-dimensionally
equidistributed uniform pseudo-random number generator", ACM TOMACS 8(1), 1998, and the
2002 ``mt19937ar.c`` initialisation; the tempering inverse is the textbook one.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CHECKS",
    "FIRST",
    "INIT_MULT",
    "INIT_MULT_INV",
    "LAST",
    "LOWER",
    "M",
    "MATRIX_A",
    "N",
    "UPPER",
    "WORDS64",
    "init_genrand_outputs",
    "recover_seeds",
    "split_words",
    "untemper",
]

N = 624
M = 397
MATRIX_A = np.uint32(0x9908B0DF)
UPPER = np.uint32(0x80000000)
LOWER = np.uint32(0x7FFFFFFF)
INIT_MULT = 1812433253
INIT_MULT_INV = pow(INIT_MULT, -1, 1 << 32)
FIRST = N - M + 1  # 228: the first pre-twist word recovered in full
LAST = N - 2  # 622: the last one
WORDS64 = N // 2  # a stream's first 312 64-bit words hold its first 624 outputs
CHECKS = LAST - FIRST  # 394 recurrence checks per stream


def _u32(value: int) -> np.uint32:
    return np.uint32(value & 0xFFFFFFFF)


def untemper(y: np.ndarray) -> np.ndarray:
    """The inverse of MT19937's output tempering, elementwise on uint32 arrays."""
    y = y.astype(np.uint32, copy=True)
    y ^= y >> np.uint32(18)  # its own inverse: 18 >= 16 bits
    y ^= (y << np.uint32(15)) & np.uint32(0xEFC60000)  # likewise: the mask starts at bit 17
    x = y.copy()
    for _ in range(4):  # 7-bit steps: four rounds fix all 32 bits
        x = y ^ ((x << np.uint32(7)) & np.uint32(0x9D2C5680))
    y = x
    x = y.copy()
    for _ in range(2):  # 11-bit steps: two rounds fix all 32 bits
        x = y ^ (x >> np.uint32(11))
    return x


def split_words(words: np.ndarray, high_first: bool = True) -> np.ndarray:
    """64-bit words (shape (k, n)) as the 32-bit outputs they were built from, shape (k, 2n).

    NumPy's legacy ``randint`` over the full 64-bit range and torch's ``random64`` both put
    the earlier 32-bit output in the high half (``high_first``)."""
    hi = (words >> np.uint64(32)).astype(np.uint32)
    lo = (words & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    first, second = (hi, lo) if high_first else (lo, hi)
    out = np.empty((words.shape[0], 2 * words.shape[1]), dtype=np.uint32)
    out[:, 0::2] = first
    out[:, 1::2] = second
    return out


def _pre_twist(outputs: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """The pre-twist state words ``old[lo:hi]`` (``FIRST <= lo < hi <= LAST + 1``) of each
    row of 32-bit outputs (step 2 of the module docstring)."""
    j = np.arange(lo - 1, hi)  # old[i] needs the twist values at j = i - 1 and j = i
    t = untemper(outputs[:, j]) ^ untemper(outputs[:, j - (N - M)])
    odd = t >> np.uint32(31)
    y = ((t ^ (odd * MATRIX_A)) << np.uint32(1)) | odd  # (old[j] & UPPER) | (old[j + 1] & LOWER)
    return (y[:, 1:] & UPPER) | (y[:, :-1] & LOWER)


def _follows_init(old: np.ndarray, first: int) -> np.ndarray:
    """Whether consecutive words ``old[:, c]`` (index ``first + c``) follow ``init_genrand``."""
    with np.errstate(over="ignore"):
        idx = np.arange(first + 1, first + old.shape[1], dtype=np.uint64).astype(np.uint32)
        prev = old[:, :-1]
        expected = _u32(INIT_MULT) * (prev ^ (prev >> np.uint32(30))) + idx
    return (expected == old[:, 1:]).all(axis=1)


def recover_seeds(outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``outputs`` (shape (k, >= 624) uint32: a stream's first 32-bit
    outputs), whether it is an ``init_genrand``-seeded MT19937 stream and, where it is, its
    seed. Returns ``(recognised, seeds)``; ``seeds`` is 0 where not recognised.

    Guarantee: a stream built by ``init_genrand(s)`` is always recognised with seed ``s``;
    any other stream is recognised only if its outputs pass 394 independent-looking 32-bit
    checks (probability 2**-12608 for random words)."""
    outputs = np.asarray(outputs, dtype=np.uint32)
    if outputs.ndim != 2 or outputs.shape[1] < N:
        raise ValueError(f"need a (k, >= {N}) array of 32-bit outputs, got shape {outputs.shape}")
    recognised = np.zeros(len(outputs), dtype=bool)
    seeds = np.zeros(len(outputs), dtype=np.uint32)
    # Screen on 2 checks first (random words pass with probability 2**-64): most streams
    # tested are not MT19937, and the full recovery costs 100 times as much.
    candidates = np.flatnonzero(_follows_init(_pre_twist(outputs, FIRST, FIRST + 3), FIRST))
    if candidates.size == 0:
        return recognised, seeds
    old = _pre_twist(outputs[candidates], FIRST, LAST + 1)
    recognised[candidates] = _follows_init(old, FIRST)
    x = old[:, 0].copy()
    inv = _u32(INIT_MULT_INV)
    with np.errstate(over="ignore"):
        for i in range(FIRST, 0, -1):  # old[i - 1] from old[i]
            z = (x - _u32(i)) * inv  # = old[i-1] ^ (old[i-1] >> 30)
            x = z ^ (z >> np.uint32(30))  # the top 2 bits are unchanged, so this undoes it
    seeds[candidates] = np.where(recognised[candidates], x, 0)
    return recognised, seeds


def init_genrand_outputs(seed: int, n: int) -> np.ndarray:
    """The first ``n`` 32-bit outputs of MT19937 seeded by ``init_genrand(seed)`` (NumPy's
    ``RandomState(seed)``), for tests."""
    rs = np.random.RandomState(seed & 0xFFFFFFFF)
    return rs.randint(0, 1 << 32, size=n, dtype=np.uint64).astype(np.uint32)
