"""The own battery: vectorised tests aimed at failures *between* streams.

Every test reads blocks ``X`` of shape ``(rows, k)``: row ``t`` holds word ``t`` of each of
the ``k`` streams (the interleaved stream is ``X`` read in C order). A test keeps running
sums across blocks, so memory is bounded whatever the size, and ends with one p-value
(small = evidence against independence; every p-value here is one-sided, upper tail).

What each test is for:

==================  ==========================================================  ======================
test                statistic                                                   catches
==================  ==========================================================  ======================
collisions          repeated 64-bit words (among words whose top 4 bits are 0:  duplicated / shifted /
                    equal words pass the filter together, so a 16th of the      truncated seeds
                    work finds a 16th of the repeats), Poisson
overlaps            later words equal to a stream's first 4 words, Poisson      overlapping streams
xor-streams         per row: popcount(X[t,i] ^ X[t,i+1]) summed, z; sum z^2     related seeds (same
                    over rows is chi2(rows)                                     time, nearby streams)
xor-popcount        histogram of those popcounts vs Binomial(64, 1/2), chi2     related seeds
xor-lagged          per stream: popcount(X[t,i] ^ X[t+1,i]), z; chi2(k)        bad single streams
corr-streams        per row: sum of u[t,i] u[t,i+1] (u uniform in (-1/2,1/2))  correlated streams
corr-lagged         per row: u[t,i] u[t+1,i+1] + u[t+1,i] u[t,i+1], z; chi2     streams one draw apart
mean-rows           per row: mean of u, z; chi2(rows)                           streams in lockstep
mean-streams        per stream: mean of u, z; chi2(k)                           biased streams
autocorr            per stream: u[2s,i] u[2s+1,i] summed, z; chi2(k)            serial correlation
uniform             histograms of the top and of the low 12 bits, chi2          uniformity
serial-streams      (top 6 bits of X[t,2j], of X[t,2j+1]) pairs, chi2           pairs of streams
serial-time         (top 6 bits of X[2s,i], of X[2s+1,i]) pairs, chi2           serial dependence
gap                 gaps between words < 2**60 in interleaved order, chi2       uniformity / order
rank-64             GF(2) rank of 64x64 bit matrices, row j = word of stream j  linear relations
rank-N              GF(2) rank of N x N matrices, row j = N bits of stream j    linear generators from
                    (N = 512 quick, 1024 thorough; earliest words first)         related seeds (MT19937)
birthday-spacings   repeated spacings among sorted top 32 bits of 4096 first    weak seed hashing
                    words of children (Marsaglia), Poisson
mt19937-seeds       each stream's 32-bit seed recovered from its first 624      related seeds of
                    outputs where it is an init_genrand-seeded MT19937 stream   RandomState(seed + i),
                    (``seedtree.stats.mt19937``); counts of seed spacings       torch's base_seed +
                    <= D, Poisson, D = 0, 1, 2, 4, ..., 2**16 (Bonferroni)      worker_id
==================  ==========================================================  ======================

z-scores sum terms with exact null means and variances; a chi2 over z^2 needs each z to
sum at least 64 terms, so tests that cannot meet that for a shape say why and are skipped.
Histogram cells shrink for small samples so that each expects at least 8 counts.

Calibration: on independent uniform words every p-value is uniform on (0, 1), so that the
verdict rule's false-alarm rates hold as stated, except where a test says otherwise:

- Tests with a discrete null law and several likely values (the rank tests' summed
  deficiency, birthday-spacings' count) return the *randomised* p-value
  ``P(S > s) + u * P(S = s)`` with ``u`` uniform on (0, 1), drawn from ``Test.tiebreak``
  (set by ``Accumulator`` from the check's root, so a run is reproducible). It is exactly
  uniform under the null; the plain upper tail ``P(S >= s)`` would average about 0.65 and
  cost power. Without a tiebreak the conservative ``P(S >= s)`` is returned.
- collisions, overlaps and mt19937-seeds count events whose expected number is tiny (about
  1e-4 or less): p is 1 whenever nothing happened, which is almost always, and at most about
  the expected count when one event occurs. Such a p-value is *discrete by design* and
  conservative (``P(p <= a) <= a``), which is all Holm's procedure needs for its family-wise
  bound; randomising it would only add a noise p-value to the family. mt19937-seeds is
  moreover reported as skipped (not applicable) unless at least two streams are
  ``init_genrand``-seeded MT19937 streams, so on other generators it never enters the family.

``benchmarks/calibration.py`` measures all of this over 100 roots (KS test per test).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..core.optional import require
from . import mt19937 as mt
from .source import FIRST_BATCH

__all__ = [
    "Accumulator",
    "BirthdaySpacings",
    "Block",
    "Collisions",
    "CorrLag1",
    "CorrLagged",
    "CorrStreams",
    "FILTER_FRACTION",
    "FILTER_SHIFT",
    "Gap",
    "MIN_TERMS",
    "MTSeeds",
    "MeanRows",
    "MeanStreams",
    "Outcome",
    "Overlaps",
    "Plan",
    "RankTest",
    "RowChi2",
    "Serial",
    "StreamChi2",
    "Test",
    "U64",
    "Uniform",
    "XorLagged",
    "XorPopcount",
    "XorStreams",
    "first_output_tests",
    "gf2_ranks",
    "interleaved_tests",
    "rank_probabilities",
    "uniforms",
]

U64 = np.uint64
MIN_TERMS = 64  # terms per z-score before z^2 is treated as chi2(1)
FILTER_SHIFT = U64(60)  # collisions/overlaps look at words whose top 4 bits are 0
FILTER_FRACTION = 1 / 16


def _stats():
    return require("scipy.stats", "the independence battery")


def _chi2_p(statistic: float, df: float) -> float:
    if df <= 0:
        return 1.0
    return float(_stats().chi2.sf(statistic, df))


def _chi2_counts(observed: np.ndarray, expected: np.ndarray, min_expected: float = 5.0) -> tuple[float, int]:
    """Pearson chi2 of counts; neighbouring cells are merged until each expects >= min_expected."""
    observed = np.asarray(observed, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    obs_cells, exp_cells = [], []
    acc_o = acc_e = 0.0
    for o, e in zip(observed, expected, strict=True):
        acc_o += o
        acc_e += e
        if acc_e >= min_expected:
            obs_cells.append(acc_o)
            exp_cells.append(acc_e)
            acc_o = acc_e = 0.0
    if acc_e > 0 and exp_cells:
        obs_cells[-1] += acc_o
        exp_cells[-1] += acc_e
    if len(exp_cells) < 2:
        return 0.0, 0
    o = np.array(obs_cells)
    e = np.array(exp_cells)
    return float(((o - e) ** 2 / e).sum()), len(e) - 1


def _poisson_p(count: int, lam: float) -> float:
    """P(N >= count) for N ~ Poisson(lam)."""
    if count <= 0:
        return 1.0
    return float(_stats().poisson.sf(count - 1, lam))


def _poisson_tails(count: int, lam: float) -> tuple[float, float]:
    """``(P(N > count), P(N = count))`` for N ~ Poisson(lam)."""
    st = _stats()
    return float(st.poisson.sf(count, lam)), float(st.poisson.pmf(count, lam))


def uniforms(X: np.ndarray) -> np.ndarray:
    """Words as floats uniform on (-1/2, 1/2) (top 53 bits), same shape."""
    u = (X >> U64(11)).astype(np.float64)
    u *= 2.0**-53
    u -= 0.5
    return u


class Block:
    """One ``(rows, k)`` block and the derived arrays several tests share (computed once)."""

    def __init__(self, X: np.ndarray) -> None:
        self.X = X
        self._flat: np.ndarray | None = None
        self._low: np.ndarray | None = None
        self._U: np.ndarray | None = None
        self._pc: np.ndarray | None = None

    @property
    def flat(self) -> np.ndarray:
        """All words in memory order (no copy): for tests where order does not matter."""
        if self._flat is None:
            self._flat = np.ravel(self.X, order="K")
        return self._flat

    @property
    def low(self) -> np.ndarray:
        """The words whose top 4 bits are 0 (a 16th of them; equal words are kept together)."""
        if self._low is None:
            x = self.flat
            self._low = x[(x >> FILTER_SHIFT) == 0]
        return self._low

    @property
    def U(self) -> np.ndarray:
        """``uniforms(X)``."""
        if self._U is None:
            self._U = uniforms(self.X)
        return self._U

    @property
    def pc(self) -> np.ndarray:
        """Hamming distances between neighbouring streams, shape (rows, k - 1)."""
        if self._pc is None:
            self._pc = np.bitwise_count(self.X[:, 1:] ^ self.X[:, :-1])
        return self._pc


@dataclass
class Outcome:
    """One test's result."""

    name: str
    source: str
    statistic: float
    p: float
    detail: str
    skipped: str | None = None


