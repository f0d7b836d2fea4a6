"""Worker-integration overheads, side by side with what users do today.

1. DataLoader epoch of N samples (default 50 000) of a light numpy augmentation
   (~100 us of work per sample), 2 workers:
   plain DataLoader | naive per-sample reseeding (random.seed + np.random.seed +
   torch.manual_seed) | seedtree.torch.worker_init_fn | seedtree.torch.loader with globals
   bound per sample | seedtree.torch.loader ambient-only.
   Also the per-sample binding cost alone, measured in-process on batches of 64 as the
   DataLoader fetches them (no augmentation), which is what the targets are about:
   globals ≤ 15 us, ambient-only ≤ 3 us.
2. joblib: 2 000 tasks of ~1 ms, plain joblib.Parallel vs seedtree.joblib.parallel_map,
   loky and threading. Target: ≤ 3 % overhead.

Prints tables and writes benchmarks/results/workers.json.
    python benchmarks/workers.py [--samples 50000] [--tasks 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch
from _timing import best_of
from torch.utils.data import DataLoader

import seedtree as st
from seedtree.runtime import ambient as _ambient
from seedtree.joblib import parallel_map
from seedtree.torch import _SampleBound, loader, worker_init_fn

RESULTS = Path(__file__).parent / "results"


def augment() -> float:
    x = np.random.rand(48, 48)
    x = np.flip(x, axis=int(np.random.randint(2))) + np.random.normal(0.0, 0.1, x.shape)
    return float(x.mean())


class Augmented:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> float:
        return augment()


class NaiveReseed(Augmented):
    """What people write today for per-sample determinism."""

    def __getitem__(self, i: int) -> float:
        random.seed(i)
        np.random.seed(i)
        torch.manual_seed(i)
        return augment()


class Trivial:
    def __len__(self) -> int:
        return 1 << 30

    def __getitem__(self, i: int) -> int:
        return i


def epoch(dl) -> None:
    for _ in dl:
        pass


def dataloader_table(n: int, repeats: int) -> dict:
    tree = st.SeedTree(2024)
    kw = dict(batch_size=64, num_workers=2, persistent_workers=True)
    variants = {
        "plain DataLoader": DataLoader(Augmented(n), shuffle=True, **kw),
        "naive reseed per sample": DataLoader(NaiveReseed(n), shuffle=True, **kw),
        "seedtree worker_init_fn": DataLoader(Augmented(n), shuffle=True, worker_init_fn=worker_init_fn(tree),
                                              generator=tree.torch(), **kw),
        "seedtree loader (globals)": loader(Augmented(n), tree, **kw),
        "seedtree loader (ambient only)": loader(Augmented(n), tree, bind_globals=False, **kw),
    }
    rows = {}
    for name, dl in variants.items():
        epoch(dl)  # warm-up: start the persistent workers
        rows[name] = best_of(lambda dl=dl: epoch(dl), repeats)
    base = rows["plain DataLoader"]
    # Per-sample binding cost alone, in this process.
    m = 50_000
    bound = {True: _SampleBound(Trivial(), tree, True), False: _SampleBound(Trivial(), tree, False)}
    alone = {}
    batches = [[(0, i) for i in range(j, j + 64)] for j in range(0, m, 64)]  # as the DataLoader fetches
    for globals_on, ds in bound.items():
        ds.__getitems__(batches[0])
        alone[globals_on] = best_of(lambda ds=ds: [ds.__getitems__(b) for b in batches], repeats) / m * 1e6
    naive = best_of(lambda: [_naive_seed(i) for i in range(m)], repeats) / m * 1e6
    plain_access = best_of(lambda: [Trivial()[i] for i in range(m)], repeats) / m * 1e6
    return {
        "samples": n,
        "epoch_seconds": rows,
        "overhead_us_per_sample": {k: (v - base) / n * 1e6 * 2 for k, v in rows.items()},  # 2 workers share
        "binding_alone_us": {
            "globals (random+numpy+torch) + ambient": alone[True] - plain_access,
            "ambient only": alone[False] - plain_access,
            "naive random.seed+np.random.seed+torch.manual_seed": naive,
        },
        "targets_us": {"globals": 15.0, "ambient only": 3.0},
    }


def _naive_seed(i: int) -> None:
    random.seed(i)
    np.random.seed(i)
    torch.manual_seed(i)


def busy(ms: float = 1.0) -> float:
    end = time.perf_counter() + ms / 1000
    x = 0.0
    while time.perf_counter() < end:
        x += 1.0
    return x


def task(i: int) -> float:
    busy(1.0)
    return float(st.rng().random()) if _ambient._var.get() is not None else 0.0


def naive_task(i: int) -> float:
    """What people write today: reseed every global by hand from the task index."""
    _naive_seed(i)
    return task(i)


def joblib_table(n_tasks: int, repeats: int) -> dict:
    from joblib import Parallel, delayed

    tree = st.SeedTree(7)
    rows = {}
    for backend in ("loky", "threading"):
        # Warm the pool with each variant once (loky workers import torch on first use).
        Parallel(n_jobs=2, backend=backend)(delayed(naive_task)(i) for i in range(20))
        parallel_map(task, range(20), tree, n_jobs=2, backend=backend)
        plain = best_of(lambda b=backend: Parallel(n_jobs=2, backend=b)(delayed(task)(i) for i in range(n_tasks)),
                      repeats)
        variants = {
            "parallel_map (ambient only)": lambda b=backend: parallel_map(
                task, range(n_tasks), tree, n_jobs=2, backend=b, bind_globals=False),
        }
        if backend != "threading":  # globals cannot be bound per task on threads
            variants["parallel_map (globals bound)"] = lambda b=backend: parallel_map(
                task, range(n_tasks), tree, n_jobs=2, backend=b)
            variants["naive reseed per task"] = lambda b=backend: Parallel(n_jobs=2, backend=b)(
                delayed(naive_task)(i) for i in range(n_tasks))
        row = {"plain_s": plain}
        for name, run in variants.items():
            secs = best_of(run, repeats)
            row[name] = {"seconds": secs, "overhead_pct": (secs / plain - 1) * 100}
        rows[backend] = row
    return {"tasks": n_tasks, "task_ms": 1.0, "n_jobs": 2, "backends": rows, "target_overhead_pct": 3.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--tasks", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    t0 = time.perf_counter()
    work = best_of(lambda: [augment() for _ in range(2000)], 3) / 2000 * 1e6
    dl = dataloader_table(args.samples, args.repeats)
    jb = joblib_table(args.tasks, args.repeats)
    result = {"augmentation_us": work, "dataloader": dl, "joblib": jb, "seconds": time.perf_counter() - t0}

    print(f"\nDataLoader epoch, {args.samples} samples, ~{work:.0f} us augmentation, 2 workers "
          f"(best of {args.repeats})")
    print(f"{'variant':40s} {'epoch s':>9s} {'overhead us/sample':>19s}")
    for name, secs in dl["epoch_seconds"].items():
        print(f"{name:40s} {secs:9.3f} {dl['overhead_us_per_sample'][name]:19.1f}")
    print("\nper-sample binding cost alone (in-process, no augmentation)")
    for name, us in dl["binding_alone_us"].items():
        print(f"{name:55s} {us:8.2f} us")
    print("targets: globals <= 15 us, ambient only <= 3 us")
    print(f"\njoblib, {args.tasks} tasks of 1 ms, n_jobs=2 (best of {args.repeats})")
    print(f"{'backend':10s} {'variant':30s} {'seconds':>8s} {'overhead %':>11s}")
    for backend, row in jb["backends"].items():
        print(f"{backend:10s} {'plain joblib.Parallel':30s} {row['plain_s']:8.3f} {'':>11s}")
        for name, v in row.items():
            if name != "plain_s":
                print(f"{backend:10s} {name:30s} {v['seconds']:8.3f} {v['overhead_pct']:11.2f}")
    print("target: <= 3 %")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "workers.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {RESULTS / 'workers.json'} in {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
