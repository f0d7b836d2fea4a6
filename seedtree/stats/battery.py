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

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .between import (
    Collisions,
    CorrLag1,
    CorrLagged,
    CorrStreams,
    MeanRows,
    MeanStreams,
    Overlaps,
    XorLagged,
    XorPopcount,
    XorStreams,
)
from .distributions import BirthdaySpacings, Gap, MTSeeds, RankTest, Serial, Uniform, gf2_ranks, rank_probabilities
from .source import FIRST_BATCH
from .statistic import (
    FILTER_FRACTION,
    FILTER_SHIFT,
    MIN_TERMS,
    U64,
    Block,
    Outcome,
    RowChi2,
    StreamChi2,
    Test,
    uniforms,
)

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
