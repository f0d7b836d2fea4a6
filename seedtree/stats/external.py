"""External batteries fed from the interleaved stream through a pipe.

- TestU01 through our harness ``seedtree-testu01`` (``testu01_harness.c``, built by
  ``make batteries`` (``scripts/install-batteries.sh``) next to the venv's python, or ``$SEEDTREE_TESTU01``).
- PractRand's ``RNG_test stdin64`` when it is on PATH (not packaged; optional; the build
  recipe is in benchmarks/README.md). It is run with ``-tlmin 1KB``: it then reports at
  every power of 2 from 1 KiB and stops at its first failing report, so the size at which it
  FAILs is its true first-fail size (with its default ``-tlmin`` of 1.5 s of data, the first
  report, and so the smallest size it can name, is 128-256 MiB). Lengths are given as
  ``<n>KB``: RNG_test reads a bare number as log2 of the length.
- dieharder's useful tests only (the ``dab_*`` ones, ``-Y 1 -k 2``: resolve weak results,
  higher-precision p-values); its classic Diehard tests are too weak to matter here.

A tool that is missing raises ``BatteryUnavailable`` with what to install: never a pass.
Every p-value is returned two-sided (``2 min(p, 1 - p)``): these batteries count a p-value
too close to 1 as a failure too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .battery import Outcome

__all__ = [
    "BatteryUnavailable",
    "DIEHARDER_TESTS",
    "ENV_TESTU01",
    "INSTALL_HINT",
    "PRACTRAND_TLMIN",
    "PipeRun",
    "PractRandReport",
    "PractRandRun",
    "TESTU01_BATTERIES",
    "feed",
    "parse_dieharder",
    "parse_practrand",
    "parse_practrand_reports",
    "parse_testu01",
    "practrand_command",
    "require_tool",
    "run_dieharder",
    "run_practrand",
    "run_testu01",
    "testu01_path",
    "tool_status",
    "two_sided",
]

ENV_TESTU01 = "SEEDTREE_TESTU01"
TESTU01_BATTERIES = ("smallcrush", "crush", "bigcrush", "crush-linear", "smoke")
DIEHARDER_TESTS = {  # dieharder -d N: the dab_* tests (Brown's own; the useful ones)
    "dab_bytedistrib": 205,
    "dab_dct": 206,
    "dab_filltree": 207,
    "dab_filltree2": 208,
    "dab_monobit2": 209,
}
INSTALL_HINT = "install it with: sudo make batteries  (Debian/Ubuntu; TestU01 is in non-free)"


class BatteryUnavailable(RuntimeError):
    """An external battery was asked for but its tool is not installed."""


def testu01_path() -> str | None:
    """The harness binary: ``$SEEDTREE_TESTU01``, else next to this python, else on PATH."""
    env = os.environ.get(ENV_TESTU01)
    if env:
        return env if os.access(env, os.X_OK) else None
    beside = Path(sys.executable).parent / "seedtree-testu01"
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("seedtree-testu01")


def tool_status() -> dict[str, str | None]:
    """For each external battery, the path of its tool or None."""
    return {
        "testu01": testu01_path(),
        "practrand": shutil.which("RNG_test"),
        "dieharder": shutil.which("dieharder"),
    }


def require_tool(battery: str) -> str:
    """The tool's path, or BatteryUnavailable saying what is missing and how to get it."""
    path = tool_status().get(battery)
    if path:
        return path
    if battery == "testu01":
        where = os.environ.get(ENV_TESTU01) or str(Path(sys.executable).parent / "seedtree-testu01")
        raise BatteryUnavailable(
            f"battery 'testu01' is not available: the harness seedtree-testu01 was not found ({ENV_TESTU01}, "
            f"{where}, PATH); {INSTALL_HINT}"
        )
    if battery == "practrand":
        raise BatteryUnavailable(
            "battery 'practrand' is not available: PractRand's RNG_test is not on PATH. It is not packaged: "
            "build it from PractRand's sources and put RNG_test on PATH, or use --battery own,testu01"
        )
    if battery == "dieharder":
        raise BatteryUnavailable(f"battery 'dieharder' is not available: dieharder is not on PATH; {INSTALL_HINT}")
    raise ValueError(f"unknown battery {battery!r}; use own, testu01, practrand or dieharder")


def two_sided(p: float) -> float:
    """``2 min(p, 1 - p)``, clipped to [0, 1]."""
    return float(min(1.0, 2.0 * min(p, 1.0 - p)))


@dataclass
class PipeRun:
    """What a tool printed and how much of the stream it read."""

    stdout: str
    stderr: str
    returncode: int
    bytes_fed: int

    @property
    def bytes_read(self) -> int:
        """What the tool says it read (the harness prints ``BYTES<TAB>n``), else what was fed."""
        m = re.search(r"^BYTES\t(\d+)$", self.stdout, re.M)
        return int(m.group(1)) if m else self.bytes_fed


