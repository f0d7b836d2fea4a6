"""Per-child cost of deriving streams: seedtree next to what a user would otherwise write.

Run: ``.venv/bin/python benchmarks/derive.py [--n 100000]``. Prints a table and writes
``benchmarks/results/derive.json``. Every row is measured in this one run, on this
machine, side by side; each timing is the median of several repeats (best also kept),
because the machines here are shared and noisy. Before timing, the seedtree outputs are
checked bit for bit against NumPy, so the speed is for identical results.

Rows, per child, for n children:

- NumPy ``SeedSequence(e).spawn(n)`` (seed sequences only, no generator yet);
- NumPy's canonical per-child Generator ``default_rng(SeedSequence(e, spawn_key=(i,)))``;
- ``torch.Generator().manual_seed(i)`` (the usual torch recipe, 32 bits of state on CPU);
- seedtree ``root.states(np.arange(n))`` (4 words per child, as generate_state(4));
- seedtree ``root.generators(range(n))``, ready Generators bit-identical to the NumPy row;
- ``seed_everything(root)`` with torch imported, and ``st.rng()`` per call in a bound context.

Generators are timed two ways: consumed one at a time as a loop would ("stream"), and all
kept in a list ("kept", which adds the allocator's and garbage collector's share of
holding n live objects).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np

import seedtree as st

RESULTS = Path(__file__).resolve().parent / "results" / "derive.json"
ENTROPY = 0x8A3F_12C4_55E0_9B71_D2C8_04F6_3E1A_7B95  # a 128-bit root, as SeedTree() draws

TARGETS = {  # (row, what is compared, bound, unit)
    "seedtree states": ("children_per_s", 50e6, ">="),
    "seedtree generators (stream)": ("us_per_child", 2.0, "<="),
    "seed_everything": ("us_per_call", 100.0, "<="),
    "st.rng() bound": ("us_per_call", 1.0, "<="),
}


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(median, best) wall seconds of ``fn()`` over ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def check_identity(root: st.SeedTree, n: int) -> None:
    """The rows below only compare like with like if the outputs are NumPy's own."""
    sample = np.unique(np.linspace(0, n - 1, 64).astype(np.int64))
    words = root.states(np.arange(n))
    for i in sample.tolist():
        expected = np.random.SeedSequence(root.entropy, spawn_key=(i,)).generate_state(4)
        assert np.array_equal(words[i], expected), f"states row {i} differs from NumPy"
    for i, gen in zip(range(0, n, max(1, n // 50)), root.generators(range(0, n, max(1, n // 50))), strict=True):
        ref = np.random.default_rng(np.random.SeedSequence(root.entropy, spawn_key=(i,)))
        assert gen.integers(0, 2**63, 4).tolist() == ref.integers(0, 2**63, 4).tolist(), f"generator {i} differs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="children per row (default 100000)")
    parser.add_argument("--repeats", type=int, default=9, help="repeats of the fast rows (default 9)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON output (default {RESULTS})")
    args = parser.parse_args()
    n, reps = args.n, args.repeats
    slow_reps = max(1, reps // 3)

    import torch  # imported up front: seed_everything then seeds it too, as in a torch program

    started = time.perf_counter()
    root = st.SeedTree(ENTROPY)
    check_identity(root, n)
    keys = np.arange(n)
    rows: list[dict] = []

    def per_child(name: str, fn: Callable[[], object], count: int, repeats: int, note: str) -> None:
        median, best = timed(fn, repeats)
        rows.append(
            {
                "name": name,
                "us_per_child": median / count * 1e6,
                "best_us_per_child": best / count * 1e6,
                "children_per_s": count / median,
                "note": note,
            }
        )

    def gen_numpy(i: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(ENTROPY, spawn_key=(i,)))

    per_child(
        "numpy SeedSequence.spawn",
        lambda: np.random.SeedSequence(ENTROPY).spawn(n),
        n,
        slow_reps,
        "seed sequences only",
    )
    per_child(
        "numpy default_rng(SeedSequence) (stream)",
        lambda: deque(map(gen_numpy, range(n)), maxlen=0),
        n,
        slow_reps,
        "NumPy's canonical per-child Generator",
    )
    per_child(
        "numpy default_rng(SeedSequence) (kept)",
        lambda: list(map(gen_numpy, range(n))),
        n,
        slow_reps,
        "all n kept alive",
    )
    per_child(
        "torch Generator().manual_seed(i) (stream)",
        lambda: deque((torch.Generator().manual_seed(i) for i in range(n)), maxlen=0),
        n,
        slow_reps,
        "32-bit CPU seed; not a NumPy stream",
    )
    per_child("seedtree states", lambda: root.states(keys), n, reps, "generate_state(4) words of n children")
    per_child("seedtree states (n_words=8)", lambda: root.states(keys, 8), n, reps, "what a PCG64 is seeded with")
    per_child(
        "seedtree generators (stream)",
        lambda: deque(root.generators(range(n)), maxlen=0),
        n,
        reps,
        "== default_rng(SeedSequence) bit for bit",
    )
    per_child("seedtree generators (kept)", lambda: list(root.generators(range(n))), n, reps, "all n kept alive")
    per_child(
        "seedtree generators, 1 draw each",
        lambda: deque((g.random() for g in root.generators(range(n))), maxlen=0),
        n,
        reps,
        "derive + build + one double",
    )

    calls = 2000
    st.seed_everything(root)  # first call registers the fork hook and decides the numpy fast path

    def seed_loop() -> None:
        for _ in range(calls):
            st.seed_everything(root)

    median, best = timed(seed_loop, reps)
    rows.append(
        {
            "name": "seed_everything",
            "us_per_call": median / calls * 1e6,
            "best_us_per_call": best / calls * 1e6,
            "note": "random + numpy global + torch CPU" + (" + CUDA" if torch.cuda.is_available() else ""),
        }
    )

    rng_calls = 200_000
    with st.bound(root / "bench"):
        st.rng()  # the first call makes the generator

        def rng_loop() -> None:
            rng = st.rng
            for _ in range(rng_calls):
                rng()

        median, best = timed(rng_loop, reps)
        loop_median, _ = timed(lambda: deque(range(rng_calls), maxlen=0), reps)  # the loop itself, for reference
    rows.append(
        {
            "name": "st.rng() bound",
            "us_per_call": median / rng_calls * 1e6,
            "best_us_per_call": best / rng_calls * 1e6,
            "note": f"after the first call; an empty loop costs {loop_median / rng_calls * 1e6:.3f} us",
        }
    )

    for row in rows:
        target = TARGETS.get(row["name"])
        if target:
            metric, bound, op = target
            value = row[metric]
            row["target"] = f"{op} {bound:g} {metric}"
            row["meets_target"] = bool(value >= bound if op == ">=" else value <= bound)

    elapsed = time.perf_counter() - started
    print(f"seedtree derive benchmark: n = {n:,} children, median of {reps} (slow rows {slow_reps}) repeats\n")
    print(f"{'row':44s} {'median':>11s} {'best':>11s} {'children/s':>11s}  {'target (on the median)':30s} note")
    for row in rows:
        if "us_per_child" in row:
            per, best = f"{row['us_per_child']:.3f} us", f"{row['best_us_per_child']:.3f} us"
            rate = f"{row['children_per_s'] / 1e6:.2f} M/s"
        else:
            per, best, rate = f"{row['us_per_call']:.3f} us", f"{row['best_us_per_call']:.3f} us", ""
        verdict = ""
        if "target" in row:
            verdict = f"{row['target']} {'OK' if row['meets_target'] else 'MISSED'}"
        print(f"{row['name']:44s} {per:>11s} {best:>11s} {rate:>11s}  {verdict:30s} {row['note']}")
    canonical = next(r for r in rows if r["name"].startswith("numpy default_rng") and "stream" in r["name"])
    ours = next(r for r in rows if r["name"] == "seedtree generators (stream)")
    spawn = next(r for r in rows if r["name"] == "numpy SeedSequence.spawn")
    states = next(r for r in rows if r["name"] == "seedtree states")
    print(
        f"\nstates vs SeedSequence.spawn: {states['children_per_s'] / spawn['children_per_s']:.0f}x; "
        f"generators vs canonical NumPy: {canonical['us_per_child'] / ours['us_per_child']:.1f}x; "
        f"total run {elapsed:.1f} s"
    )
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    if load is not None:
        busy = " (above the CPU count: every row is slowed, compare rows only within this run)"
        busy = busy if load[0] > (os.cpu_count() or 1) else ""
        print(f"load average {load[0]:.2f} on {os.cpu_count()} CPUs{busy}")

    result = {
        "benchmark": "derive",
        "n": n,
        "repeats": reps,
        "slow_repeats": slow_reps,
        "entropy": str(ENTROPY),
        "rows": rows,
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "load_average": list(load) if load is not None else None,
        },
        "elapsed_s": elapsed,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
