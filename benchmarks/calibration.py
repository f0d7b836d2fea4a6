"""Calibration of the own battery: are its p-values uniform on good streams?

    .venv/bin/python benchmarks/calibration.py                 # 100 roots x 3 data sets x 16 MiB, ~5 min on 2 cores
    .venv/bin/python benchmarks/calibration.py --roots 20 --mib 2   # quick look

For each data set (seedtree children; roots drawn from a fixed meta-seed, so the run is
reproducible and no root is hand-picked) the first run of the own battery is recorded for
every root, without the verdict rule's re-test. For every test the p-values over the roots
are compared with the uniform law by a one-sample Kolmogorov-Smirnov test: a calibrated test
passes it (at 0.01); a test whose p-value is discrete by design (see the docstring of
``seedtree.stats.battery``) is reported as such with its measured behaviour.

Data sets: the interleaved stream of 8 192 streams (rank-512) and of 1 024 streams, and of 2
streams plus the first-outputs data set (rank-256 on the first words of consecutive children).

Writes benchmarks/results/calibration.json and calibration.png (empirical CDF of each test's
p-values per data set against the diagonal).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from scipy import stats

from seedtree.stats.check import _first_children, _run_own
from seedtree.stats.schemes import RandomStateStream, Scheme, get_scheme

RESULTS = Path(__file__).resolve().parent / "results"
META_SEED = 20261129
# p = 1 unless an event with expected count ~1e-4 or less happens: discrete by design.
DISCRETE = {"collisions", "overlaps"}
# Skipped (not applicable) unless the streams are init_genrand-seeded MT19937.
NOT_APPLICABLE = {"mt19937-seeds"}


def _random_32bit_seeds(root: int, idx: range) -> list[RandomStateStream]:
    # RandomState(s_i) with s_i independent uniform 32-bit seeds: the null hypothesis of the
    # mt19937-seeds test (it recognises these streams, and their seeds are unrelated).
    seeds = [int(np.random.SeedSequence(root, spawn_key=(i,)).generate_state(1)[0]) for i in idx]
    return [RandomStateStream(np.random.RandomState(s)) for s in seeds]


MT_NULL = Scheme(
    "randomstate-random-seeds", "user", "RandomState(independent uniform 32-bit seed)", _random_32bit_seeds
)


def roots(n: int) -> list[int]:
    """``n`` 64-bit roots from a fixed meta-seed (reproducible, not hand-picked)."""
    words = np.random.SeedSequence(META_SEED).generate_state(2 * n, dtype=np.uint32).astype(np.uint64)
    return [int(hi << np.uint64(32) | lo) for hi, lo in zip(words[0::2], words[1::2], strict=True)]


def collect(
    scheme: str | Scheme, streams: int, mib: float, root_list: list[int], children: bool
) -> dict[str, list[float]]:
    """p-values per (source, test) over the roots (NaN where the test was skipped)."""
    resolved = get_scheme(scheme)
    n_bytes = int(mib * 2**20)
    n_children = _first_children(n_bytes, "quick") if children else 0
    out: dict[str, list[float]] = {}
    for root in root_list:
        outcomes, _ = _run_own(resolved, streams, n_bytes, root, 0, 0, n_children, "quick", False)
        for o in outcomes:
            out.setdefault(f"{o.source}: {o.name}", []).append(o.p)
    return out


def summarise(pvalues: dict[str, list[float]], alpha: float) -> list[dict]:
    rows = []
    for key, ps in pvalues.items():
        test = key.split(": ", 1)[1]
        p = np.array(ps, dtype=float)
        ran = p[~np.isnan(p)]
        row = {"test": key, "roots": len(p), "ran": int(len(ran))}
        if len(ran) == 0:
            row.update(verdict="not applicable (skipped on every root)" if test in NOT_APPLICABLE else "skipped")
        else:
            ks = stats.kstest(ran, "uniform")
            row.update(
                mean_p=float(ran.mean()),
                share_below_0_01=float((ran <= 0.01).mean()),
                share_p_is_1=float((ran >= 1.0).mean()),
                ks_p=float(ks.pvalue),
                min_p=float(ran.min()),
            )
            if test in DISCRETE:
                row["verdict"] = "discrete by design (documented)"
            elif test in NOT_APPLICABLE:
                row["verdict"] = "conservative by design (documented)" if ks.pvalue < alpha else "uniform"
            else:
                row["verdict"] = "uniform" if ks.pvalue >= alpha else "NOT uniform"
        rows.append(row)
    return rows


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 5.0), squeeze=False)
    for ax, res in zip(axes[0], results, strict=True):
        for key, ps in res["pvalues"].items():
            p = np.sort(np.array([x for x in ps if x == x]))
            if len(p) == 0:
                continue
            discrete = key.split(": ", 1)[1] in DISCRETE
            ax.step(
                p,
                np.arange(1, len(p) + 1) / len(p),
                where="post",
                lw=0.8,
                alpha=0.45 if discrete else 0.8,
                ls=":" if discrete else "-",
            )
        n = res["roots"]
        band = 1.63 / np.sqrt(n)  # KS critical distance at 0.01
        x = np.linspace(0, 1, 2)
        ax.plot(x, x, "k-", lw=1.2)
        ax.fill_between(x, x - band, x + band, color="grey", alpha=0.2, label="KS 0.01 band")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(f"{res['label']}\n{n} roots, {res['mib']:g} MiB", fontsize=9)
        ax.set_xlabel("p")
        ax.set_ylabel("empirical CDF over roots")
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("own battery p-values on seedtree streams (dotted: discrete by design)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roots", type=int, default=100)
    parser.add_argument("--mib", type=float, default=16.0, help="MiB of interleaved stream per root")
    parser.add_argument("--scheme", default="seedtree")
    parser.add_argument("--alpha", type=float, default=0.01, help="KS level")
    parser.add_argument("--sets", default="8192,1024,2", help="stream counts (2 adds the first-outputs data set)")
    parser.add_argument(
        "--mt-null-streams",
        type=int,
        default=1024,
        help="streams of RandomState(independent 32-bit seeds), the mt19937-seeds test's null (0: skip)",
    )
    parser.add_argument("--mt-null-mib", type=float, default=4.0)
    parser.add_argument("--out", default=str(RESULTS / "calibration.json"))
    args = parser.parse_args()
    root_list = roots(args.roots)
    started = time.time()
    load = os.getloadavg()
    results = []
    for k in (int(s) for s in args.sets.split(",")):
        t0 = time.perf_counter()
        pvalues = collect(args.scheme, k, args.mib, root_list, children=(k == 2))
        label = f"{args.scheme}: {k} streams interleaved" + (" + first outputs" if k == 2 else "")
        rows = summarise(pvalues, args.alpha)
        results.append(
            {
                "label": label,
                "streams": k,
                "mib": args.mib,
                "roots": args.roots,
                "rows": rows,
                "pvalues": pvalues,
                "seconds": time.perf_counter() - t0,
            }
        )
        print(f"\n{label}, {args.roots} roots x {args.mib:g} MiB ({time.perf_counter() - t0:.0f} s)")
        print(f"{'test':<36}{'ran':>5}{'mean p':>8}{'p<=.01':>8}{'p=1':>6}{'KS p':>9}  verdict")
        for r in rows:
            if "mean_p" in r:
                print(
                    f"{r['test']:<36}{r['ran']:>5}{r['mean_p']:>8.3f}{r['share_below_0_01']:>8.2f}"
                    f"{r['share_p_is_1']:>6.2f}{r['ks_p']:>9.3g}  {r['verdict']}"
                )
            else:
                print(f"{r['test']:<36}{r['ran']:>5}{'':>31}  {r['verdict']}")
    if args.mt_null_streams:
        k, t0 = args.mt_null_streams, time.perf_counter()
        pvalues = collect(MT_NULL, k, args.mt_null_mib, root_list, children=False)
        pvalues = {key: v for key, v in pvalues.items() if key.endswith("mt19937-seeds")}
        label = f"{MT_NULL.about}: {k} streams"
        rows = summarise(pvalues, args.alpha)
        results.append(
            {
                "label": label,
                "streams": k,
                "mib": args.mt_null_mib,
                "roots": args.roots,
                "rows": rows,
                "pvalues": pvalues,
                "seconds": time.perf_counter() - t0,
            }
        )
        r = rows[0]
        print(
            f"\n{label}, {args.roots} roots x {args.mt_null_mib:g} MiB: mt19937-seeds ran on {r['ran']} roots, "
            f"mean p {r.get('mean_p', float('nan')):.3f}, share p <= 0.01 {r.get('share_below_0_01', 0):.2f}, "
            f"share p = 1 {r.get('share_p_is_1', 0):.2f}, KS p {r.get('ks_p', float('nan')):.3g}: "
            "conservative by design (Bonferroni over 18 spacings)"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "scheme": args.scheme,
        "roots": args.roots,
        "meta_seed": META_SEED,
        "mib": args.mib,
        "alpha": args.alpha,
        "root_list": [str(r) for r in root_list],
        "machine": {"cores": os.cpu_count(), "load_avg_at_start": load, "load_avg_at_end": os.getloadavg()},
        "seconds": time.time() - started,
        "sets": results,
    }
    out.write_text(json.dumps(summary, indent=1, default=float) + "\n")
    plot(results, out.with_suffix(".png"))
    print(f"\nwrote {out} and {out.with_suffix('.png')} ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
