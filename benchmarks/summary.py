"""One table and one plot of the benchmark ratios against their targets.

Reads the JSON files the benchmark scripts wrote in benchmarks/results/ and writes
results/summary.md (a markdown table: measured value, target, met or not, load average of
the run) and results/summary.png (each ratio divided by its target: below 1 is met).
Scripts that have not been run are listed as missing, never guessed.

    python benchmarks/summary.py
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"

Row = tuple[str, str, float, float, str, str]
"""(benchmark, measure, value, target, 'max'|'min', load average)"""


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _load_text(data: dict[str, Any]) -> str:
    m = data.get("machine", {})
    start = m.get("load_average_start") or m.get("load_avg_at_start") or m.get("load_average")
    end = m.get("load_average_end") or m.get("load_avg_at_end")
    if start is None:
        pair = m.get("load_average_before_after")
        start, end = (pair[0], pair[1]) if pair else (None, None)
    first = start[0] if isinstance(start, list) else start
    last = end[0] if isinstance(end, list) else end
    if first is None:
        return "?"
    return f"{first:.1f}" if last is None else f"{first:.1f} → {last:.1f}"


def _workers(data: dict[str, Any]) -> list[Row]:
    load = _load_text(data)
    b, dl, jb = data["binding"], data["loader"], data["joblib"]
    rows: list[Row] = [
        (
            "workers",
            "bind random+numpy+torch+rng() per sample (µs)",
            b["us_per_sample"]["seedtree: random + numpy + torch + rng()"],
            5.0,
            "max",
            load,
        ),
        ("workers", "naive per-sample reseed ÷ seedtree (×)", b["naive_over_seedtree"], 25.0, "min", load),
    ]
    for workers, rows_w in dl["rows"].items():
        rows.append(
            (
                "workers",
                f"loader globals vs plain, {workers} (×)",
                rows_w["seedtree loader, globals bound"]["ratio"],
                dl["targets"]["globals"][workers],
                "max",
                load,
            )
        )
        rows.append(
            (
                "workers",
                f"loader ambient only vs plain, {workers} (×)",
                rows_w["seedtree loader, ambient only"]["ratio"],
                dl["targets"]["ambient only"][workers],
                "max",
                load,
            )
        )
    for name, target in jb["targets_pct"].items():
        rows.append(
            (
                "workers",
                f"joblib loky {jb['tasks']}×1 ms, {name} (% over plain)",
                jb["rows"][name]["overhead_pct"],
                target,
                "max",
                load,
            )
        )
    return rows


def _derive(data: dict[str, Any]) -> list[Row]:
    load = _load_text(data)
    by = {r["name"]: r for r in data["rows"]}
    canonical = next(r for n, r in by.items() if n.startswith("numpy default_rng") and "stream" in n)
    ours = by["seedtree generators (stream)"]
    rows: list[Row] = [
        (
            "derive",
            "root.generators ÷ canonical default_rng(SeedSequence) speed (×)",
            canonical["us_per_child"] / ours["us_per_child"],
            5.0,
            "min",
            load,
        )
    ]
    for r in data["rows"]:
        if "target" in r:
            metric, bound = r["target"].split()[2], float(r["target"].split()[1])
            op = "min" if r["target"].startswith(">=") else "max"
            rows.append(("derive", f"{r['name']} ({metric})", r[metric], bound, op, load))
    return rows


def _dask(data: dict[str, Any]) -> list[Row]:
    load = _load_text(data)
    rows: list[Row] = [
        (
            "dask",
            "client_map keyed vs plain, paired wall time (% over plain)",
            data["keyed_overhead"] * 100,
            data["target_overhead"] * 100,
            "max",
            load,
        ),
        (
            "dask",
            "client_map keyed, in-task cost share of wall time (%)",
            data["keyed_in_task_share_of_wall"] * 100,
            data["target_overhead"] * 100,
            "max",
            load,
        ),
    ]
    return rows


def _per_sample(data: dict[str, Any]) -> list[Row]:
    load = _load_text(data)
    rows: list[Row] = []
    for row in data["targets"]:
        sign, bound = row["target"].split()
        rows.append(("per_sample", row["what"], row["measured"], float(bound), "max" if sign == "≤" else "min", load))
    return rows


READERS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "per_sample": _per_sample,
    "workers": _workers,
    "derive": _derive,
    "dask_overhead": _dask,
}
OTHERS = ("throughput", "battery", "loader_order")  # reported in their own sections of the README


def collect() -> tuple[list[Row], list[str]]:
    rows: list[Row] = []
    missing = []
    for name, read in READERS.items():
        data = _load(name)
        if data is None:
            missing.append(name)
            continue
        try:
            rows.extend(read(data))
        except (KeyError, StopIteration, TypeError, IndexError) as exc:
            missing.append(f"{name} (unreadable: {exc!r})")
    missing += [n for n in OTHERS if _load(n) is None]
    return rows, missing


def _met(value: float, target: float, op: str) -> bool:
    return value <= target if op == "max" else value >= target


def markdown(rows: list[Row], missing: list[str]) -> str:
    lines = ["| benchmark | measure | value | target | met | load average |", "| --- | --- | ---: | --- | --- | --- |"]
    for bench, measure, value, target, op, load in rows:
        sign = "≤" if op == "max" else "≥"
        lines.append(
            f"| {bench} | {measure} | {value:.3g} | {sign} {target:g} | "
            f"{'yes' if _met(value, target, op) else '**no**'} | {load} |"
        )
    if missing:
        lines.append("")
        lines.append("Not run (no JSON in results/): " + ", ".join(missing))
    return "\n".join(lines) + "\n"


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, scores, colours = [], [], []
    for bench, measure, value, target, op, _ in rows:
        # value/target for upper bounds, target/value for lower bounds: <= 1 means met.
        if op == "max":
            score = value / target if target > 0 else float("inf")
            if measure.endswith("(% over plain)"):  # percentages: compare the ratios 1 + x/100
                score = (1 + value / 100) / (1 + target / 100)
        else:
            score = target / value if value > 0 else float("inf")
        labels.append(f"{bench}: {measure}")
        scores.append(score)
        colours.append("tab:green" if _met(value, target, op) else "tab:red")
    fig, ax = plt.subplots(figsize=(10, 0.35 * len(labels) + 1.2))
    ax.barh(range(len(labels)), scores, color=colours)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("measured ÷ target for upper bounds, target ÷ measured for lower bounds (≤ 1: met)")
    ax.set_title("seedtree benchmarks against their targets")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    rows, missing = collect()
    text = markdown(rows, missing)
    (RESULTS / "summary.md").write_text(text)
    print(text)
    if rows:
        plot(rows, RESULTS / "summary.png")
    print(f"wrote {RESULTS / 'summary.md'} and {RESULTS / 'summary.png'}")


if __name__ == "__main__":
    main()
