"""The battery's tests of relations *between* streams: repeats (collisions, overlaps),
bitwise relations (xor of neighbouring streams) and correlations and means on uniforms.
See ``seedtree.stats.battery`` for what each statistic is and catches."""

from __future__ import annotations

import math

import numpy as np

from .statistic import (
    FILTER_FRACTION,
    FILTER_SHIFT,
    Block,
    RowChi2,
    StreamChi2,
    Test,
    chi2_counts,
    chi2_p,
    poisson_p,
    scipy_stats,
)

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
        return self.count, poisson_p(self.count, self.lam), f"{self.count} repeats, expected {self.lam:.2g}"


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
        return self.count, poisson_p(self.count, lam), f"{self.count} stream starts found again, expected {lam:.2g}"


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
        expected = scipy_stats().binom.pmf(np.arange(65), 64, 0.5) * n
        stat, df = chi2_counts(self.hist, expected)
        if df == 0:
            self.skip_reason = f"too few pairs ({n}) for 2 cells expecting 5 each"
            return 0.0, 1.0, ""
        mean = float(np.dot(self.hist, np.arange(65)) / max(n, 1))
        return stat, chi2_p(stat, df), f"chi2={stat:.1f}, df={df}, mean distance {mean:.3f} (32 expected)"


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
