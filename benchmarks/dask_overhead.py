"""Dask: what keyed task streams cost on a real cluster.

10 000 tasks of ~1 ms each on a LocalCluster of 2 worker processes (one thread each),
side by side in one run. Each variant's 10 000 tasks go in chunks, the chunks of the
variants interleaved (ABC CBA ABC ...), so drifting machine load hits every variant alike
and each keyed chunk can be compared with the plain chunk run next to it:

- plain:         ``client.map(work, items)``, each task seeding its own generator the usual
                 way, ``np.random.default_rng(item)``;
- keyed:         ``seedtree.dask.client_map(client, work, items, tree)``, the task drawing
                 from ``seedtree.rng()`` (its node ``tree / k``);
- keyed+globals: the same with ``bind_globals=True`` (random and numpy's global seeded per
                 task as well).

Target: keyed within 3 % of plain. Two measures, side by side: wall time, as the median
over chunks of keyed / plain (end to end, but on a shared machine its noise is often
larger than 3 %), and the time spent inside the tasks on the workers, from Dask's own
task stream (what the keyed wrapper adds per task, as a share of the wall time). The
cost of one call without Dask is shown too. Writes benchmarks/results/dask_overhead.json.

    .venv/bin/python benchmarks/dask_overhead.py [--tasks 10000] [--chunks 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

import seedtree as st
from seedtree.dask import client_map, keyed

RESULTS = Path(__file__).resolve().parent / "results" / "dask_overhead.json"
TASK_SECONDS = 1e-3
TARGET = 0.03


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def work_plain(x: int) -> float:
    _spin(TASK_SECONDS)
    return float(np.random.default_rng(x).random())


def work_keyed(x: int) -> float:
    _spin(TASK_SECONDS)
    return float(st.rng().random())


def work_globals(x: int) -> float:
    _spin(TASK_SECONDS)
    return float(np.random.random_sample())


def in_process_cost(n: int = 20_000) -> dict[str, float]:
    """Microseconds per call, no Dask: the plain task body vs the keyed wrapper around it."""
    tree = st.SeedTree(1) / "bench"

    def plain(x: int) -> float:
        return float(np.random.default_rng(x).random())

    def amb(_: int) -> float:
        return float(st.rng().random())

    def glob(_: int) -> float:
        return float(np.random.random_sample())

    variants = {"plain": lambda k: plain(k), "keyed": keyed(amb, tree)}
    with st.isolate():
        variants["keyed+globals"] = keyed(glob, tree, bind_globals=True)  # main thread: allowed
        out = {}
        for name, call in variants.items():
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                if name == "plain":
                    for k in range(n):
                        call(k)
                else:
                    for k in range(n):
                        call(k, k)
                best = min(best, time.perf_counter() - t0)
            out[name] = 1e6 * best / n
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--chunks", type=int, default=10, help="interleaved batches per variant")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from distributed import Client, LocalCluster, get_task_stream

    load_before = os.getloadavg()
    tree = st.SeedTree(2024) / "bench"
    # a chunk of items k0.. goes with start=k0, so the chunked run draws what one map would
    runs = {
        "plain": lambda c, ks: c.map(work_plain, ks, pure=False),
        "keyed": lambda c, ks: client_map(c, work_keyed, ks, tree, start=ks.start, pure=False),
        "keyed+globals": lambda c, ks: client_map(
            c, work_globals, ks, tree, start=ks.start, bind_globals=True, pure=False
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    compute_us: dict[str, list[float]] = {name: [] for name in runs}
    results: dict[str, list] = {name: [] for name in runs}
    size = -(-args.tasks // args.chunks)
    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            worker_dashboard_address=":0",
        ) as cluster,
        Client(cluster) as client,
    ):
        for name in runs:  # warm up: imports, caches, connections
            client.gather(runs[name](client, range(200)))
        for c in range(args.chunks):
            chunk = range(c * size, min((c + 1) * size, args.tasks))
            for name in list(runs) if c % 2 == 0 else list(runs)[::-1]:
                with get_task_stream(client) as stream:
                    t0 = time.perf_counter()
                    results[name] += client.gather(runs[name](client, chunk))
                    times[name].append(time.perf_counter() - t0)
                # time spent inside the tasks on the workers (the keyed wrapper included)
                compute_us[name] += [
                    1e6 * (s["stop"] - s["start"])
                    for rec in stream.data
                    for s in rec["startstops"]
                    if s["action"] == "compute"
                ]
    assert all(len(r) == args.tasks for r in results.values())
    assert results["keyed"] == [(tree / k).numpy().random() for k in range(args.tasks)]
    micro = in_process_cost()

    total = {name: sum(ts) for name, ts in times.items()}
    paired = {
        name: statistics.median(a / b for a, b in zip(times[name], times["plain"], strict=True)) - 1 for name in runs
    }
    rows = []
    for name in runs:
        rows.append(
            {
                "variant": name,
                "total_s": total[name],
                "chunks_s": times[name],
                "tasks_per_s": args.tasks / total[name],
                "overhead_total": total[name] / total["plain"] - 1,
                "overhead_paired_median": paired[name],
                "worker_compute_us_per_task": statistics.median(compute_us[name]),
                "in_process_us_per_task": micro[name],
            }
        )
    ratios = [a / b for a, b in zip(times["keyed"], times["plain"], strict=True)]
    print(
        f"Dask LocalCluster: {args.workers} worker processes x 1 thread, {args.tasks} tasks of "
        f"~{TASK_SECONDS * 1e3:.0f} ms per variant in {args.chunks} interleaved chunks; load average "
        f"{load_before[0]:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus"
    )
    print(
        f"{'variant':<15}{'total s':>9}{'tasks/s':>9}{'vs plain':>10}{'paired':>9}{'worker us/task':>16}"
        f"{'no-Dask us/task':>17}"
    )
    for row in rows:
        print(
            f"{row['variant']:<15}{row['total_s']:>9.1f}{row['tasks_per_s']:>9.0f}"
            f"{100 * row['overhead_total']:>+9.1f}%{100 * row['overhead_paired_median']:>+8.1f}%"
            f"{row['worker_compute_us_per_task']:>16.1f}{row['in_process_us_per_task']:>17.1f}"
        )
    keyed_overhead = paired["keyed"]
    per_task = (statistics.median(compute_us["keyed"]) - statistics.median(compute_us["plain"])) * 1e-6
    share = per_task * args.tasks / args.workers / total["plain"]
    wall_ok, share_ok = keyed_overhead <= TARGET, share <= TARGET
    print(
        f"keyed vs plain, wall time (median of paired chunks): {100 * keyed_overhead:+.1f}% "
        f"({'meets' if wall_ok else 'misses'} the <= {100 * TARGET:.0f}% target; chunk ratios range "
        f"{100 * (min(ratios) - 1):+.0f}% .. {100 * (max(ratios) - 1):+.0f}%)"
    )
    print(
        f"keyed vs plain, time inside the tasks: {1e6 * per_task:+.1f} us/task = {100 * share:+.2f}% of the wall "
        f"time ({'meets' if share_ok else 'misses'} the target)"
    )

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "dask_overhead",
                "tasks": args.tasks,
                "task_seconds": TASK_SECONDS,
                "workers": args.workers,
                "threads_per_worker": 1,
                "chunks": args.chunks,
                "target_overhead": TARGET,
                "keyed_overhead": keyed_overhead,
                "keyed_chunk_ratios": ratios,
                "keyed_in_task_cost_s": per_task,
                "keyed_in_task_share_of_wall": share,
                "meets_target_in_task": share <= TARGET,
                "meets_target": keyed_overhead <= TARGET,
                "rows": rows,
                "machine": {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "load_average_before_after": [load_before[0], os.getloadavg()[0]],
                },
            },
            indent=2,
        )
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
