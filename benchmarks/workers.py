"""Per-sample and per-task seeding overheads, side by side with what users do today.

Every comparison runs its variants interleaved, round after round, in one process, and
reports the median per variant and the median of the per-round ratios to the baseline
(the machines are shared: absolute times drift between runs, ratios within a round do not).

1. binding: the cost of binding one sample, in process, on batches of 64 as a DataLoader
   fetches them (seedtree's fetch path, ``isolate`` per batch included): random + numpy's
   global + torch + ``seedtree.rng()``, and ``seedtree.rng()`` alone; against naive
   per-sample reseeding (``random.seed`` + ``np.random.seed`` + ``torch.manual_seed``),
   Lightning's ``seed_everything`` and accelerate's ``set_seed`` called per sample, and
   the floors (``random.seed`` alone, ...). Targets: <= 5 us, >= 25x faster than naive.
2. loader: one epoch of a light dataset (8 floats from ``np.random.rand``, ``torch.rand(1)``,
   ``random.random()``), 20 000 samples, batch 64, ``num_workers`` 0 and 2 (persistent):
   plain ``DataLoader(shuffle=True)``, plain + ``seedtree.torch.worker_init_fn``, plain +
   Lightning's ``pl_worker_init_function``, naive reseeding per sample, seedtree's
   ``loader`` with globals bound and ambient only. Targets: globals <= 1.25x (0 workers),
   <= 1.15x (2 workers); ambient only <= 1.05x at both.
3. joblib: 2 000 tasks of 1 ms on loky (``n_jobs=2``): plain ``joblib.Parallel``,
   ``parallel_map`` ambient only and with globals bound, naive reseeding per task.
   Targets: globals <= 3 %, ambient only <= 2 % (median of >= 5 interleaved runs).

Prints tables and writes benchmarks/results/workers.json.
    python benchmarks/workers.py            # ~2 min on 2 cores
    python benchmarks/workers.py --quick    # ~40 s: fewer rounds and samples
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _timing import interleaved, paired_ratio
from torch.utils.data import DataLoader

import seedtree as st
from seedtree.joblib import parallel_map
from seedtree.runtime import ambient as _ambient
from seedtree.torch import _SampleBound, loader, worker_init_fn

RESULTS = Path(__file__).parent / "results"
BATCH = 64


# -- 1. binding one sample ---------------------------------------------------------------


class Trivial:
    def __len__(self) -> int:
        return 1 << 30

    def __getitem__(self, i: int) -> int:
        return i


def _peers() -> dict[str, Callable[[int], Any]]:
    peers: dict[str, Callable[[int], Any]] = {}
    try:
        from lightning.fabric.utilities.seed import seed_everything as pl_seed_everything

        logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.ERROR)
        peers["Lightning seed_everything(i) per sample"] = lambda i: pl_seed_everything(i, verbose=False)
    except ImportError:
        pass
    try:
        from accelerate.utils import set_seed

        peers["accelerate set_seed(i) per sample"] = set_seed
    except ImportError:
        pass
    return peers


def binding_table(samples: int, rounds: int) -> dict[str, Any]:
    tree = st.SeedTree(2024)
    with_globals = _SampleBound(Trivial(), tree, True, True)
    ambient_only = _SampleBound(Trivial(), tree, False, True)
    batches = [[(0, i, 0) for i in range(j, j + BATCH)] for j in range(0, samples, BATCH)]
    n = len(batches) * BATCH
    plain = Trivial()
    image = torch.default_generator.get_state()
    state = random.getstate()

    def fetch(ds: _SampleBound) -> Callable[[], None]:
        return lambda: [ds.__getitems__(b) for b in batches]

    def each(fn: Callable[[int], Any]) -> Callable[[], None]:
        return lambda: [fn(i) for i in range(n)]

    def naive(i: int) -> None:
        random.seed(i)
        np.random.seed(i)
        torch.manual_seed(i)

    def derive() -> None:
        node = tree / 0
        for b in batches:
            keys = [i for _, i, _ in b]
            node.children(keys)
            st.core.layout.expand_globals(node.states(keys, 4, st.core.layout.WORDS_GLOBALS_KEY))

    variants: dict[str, Callable[[], Any]] = {
        "plain dataset[i]": lambda: [[plain[i] for _, i, _ in b] for b in batches],
        "seedtree: random + numpy + torch + rng()": fetch(with_globals),
        "seedtree: rng() only": fetch(ambient_only),
        "naive random.seed + np.random.seed + torch.manual_seed": each(naive),
        **{name: each(fn) for name, fn in _peers().items()},
        "floor: random.seed(128-bit int)": each(lambda i: random.seed(i << 96 | i)),
        "floor: random.setstate(625-word tuple)": each(lambda i: random.setstate(state)),
        "floor: np.random.seed(0)": each(lambda i: np.random.seed(0)),
        "floor: torch default_generator.set_state": each(lambda i: torch.default_generator.set_state(image)),
        "part: nodes + globals expansion (batches of 64)": derive,
    }
    with st.isolate():
        for fn in variants.values():  # warm-up: plans, buffers, self-checks
            fn()
        times = interleaved(variants, rounds, per=n)
    base = statistics.median(times["plain dataset[i]"])
    us = {
        name: (statistics.median(t) - (base if name.startswith("seedtree") else 0)) * 1e6
        for name, t in times.items()
        if name != "plain dataset[i]"
    }
    globals_us = us["seedtree: random + numpy + torch + rng()"]
    naive_us = us["naive random.seed + np.random.seed + torch.manual_seed"]
    return {
        "samples": n,
        "rounds": rounds,
        "us_per_sample": us,
        "naive_over_seedtree": naive_us / globals_us,
        "targets": {"globals_us": 5.0, "naive_over_seedtree": 25.0},
    }


# -- 2. the light dataset through loaders ---------------------------------------------------


class Light:
    """8 floats from np.random.rand, torch.rand(1) and random.random() per sample."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[np.ndarray, torch.Tensor, float]:
        return np.random.rand(8), torch.rand(1), random.random()


