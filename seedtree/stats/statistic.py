"""What every test of the battery is built from: ``Block`` (words ``X[t, i]``, word t of
stream i), ``Test`` (running sums over blocks, one p-value at the end), the two chi-square
shapes most tests take (``RowChi2``: one z per row; ``StreamChi2``: one z per stream) and
the p-value helpers. The tests themselves are in ``between`` and ``distributions``; the
battery that runs them, and what each is for, in ``battery``."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.optional import require

U64 = np.uint64
MIN_TERMS = 64  # terms per z-score before z^2 is treated as chi2(1)
FILTER_SHIFT = U64(60)  # collisions/overlaps look at words whose top 4 bits are 0
FILTER_FRACTION = 1 / 16


def scipy_stats():
    return require("scipy.stats", "the independence battery")


def chi2_p(statistic: float, df: float) -> float:
    if df <= 0:
        return 1.0
    return float(scipy_stats().chi2.sf(statistic, df))


def chi2_counts(observed: np.ndarray, expected: np.ndarray, min_expected: float = 5.0) -> tuple[float, int]:
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


def poisson_p(count: int, lam: float) -> float:
    """P(N >= count) for N ~ Poisson(lam)."""
    if count <= 0:
        return 1.0
    return float(scipy_stats().poisson.sf(count - 1, lam))


def poisson_tails(count: int, lam: float) -> tuple[float, float]:
    """``(P(N > count), P(N = count))`` for N ~ Poisson(lam)."""
    st = scipy_stats()
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
        return self.total, chi2_p(self.total, self.rows), f"chi2={self.total:.1f}, df={self.rows}"


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
        return stat, chi2_p(stat, len(z)), f"chi2={stat:.1f}, df={len(z)}"
