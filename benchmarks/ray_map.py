"""Ray: what keyed streams cost on a real local Ray (``ray.init(num_cpus=2)``).

Side by side in one run, best of ``--repeats``:

- tasks, ``--tasks`` items of ~1 ms each:
  - plain:          ``ray.get([work.remote(x) for x in items])``, each task seeding its own
                    generator the usual way, ``np.random.default_rng(x)``: one task per item,
                    what a Ray user writes;
  - keyed_map:      ``seedtree.ray.keyed_map(work, items, tree)`` (chunks of consecutive items,
                    ambient stream ``seedtree.rng()``, globals bound per item);
  - keyed_map, chunk_size=1: one task per item, as plain.
- Ray Data, ``--rows`` rows through ``map_batches`` (batch size 1024), one normal draw per row:
  - plain:          ``np.random.default_rng().normal(size=n)`` per batch (layout-dependent);
  - keyed_batches:  one generator per row, ``(tree / id).numpy().normal()``.

Also Ray's own start-up and shutdown. Writes benchmarks/results/ray_map.json.

    .venv/bin/python benchmarks/ray_map.py [--tasks 2000] [--rows 200000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from _timing import best_of

import seedtree as st

RESULTS = Path(__file__).resolve().parent / "results" / "ray_map.json"
TASK_SECONDS = 1e-3


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


def noise_plain(batch: dict) -> dict:
    batch["noise"] = np.random.default_rng().normal(size=len(batch["id"]))
    return batch


def noise_keyed(batch: dict, rngs: list) -> dict:
    batch["noise"] = np.array([rng.normal() for rng in rngs])
    return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import ray

    from seedtree.ray import keyed_batches, keyed_map

    load_start = os.getloadavg()[0]
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    startup = time.perf_counter() - t0
    tree = st.SeedTree(1) / "bench"
    items = list(range(args.tasks))
    plain_remote = ray.remote(work_plain)
    ray.get([plain_remote.remote(x) for x in range(8)])  # warm the workers
    keyed_map(work_keyed, range(8), tree)

    tasks = {
        "plain Ray, one task per item": best_of(lambda: ray.get([plain_remote.remote(x) for x in items]), args.repeats),
        "keyed_map (chunks)": best_of(lambda: keyed_map(work_keyed, items, tree), args.repeats),
        "keyed_map, chunk_size=1": best_of(lambda: keyed_map(work_keyed, items, tree, chunk_size=1), args.repeats),
    }
    ds = ray.data.range(args.rows)
    data = {
        "plain map_batches": best_of(lambda: ds.map_batches(noise_plain, batch_size=1024).materialize(), args.repeats),
        "keyed_batches": best_of(
            lambda: ds.map_batches(keyed_batches(noise_keyed, tree), batch_size=1024).materialize(), args.repeats
        ),
    }
    t0 = time.perf_counter()
    ray.shutdown()
    shutdown = time.perf_counter() - t0

    base = tasks["plain Ray, one task per item"]
    print(f"Ray start-up {startup:.2f} s, shutdown {shutdown:.2f} s")
    print(f"{args.tasks} tasks of {TASK_SECONDS * 1e3:.0f} ms on 2 CPUs      wall s   vs plain")
    for name, sec in tasks.items():
        print(f"  {name:<40} {sec:7.2f}   {sec / base:6.2f}x")
    base = data["plain map_batches"]
    print(f"Ray Data, {args.rows} rows, one normal per row   wall s   vs plain   µs/row extra")
    for name, sec in data.items():
        print(f"  {name:<40} {sec:7.2f}   {sec / base:6.2f}x   {(sec - base) / args.rows * 1e6:8.2f}")
    RESULTS.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "cpus": os.cpu_count(),
                "load_average": [load_start, os.getloadavg()[0]],
                "repeats": args.repeats,
                "ray_startup_s": startup,
                "ray_shutdown_s": shutdown,
                "tasks": {"n": args.tasks, "task_seconds": TASK_SECONDS, "wall_s": tasks},
                "data": {"rows": args.rows, "batch_size": 1024, "wall_s": data},
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