class NaiveLight(Light):
    """What people write today for per-sample determinism."""

    def __getitem__(self, i: int) -> tuple[np.ndarray, torch.Tensor, float]:
        random.seed(i)
        np.random.seed(i)
        torch.manual_seed(i)
        return super().__getitem__(i)


def loader_table(samples: int, rounds: int) -> dict[str, Any]:
    tree = st.SeedTree(7)
    rows: dict[str, Any] = {}
    for workers in (0, 2):
        kw: dict[str, Any] = {"batch_size": BATCH, "num_workers": workers}
        if workers:
            kw["persistent_workers"] = True
        loaders: dict[str, Any] = {"plain DataLoader": DataLoader(Light(samples), shuffle=True, **kw)}
        if workers:
            loaders["plain + seedtree worker_init_fn"] = DataLoader(
                Light(samples), shuffle=True, worker_init_fn=worker_init_fn(tree), generator=tree.torch(), **kw
            )
            try:
                from lightning.fabric.utilities.seed import pl_worker_init_function

                loaders["plain + Lightning pl_worker_init_function"] = DataLoader(
                    Light(samples), shuffle=True, worker_init_fn=pl_worker_init_function, **kw
                )
            except ImportError:
                pass
        loaders["naive reseed per sample"] = DataLoader(NaiveLight(samples), shuffle=True, **kw)
        loaders["seedtree loader, globals bound"] = loader(Light(samples), tree, shuffle=True, **kw)
        loaders["seedtree loader, ambient only"] = loader(Light(samples), tree, shuffle=True, bind_globals=False, **kw)

        def epoch(dl: Any) -> Callable[[], None]:
            def run() -> None:
                for _ in dl:
                    pass

            return run

        variants = {name: epoch(dl) for name, dl in loaders.items()}
        for fn in variants.values():
            fn()  # warm-up: start persistent workers
        times = interleaved(variants, rounds)
        base = "plain DataLoader"
        rows[f"num_workers={workers}"] = {
            name: {
                "seconds": statistics.median(t),
                "ratio": paired_ratio(times, name, base),
                "us_per_sample": statistics.median(t) / samples * 1e6,
            }
            for name, t in times.items()
        }
        del loaders, variants
    return {
        "samples": samples,
        "batch_size": BATCH,
        "rounds": rounds,
        "rows": rows,
        "targets": {
            "globals": {"num_workers=0": 1.25, "num_workers=2": 1.15},
            "ambient only": {"num_workers=0": 1.05, "num_workers=2": 1.05},
        },
    }


