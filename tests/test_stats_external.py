"""External batteries through real pipes: our TestU01 harness and dieharder when installed
(skipped with the reason otherwise), and the PractRand parser (PractRand is not packaged)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from seedtree.stats import check, tool_status
from seedtree.stats import external as ext
from seedtree.stats.source import Interleaved

TOOLS = tool_status()
needs_testu01 = pytest.mark.skipif(
    TOOLS["testu01"] is None,
    reason="TestU01 harness seedtree-testu01 not installed (run: sudo bash scripts/install-batteries.sh)")
needs_dieharder = pytest.mark.skipif(
    TOOLS["dieharder"] is None, reason="dieharder not installed (run: sudo bash scripts/install-batteries.sh)")


def _words(n: int, seed: int = 1) -> bytes:
    return np.random.default_rng(seed).integers(0, 1 << 64, size=n, dtype=np.uint64).astype("<u8").tobytes()


@needs_testu01
def test_harness_passes_good_words_and_fails_a_counter() -> None:
    good = subprocess.run([TOOLS["testu01"], "smoke"], input=_words(4 << 20), capture_output=True, timeout=120)
    assert good.returncode == 0, good.stderr
    rows = ext.parse_testu01(good.stdout.decode(), "smoke")
    assert [r.name for r in rows] == ["BirthdaySpacings, t = 2", "Gap, r = 0", "MatrixRank, 60 x 60"]
    assert all(r.p > 1e-3 for r in rows)
    counter = np.arange(4 << 20, dtype="<u8").tobytes()
    bad = subprocess.run([TOOLS["testu01"], "smoke"], input=counter, capture_output=True, timeout=120)
    assert bad.returncode == 0
    assert all(r.p < 1e-6 for r in ext.parse_testu01(bad.stdout.decode(), "smoke"))


@needs_testu01
def test_harness_never_passes_on_short_input() -> None:
    proc = subprocess.run([TOOLS["testu01"], "smoke"], input=_words(1000), capture_output=True, timeout=60)
    assert proc.returncode == 3
    assert b"input ended after 8000 bytes, before the battery finished" in proc.stderr
    assert b"RESULT" not in proc.stdout
    usage = subprocess.run([TOOLS["testu01"], "nocrush"], capture_output=True, timeout=60)
    assert usage.returncode == 2 and b"usage" in usage.stderr


@needs_testu01
def test_harness_reads_two_numbers_per_word_in_both_mode() -> None:
    data = _words(8 << 20, seed=2)
    runs = {h: subprocess.run([TOOLS["testu01"], "smoke", h], input=data, capture_output=True, timeout=120)
            for h in ("both", "lo")}
    assert all(r.returncode == 0 for r in runs.values())
    both = ext.PipeRun(runs["both"].stdout.decode(), "", 0, 0).bytes_read
    lo = ext.PipeRun(runs["lo"].stdout.decode(), "", 0, 0).bytes_read
    assert abs(lo / both - 2) < 0.01  # not exact: the gap test reads until it has seen enough gaps


@needs_testu01
def test_check_with_testu01_smoke_passes_seedtree_and_fails_a_control() -> None:
    good = check("seedtree", streams=1024, batteries=("testu01",), root=11, testu01="smoke")
    assert good.passed and good.bytes_read["testu01"] > 1 << 20
    assert {r["source"] for r in good.rows} == {"testu01:smoke"}
    bad = check("duplicated", streams=1024, batteries=("testu01",), root=11, testu01="smoke")
    assert not bad.passed


@needs_testu01
@pytest.mark.slow
def test_smallcrush_passes_1024_interleaved_seedtree_streams() -> None:
    report = check("seedtree", streams=1024, batteries=("testu01",), root=2024, testu01="smallcrush")
    assert len(report.rows) == 15  # SmallCrush's 15 p-values
    assert report.passed, report.table()


@needs_dieharder
def test_dieharder_dab_test_through_the_pipe() -> None:
    chunks = Interleaved("seedtree", 256, 3).chunks()
    rows, fed = ext.run_dieharder(chunks, {"dab_monobit2": 209})
    assert fed > 0 and [r.name for r in rows] == ["dab_monobit2 (ntup 12)"]
    assert 0 <= rows[0].p <= 1 and ("PASSED" in rows[0].detail or "WEAK" in rows[0].detail)


def test_practrand_report_parsing() -> None:
    # The layout RNG_test prints (PractRand 0.94/0.95); PractRand itself is not packaged here.
    text = """RNG_test using PractRand version 0.95
RNG = RNG_stdin64, seed = unknown
test set = core, folding = standard (64 bit)

rng=RNG_stdin64, seed=unknown
length= 4 megabytes (2^22 bytes), time= 0.2 seconds
  Test Name                         Raw       Processed     Evaluation
  BRank(12):256(2)                  R= +1272  p~=  5.4e-384   FAIL !!!!!!!
  [Low8/64]DC6-9x1Bytes-1           R=  -4.9  p =1-1.1e-3   unusual
  ...and 138 test result(s) without anomalies
"""
    rows, clean = ext.parse_practrand(text)
    assert clean == 138
    assert [r.name for r in rows] == ["BRank(12):256(2)", "[Low8/64]DC6-9x1Bytes-1"]
    assert rows[0].p < 1e-300 and abs(rows[1].p - 2.2e-3) < 1e-9
    assert "FAIL" in rows[0].detail


def test_two_sided() -> None:
    assert ext.two_sided(0.3) == 0.6 and ext.two_sided(0.999) == pytest.approx(0.002) and ext.two_sided(0.5) == 1
