"""The independence battery against PractRand, its false alarms and speed, and TestU01.

    .venv/bin/python benchmarks/battery.py [--sections power,false-alarms,practrand-long,speed,testu01,big]

Sections (each bounded by ``--budget-seconds``, default 570 s: run big sections one or a
few at a time on a 2-core machine; rows of the power and false-alarms tables measured by
earlier runs are kept, so the table can be measured in several runs):

- power: for each scheme (the negative controls and the common recipes) and each stream
  count (``--power-streams``, default 2, 1024, 8192), over ``--power-roots`` random roots
  (default 20, drawn from a fixed meta-seed): the smallest power-of-2 size, from 1 KiB
  up to ``--power-max-bytes`` (16 MiB), at which the quick
  ``check`` FAILS (re-test included) on the interleaved stream alone (``first_children=0``:
  the bytes PractRand reads), and PractRand's first FAIL (``RNG_test stdin64 -tlmin 1KB``,
  its default ``-tlfail``) on the same interleaved stream up to the same size.
- false-alarms: the good schemes over ``--fa-roots`` random roots (default 40) at each of
  ``--fa-streams`` stream counts x ``--fa-bytes``, default quick checks: how many runs were
  suspicious / FAILED, against the rule's rates (<= 1% / <= 0.01%).
- practrand-long: PractRand alone on ``--long-schemes`` at 2 streams for ``--long-roots``
  roots up to ``--long-bytes`` (default 1 GiB): how far the 2-stream MT19937 recipes pass it.
- first-outputs: the default check (with the first-outputs data set of 4 096 children) at 2
  streams x 1 MiB over the power roots, for the schemes the 2 interleaved streams do not show.
- mt-xor: the xor of ``RandomState(s)`` and ``RandomState(s + 1)`` position by position
  over 2 000 random seeds (why only a generator-aware test sees these related seeds).
- speed: the own battery's MB/s on ready data (the target: >= 100 MB/s) and ``check``
  end to end (generation included).
- testu01: SmallCrush on 1024 interleaved seedtree streams; then which TestU01 battery
  catches each control: SmallCrush first, and Crush's linear tests (its MatrixRank and
  LinearComp entries, via our harness's ``crush-linear``) for what SmallCrush misses.
  Crush in full (~1 h of CPU plus ~100 GB of stream) and BigCrush are not run. Run this
  section on its own (``--sections testu01``): it takes most of the 10 minutes.
- big: seedtree children at ``--big-streams`` streams x ``--big-bytes``, bounded by
  ``--big-seconds``; reports how far it got and the battery's verdict on that prefix.

The p-value calibration (KS over 100 roots per test) is ``benchmarks/calibration.py``.
Writes a table per section and benchmarks/results/battery.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from seedtree.stats import CONTROLS, GOOD, check, external, holm, tool_status
from seedtree.stats import battery as own
from seedtree.stats.check import _plan, _prefetch
from seedtree.stats.commands import parse_size
from seedtree.stats.source import Interleaved

RESULTS = Path(__file__).resolve().parent / "results"
META_SEED_POWER = 15_2026_11_29  # roots for the first-fail table (drawn, not hand-picked)
META_SEED_FALSE_ALARMS = 15_4040
POWER_SCHEMES = list(CONTROLS) + ["torch-worker", "default-rng-plus-i"]


def random_roots(n: int, meta_seed: int) -> list[int]:
    """``n`` 64-bit roots from a fixed meta-seed: reproducible, and none hand-picked."""
    words = np.random.SeedSequence(meta_seed).generate_state(2 * n, dtype=np.uint32).astype(np.uint64)
    return [int(hi << np.uint64(32) | lo) for hi, lo in zip(words[0::2], words[1::2], strict=True)]


def own_first_fail(scheme: str, k: int, root: int, max_bytes: int) -> tuple[int | None, list[str]]:
    """Smallest power-of-2 size from 1 KiB at which the quick check FAILS (re-test included),
    reading the interleaved stream only (first_children=0: the bytes PractRand reads; below 2
    words per stream, the first word of the first size/8 streams), and the deciding tests."""
    size = 1 << 10
    while size <= max_bytes:
        report = check(scheme, streams=k, n_bytes=size, root=root, first_children=0)
        if not report.passed:
            return size, sorted({r["test"] for r in report.failing()})
        size *= 2
    return None, []


def practrand_first_fail(scheme: str, k: int, root: int, max_bytes: int) -> int | None:
    """PractRand's first FAIL length (``-tlmin 1KB``, default -tlfail) up to ``max_bytes``."""
    run = external.run_practrand(Interleaved(scheme, k, root).chunks(), max_bytes, timeout=600)
    return run.first_fail