# -- 3. joblib ------------------------------------------------------------------------------


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
    random.seed(i)
    np.random.seed(i)
    torch.manual_seed(i)
    return task(i)


def joblib_table(n_tasks: int, rounds: int) -> dict[str, Any]:
    from joblib import Parallel, delayed

    tree = st.SeedTree(7)
    variants: dict[str, Callable[[], Any]] = {
        "plain joblib.Parallel": lambda: Parallel(n_jobs=2, backend="loky")(delayed(task)(i) for i in range(n_tasks)),
        "parallel_map, ambient only": lambda: parallel_map(
            task, range(n_tasks), tree, n_jobs=2, backend="loky", bind_globals=False
        ),
        "parallel_map, globals bound": lambda: parallel_map(task, range(n_tasks), tree, n_jobs=2, backend="loky"),
        "naive reseed per task": lambda: Parallel(n_jobs=2, backend="loky")(
            delayed(naive_task)(i) for i in range(n_tasks)
        ),
    }
    for fn in variants.values():
        fn()  # warm-up: workers import torch and seedtree
    times = interleaved(variants, rounds)
    return {
        "tasks": n_tasks,
        "task_ms": 1.0,
        "n_jobs": 2,
        "backend": "loky",
        "rounds": rounds,
        "rows": {
            name: {
                "seconds": statistics.median(t),
                "overhead_pct": (paired_ratio(times, name, "plain joblib.Parallel") - 1) * 100,
            }
            for name, t in times.items()
        },
        "targets_pct": {"parallel_map, globals bound": 3.0, "parallel_map, ambient only": 2.0},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and samples (~40 s)")
    parser.add_argument("--samples", type=int, default=20_000, help="loader epoch (default 20 000)")
    parser.add_argument("--tasks", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 7, quick 3)")
    parser.add_argument("--out", type=Path, default=RESULTS / "workers.json")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 7)
    samples = args.samples // 2 if args.quick else args.samples

    started, load_start = time.perf_counter(), os.getloadavg()
    with contextlib.redirect_stderr(io.StringIO()):  # DataLoader's worker-count warning on 2 cores
        bind = binding_table(6_400 if args.quick else 19_200, rounds)
        dl = loader_table(samples, rounds)
    jb = joblib_table(args.tasks, max(rounds, 5))
    result = {
        "benchmark": "workers",
        "binding": bind,
        "loader": dl,
        "joblib": jb,
        "machine": {
            "cpu_count": os.cpu_count(),
            "load_average_start": load_start,
            "load_average_end": os.getloadavg(),
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
        "seconds": time.perf_counter() - started,
    }

    print(f"\nbinding one sample in process, batches of {BATCH} ({bind['samples']} samples, median of {rounds})")
    for name, us in bind["us_per_sample"].items():
        print(f"  {name:58s} {us:9.2f} us")
    print(f"  naive / seedtree: {bind['naive_over_seedtree']:.1f}x   (targets: globals <= 5 us, >= 25x)")
    print(
        f"\nloader epoch, light dataset, {dl['samples']} samples, batch {BATCH} (median of {rounds}, "
        "ratio = median of paired rounds)"
    )
    for workers, rows in dl["rows"].items():
        for name, row in rows.items():
            print(f"  {workers:14s} {name:44s} {row['seconds']:7.3f} s  {row['ratio']:5.2f}x")
    print("  targets: globals <= 1.25x (0 workers), <= 1.15x (2 workers); ambient only <= 1.05x")
    print(f"\njoblib loky, {args.tasks} tasks of 1 ms, n_jobs=2 (median of {jb['rounds']} interleaved runs)")
    for name, row in jb["rows"].items():
        print(f"  {name:32s} {row['seconds']:7.3f} s  {row['overhead_pct']:+6.2f} %")
    print("  targets: globals <= 3 %, ambient only <= 2 %")
    print(f"\nload average {load_start[0]:.2f} -> {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out} in {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
