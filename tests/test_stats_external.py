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
    reason="TestU01 harness seedtree-testu01 not installed (opt-in: sudo make batteries)",
)
needs_dieharder = pytest.mark.skipif(
    TOOLS["dieharder"] is None, reason="dieharder not installed (opt-in: sudo make batteries)"
)


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
    runs = {
        h: subprocess.run([TOOLS["testu01"], "smoke", h], input=data, capture_output=True, timeout=120)
        for h in ("both", "lo")
    }
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


# -- PractRand: the parser on RNG_test's interim reports, and the driver on a real RNG_test -------

PRACTRAND_INTERIM = """RNG_test using PractRand version 0.94
RNG = RNG_stdin64, seed = unknown
test set = core, folding = standard (64 bit)

rng=RNG_stdin64, seed=unknown
length= 1 kilobyte (2^10 bytes), time= 0.0 seconds
  Test Name                         Raw       Processed     Evaluation
  mod3n(5):(2,9-6)                  R= +24.3  p =  6.2e-9    VERY SUSPICIOUS
  ...and 5 test result(s) without anomalies

rng=RNG_stdin64, seed=unknown
length= 2 kilobytes (2^11 bytes), time= 0.1 seconds
  no anomalies in 8 test result(s)

rng=RNG_stdin64, seed=unknown
length= 4 kilobytes (2^12 bytes), time= 0.1 seconds
  Test Name                         Raw       Processed     Evaluation
  Gap-16:A                          R= +1160  p =  4e-1058    FAIL !!!!!!!!
  ...and 17 test result(s) without anomalies
"""


def test_practrand_interim_reports_give_the_first_fail_size() -> None:
    reports = ext.parse_practrand_reports(PRACTRAND_INTERIM)
    assert [(r.length, r.clean, len(r.rows), r.failed) for r in reports] == [
        (1024, 5, 1, False),
        (2048, 8, 0, False),
        (4096, 17, 1, True),
    ]
    rows, clean = ext.parse_practrand(PRACTRAND_INTERIM)  # the verdict reads the last report
    assert [r.name for r in rows] == ["Gap-16:A"] and clean == 17
    # Lengths go as KB: a bare number would be read by RNG_test as log2 of the length.
    assert ext.practrand_command("RNG_test", 16 << 20) == ["RNG_test", "stdin64", "-tlmin", "1KB", "-tlmax", "16384KB"]
    assert ext.practrand_command("RNG_test", 3000, tlmin=100)[2:] == ["-tlmin", "1KB", "-tlmax", "4KB"]


needs_practrand = pytest.mark.skipif(
    TOOLS["practrand"] is None,
    reason="PractRand's RNG_test is not on PATH (it is not packaged: build it as benchmarks/README.md says)",
)


@needs_practrand
def test_practrand_driver_against_a_real_rng_test() -> None:
    # A control fails within a few KiB, and the report is PractRand's first failing one.
    bad = check("duplicated", streams=2, n_bytes=1 << 20, batteries=("practrand",), root=5)
    assert bad.verdict == "FAIL"
    first = bad.first_fail["practrand"]
    assert first is not None and 1024 <= first <= 64 << 10 and bad.bytes_read["practrand"] == first
    # Good streams: every interim report from 1 KiB to 1 MiB, no FAIL, PASS.
    chunks = Interleaved("seedtree", 64, 5).chunks()
    run = ext.run_practrand(chunks, 1 << 20, timeout=120)
    assert [r.length for r in run.reports] == [1 << j for j in range(10, 21)]
    assert run.first_fail is None and run.length == 1 << 20 and run.clean > 50
    good = check("seedtree", streams=64, n_bytes=1 << 20, batteries=("practrand",), root=5)
    assert good.passed and good.first_fail == {"practrand": None}
    assert "practrand: no FAIL (reports from 1 KiB to 1048576 bytes)" in good.table()