def _fmt(size: int | None) -> str:
    if size is None:
        return "-"
    return f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"


def power(
    schemes: list[str], stream_counts: list[int], n_roots: int, max_bytes: int, deadline: float, with_practrand: bool
) -> list[dict]:
    """First-fail sizes of the own battery and of PractRand over ``n_roots`` random roots."""
    rows = []
    root_list = random_roots(n_roots, META_SEED_POWER)
    for k in stream_counts:
        for scheme in schemes:
            own_sizes, pr_sizes, deciding = [], [], {}
            if time.time() > deadline:
                print(f"  {scheme:<18} {k:>5} streams: not measured (time budget)", flush=True)
                continue  # no row: an earlier run's row for it is kept
            for root in root_list:
                if time.time() > deadline:
                    break
                size, tests = own_first_fail(scheme, k, root, max_bytes)
                own_sizes.append(size)
                for t in tests:
                    deciding[t] = deciding.get(t, 0) + 1
                if with_practrand:
                    pr_sizes.append(practrand_first_fail(scheme, k, root, max_bytes))
            row = {
                "scheme": scheme,
                "streams": k,
                "roots": len(own_sizes),
                "max_bytes": max_bytes,
                "own_first_fail": own_sizes,
                "own_deciding_tests": deciding,
                "practrand_first_fail": pr_sizes if with_practrand else None,
                "root_list": [str(r) for r in root_list[: len(own_sizes)]],
                "meta_seed": META_SEED_POWER,
                "practrand_options": "stdin64 -tlmin 1KB -tlmax <max_bytes> (default -tlfail)"
                if with_practrand
                else None,
            }
            rows.append(row)
            caught = [x for x in own_sizes if x is not None]
            text = f"  {scheme:<18} {k:>5} streams: own FAILS {len(caught)} of {len(own_sizes)} roots"
            if caught:
                text += f" (median {_fmt(int(np.median(caught)))}, worst {_fmt(max(caught))})"
            if with_practrand:
                pc = [x for x in pr_sizes if x is not None]
                text += f"; PractRand {len(pc)} of {len(pr_sizes)}"
                if pc:
                    text += f" (median {_fmt(int(np.median(pc)))}, worst {_fmt(max(pc))})"
            print(text + f"; decided by {deciding}", flush=True)
    return rows


def first_outputs_2(schemes: list[str], n_roots: int, n_bytes: int) -> list[dict]:
    """The default check (interleaved + first outputs of 4 096+ children) at 2 streams: what
    the first-outputs data set adds where the 2 interleaved streams alone show nothing."""
    rows = []
    for scheme in schemes:
        fails, deciding = 0, {}
        for root in random_roots(n_roots, META_SEED_POWER):
            report = check(scheme, streams=2, n_bytes=n_bytes, root=root)
            fails += not report.passed
            for r in report.failing():
                key = f"{r['source']}: {r['test']}"
                deciding[key] = deciding.get(key, 0) + 1
        rows.append(
            {
                "scheme": scheme,
                "streams": 2,
                "bytes": n_bytes,
                "roots": n_roots,
                "failed": fails,
                "deciding_tests": deciding,
                "meta_seed": META_SEED_POWER,
            }
        )
        print(
            f"  {scheme:<18} 2 streams x {_fmt(n_bytes)} + first outputs: FAIL on {fails} of {n_roots} roots "
            f"{deciding}",
            flush=True,
        )
    return rows