def feed(
    cmd: list[str],
    chunks: Iterator[np.ndarray],
    max_bytes: int | None = None,
    progress: Callable[[int], None] | None = None,
    timeout: float | None = None,
) -> PipeRun:
    """Run ``cmd`` with the chunks' little-endian bytes on its stdin until it stops reading
    (or ``max_bytes`` were written, then stdin is closed). Past ``timeout`` seconds the tool
    is killed and TimeoutError raised."""
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    timer = None
    if timeout is not None:
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
    out: dict[str, bytes] = {}

    def drain(name: str, stream) -> None:
        out[name] = stream.read()

    readers = [
        threading.Thread(target=drain, args=(n, s), daemon=True)
        for n, s in (("stdout", proc.stdout), ("stderr", proc.stderr))
    ]
    for t in readers:
        t.start()
    fed = 0
    try:
        for chunk in chunks:
            data = chunk.astype("<u8", copy=False).tobytes()
            if max_bytes is not None and fed + len(data) > max_bytes:
                data = data[: max_bytes - fed]
            assert proc.stdin is not None  # started with stdin=PIPE
            proc.stdin.write(data)
            fed += len(data)
            if progress is not None:
                progress(fed)
            if max_bytes is not None and fed >= max_bytes:
                break
    except (BrokenPipeError, ConnectionResetError):
        pass  # the tool has read what it needed
    finally:
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except BrokenPipeError:
            pass
    proc.wait()
    for t in readers:
        t.join()
    if timer is not None:
        timer.cancel()
        if proc.returncode == -9:
            raise TimeoutError(f"{cmd[0]} did not finish within {timeout:g} s (killed)")
    return PipeRun(
        out.get("stdout", b"").decode(errors="replace"),
        out.get("stderr", b"").decode(errors="replace"),
        proc.returncode,
        fed,
    )


# -- TestU01 -------------------------------------------------------------------------------------


def parse_testu01(text: str, battery: str) -> list[Outcome]:
    """The harness's ``RESULT<TAB>name<TAB>p`` lines as outcomes (p two-sided)."""
    rows = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0] == "RESULT":
            raw = float(parts[2])
            if raw < 0:  # TestU01 leaves -1 where a test produced no p-value
                rows.append(Outcome(parts[1], f"testu01:{battery}", float("nan"), float("nan"), "", "no p-value"))
                continue
            rows.append(Outcome(parts[1], f"testu01:{battery}", raw, two_sided(raw), f"TestU01 p={raw:.4g}"))
    return rows


def run_testu01(
    chunks: Iterator[np.ndarray],
    battery: str = "smallcrush",
    halves: str = "both",
    progress: Callable[[int], None] | None = None,
    timeout: float | None = None,
) -> tuple[list[Outcome], PipeRun]:
    """Run a TestU01 battery (``TESTU01_BATTERIES``) on the stream."""
    if battery not in TESTU01_BATTERIES:
        raise ValueError(f"unknown TestU01 battery {battery!r}; use one of {', '.join(TESTU01_BATTERIES)}")
    run = feed([require_tool("testu01"), battery, halves], chunks, progress=progress, timeout=timeout)
    rows = parse_testu01(run.stdout, battery)
    if run.returncode != 0 or not rows:
        raise RuntimeError(f"seedtree-testu01 {battery} failed (exit {run.returncode}): {run.stderr.strip()[-500:]}")
    return rows, run


# -- PractRand ------------------------------------------------------------------------------------

_PRACTRAND_ROW = re.compile(
    r"^\s*(?P<name>\S.*?)\s+R=\s*(?P<r>[-+]?[\d.]+)\s+p\s*(?:=|~=)\s*(?P<p>1-[\d.e+-]+|[\d.e+-]+)\s+(?P<eval>.*)$"
)
_PRACTRAND_CLEAN = re.compile(r"and (\d+) test result\(s\) without anomalies|no anomalies in (\d+) test result\(s\)")
_PRACTRAND_LENGTH = re.compile(r"^length=.*\(2\^(\d+) bytes\)", re.M)
PRACTRAND_TLMIN = 1 << 10  # first interim report at 1 KiB: the first-fail size is then exact to a power of 2


@dataclass
class PractRandReport:
    """One of RNG_test's reports: the length it covers, its anomaly rows, how many tests it
    reported without anomalies, and whether any row is evaluated as a FAIL."""

    length: int
    rows: list[Outcome]
    clean: int

    @property
    def failed(self) -> bool:
        """Whether PractRand itself evaluated a test as FAIL at this length."""
        return any("FAIL" in r.detail for r in self.rows)


def _parse_rows(text: str) -> tuple[list[Outcome], int]:
    rows = []
    for line in text.splitlines():
        m = _PRACTRAND_ROW.match(line)
        if not m:
            continue
        p_text = m.group("p")
        raw = 1.0 - float(p_text[2:]) if p_text.startswith("1-") else float(p_text)
        rows.append(
            Outcome(
                m.group("name"),
                "practrand",
                float(m.group("r")),
                two_sided(raw),
                f"R={m.group('r')}, PractRand says {m.group('eval').strip()!r}",
            )
        )
    clean = sum(int(a or b) for a, b in _PRACTRAND_CLEAN.findall(text))
    return rows, clean