class Test:
    """Base: ``update(block)`` per block, then ``finish() -> (statistic, p, detail)``.

    ``lane`` splits the tests over two threads (numpy's kernels release the GIL); lane 1
    uses only ``Block.pc`` / ``Block.low`` of the shared arrays, lane 0 only ``Block.U``,
    so no shared array is computed twice.
    """

    name = "?"
    about = ""
    lane = 0

    def __init__(self) -> None:
        self.skip_reason: str | None = None
        # Uniform on (0, 1), for the randomised p-value of a discrete statistic; None gives
        # the conservative upper tail instead (see the module docstring).
        self.tiebreak: float | None = None

    def discrete_p(self, above: float, at: float) -> float:
        """p-value of a discrete statistic from ``P(S > s)`` and ``P(S = s)``: randomised
        (exactly uniform under the null) when ``tiebreak`` is set, else ``P(S >= s)``."""
        u = 1.0 if self.tiebreak is None else self.tiebreak
        return float(min(1.0, above + u * at))

    def update(self, block: Block) -> None:
        raise NotImplementedError

    def finish(self) -> tuple[float, float, str]:
        raise NotImplementedError


class RowChi2(Test):
    """Sum over rows of z^2 of a per-row statistic; chi2 with one df per row."""

    def __init__(self, k: int, terms_per_row: int) -> None:
        super().__init__()
        self.total = 0.0
        self.rows = 0
        if terms_per_row < MIN_TERMS:
            self.skip_reason = f"needs at least {MIN_TERMS} terms per row, has {terms_per_row} (use more streams)"

    def add(self, z: np.ndarray) -> None:
        self.total += float(np.dot(z, z))
        self.rows += len(z)

    def finish(self) -> tuple[float, float, str]:
        if self.rows == 0:
            self.skip_reason = "no rows to test"
            return 0.0, 1.0, ""
        return self.total, _chi2_p(self.total, self.rows), f"chi2={self.total:.1f}, df={self.rows}"