def mt_xor(pairs: int, outputs: int, meta_seed: int = 15_2002) -> dict:
    """Is ``RandomState(s) ^ RandomState(s + 1)`` biased at any output position? Over
    ``pairs`` random 32-bit seeds s: z of the mean popcount of the xor at each of the first
    ``outputs`` 32-bit outputs, and z of each bit's mean (independent streams give N(0, 1))."""
    seeds = np.random.SeedSequence(meta_seed).generate_state(pairs, dtype=np.uint32)
    pop = np.zeros(outputs)
    bits = np.zeros((outputs, 32))
    shifts = np.arange(32, dtype=np.uint32)
    for s in seeds:
        a = np.random.RandomState(int(s)).randint(0, 1 << 32, size=outputs, dtype=np.uint64).astype(np.uint32)
        b = np.random.RandomState((int(s) + 1) % (1 << 32)).randint(0, 1 << 32, size=outputs, dtype=np.uint64)
        x = a ^ b.astype(np.uint32)
        pop += np.bitwise_count(x)
        bits += (x[:, None] >> shifts) & np.uint32(1)
    z_pop = (pop / pairs - 16) / np.sqrt(8 / pairs)
    z_bit = (bits / pairs - 0.5) / np.sqrt(0.25 / pairs)
    out = {
        "pairs": pairs,
        "outputs": outputs,
        "meta_seed": meta_seed,
        "max_abs_z_popcount": float(abs(z_pop).max()),
        "mean_z2_popcount": float((z_pop**2).mean()),
        "max_abs_z_bit": float(abs(z_bit).max()),
        "mean_z2_bit": float((z_bit**2).mean()),
    }
    print(
        f"  RandomState(s) ^ RandomState(s + 1), {pairs} seeds x {outputs} outputs: popcount max |z| "
        f"{out['max_abs_z_popcount']:.2f} (mean z^2 {out['mean_z2_popcount']:.3f}), per bit max |z| "
        f"{out['max_abs_z_bit']:.2f} over {32 * outputs} bits (mean z^2 {out['mean_z2_bit']:.3f})",
        flush=True,
    )
    return out