def parse_practrand_reports(text: str) -> list[PractRandReport]:
    """Every report in RNG_test's output, in order (one per power-of-2 length from
    ``-tlmin`` on, the last one where it stopped)."""
    marks = list(_PRACTRAND_LENGTH.finditer(text))
    reports = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        rows, clean = _parse_rows(text[m.end() : end])
        reports.append(PractRandReport(1 << int(m.group(1)), rows, clean))
    return reports


def parse_practrand(text: str) -> tuple[list[Outcome], int]:
    """The last report's anomaly lines (``name  R= +x  p = y  evaluation``) as outcomes, and
    the number of tests it reported without anomalies (they count in the family size). Text
    without report headers is read as one report."""
    reports = parse_practrand_reports(text)
    if not reports:
        return _parse_rows(text)
    return reports[-1].rows, reports[-1].clean


@dataclass
class PractRandRun:
    """What ``run_practrand`` found: the last report's outcomes and clean count (the verdict
    uses them), every report, and the first length PractRand evaluated as FAIL (None: no
    FAIL up to ``length``, the longest it reached)."""

    rows: list[Outcome]
    clean: int
    reports: list[PractRandReport]
    first_fail: int | None
    length: int
    pipe: PipeRun


def practrand_command(tool: str, n_bytes: int, tlmin: int = PRACTRAND_TLMIN) -> list[str]:
    """``RNG_test stdin64`` reporting at every power of 2 from ``tlmin`` up to ``n_bytes``
    rounded up to a power of 2, stopping at the first failing report (its default
    ``-tlfail``). Lengths go as ``<n>KB``: a bare number means log2 of the length to RNG_test."""
    size = 1 << max(10, (n_bytes - 1).bit_length())  # PractRand lengths are powers of two
    tlmin = 1 << max(10, (tlmin - 1).bit_length())
    return [tool, "stdin64", "-tlmin", f"{tlmin >> 10}KB", "-tlmax", f"{size >> 10}KB"]


def run_practrand(
    chunks: Iterator[np.ndarray],
    n_bytes: int,
    progress: Callable[[int], None] | None = None,
    tlmin: int = PRACTRAND_TLMIN,
    timeout: float | None = None,
) -> PractRandRun:
    """``RNG_test stdin64`` on up to ``n_bytes`` of the stream, reporting from ``tlmin`` on
    (default 1 KiB), so that ``first_fail`` is PractRand's true first-fail size (to a power
    of 2) rather than the length of its first report."""
    tool = require_tool("practrand")
    cmd = practrand_command(tool, n_bytes, tlmin)
    # Not cut at ``size``: RNG_test stops itself at -tlmax (an early EOF would lose its last report).
    run = feed(cmd, chunks, progress=progress, timeout=timeout)
    reports = parse_practrand_reports(run.stdout)
    if not reports:
        raise RuntimeError(f"RNG_test printed no report (exit {run.returncode}): {run.stderr.strip()[-500:]}")
    first_fail = next((r.length for r in reports if r.failed), None)
    last = reports[-1]
    return PractRandRun(last.rows, last.clean, reports, first_fail, last.length, run)


# -- dieharder ------------------------------------------------------------------------------------

_DIEHARDER_ROW = re.compile(r"^\s*(\w+)\|\s*(\d+)\|\s*(\d+)\|\s*(\d+)\|\s*([\d.]+)\|\s*(\w+)")


def parse_dieharder(text: str) -> list[Outcome]:
    """dieharder's result table rows (``name|ntup|tsamples|psamples|p|assessment``)."""
    rows = []
    for line in text.splitlines():
        m = _DIEHARDER_ROW.match(line)
        if m:
            raw = float(m.group(5))
            name = m.group(1) + (f" (ntup {m.group(2)})" if m.group(2) != "0" else "")
            rows.append(Outcome(name, "dieharder", raw, two_sided(raw), f"dieharder p={raw:.4g}, {m.group(6)}"))
    return rows


def run_dieharder(
    chunks: Iterator[np.ndarray], tests: dict[str, int] | None = None, progress: Callable[[int], None] | None = None
) -> tuple[list[Outcome], int]:
    """dieharder's ``dab_*`` tests (``-g 200``: raw words on stdin), one process per test;
    returns the outcomes and the bytes fed."""
    tool = require_tool("dieharder")
    rows: list[Outcome] = []
    done = 0
    for name, number in (tests or DIEHARDER_TESTS).items():
        step = None if progress is None else (lambda n, base=done: progress(base + n))
        run = feed([tool, "-g", "200", "-d", str(number), "-Y", "1", "-k", "2"], chunks, progress=step)
        done += run.bytes_fed
        found = parse_dieharder(run.stdout)
        if not found:
            raise RuntimeError(f"dieharder {name} printed no result (exit {run.returncode}): {run.stderr[-500:]}")
        rows.extend(found)
    return rows, done