class StreamChi2(Test):
    """Per-stream sums accumulated over blocks, z per stream at the end; chi2 with df = k."""

    mean = 0.0
    var = 1.0

    def __init__(self, k: int, rows_total: int | None) -> None:
        super().__init__()
        self.sums = np.zeros(k, dtype=np.float64)
        self.terms = 0
        if rows_total is not None and rows_total - 1 < MIN_TERMS:
            self.skip_reason = f"needs at least {MIN_TERMS + 1} words per stream, has {rows_total}"

    def finish(self) -> tuple[float, float, str]:
        if self.terms < MIN_TERMS:
            self.skip_reason = f"needs at least {MIN_TERMS} terms per stream, had {self.terms}"
            return 0.0, 1.0, ""
        z = (self.sums - self.mean * self.terms) / math.sqrt(self.var * self.terms)
        stat = float(np.dot(z, z))
        return stat, _chi2_p(stat, len(z)), f"chi2={stat:.1f}, df={len(z)}"


# -- repeats -------------------------------------------------------------------------------


class Collisions(Test):
    lane = 1
    name = "collisions"
    about = "repeated 64-bit words (within windows of 2**26 words)"
    WINDOW = 1 << 26

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[np.ndarray] = []
        self.window_words = 0
        self.count = 0
        self.lam = 0.0

    def update(self, b: Block) -> None:
        self.parts.append(b.low)
        self.window_words += b.X.size
        if self.window_words >= self.WINDOW:
            self._close_window()

    def _close_window(self) -> None:
        if not self.parts:
            return
        kept = np.sort(np.concatenate(self.parts))
        self.count += int(np.count_nonzero(kept[1:] == kept[:-1]))
        n = len(kept)
        self.lam += n * (n - 1) / 2 / 2.0**60
        self.parts = []
        self.window_words = 0

    def finish(self) -> tuple[float, float, str]:
        self._close_window()
        return self.count, _poisson_p(self.count, self.lam), f"{self.count} repeats, expected {self.lam:.2g}"


class Overlaps(Test):
    lane = 1
    name = "overlaps"
    about = "later words equal to one of the streams' first 4 words"
    START_ROWS = 4

    def __init__(self) -> None:
        super().__init__()
        self.starts: np.ndarray | None = None
        self.count = 0
        self.checked = 0

    def update(self, b: Block) -> None:
        X = b.X
        if self.starts is None:
            head = X[: self.START_ROWS].ravel()
            self.starts = np.unique(head[(head >> FILTER_SHIFT) == 0])
            rest = X[self.START_ROWS :].ravel()
            x = rest[(rest >> FILTER_SHIFT) == 0]
            self.checked += rest.size
        else:
            x = b.low
            self.checked += X.size
        if x.size == 0 or self.starts.size == 0:
            return
        idx = np.searchsorted(self.starts, x)
        np.minimum(idx, len(self.starts) - 1, out=idx)
        self.count += int(np.count_nonzero(self.starts[idx] == x))

    def finish(self) -> tuple[float, float, str]:
        n_starts = 0 if self.starts is None else len(self.starts)
        lam = self.checked * FILTER_FRACTION * n_starts / 2.0**60
        return self.count, _poisson_p(self.count, lam), f"{self.count} stream starts found again, expected {lam:.2g}"


# -- bitwise relations between streams ---------------------------------------------------------


_POP_MEAN, _POP_VAR = 32.0, 16.0