def _cell(sizes: list[int | None], max_bytes: int) -> str:
    """'8 KiB (20/20)', '16-32 KiB, median 16 KiB (20/20)' or '> 16 MiB (0/20)'."""
    caught = sorted(x for x in sizes if x is not None)
    n = len(sizes)
    if not caught:
        return f"> {_fmt(max_bytes)} (0/{n})"
    lo, hi, med = caught[0], caught[-1], caught[len(caught) // 2]
    where = _fmt(lo) if lo == hi else f"{_fmt(lo)}-{_fmt(hi)}, median {_fmt(med)}"
    return f"{where} ({len(caught)}/{n})"


def power_table(rows: list[dict]) -> str:
    """The power rows as a markdown table: scheme x streams -> first-fail sizes, k of n roots."""
    counts = sorted({r["streams"] for r in rows})
    schemes = list(dict.fromkeys(r["scheme"] for r in rows))
    by = {(r["scheme"], r["streams"]): r for r in rows}
    head = "| scheme | " + " | ".join(f"{k} streams: own / PractRand" for k in counts) + " |"
    lines = [head, "| --- |" + " --- |" * len(counts)]
    for scheme in schemes:
        cells = []
        for k in counts:
            r = by.get((scheme, k))
            if r is None:
                cells.append("not measured")
                continue
            own_cell = _cell(r["own_first_fail"], r["max_bytes"])
            pr = r.get("practrand_first_fail")
            pr_cell = "not run" if pr is None else _cell(pr, r["max_bytes"])
            cells.append(f"{own_cell} / {pr_cell}")
        lines.append(f"| {scheme} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def false_alarms(schemes: list[str], k: int, n_roots: int, n_bytes: int) -> list[dict]:
    """Good schemes over ``n_roots`` random roots: how many checks were suspicious / FAILED."""
    rows = []
    for scheme in schemes:
        suspicious, failed, flagged = 0, 0, {}
        for root in random_roots(n_roots, META_SEED_FALSE_ALARMS):
            report = check(scheme, streams=k, n_bytes=n_bytes, root=root)
            suspicious += report.suspicious
            failed += not report.passed
            for r in report.rows:
                if r["verdict"] in ("suspicious", "FAIL"):
                    flagged[r["test"]] = flagged.get(r["test"], 0) + 1
        rows.append(
            {
                "scheme": scheme,
                "streams": k,
                "roots": n_roots,
                "meta_seed": META_SEED_FALSE_ALARMS,
                "bytes": n_bytes,
                "suspicious": suspicious,
                "failed": failed,
                "flagged_tests": flagged,
            }
        )
        print(
            f"  {scheme:<12} {k:>5} streams x {_fmt(n_bytes)}: {suspicious} of {n_roots} suspicious, "
            f"{failed} FAIL {flagged or ''}",
            flush=True,
        )
    return rows


def practrand_long(schemes: list[str], n_roots: int, max_bytes: int, deadline: float) -> list[dict]:
    """PractRand (``-tlmin 1KB``) on 2 interleaved streams of each scheme up to ``max_bytes``."""
    rows = []
    for scheme in schemes:
        for root in random_roots(n_roots, META_SEED_POWER):
            left = deadline - time.time()
            if left < 30:
                break
            t0 = time.perf_counter()
            try:
                run = external.run_practrand(Interleaved(scheme, 2, root).chunks(), max_bytes, timeout=left)
                reached, first = run.length, run.first_fail
            except TimeoutError:
                reached, first = None, None
            rows.append(
                {
                    "scheme": scheme,
                    "streams": 2,
                    "root": str(root),
                    "asked_bytes": max_bytes,
                    "reached_bytes": reached,
                    "first_fail": first,
                    "seconds": time.perf_counter() - t0,
                }
            )
            print(
                f"  {scheme:<16} root {root}: PractRand "
                + (f"FAIL at {_fmt(first)}" if first else f"no FAIL up to {_fmt(reached)}")
                + f" ({rows[-1]['seconds']:.0f} s)",
                flush=True,
            )
    return rows


def speed(mib: int, streams: int) -> dict:
    rows = (mib << 20) // (8 * streams)
    src = Interleaved("seedtree", streams, 5)
    t0 = time.perf_counter()
    blocks = list(src.blocks(rows))
    gen_s = time.perf_counter() - t0
    check("seedtree", streams=streams, n_bytes=16 << 20, root=4)  # warm-up: scipy import, rank tables
    battery_s = float("inf")
    for _ in range(2):  # best of 2
        acc = own.Accumulator("interleaved", own.interleaved_tests(_plan(streams, rows, "quick")))
        t0 = time.perf_counter()
        for b in blocks:
            acc.feed(b)
        acc.outcomes()
        battery_s = min(battery_s, time.perf_counter() - t0)
    del blocks
    t0 = time.perf_counter()
    report = check("seedtree", streams=streams, n_bytes=mib << 20, root=5, first_children=0)
    e2e_s = time.perf_counter() - t0
    out = {
        "mib": mib,
        "streams": streams,
        "battery_MBps": mib * 1.048576 / battery_s,
        "generation_MBps": mib * 1.048576 / gen_s,
        "check_end_to_end_MBps": mib * 1.048576 / e2e_s,
        "check_verdict": report.verdict,
        "target": "own battery >= 100 MB/s (PractRand ~170 MB/s)",
    }
    print(
        f"  own battery {out['battery_MBps']:.0f} MB/s on ready data; generation of {streams} streams "
        f"{out['generation_MBps']:.0f} MB/s; check end to end {out['check_end_to_end_MBps']:.0f} MB/s",
        flush=True,
    )
    return out


def testu01(streams: int, deadline: float) -> dict:
    if tool_status()["testu01"] is None:
        print("  skipped: TestU01 harness not installed (sudo bash scripts/install-batteries.sh)")
        return {"skipped": "TestU01 harness not installed"}
    t0 = time.perf_counter()
    good = check("seedtree", streams=streams, batteries=("testu01",), root=2024, testu01="smallcrush")
    out = {
        "smallcrush_seedtree": {
            "verdict": good.verdict,
            "seconds": time.perf_counter() - t0,
            "bytes": good.bytes_read["testu01"],
            "p": {r["test"]: r["p"] for r in good.rows},
        },
        "controls": [],
    }
    print(
        f"  SmallCrush, seedtree x {streams}: {good.verdict} ({out['smallcrush_seedtree']['seconds']:.0f} s, "
        f"{good.bytes_read['testu01'] / 2**20:.0f} MiB)",
        flush=True,
    )
    missed = []
    for scheme in CONTROLS:
        t0 = time.perf_counter()
        rep = check(scheme, streams=streams, batteries=("testu01",), root=2024, testu01="smallcrush")
        row = {
            "scheme": scheme,
            "smallcrush": {
                "verdict": rep.verdict,
                "seconds": time.perf_counter() - t0,
                "failing": [r["test"] for r in rep.failing()],
            },
        }
        print(
            f"  {scheme:<18} SmallCrush: {rep.verdict} in {row['smallcrush']['seconds']:.0f} s "
            f"{row['smallcrush']['failing'][:4]}",
            flush=True,
        )
        out["controls"].append(row)
        if rep.passed:
            missed.append(row)
    # Crush's linear tests (MatrixRank up to 1200 x 1200, LinearComp) on what SmallCrush missed:
    # one pass reads ~5.9 GB of stream, minutes here, so it is bounded by the deadline.
    for row in missed:
        left = deadline - time.time()
        if left < 60:
            row["crush-linear"] = "not run (time budget)"
            continue
        t0 = time.perf_counter()
        try:
            rows, run = external.run_testu01(
                Interleaved(row["scheme"], streams, 2024).chunks(), "crush-linear", timeout=left
            )
        except TimeoutError as exc:
            row["crush-linear"] = f"not finished: {exc}"
            print(f"  {row['scheme']:<18} crush-linear: {exc}", flush=True)
            continue
        flagged = holm([r.p for r in rows])
        row["crush-linear"] = {
            "flagged_first_run": [r.name for r, f in zip(rows, flagged, strict=True) if f],
            "p": {r.name: r.p for r in rows},
            "bytes": run.bytes_read,
            "seconds": time.perf_counter() - t0,
        }
        print(
            f"  {row['scheme']:<18} crush-linear: flagged {row['crush-linear']['flagged_first_run']} "
            f"(smallest p {min(r.p for r in rows):.3g}, {run.bytes_read / 2**30:.1f} GiB, "
            f"{row['crush-linear']['seconds']:.0f} s)",
            flush=True,
        )
    return out


def big(streams: int, n_bytes: int, seconds: float) -> dict:
    rows_total = n_bytes // (8 * streams)
    src = Interleaved("seedtree", streams, 424242)
    acc = own.Accumulator("interleaved", own.interleaved_tests(_plan(streams, rows_total, "thorough")))
    t0 = time.perf_counter()
    for block in _prefetch(src.blocks(rows_total)):
        acc.feed(block)
        if time.perf_counter() - t0 > seconds:
            break
    outcomes = acc.outcomes()
    flagged = holm([o.p for o in outcomes])
    out = {
        "streams": streams,
        "asked_bytes": n_bytes,
        "reached_bytes": acc.words * 8,
        "seconds": time.perf_counter() - t0,
        "flagged": [o.name for o, f in zip(outcomes, flagged, strict=True) if f],
        "smallest_p": min(o.p for o in outcomes if o.p == o.p),
        "verdict_on_prefix": "PASS" if not any(flagged) else "suspicious (re-test needed)",
    }
    print(
        f"  seedtree x {streams}: {out['reached_bytes'] / 2**30:.2f} of {n_bytes / 2**30:.2f} GiB in "
        f"{out['seconds']:.0f} s: {out['verdict_on_prefix']}, smallest p {out['smallest_p']:.3g}",
        flush=True,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sections",
        default="power",
        help="comma-separated: power, false-alarms, practrand-long, first-outputs, mt-xor, speed, testu01, big, "
        "table (prints the power table as markdown from the results)",
    )
    parser.add_argument("--power-max-bytes", type=parse_size, default=16 << 20)
    parser.add_argument("--power-streams", default="2,1024,8192")
    parser.add_argument("--power-schemes", default=",".join(POWER_SCHEMES))
    parser.add_argument("--power-roots", type=int, default=20)
    parser.add_argument("--no-practrand", action="store_true", help="own battery only in the power section")
    parser.add_argument("--fa-roots", type=int, default=40, help="false-alarms section: roots per good scheme")
    parser.add_argument("--fa-streams", default="2,1024,8192")
    parser.add_argument("--fa-bytes", type=parse_size, default=16 << 20)
    parser.add_argument("--long-schemes", default="naive-mt19937,torch-worker")
    parser.add_argument("--long-roots", type=int, default=2)
    parser.add_argument("--long-bytes", type=parse_size, default=1 << 30)
    parser.add_argument("--speed-mib", type=int, default=256)
    parser.add_argument("--testu01-seconds", type=float, default=560)
    parser.add_argument("--big-streams", type=int, default=8192)
    parser.add_argument("--big-bytes", type=parse_size, default=4 << 30)
    parser.add_argument("--big-seconds", type=float, default=120)
    parser.add_argument("--budget-seconds", type=float, default=570, help="stop starting new work after this")
    parser.add_argument("--out", default=str(RESULTS / "battery.json"))
    args = parser.parse_args()
    sections = args.sections.split(",")
    start = time.time()
    deadline = start + args.budget_seconds
    out_path = Path(args.out)
    result = json.loads(out_path.read_text()) if out_path.exists() else {}
    result["machine"] = {"cores": os.cpu_count(), "load_avg_at_start": os.getloadavg(), "numpy": np.__version__}
    if "power" in sections:
        with_practrand = not args.no_practrand and tool_status()["practrand"] is not None
        print(
            f"power: first-fail sizes over {args.power_roots} random roots, own battery"
            f"{' and PractRand (-tlmin 1KB)' if with_practrand else ''}, up to {_fmt(args.power_max_bytes)}"
        )
        new_rows = power(
            args.power_schemes.split(","),
            [int(s) for s in args.power_streams.split(",")],
            args.power_roots,
            args.power_max_bytes,
            deadline,
            with_practrand,
        )
        # Merge with rows measured by earlier runs (the table is measured in several runs).
        done = {(n["scheme"], n["streams"]) for n in new_rows}
        keep = [r for r in result.get("power", []) if "own_first_fail" in r and (r["scheme"], r["streams"]) not in done]
        result["power"] = keep + new_rows
    if "false-alarms" in sections and time.time() < deadline:
        print(f"false alarms: good schemes, {args.fa_roots} random roots")
        new_rows = [
            row
            for k in args.fa_streams.split(",")
            for row in false_alarms(list(GOOD), int(k), args.fa_roots, args.fa_bytes)
        ]
        done = {(n["scheme"], n["streams"], n["bytes"]) for n in new_rows}
        keep = [r for r in result.get("false_alarms", []) if (r["scheme"], r["streams"], r["bytes"]) not in done]
        result["false_alarms"] = keep + new_rows
    result.pop("calibration", None)  # superseded by false_alarms and benchmarks/calibration.py
    if "practrand-long" in sections and time.time() < deadline and tool_status()["practrand"]:
        print(f"practrand-long: PractRand -tlmin 1KB on 2 streams up to {_fmt(args.long_bytes)}")
        result["practrand_long"] = practrand_long(
            args.long_schemes.split(","), args.long_roots, args.long_bytes, deadline
        )
    if "first-outputs" in sections:
        print("first-outputs: the default check at 2 streams (interleaved + first outputs)")
        result["first_outputs_2"] = first_outputs_2(
            ["naive-pcg64", "pcg64-increments", "default-rng-plus-i"], args.power_roots, 1 << 20
        )
    if "mt-xor" in sections:
        print("mt-xor: the xor of two MT19937 streams seeded s and s + 1, position by position")
        result["mt_xor"] = mt_xor(2000, 1500)
    if "table" in sections:
        print(power_table(result.get("power", [])))
        if sections == ["table"]:
            return  # printing only: leave the results file alone
    if "speed" in sections and time.time() < deadline:
        print("speed:")
        result["speed"] = speed(args.speed_mib, 1024)
    if "testu01" in sections and time.time() < deadline:
        print("testu01:")
        result["testu01"] = testu01(1024, min(deadline, time.time() + args.testu01_seconds))
    if "big" in sections and time.time() < deadline:
        print("big:")
        result["big"] = big(args.big_streams, args.big_bytes, min(args.big_seconds, deadline - time.time()))
    result["seconds"] = time.time() - start
    result["machine"]["load_avg_at_end"] = os.getloadavg()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {out_path} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
