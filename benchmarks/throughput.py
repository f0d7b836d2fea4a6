"""Generation throughput: per stream, and scaling with threads and processes.

    .venv/bin/python benchmarks/throughput.py [--mib 64] [--repeat 3] [--max-workers N]

1. Per-stream rate (one thread): numpy bit generators filling float64 with ``random(out=)``
   and raw 64-bit words with ``integers``; torch CPU ``rand(out=)``; a seedtree node's
   generator next to NumPy's own ``default_rng`` (the baseline a user would otherwise use).
2. Thread scaling 1..N: each thread fills its own buffer from its own stream with
   ``random(out=)`` (numpy releases the GIL there). seedtree: ``root.generators(range(T))``;
   baseline: ``default_rng(SeedSequence(seed).spawn(T))``, run side by side.
3. Process scaling 1..N: the same per process (fork), seedtree children vs spawned SeedSequences.
4. Per CUDA device: torch ``rand`` on each device from ``SeedTree.torch(device)``; skipped with
   the reason when there is no GPU.

Each aggregate rate is compared with the limit ``single-thread rate x workers`` (up to the
number of cores). Writes a table, benchmarks/results/throughput.json and throughput.png.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import threading
import time
from pathlib import Path

import numpy as np
from _timing import best_of

from seedtree import SeedTree

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 20240601
BIT_GENERATORS = ["PCG64", "PCG64DXSM", "SFC64", "Philox", "MT19937"]


def per_stream(mib: int, repeat: int) -> list[dict]:
    n = (mib << 20) // 8
    rows = []
    buf = np.empty(n)
    for name in BIT_GENERATORS:
        gen = (SeedTree(SEED) / 0).numpy(name)
        t_float = best_of(lambda g=gen: g.random(out=buf), repeat)
        t_raw = best_of(lambda g=gen: g.integers(0, 1 << 64, size=n, dtype=np.uint64), repeat)
        rows.append(
            {
                "stream": f"numpy {name} (seedtree node)",
                "float64_MBps": mib * 1.048576 / t_float,
                "words_MBps": mib * 1.048576 / t_raw,
            }
        )
    base = np.random.default_rng(SEED)
    rows.append(
        {
            "stream": "numpy default_rng (baseline)",
            "float64_MBps": mib * 1.048576 / best_of(lambda: base.random(out=buf), repeat),
            "words_MBps": mib * 1.048576 / best_of(lambda: base.integers(0, 1 << 64, size=n, dtype=np.uint64), repeat),
        }
    )
    try:
        import torch
    except ImportError:
        rows.append({"stream": "torch CPU", "skipped": "torch not installed"})
        return rows
    out = torch.empty(n, dtype=torch.float64)
    words = torch.empty(n, dtype=torch.int64)
    g = (SeedTree(SEED) / 0).torch()
    torch.set_num_threads(1)
    rows.append(
        {
            "stream": "torch CPU mt19937 (seedtree node, 1 thread)",
            "float64_MBps": mib
            * 1.048576
            / best_of(lambda: torch.rand(n, out=out, dtype=torch.float64, generator=g), repeat),
            "words_MBps": mib * 1.048576 / best_of(lambda: words.random_(-(1 << 63), None, generator=g), repeat),
        }
    )
    return rows


def _fill(gen: np.random.Generator, buf: np.ndarray, rounds: int) -> None:
    for _ in range(rounds):
        gen.random(out=buf)


def threads(workers: int, kib: int, rounds: int, kind: str, repeat: int) -> float:
    """Aggregate MB/s of ``workers`` threads, each filling ``kib`` KiB ``rounds`` times."""
    n = (kib << 10) // 8
    bufs = [np.empty(n) for _ in range(workers)]

    def once() -> None:
        if kind == "seedtree":
            gens = list(SeedTree(SEED).generators(range(workers)))
        else:
            gens = [np.random.default_rng(s) for s in np.random.SeedSequence(SEED).spawn(workers)]
        start = threading.Barrier(workers + 1)

        def work(i: int) -> None:
            start.wait()
            _fill(gens[i], bufs[i], rounds)

        ts = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
        for t in ts:
            t.start()
        start.wait()
        for t in ts:
            t.join()

    return workers * kib * rounds * 1.024e-3 / best_of(once, repeat)


def _proc_work(args: tuple) -> float:
    kind, index, workers, kib, rounds, start_at = args
    if kind == "seedtree":
        gen = (SeedTree(SEED) / index).numpy()
    else:
        gen = np.random.default_rng(np.random.SeedSequence(SEED).spawn(workers)[index])
    buf = np.empty((kib << 10) // 8)
    gen.random(out=buf)  # touch the pages before the clock starts
    while time.time() < start_at:
        pass
    t0 = time.time()
    _fill(gen, buf, rounds)
    return time.time() - t0


def processes(workers: int, kib: int, rounds: int, kind: str, repeat: int, pool) -> float:
    """Aggregate MB/s of ``workers`` processes filling side by side (timed inside each)."""
    best = 0.0
    for _ in range(repeat):
        start_at = time.time() + 0.3
        times = pool.map(_proc_work, [(kind, i, workers, kib, rounds, start_at) for i in range(workers)])
        best = max(best, workers * kib * rounds * 1.024e-3 / max(times))
    return best


def cuda(mib: int, repeat: int) -> list[dict]:
    try:
        import torch
    except ImportError:
        return [{"device": "cuda", "skipped": "torch not installed"}]
    if not torch.cuda.is_available():
        return [{"device": "cuda", "skipped": "no CUDA device (torch.cuda.is_available() is False)"}]
    rows = []
    n = (mib << 20) // 4
    for d in range(torch.cuda.device_count()):
        dev = torch.device("cuda", d)
        g = (SeedTree(SEED) / "cuda" / d).torch(dev)
        out = torch.empty(n, device=dev)

        def run(out=out, g=g, dev=dev) -> None:
            torch.rand(n, out=out, generator=g)
            torch.cuda.synchronize(dev)

        rows.append(
            {
                "device": f"cuda:{d} {torch.cuda.get_device_name(d)}",
                "float32_MBps": mib * 1.048576 / best_of(run, repeat),
            }
        )
    return rows


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    ps = [r for r in result["per_stream"] if "skipped" not in r]
    y = np.arange(len(ps))
    a.barh(y - 0.2, [r["float64_MBps"] for r in ps], 0.4, label="float64 random(out=)")
    a.barh(y + 0.2, [r["words_MBps"] for r in ps], 0.4, label="64-bit words")
    a.set_yticks(y, [r["stream"] for r in ps], fontsize=7)
    a.invert_yaxis()
    a.set_xlabel("MB/s, one thread")
    a.legend(fontsize=7)
    sc = result["scaling"]
    w = [r["workers"] for r in sc]
    for key, style in (
        ("threads_seedtree", "o-"),
        ("threads_baseline", "x--"),
        ("processes_seedtree", "s-"),
        ("processes_baseline", "+--"),
    ):
        b.plot(w, [r[key] for r in sc], style, label=key.replace("_", " "))
    b.plot(w, [r["limit"] for r in sc], "k:", label="limit: 1 thread x min(workers, cores)")
    b.set_xlabel("workers")
    b.set_ylabel("aggregate MB/s (float64 fill)")
    b.set_xticks(w)
    b.legend(fontsize=7)
    fig.suptitle(f"seedtree throughput on {result['machine']['cores']} cores")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64, help="MiB per fill for the per-stream rates")
    parser.add_argument(
        "--fill-kib",
        type=int,
        default=256,
        help="KiB per fill in the scaling runs (default: stays in each core's cache, so the runs "
        "measure generation, not the memory bus)",
    )
    parser.add_argument("--rounds", type=int, default=1024, help="fills per worker in the scaling runs")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--max-workers", type=int, default=None, help="default: number of cores (at least 2)")
    parser.add_argument("--out", default=str(RESULTS / "throughput.json"))
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    max_workers = args.max_workers or max(2, cores)
    started = time.perf_counter()
    result = {
        "machine": {
            "cores": cores,
            "cpu": platform.processor() or platform.machine(),
            "numpy": np.__version__,
            "load_avg_at_start": os.getloadavg(),
        },
        "per_stream": per_stream(args.mib, args.repeat),
    }

    scaling = []
    ctx = mp.get_context("fork")
    with ctx.Pool(max_workers) as pool:
        for w in range(1, max_workers + 1):
            row = {"workers": w}
            for kind in ("seedtree", "baseline"):
                row[f"threads_{kind}"] = threads(w, args.fill_kib, args.rounds, kind, args.repeat)
                row[f"processes_{kind}"] = processes(w, args.fill_kib, args.rounds, kind, args.repeat, pool)
            scaling.append(row)
    single = scaling[0]["threads_seedtree"]
    for row in scaling:
        row["limit"] = single * min(row["workers"], cores)
        for key in ("threads_seedtree", "threads_baseline", "processes_seedtree", "processes_baseline"):
            row[key.replace("seedtree", "seedtree_speedup").replace("baseline", "baseline_speedup")] = (
                row[key] / scaling[0][key]
            )
    result["scaling"] = scaling
    result["cuda"] = cuda(args.mib, args.repeat)
    result["target"] = "threads and processes with seedtree streams: >= 1.8x on 2 cores"
    result["seconds"] = time.perf_counter() - started
    result["machine"]["load_avg_at_end"] = os.getloadavg()

    print(f"per-stream rate, one thread ({args.mib} MiB fills, best of {args.repeat}):")
    print(f"  {'stream':<46} {'float64 MB/s':>13} {'words MB/s':>11}")
    for r in result["per_stream"]:
        if "skipped" in r:
            print(f"  {r['stream']:<46} skipped: {r['skipped']}")
        else:
            print(f"  {r['stream']:<46} {r['float64_MBps']:>13.0f} {r['words_MBps']:>11.0f}")
    print(f"\nscaling, each worker fills {args.fill_kib} KiB x {args.rounds} from its own stream (aggregate MB/s):")
    print(
        f"  {'workers':>7} {'thr seedtree':>13} {'thr baseline':>13} {'proc seedtree':>14} {'proc baseline':>14}"
        f" {'limit':>8}  speedup thr/proc (seedtree)"
    )
    for r in scaling:
        print(
            f"  {r['workers']:>7} {r['threads_seedtree']:>13.0f} {r['threads_baseline']:>13.0f} "
            f"{r['processes_seedtree']:>14.0f} {r['processes_baseline']:>14.0f} {r['limit']:>8.0f}  "
            f"{r['threads_seedtree_speedup']:.2f}x / {r['processes_seedtree_speedup']:.2f}x"
        )
    for r in result["cuda"]:
        print(
            f"\nCUDA: {r.get('device')}: "
            + (f"skipped: {r['skipped']}" if "skipped" in r else f"{r['float32_MBps']:.0f} MB/s")
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    try:
        plot(result, out.with_suffix(".png"))
        print(f"\nwrote {out} and {out.with_suffix('.png')}")
    except ImportError:
        print(f"\nwrote {out} (matplotlib missing: no plot)")
    print(
        f"target: {result['target']}; load average {result['machine']['load_avg_at_start']} -> "
        f"{result['machine']['load_avg_at_end']}"
    )


if __name__ == "__main__":
    main()