class XorStreams(RowChi2):
    lane = 1
    name = "xor-streams"
    about = "per row: Hamming distance between neighbouring streams"

    def __init__(self, k: int) -> None:
        super().__init__(k, k - 1)

    def update(self, b: Block) -> None:
        pairs = b.X.shape[1] - 1
        s = b.pc.sum(axis=1, dtype=np.int64).astype(np.float64)
        self.add((s - _POP_MEAN * pairs) / math.sqrt(_POP_VAR * pairs))


class XorPopcount(Test):
    lane = 1
    name = "xor-popcount"
    about = "distribution of Hamming distances between neighbouring streams"

    def __init__(self, k: int) -> None:
        super().__init__()
        self.hist = np.zeros(65, dtype=np.int64)
        if k < 2:
            self.skip_reason = "needs at least 2 streams"

    def update(self, b: Block) -> None:
        self.hist += np.bincount(np.ravel(b.pc, order="K"), minlength=65)

    def finish(self) -> tuple[float, float, str]:
        n = int(self.hist.sum())
        expected = _stats().binom.pmf(np.arange(65), 64, 0.5) * n
        stat, df = _chi2_counts(self.hist, expected)
        if df == 0:
            self.skip_reason = f"too few pairs ({n}) for 2 cells expecting 5 each"
            return 0.0, 1.0, ""
        mean = float(np.dot(self.hist, np.arange(65)) / max(n, 1))
        return stat, _chi2_p(stat, df), f"chi2={stat:.1f}, df={df}, mean distance {mean:.3f} (32 expected)"


class XorLagged(StreamChi2):
    lane = 1
    name = "xor-lagged"
    about = "per stream: Hamming distance between consecutive words"
    mean, var = _POP_MEAN, _POP_VAR

    def update(self, b: Block) -> None:
        X = b.X
        if len(X) < 2:
            return
        self.sums += np.bitwise_count(X[1:] ^ X[:-1]).sum(axis=0, dtype=np.int64)
        self.terms += len(X) - 1


# -- correlations and means on uniforms ---------------------------------------------------------

_U_VAR = 1.0 / 12.0  # variance of uniform(-1/2, 1/2)


class CorrStreams(RowChi2):
    name = "corr-streams"
    about = "per row: correlation between neighbouring streams"

    def __init__(self, k: int) -> None:
        super().__init__(k, k - 1)

    def update(self, b: Block) -> None:
        U = b.U
        self.add((U[:, 1:] * U[:, :-1]).sum(axis=1) / math.sqrt(_U_VAR**2 * (U.shape[1] - 1)))


class CorrLagged(RowChi2):
    name = "corr-lagged"
    about = "per row pair: correlation of each stream with its neighbour one draw later and earlier"

    def __init__(self, k: int) -> None:
        super().__init__(k, 2 * (k - 1))

    def update(self, b: Block) -> None:
        U = b.U
        if len(U) < 2:
            return
        a = (U[:-1, :-1] * U[1:, 1:]).sum(axis=1)
        a += (U[1:, :-1] * U[:-1, 1:]).sum(axis=1)
        # The two cross terms are uncorrelated, so their sum has twice the variance. Row pairs
        # (t, t+1), (t+1, t+2) share a row: every other pair keeps the z-scores independent.
        self.add(a[::2] / math.sqrt(_U_VAR**2 * 2 * (U.shape[1] - 1)))


class MeanRows(RowChi2):
    name = "mean-rows"
    about = "per row: mean of the k streams' words"

    def __init__(self, k: int) -> None:
        super().__init__(k, k)

    def update(self, b: Block) -> None:
        self.add(b.U.sum(axis=1) / math.sqrt(_U_VAR * b.U.shape[1]))


class MeanStreams(StreamChi2):
    name = "mean-streams"
    about = "per stream: mean of its words"
    mean, var = 0.0, _U_VAR

    def update(self, b: Block) -> None:
        self.sums += b.U.sum(axis=0)
        self.terms += len(b.U)


class CorrLag1(StreamChi2):
    name = "autocorr"
    about = "per stream: correlation of consecutive words"
    mean, var = 0.0, _U_VAR**2

    def update(self, b: Block) -> None:
        U = b.U
        if len(U) < 3:
            return
        # Disjoint pairs (2s, 2s+1) keep the terms independent.
        m = len(U) // 2 * 2
        self.sums += (U[0:m:2] * U[1:m:2]).sum(axis=0)
        self.terms += m // 2


# -- distributions -----------------------------------------------------------------------------


def _bits_for(n_values: int | None, cap: int, per_cell: float = 8.0) -> int:
    """Bits per cell so that each of 2**bits cells expects >= per_cell counts."""
    if n_values is None:
        return cap
    return int(max(1, min(cap, math.floor(math.log2(max(n_values / per_cell, 2))))))


