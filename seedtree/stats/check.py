"""``check``: build a scheme's streams, run the batteries, apply the verdict rule."""

from __future__ import annotations

import math
import queue
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from . import battery as own
from . import external
from .report import Report
from .schemes import Scheme, get_scheme
from .source import Interleaved, first_outputs
from .verdict import ALPHA, RULE, holm, retest_root

__all__ = ["BATTERIES", "FIRST_WORDS", "MODES", "Progress", "check"]

BATTERIES = ("own", "testu01", "practrand", "dieharder")
MODES = ("quick", "thorough")
FIRST_WORDS = 4


class Progress:
    """A one-line progress bar on stderr (redrawn at most 5 times a second)."""

    def __init__(self, label: str, total: int | None, enabled: bool) -> None:
        self.label, self.total, self.enabled = label, total, enabled
        self.start = time.perf_counter()
        self.last = 0.0

    def __call__(self, done: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.last < 0.2 and (self.total is None or done < self.total):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9) / 2**20
        if self.total:
            frac = min(1.0, done / self.total)
            bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
            text = f"[{bar}] {100 * frac:5.1f}% {done / 2**20:8.1f}/{self.total / 2**20:.1f} MiB"
        else:
            text = f"{done / 2**20:8.1f} MiB"
        sys.stderr.write(f"\r{self.label:<22} {text} {rate:7.1f} MiB/s")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _prefetch(items: Iterator[np.ndarray], depth: int = 2) -> Iterator[np.ndarray]:
    """Iterate ``items`` computed one step ahead in a thread: generation (Python calls per
    stream) overlaps the tests (numpy kernels that release the GIL)."""
    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            q.put(exc)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def _first_children(n_bytes: int, mode: str) -> int:
    # Enough children for 4+ birthday-spacings samples, growing with the run; capped because
    # building a child costs microseconds (RandomState: ~0.15 ms) whatever its size.
    cap = 1 << 14 if mode == "quick" else 1 << 16
    return int(min(cap, max(1 << 12, n_bytes // 1024)))


def _plan(k: int, rows: int, mode: str) -> own.Plan:
    mib = rows * k * 8 / 2**20
    scale = math.sqrt(max(1.0, mib / 16))
    if mode == "quick":
        return own.Plan(
            k, rows, rank_size=512, rank_budget=int(min(32, 8 * scale)), rank64_budget=int(min(2048, 256 * scale))
        )
    return own.Plan(
        k, rows, rank_size=1024, rank_budget=int(min(64, 16 * scale)), rank64_budget=int(min(16384, 1024 * scale))
    )


def _own_shape(k: int, n_bytes: int) -> tuple[int, int]:
    """(rows, streams) the own battery reads from ``n_bytes`` of ``k`` interleaved streams.

    Whole rows of k words when there are at least 2; below that, exactly the prefix of the
    interleaved stream that PractRand's first reports read: the first word of each of the
    first ``n_bytes // 8`` streams, as one row (tests that need 2+ words per stream skip).
    Stream i depends only on (root, i), so those are the same words as in a longer run."""
    rows = n_bytes // (8 * k)
    if rows >= 2:
        return rows, k
    if n_bytes // 8 < 2:
        raise ValueError(f"{n_bytes} bytes hold fewer than 2 words; give at least 16 bytes (e.g. --bytes 1M)")
    return 1, min(k, n_bytes // 8)


def _run_own(
    scheme: Scheme,
    k: int,
    n_bytes: int,
    root: int,
    first_stream: int,
    first_start: int,
    children: int,
    mode: str,
    progress: bool,
) -> tuple[list[own.Outcome], int]:
    rows, k = _own_shape(k, n_bytes)
    source = Interleaved(scheme, k, root, first_stream=first_stream)
    acc = own.Accumulator("interleaved", own.interleaved_tests(_plan(k, rows, mode)), tiebreak_seed=root)
    bar = Progress(f"own: {scheme.name}", rows * k * 8, progress)
    for block in _prefetch(source.blocks(rows)):
        acc.feed(block)
        bar(acc.words * 8)
    bar.close()
    outcomes = acc.outcomes()
    if children:
        first = own.Accumulator("first-outputs", own.first_output_tests(children, FIRST_WORDS), tiebreak_seed=root)
        first.feed_all(first_outputs(scheme, root, children, FIRST_WORDS, start=first_start))
        outcomes += first.outcomes()
    return outcomes, rows * k * 8


def _run_external(
    name: str,
    scheme: Scheme,
    k: int,
    n_bytes: int,
    root: int,
    first_stream: int,
    testu01: str,
    progress: bool,
    first_fail: dict[str, int | None] | None = None,
) -> tuple[list[own.Outcome], int, int]:
    """Outcomes, tests reported without p-values (PractRand), bytes the tool read. For
    PractRand, ``first_fail["practrand"]`` receives the first length it evaluated as FAIL."""
    chunks = _prefetch(Interleaved(scheme, k, root, first_stream=first_stream).chunks())
    bar = Progress(f"{name}: {scheme.name}", n_bytes if name == "practrand" else None, progress)
    try:
        if name == "testu01":
            rows, run = external.run_testu01(chunks, testu01, progress=bar)
            return rows, 0, run.bytes_read
        if name == "practrand":
            pr = external.run_practrand(chunks, n_bytes, progress=bar)
            if first_fail is not None:
                first_fail["practrand"] = pr.first_fail
            return pr.rows, pr.clean, pr.length
        rows, fed = external.run_dieharder(chunks, progress=bar)
        return rows, 0, fed
    finally:
        bar.close()


def _run(
    scheme: Scheme,
    k: int,
    n_bytes: int,
    batteries: Sequence[str],
    root: int,
    first_stream: int,
    first_start: int,
    children: int,
    mode: str,
    testu01: str,
    progress: bool,
    first_fail: dict[str, int | None] | None = None,
) -> tuple[list[tuple[str, own.Outcome]], int, dict[str, int]]:
    results: list[tuple[str, own.Outcome]] = []
    extra = 0
    read: dict[str, int] = {}
    for name in batteries:
        if name == "own":
            outcomes, read[name] = _run_own(
                scheme, k, n_bytes, root, first_stream, first_start, children, mode, progress
            )
        else:
            outcomes, clean, read[name] = _run_external(
                name, scheme, k, n_bytes, root, first_stream, testu01, progress, first_fail
            )
            extra += clean
        results.extend((name, o) for o in outcomes)
    return results, extra, read


def _key(battery: str, o: own.Outcome, seen: dict) -> tuple:
    base = (battery, o.source, o.name)
    seen[base] = seen.get(base, -1) + 1
    return base + (seen[base],)


def check(
    scheme: str | Scheme | Callable[[int], np.random.Generator] = "seedtree",
    streams: int = 1024,
    n_bytes: int = 16 << 20,
    batteries: tuple[str, ...] = ("own",),
    root: int | None = None,
    progress: bool = False,
    *,
    mode: str = "quick",
    testu01: str = "smallcrush",
    first_children: int | None = None,
) -> Report:
    """Test ``streams`` streams of ``scheme`` for independence; see ``seedtree.stats.verdict``.

    The own battery reads ``n_bytes`` of the interleaved stream (whole rows of ``streams``
    words; below 2 words per stream, the first word of the first ``n_bytes // 8`` streams,
    as PractRand's first reports do, and the report says so) plus the "first outputs"
    stream of ``first_children`` children (a default that grows with ``n_bytes``; 0 turns
    it off). TestU01 and dieharder read as much of the interleaved stream as their battery
    needs; PractRand reads up to ``n_bytes`` (rounded up to a power of 2), reporting from
    1 KiB on and stopping at its first FAIL, whose length goes to
    ``Report.first_fail["practrand"]``. ``root`` (fresh random if None, and recorded in the
    report) makes the run reproducible; the stream an external battery read is
    ``seedtree stream --scheme S --streams K --root R``.

    Raises ``BatteryUnavailable`` (before any work) if an asked-for tool is missing, and
    ValueError on bad arguments. The quick default takes a few seconds.
    """
    resolved = get_scheme(scheme)
    batteries = tuple(batteries)
    unknown = [b for b in batteries if b not in BATTERIES]
    if unknown or not batteries:
        raise ValueError(f"unknown batteries {unknown or batteries!r}; use a subset of {', '.join(BATTERIES)}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if isinstance(streams, bool) or not isinstance(streams, (int, np.integer)) or streams < 1:
        raise ValueError(f"streams must be a positive int, got {streams!r}")
    if isinstance(n_bytes, bool) or not isinstance(n_bytes, (int, np.integer)) or n_bytes < 8:
        raise ValueError(f"n_bytes must be an int of at least 8, got {n_bytes!r}")
    for name in batteries:
        if name != "own":
            external.require_tool(name)
    if resolved.needs:
        from ..core.optional import require

        require(resolved.needs, f"the {resolved.name!r} scheme")
    if "own" in batteries:
        _own_shape(int(streams), int(n_bytes))  # ValueError before any work
    root = secrets.randbits(64) if root is None else int(root)
    children = _first_children(n_bytes, mode) if first_children is None else int(first_children)
    started = time.perf_counter()

    first_fail: dict[str, int | None] = {}
    first, extra1, read = _run(
        resolved, streams, n_bytes, batteries, root, 0, 0, children, mode, testu01, progress, first_fail
    )
    flagged1 = holm([o.p for _, o in first], ALPHA, extra1)
    second_root = None
    flagged2_by_key: dict[tuple, tuple[own.Outcome, bool]] = {}
    if any(flagged1):
        # A user scheme has no root to change: re-test on the next streams and children instead.
        user = resolved.kind == "user"
        second_root = root if user else retest_root(root)
        second, extra2, _ = _run(
            resolved,
            streams,
            n_bytes,
            batteries,
            second_root,
            streams if user else 0,
            children if user else 0,
            children,
            mode,
            testu01,
            progress,
        )
        flagged2 = holm([o.p for _, o in second], ALPHA, extra2)
        seen: dict = {}
        for (b, o), f in zip(second, flagged2, strict=True):
            flagged2_by_key[_key(b, o, seen)] = (o, f)
    passed = not any(f for _, f in flagged2_by_key.values()) if second_root is not None else True

    rows = []
    seen = {}
    for (b, o), f1 in zip(first, flagged1, strict=True):
        o2, f2 = flagged2_by_key.get(_key(b, o, seen), (None, False))
        if o.skipped:
            verdict = "skipped"
        elif f2:
            verdict = "FAIL"
        elif f1:
            verdict = "suspicious"
        else:
            verdict = "pass"
        rows.append(
            {
                "battery": b,
                "source": o.source,
                "test": o.name,
                "p": None if o.skipped else o.p,
                "p_retest": None if o2 is None or o2.skipped else o2.p,
                "verdict": verdict,
                "statistic": None if o.skipped else o.statistic,
                "detail": o.skipped or o.detail,
            }
        )
    notes = []
    if any(r["verdict"] == "skipped" for r in rows):
        notes.append("skipped tests do not count (their reason is in the table)")
    if resolved.kind == "user" and second_root is not None:
        notes.append(f"user scheme: the re-test used streams {streams}..{2 * streams - 1}")
    if "own" in batteries and n_bytes < 16 * streams:
        _, k_read = _own_shape(streams, n_bytes)
        notes.append(
            f"{n_bytes} bytes are fewer than 2 words per stream: the own battery read the first word of streams "
            f"0..{k_read - 1} (the start of the interleaved stream, as PractRand's first reports do)"
        )
    return Report(
        scheme=resolved.name,
        kind=resolved.kind,
        streams=int(streams),
        bytes_read=read,
        root=root,
        retest_root=second_root,
        batteries=list(batteries),
        passed=passed,
        rule=RULE,
        rows=rows,
        seconds=time.perf_counter() - started,
        notes=notes,
        first_fail=first_fail,
    )
