"""The battery's distribution tests: uniformity (histograms, serial pairs, gaps), GF(2)
rank, birthday spacings, and the MT19937 seed recovery. See ``seedtree.stats.battery``
for what each statistic is and catches."""

from __future__ import annotations

import math

import numpy as np

from . import mt19937 as mt
from .statistic import FILTER_SHIFT, U64, Block, Test, chi2_counts, chi2_p, poisson_p, poisson_tails

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
        return stat, chi2_p(stat, df), f"chi2={stat:.1f}, df={df} ({self.bits}-bit cells, top and low)"


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
        return stat, chi2_p(stat, df), f"chi2={stat:.1f}, df={df} ({self.bits}+{self.bits}-bit cells)"


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
        stat, df = chi2_counts(self.hist, probs * n)
        if df == 0:
            self.skip_reason = f"too few gaps ({n}) for 2 cells expecting 5 each"
            return 0.0, 1.0, ""
        return stat, chi2_p(stat, df), f"chi2={stat:.1f}, df={df}, {n} gaps"


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
        p = self.discrete_p(*poisson_tails(self.count, lam))
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
            p = poisson_p(count, lam)
            if p < best:
                best, best_d, best_count, best_lam = p, d, count, lam
        p = min(1.0, best * len(self.SPACINGS))
        head = ", ".join(str(int(v)) for v in seeds[found][:4])
        detail = (
            f"{r} of {self.k} streams are init_genrand MT19937 ({order} half first); seeds {head}"
            f"{', ...' if r > 4 else ''}; {best_count} spacings <= {best_d}, expected {best_lam:.2g}"
        )
        return float(best_count), p, detail