class Uniform(Test):
    name = "uniform"
    about = "histograms of the top and of the low bits of every word"

    def __init__(self, n_words: int | None) -> None:
        super().__init__()
        self.bits = _bits_for(n_words // 2 if n_words else None, 12)
        self.top = np.zeros(1 << self.bits, dtype=np.int64)
        self.low = np.zeros(1 << self.bits, dtype=np.int64)

    def update(self, b: Block) -> None:
        x = b.flat
        # Values below 2**16 read the same as int64: a view, not a converting copy.
        self.top += np.bincount((x >> U64(64 - self.bits)).view(np.int64), minlength=len(self.top))
        self.low += np.bincount((x & U64((1 << self.bits) - 1)).view(np.int64), minlength=len(self.low))

    def finish(self) -> tuple[float, float, str]:
        n = self.top.sum()
        e = n / len(self.top)
        stat = float(((self.top - e) ** 2).sum() / e + ((self.low - e) ** 2).sum() / e)
        df = 2 * (len(self.top) - 1)
        return stat, _chi2_p(stat, df), f"chi2={stat:.1f}, df={df} ({self.bits}-bit cells, top and low)"


class Serial(Test):
    about = "pairs of top bits"

    def __init__(self, n_pairs: int | None, axis: int) -> None:
        super().__init__()
        self.axis = axis
        self.name = "serial-streams" if axis == 1 else "serial-time"
        if axis == 1:
            self.about = "pairs (stream 2j, stream 2j+1) at one time"
        else:
            self.about = "pairs (draw 2s, draw 2s+1) of a stream"
        self.bits = _bits_for(n_pairs, 12) // 2
        self.hist = np.zeros(1 << (2 * self.bits), dtype=np.int64)

    def update(self, b: Block) -> None:
        X = b.X
        if X.shape[self.axis] < 2:
            return
        m = X.shape[self.axis] // 2 * 2
        first, second = (X[:, 0:m:2], X[:, 1:m:2]) if self.axis == 1 else (X[0:m:2], X[1:m:2])
        shift = U64(64 - self.bits)
        cells = ((first >> shift) << U64(self.bits)) | (second >> shift)
        self.hist += np.bincount(np.ravel(cells, order="K").view(np.int64), minlength=len(self.hist))

    def finish(self) -> tuple[float, float, str]:
        n = self.hist.sum()
        if n == 0:
            self.skip_reason = "no pairs (needs 2 words per stream)"
            return 0.0, 1.0, ""
        e = n / len(self.hist)
        stat = float(((self.hist - e) ** 2).sum() / e)
        df = len(self.hist) - 1
        return stat, _chi2_p(stat, df), f"chi2={stat:.1f}, df={df} ({self.bits}+{self.bits}-bit cells)"


class Gap(Test):
    lane = 1
    name = "gap"
    about = "gaps between words below 2**60 (p = 1/16) in interleaved order"
    P = 1 / 16
    MAX_GAP = 96

    def __init__(self) -> None:
        super().__init__()
        self.hist = np.zeros(self.MAX_GAP + 1, dtype=np.int64)
        self.offset = 0
        self.last: int | None = None

    def update(self, b: Block) -> None:
        X = b.X
        pos = np.flatnonzero((X >> FILTER_SHIFT) == 0) + self.offset
        self.offset += X.size
        if pos.size == 0:
            return
        if self.last is not None:
            pos = np.concatenate(([self.last], pos))
        self.last = int(pos[-1])
        gaps = np.minimum(np.diff(pos) - 1, self.MAX_GAP)
        self.hist += np.bincount(gaps, minlength=self.MAX_GAP + 1)

    def finish(self) -> tuple[float, float, str]:
        n = self.hist.sum()
        j = np.arange(self.MAX_GAP + 1)
        probs = self.P * (1 - self.P) ** j
        probs[-1] = (1 - self.P) ** self.MAX_GAP  # the last cell is the tail
        stat, df = _chi2_counts(self.hist, probs * n)
        if df == 0:
            self.skip_reason = f"too few gaps ({n}) for 2 cells expecting 5 each"
            return 0.0, 1.0, ""
        return stat, _chi2_p(stat, df), f"chi2={stat:.1f}, df={df}, {n} gaps"


# -- GF(2) rank --------------------------------------------------------------------------------


def gf2_ranks(M: np.ndarray) -> np.ndarray:
    """Ranks over GF(2) of a stack of bit matrices ``M`` (B, n, w): row i of matrix b is
    the ``64 * w`` bits of ``M[b, i]`` (bit j of word c is column 64 c + j). Gaussian
    elimination vectorised over the stack: one numpy step per column, touching only the
    rows below the pivot that hold the bit, and only from the pivot's word on."""
    M = np.array(M, dtype=np.uint64, copy=True)
    B, n, w = M.shape
    rank = np.zeros(B, dtype=np.int64)
    rows = np.arange(n)
    slot = np.empty(B, dtype=np.intp)
    for col in range(64 * w):
        word, bit = divmod(col, 64)
        has_bit = (M[:, :, word] & U64(1 << bit)) != 0
        has_bit &= rows[None, :] >= rank[:, None]
        found = has_bit.any(axis=1)
        if not found.any():
            continue
        sel = np.flatnonzero(found)
        piv = has_bit[sel].argmax(axis=1)
        r = rank[sel]
        pivot_rows = M[sel, piv, word:]  # fancy indexing: a copy
        M[sel, piv, word:] = M[sel, r, word:]
        M[sel, r, word:] = pivot_rows
        has_bit[sel, piv] = has_bit[sel, r]
        has_bit[sel, r] = False
        bi, ri = np.nonzero(has_bit)  # rows below each pivot that hold the bit
        if bi.size:
            slot[sel] = np.arange(len(sel))
            M[bi, ri, word:] ^= pivot_rows[slot[bi]]
        rank[sel] += 1
        if (rank >= n).all():
            break
    return rank


def rank_probabilities(n: int, m: int | None = None) -> np.ndarray:
    """P(rank = r) for a uniformly random n x m matrix over GF(2), r = 0..min(n, m)."""
    m = n if m is None else m
    r_max = min(n, m)
    log2p = np.full(r_max + 1, -np.inf)
    for r in range(r_max + 1):
        s = float(r * (n + m - r) - n * m)
        for i in range(r):
            s += math.log2(1 - 2.0 ** (i - n)) + math.log2(1 - 2.0 ** (i - m)) - math.log2(1 - 2.0 ** (i - r))
        log2p[r] = s
    p = np.exp2(log2p)
    return p / p.sum()


class RankTest(Test):
    """Deficiency (n - rank) of n x n matrices: row j holds n bits of stream j (``n // 64``
    consecutive words), n neighbouring streams per matrix. Linear generators whose seeds
    make their initial states linearly dependent give deficient ranks. Matrices are taken
    from the earliest words first: that is where seeding shows (MT19937's relations from
    ``seed + i`` are gone after its first twist, 312 words in)."""

    about = "GF(2) rank of n x n bit matrices, one row per stream"

    def __init__(self, n: int, k: int, budget: int) -> None:
        super().__init__()
        self.n = n
        self.w = max(1, n // 64)
        self.name = f"rank-{n}"
        self.budget = budget
        self.deficiencies: list[int] = []
        if k < n:
            self.skip_reason = f"needs at least {n} streams, has {k}"

    def update(self, b: Block) -> None:
        X = b.X
        rows, k = X.shape
        left = self.budget - len(self.deficiencies)
        if left <= 0 or rows < self.w:
            return
        mats = []
        for t0 in range(0, rows - self.w + 1, self.w):
            for i0 in range(0, k - self.n + 1, self.n):
                mats.append(X[t0 : t0 + self.w, i0 : i0 + self.n].T)
                if len(mats) == left:
                    break
            if len(mats) == left:
                break
        ranks = gf2_ranks(np.stack(mats))
        self.deficiencies.extend((self.n - ranks).tolist())

    def finish(self) -> tuple[float, float, str]:
        m = len(self.deficiencies)
        if m == 0:
            self.skip_reason = f"no {self.n} x {self.n} matrix fitted (needs {self.w} words per stream)"
            return 0.0, 1.0, ""
        pmf = rank_probabilities(self.n)[::-1][:40]  # index = deficiency
        total = sum(self.deficiencies)
        dist = np.array([1.0])
        for _ in range(m):  # exact null law of the summed deficiency
            dist = np.convolve(dist, pmf)
        # Tails summed directly (no 1 - cdf round-off); randomised between P(S > s) and P(S >= s).
        p = self.discrete_p(float(dist[total + 1 :].sum()), float(dist[total]) if total < len(dist) else 0.0)
        counts = np.bincount(self.deficiencies)
        return total, p, f"{m} matrices, deficiencies {dict(enumerate(counts.tolist()))}, mean {total / m:.2f}"


class BirthdaySpacings(Test):
    lane = 1
    name = "birthday-spacings"
    about = "repeated spacings among the sorted top 32 bits of 4096 words (first word of each stream)"
    M = 4096
    BITS = 32

    def __init__(self) -> None:
        super().__init__()
        self.pending = np.empty(0, dtype=np.uint64)
        self.samples = 0
        self.count = 0

    def update(self, b: Block) -> None:
        values = b.X[0] >> U64(64 - self.BITS)
        self.pending = np.concatenate((self.pending, values))
        whole = len(self.pending) // self.M
        if whole == 0:
            return
        groups = np.sort(self.pending[: whole * self.M].reshape(whole, self.M), axis=1)
        spacings = np.sort(np.diff(groups, axis=1), axis=1)
        self.count += int(np.count_nonzero(spacings[:, 1:] == spacings[:, :-1]))
        self.samples += whole
        self.pending = self.pending[whole * self.M :]

    def finish(self) -> tuple[float, float, str]:
        lam = self.samples * self.M**3 / (4.0 * 2.0**self.BITS)
        if self.samples == 0:
            self.skip_reason = f"needs {self.M} children"
            return 0.0, 1.0, ""
        p = self.discrete_p(*_poisson_tails(self.count, lam))
        return self.count, p, f"{self.count} repeated spacings, expected {lam:.1f}"


class MTSeeds(Test):
    """Related seeds of MT19937 streams seeded by ``init_genrand`` (``RandomState(seed + i)``,
    ``np.random.seed(seed + rank)``, torch's ``manual_seed(base_seed + worker_id)``).

    Why a generator-aware test: the 624-word states that ``init_genrand`` makes from seeds
    ``s`` and ``s + 1`` are related only through a 32-bit seed and a nonlinear recurrence, so
    no low-order statistic of the two streams sees it (PractRand passes such a pair to 4 GiB,
    and the xor of the two streams' outputs is unbiased at every position we measured). But
    the seeding is invertible: ``seedtree.stats.mt19937`` recovers each stream's seed from
    its first 624 outputs (5 KiB), and recognising the seeding is itself a 2**-12608 event
    for random words. Under the null the test can use for such streams (independent seeds,
    uniform on 32 bits) the number of circular spacings ``<= D`` between the r recovered
    seeds is close to Poisson(``r (1 - (1 - (D + 1) / 2**32) ** (r - 1))``); the test takes
    the smallest Poisson p over D = 0, 1, 2, 4, ..., 2**16 times their number (Bonferroni).
    Consecutive seeds give spacings of 1: p about 2e-8 with 2 streams, far less with more.

    Fewer than two recognised streams: skipped as not applicable (every other generator).
    """

    lane = 1
    name = "mt19937-seeds"
    about = "seeds of init_genrand-seeded MT19937 streams, recovered from their first 624 outputs"
    SPACINGS = (0,) + tuple(1 << j for j in range(17))

    def __init__(self, k: int, rows_total: int | None) -> None:
        super().__init__()
        self.k = k
        self.parts: list[np.ndarray] = []
        self.rows = 0
        if k < 2:
            self.skip_reason = "needs at least 2 streams"
        elif rows_total is not None and rows_total < mt.WORDS64:
            self.skip_reason = f"needs {mt.WORDS64} words per stream (the first 624 32-bit outputs), has {rows_total}"

    def update(self, b: Block) -> None:
        if self.rows >= mt.WORDS64:
            return
        take = b.X[: mt.WORDS64 - self.rows]
        self.parts.append(np.array(take.T))  # (k, rows): a copy, blocks are not kept
        self.rows += len(take)

    def finish(self) -> tuple[float, float, str]:
        if self.rows < mt.WORDS64:
            self.skip_reason = f"needs {mt.WORDS64} words per stream, read {self.rows}"
            return 0.0, 1.0, ""
        words = np.concatenate(self.parts, axis=1)
        self.parts = []
        found: np.ndarray | None = None
        seeds: np.ndarray | None = None
        order = ""
        for high_first in (True, False):  # the other order only if the first finds too few
            ok, s = mt.recover_seeds(mt.split_words(words, high_first))
            if found is None or ok.sum() > found.sum():
                found, seeds, order = ok, s, "high" if high_first else "low"
            if found.sum() >= 2:
                break
        assert found is not None and seeds is not None  # the loop ran at least once
        r = int(found.sum())
        if r < 2:
            self.skip_reason = (
                f"not applicable: {r} of {self.k} streams are MT19937 seeded by init_genrand "
                "(RandomState(int), torch.manual_seed), the test needs 2"
            )
            return 0.0, 1.0, ""
        x = np.sort(seeds[found].astype(np.int64))
        gaps = np.diff(np.concatenate((x, [x[0] + (1 << 32)])))  # circular spacings, sum 2**32
        best, best_d, best_count, best_lam = 1.0, 0, 0, 0.0
        for d in self.SPACINGS:
            count = int(np.count_nonzero(gaps <= d))
            lam = r * -math.expm1((r - 1) * math.log1p(-(d + 1) / 2.0**32))
            p = _poisson_p(count, lam)
            if p < best:
                best, best_d, best_count, best_lam = p, d, count, lam
        p = min(1.0, best * len(self.SPACINGS))
        head = ", ".join(str(int(v)) for v in seeds[found][:4])
        detail = (
            f"{r} of {self.k} streams are init_genrand MT19937 ({order} half first); seeds {head}"
            f"{', ...' if r > 4 else ''}; {best_count} spacings <= {best_d}, expected {best_lam:.2g}"
        )
        return float(best_count), p, detail


# -- the battery -------------------------------------------------------------------------------


@dataclass
class Plan:
    """Sizes that decide the tests' parameters (known before the data is generated)."""

    k: int
    rows: int | None
    rank_size: int = 512
    rank_budget: int = 8
    rank64_budget: int = 256

    @property
    def n_words(self) -> int | None:
        return None if self.rows is None else self.rows * self.k


def interleaved_tests(plan: Plan) -> list[Test]:
    """The tests run on the interleaved stream of ``plan.k`` streams."""
    k, n_words = plan.k, plan.n_words
    big = min(plan.rank_size, k // 64 * 64)
    tests: list[Test] = [
        Collisions(),
        Overlaps(),
        XorStreams(k),
        XorPopcount(k),
        XorLagged(k, plan.rows),
        CorrStreams(k),
        CorrLagged(k),
        CorrLag1(k, None if plan.rows is None else plan.rows // 2),
        MeanRows(k),
        MeanStreams(k, plan.rows),
        Uniform(n_words),
        Serial(None if n_words is None else n_words // 2, axis=1),
        Serial(None if n_words is None else n_words // 2, axis=0),
        Gap(),
        RankTest(64, k, plan.rank64_budget),
        MTSeeds(k, plan.rows),
    ]
    if big > 64:
        tests.append(RankTest(big, k, plan.rank_budget))
    if plan.rows is not None:
        # Tests that look along a stream need words to look at (a run shorter than 2 words per
        # stream reads one row: the first word of each stream).
        for test in tests:
            if test.skip_reason is None and (
                (plan.rows < 2 and test.name in ("corr-lagged", "serial-time"))
                or (plan.rows <= Overlaps.START_ROWS and test.name == "overlaps")
            ):
                need = Overlaps.START_ROWS + 1 if test.name == "overlaps" else 2
                test.skip_reason = f"needs at least {need} words per stream, has {plan.rows}"
    return tests


def first_output_tests(children: int, words: int, rank_budget: int = 16) -> list[Test]:
    """The tests run on the first-outputs stream (blocks of shape (words, up to FIRST_BATCH children))."""
    children = min(children, FIRST_BATCH)
    return [
        Collisions(),
        BirthdaySpacings(),
        XorStreams(children),
        XorPopcount(children),
        CorrStreams(children),
        MeanRows(children),
        Uniform(children * words),
        Serial(None if children * words < 2 else children * words // 2, axis=1),
        RankTest(64 * words, children, rank_budget),
    ]


def _update_all(tests: list[Test], block: Block) -> None:
    for test in tests:
        test.update(block)


@dataclass
class Accumulator:
    """Feeds blocks to a list of tests; ``outcomes()`` closes them. With ``threads=2`` the
    tests' two lanes run side by side on each block.

    ``tiebreak_seed`` (the check's root) seeds the uniforms of the randomised p-values of
    discrete tests (one per test, by position); None leaves them conservative."""

    source: str
    tests: list[Test]
    threads: int = 2
    words: int = 0
    tiebreak_seed: int | None = None
    active: list[Test] = field(init=False)

    def __post_init__(self) -> None:
        self.active = [t for t in self.tests if t.skip_reason is None]
        self._pool: ThreadPoolExecutor | None = None
        if self.tiebreak_seed is not None:
            # Keyed by the source too: the two data sets of one check get different uniforms.
            key = [int(b) for b in self.source.encode()]
            u = np.random.default_rng([int(self.tiebreak_seed) & ((1 << 128) - 1), 0x7E, *key]).random(len(self.tests))
            for test, value in zip(self.tests, u, strict=True):
                test.tiebreak = float(value)

    def feed(self, X: np.ndarray) -> None:
        block = Block(X)
        lanes = [[t for t in self.active if t.lane == lane] for lane in (0, 1)]
        if self.threads > 1 and all(lanes):
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="seedtree-battery")
            other = self._pool.submit(_update_all, lanes[1], block)
            _update_all(lanes[0], block)
            other.result()
        else:
            _update_all(self.active, block)
        self.words += X.size

    def feed_all(self, blocks: Iterable[np.ndarray]) -> None:
        for X in blocks:
            self.feed(X)

    def outcomes(self) -> list[Outcome]:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        out = []
        for test in self.tests:
            if test.skip_reason is None:
                stat, p, detail = test.finish()
            if test.skip_reason is not None:  # set before the run, or by finish() (not applicable)
                out.append(Outcome(test.name, self.source, float("nan"), float("nan"), "", test.skip_reason))
                continue
            out.append(Outcome(test.name, self.source, float(stat), float(min(max(p, 0.0), 1.0)), detail))
        return out
