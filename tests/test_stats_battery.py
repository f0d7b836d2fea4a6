"""The own battery and the verdict rule: it FAILS every negative control in quick mode at
16 MiB and PASSES the good schemes (fixed roots: deterministic), and its parts are right."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from seedtree.stats import CONTROLS, GOOD, check, holm
from seedtree.stats import battery as B
from seedtree.stats.verdict import retest_root

pytest.importorskip("scipy")


@pytest.mark.parametrize("scheme", CONTROLS)
def test_quick_check_fails_every_negative_control(scheme: str) -> None:
    if scheme.startswith("torch"):
        pytest.importorskip("torch")
    report = check(scheme, streams=1024, n_bytes=16 << 20, root=20240601)
    assert not report.passed and report.verdict == "FAIL"
    assert report.suspicious and report.retest_root not in (None, report.root)
    assert report.failing(), "a FAIL names the tests that decided it"
    assert all(r["p_retest"] is not None for r in report.rows if r["verdict"] != "skipped")


@pytest.mark.parametrize("scheme", GOOD)
def test_quick_check_passes_the_good_schemes(scheme: str) -> None:
    report = check(scheme, streams=1024, n_bytes=16 << 20, root=20240601)
    assert report.passed and report.verdict == "PASS"
    assert not report.suspicious
    assert report.bytes_read == {"own": 16 << 20}
    ran = [r for r in report.rows if r["verdict"] != "skipped"]
    assert len(ran) >= 20 and all(0 < r["p"] <= 1 for r in ran)


def test_user_scheme_retests_on_the_next_streams() -> None:
    good = check(lambda i: np.random.default_rng([i, 31337]), streams=256, n_bytes=2 << 20, root=1)
    assert good.passed and good.kind == "user"
    bad = check(lambda i: np.random.default_rng(5), streams=256, n_bytes=2 << 20, root=1)
    assert not bad.passed
    assert any("streams 256..511" in n for n in bad.notes)


def test_report_json_table_and_plot(tmp_path) -> None:
    report = check("seedtree", streams=32, n_bytes=1 << 20, root=3, first_children=4096)
    d = json.loads(json.dumps(report.to_dict()))
    assert d["verdict"] == "PASS" and d["passed"] is True and d["root"] == "3"
    assert set(d) >= {"scheme", "kind", "streams", "bytes_read", "rows", "rule", "retest_root", "seconds"}
    row = d["rows"][0]
    assert set(row) == {"battery", "source", "test", "p", "p_retest", "verdict", "statistic", "detail"}
    skipped = [r for r in d["rows"] if r["verdict"] == "skipped"]
    # 32 streams are too few for the per-row statistics and the 64-stream rank matrices, and
    # the MT19937 seed test does not apply to PCG64 streams:
    assert [r["test"] for r in skipped] == [
        "xor-streams",
        "corr-streams",
        "corr-lagged",
        "mean-rows",
        "rank-64",
        "mt19937-seeds",
    ]
    assert all(r["p"] is None and "needs at least" in r["detail"] for r in skipped[:-1])
    assert skipped[-1]["detail"].startswith("not applicable: 0 of 32 streams are MT19937")
    assert "skipped: needs at least 64 streams, has 32" in report.table()
    assert "verdict: PASS" in report.table()
    png = report.plot(tmp_path / "p.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_arguments_are_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="15 bytes hold fewer than 2 words; give at least 16 bytes"):
        check("seedtree", streams=1024, n_bytes=15)
    with pytest.raises(ValueError, match="unknown batteries"):
        check("seedtree", batteries=("nist",))
    with pytest.raises(ValueError, match="mode must be"):
        check("seedtree", mode="fast")


def test_less_than_two_words_per_stream_reads_the_prefix_like_practrand() -> None:
    # 1 KiB of 1024 streams: the first word of streams 0..127, exactly the bytes PractRand's
    # first report reads. Duplicated streams FAIL on them; good ones pass; the report says so.
    bad = check("duplicated", streams=1024, n_bytes=1 << 10, root=4, first_children=0)
    assert bad.verdict == "FAIL" and bad.bytes_read == {"own": 1 << 10}
    assert {"xor-streams", "xor-popcount"} <= {r["test"] for r in bad.failing()}
    good = check("seedtree", streams=1024, n_bytes=1 << 10, root=4, first_children=0)
    assert good.passed and good.bytes_read == {"own": 1 << 10}
    assert "the own battery read the first word of streams 0..127" in good.notes[-1]
    skipped = {r["test"]: r["detail"] for r in good.rows if r["verdict"] == "skipped"}
    assert skipped["corr-lagged"] == "needs at least 2 words per stream, has 1"
    assert skipped["overlaps"] == "needs at least 5 words per stream, has 1"
    assert skipped["rank-128"].startswith("no 128 x 128 matrix fitted")
    assert all(r["p"] is not None for r in good.rows if r["verdict"] == "pass")


def test_holm() -> None:
    # m = 4: thresholds 0.01/4, 0.01/3, 0.01/2, 0.01/1 for the sorted p-values.
    assert holm([0.002, 0.003, 0.2, 0.004]) == [True, True, False, True]
    assert holm([0.002, 0.0034, 0.2, 0.004]) == [True, False, False, False]
    assert holm([0.5, math.nan, 0.0001]) == [False, False, True]
    assert holm([0.004], extra=3) == [False]  # three unremarkable tests make the family 4
    assert retest_root(5) == retest_root(5) != retest_root(6)


def _reference_rank(rows: list[int]) -> int:
    rank, rows = 0, list(rows)
    while rows:
        pivot = rows.pop()
        if pivot:
            rank += 1
            low = pivot & -pivot
            rows = [r ^ pivot if r & low else r for r in rows]
    return rank


def test_gf2_ranks_match_a_reference() -> None:
    rng = np.random.default_rng(0)
    for n, w in ((8, 1), (64, 1), (96, 2), (128, 2)):
        M = rng.integers(0, 1 << 64, size=(6, n, w), dtype=np.uint64)
        if n <= 64:
            M &= np.uint64((1 << n) - 1)  # square n x n
        M[1, 3] = M[1, 0] ^ M[1, 1]  # a dependent row
        M[2, :5] = 0  # rank drops by at least 5
        expected = [_reference_rank([sum(int(v) << (64 * j) for j, v in enumerate(r)) for r in m]) for m in M]
        assert B.gf2_ranks(M).tolist() == expected


def test_rank_probabilities() -> None:
    p = B.rank_probabilities(32)
    assert abs(p.sum() - 1) < 1e-12
    # Marsaglia's 32x32 binary rank test: P(32) = 0.2888, P(31) = 0.5776, P(30) = 0.1284.
    assert np.allclose(p[[32, 31, 30]], [0.2888, 0.5776, 0.1284], atol=1e-4)


def test_tests_see_what_they_target() -> None:
    rng = np.random.default_rng(1)
    good = rng.integers(0, 1 << 64, size=(512, 256), dtype=np.uint64)
    related = good.copy()
    related[:, 1::2] = related[:, 0::2] ^ np.uint64(0xFF)  # odd streams = even streams with 8 bits flipped
    for X, expect_fail in ((good, False), (related, True)):
        test = B.XorStreams(256)
        test.update(B.Block(X))
        _, p, _ = test.finish()
        assert (p < 1e-6) == expect_fail

    lin = good.copy()
    lin[:16, 100] = lin[:16, 101] ^ lin[:16, 102]  # stream 100 = 101 xor 102 over its first 16 words
    assert B.RankTest(512, 256, budget=4).skip_reason == "needs at least 512 streams, has 256"
    for X, expect_fail in ((good, False), (lin, True)):
        test = B.RankTest(64, 256, budget=16)  # 16 matrices: streams 64..127 at times 0..15
        test.update(B.Block(X[:, 64:128]))
        assert (test.finish()[1] < 1e-4) == expect_fail

    overlapping = good.copy()
    overlapping[300:, 0::2] = good[: 512 - 300, 1::2]  # each even stream runs into its neighbour's start
    for X, expect_fail in ((good, False), (overlapping, True)):
        test = B.Overlaps()
        test.update(B.Block(X))
        assert (test.finish()[1] < 1e-9) == expect_fail


# -- calibrated p-values and related MT19937 seeds ------------------------------------------------


def test_mt19937_seed_recovery_is_exact_and_needs_the_seeding() -> None:
    from seedtree.stats import mt19937 as mt

    seeds = [0, 1, 5489, 2**31, 2**32 - 1, 123456789]
    outputs = np.stack([mt.init_genrand_outputs(s, 624) for s in seeds])
    found, got = mt.recover_seeds(outputs)
    assert found.all() and got.tolist() == seeds
    # Random words, and MT19937 seeded through SeedSequence (numpy's MT19937(seed)), are not
    # init_genrand streams; neither is a stream read from its second output on.
    rng = np.random.default_rng(3)
    other = [
        rng.integers(0, 1 << 32, size=624, dtype=np.uint64).astype(np.uint32),
        np.random.Generator(np.random.MT19937(7)).integers(0, 1 << 32, size=624, dtype=np.uint64).astype(np.uint32),
        mt.init_genrand_outputs(7, 625)[1:],
    ]
    assert not mt.recover_seeds(np.stack(other))[0].any()
    # One changed bit anywhere in the recovered range breaks the 394 checks.
    broken = outputs[:1].copy()
    broken[0, 400] ^= np.uint32(1 << 17)
    assert not mt.recover_seeds(broken)[0].any()


@pytest.mark.parametrize("scheme", ["naive-mt19937", "torch-worker"])
def test_related_mt19937_seeds_fail_at_two_streams_by_their_seeds(scheme: str) -> None:
    # RandomState(seed + i) and torch's DataLoader worker seeding (base_seed + worker_id): what
    # a user with two workers gets. Decided within 64 KiB by the seed test alone.
    if scheme.startswith("torch"):
        pytest.importorskip("torch")
    report = check(scheme, streams=2, n_bytes=64 << 10, root=2**63 + 12345, first_children=0)
    assert report.verdict == "FAIL"
    row = next(r for r in report.rows if r["test"] == "mt19937-seeds")
    assert row["verdict"] == "FAIL" and row["p"] < 1e-7 and row["p_retest"] < 1e-7
    assert "2 of 2 streams are init_genrand MT19937" in row["detail"]


def test_mt19937_seeds_test_passes_independent_seeds_and_skips_other_generators() -> None:
    def random_32bit_seeds(i: int):
        seed = int(np.random.SeedSequence([i, 99]).generate_state(1)[0])
        return np.random.RandomState(seed)

    from seedtree.stats.schemes import RandomStateStream, Scheme

    independent = Scheme(
        "rs-random-seeds",
        "user",
        "RandomState(random 32-bit seed)",
        lambda root, idx: [RandomStateStream(random_32bit_seeds(i)) for i in idx],
    )
    X = np.stack([s.take(312) for s in independent.streams(0, range(64))], axis=1)
    test = B.MTSeeds(64, 312)
    test.update(B.Block(X))
    stat, p, detail = test.finish()
    assert test.skip_reason is None and "64 of 64 streams" in detail and p > 0.01
    good = np.random.default_rng(5).integers(0, 1 << 64, size=(312, 64), dtype=np.uint64)
    test = B.MTSeeds(64, 312)
    test.update(B.Block(good))
    test.finish()
    assert test.skip_reason.startswith("not applicable: 0 of 64 streams")
    assert B.MTSeeds(2, 100).skip_reason == "needs 312 words per stream (the first 624 32-bit outputs), has 100"


def test_discrete_tests_give_randomised_p_values() -> None:
    # Rank deficiencies of random matrices: with a tiebreak u the p-value is
    # P(S > s) + u P(S = s), exactly uniform under the null; without one, P(S >= s).
    rng = np.random.default_rng(8)
    X = rng.integers(0, 1 << 64, size=(4, 64), dtype=np.uint64)
    ps = {}
    for u in (None, 0.0, 0.5, 1.0):
        test = B.RankTest(64, 64, budget=4)
        test.tiebreak = u
        test.update(B.Block(X))
        ps[u] = test.finish()[1]
    assert ps[None] == ps[1.0] > ps[0.5] > ps[0.0]
    assert ps[0.5] == pytest.approx((ps[0.0] + ps[1.0]) / 2)
    # Over many null draws the randomised p-values are uniform (mean 1/2); the conservative
    # ones are not (the point mass at the observed sum is counted whole).
    tests = [B.RankTest(64, 64, budget=2) for _ in range(300)]
    acc = B.Accumulator("x", tests, threads=1, tiebreak_seed=42)
    assert len({t.tiebreak for t in tests}) == 300
    for t in tests:
        t.update(B.Block(rng.integers(0, 1 << 64, size=(2, 64), dtype=np.uint64)))
    p = np.array([o.p for o in acc.outcomes()])
    assert abs(p.mean() - 0.5) < 0.06
    from scipy.stats import kstest

    assert kstest(p, "uniform").pvalue > 0.001
    for t in tests:
        t.tiebreak = None
    assert np.mean([t.finish()[1] for t in tests]) > 0.6
