"""The mutation score per module, from the results mutmut left under mutants/.

Writes benchmarks/results/mutation.json (counts, score and surviving mutants of each module)
and benchmarks/results/mutation.md (the table), and prints the table. The score is
(killed + timed out) / (killed + timed out + survived); mutants in functions that no selected
test reaches ("no tests") are counted apart, as are mutants whose run crashed or hung
("suspicious", "segfault"), those whose worker raised instead of running the tests
("error", which mutmut 3.8 counts as a timeout) and those not run yet.

The mutants a run leaves alive, those no selected test reaches, and those whose test run
died of a signal or whose worker raised are listed under the table with the reason each is
left: "segfault" (SIGSEGV: the mutant crashed the process, so it was noticed, but it is not
counted as killed), "sigkill" (SIGKILL: mutmut's CPU-time limit stopped the tests, which
mutmut 3.8 also calls a segfault; nothing failed by then) and "error". They are read from
scripts/mutation_left.toml (a key is a mutant's name or the prefix naming its function or
class); one without a reason is listed as UNEXPLAINED.

    python scripts/mutation_report.py [--seconds N] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tomllib
from collections import Counter, defaultdict
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

# mutmut's own exit-code meanings (mutmut.stats.status_by_exit_code), spelled out so this
# report reads old results without importing mutmut.
STATUS = {
    0: "survived",
    1: "killed",
    3: "killed",
    2: "interrupted",
    5: "no tests",
    33: "no tests",
    34: "skipped",
    35: "suspicious",
    36: "timeout",
    37: "caught by type check",
    -24: "timeout",
    24: "timeout",
    152: "timeout",
    255: "error",  # the worker raised (mutmut counts it as a timeout): e.g. pytest refused a test id
    -11: "segfault",
    -9: "sigkill",  # mutmut says "segfault"; it is the hard stop of its CPU-time limit
    None: "not checked",
}
PACKAGES = ("seedtree/core", "seedtree/runtime")
LISTED = ("survived", "no tests", "segfault", "sigkill", "error")  # the statuses named under the table
REASONS = Path(__file__).with_name("mutation_left.toml")


def module_results(mutants: Path) -> dict[str, dict[str, Any]]:
    """{module: {"counts": {status: n}, "survived": [mutant names]}} for every module of
    the packages that mutmut left a result file for."""
    results: dict[str, dict[str, Any]] = {}
    for package in PACKAGES:
        for meta in sorted((mutants / package).rglob("*.py.meta")):
            module = meta.relative_to(mutants).as_posix().removesuffix(".py.meta")
            data = json.loads(meta.read_text())
            statuses = {name: STATUS.get(code, "suspicious") for name, code in data["exit_code_by_key"].items()}
            results[module] = {"counts": dict(Counter(statuses.values()))}
            for kind in LISTED:
                results[module][kind] = sorted(name for name, status in statuses.items() if status == kind)
    return results


def score(counts: dict[str, int]) -> float | None:
    caught = counts.get("killed", 0) + counts.get("timeout", 0)
    judged = caught + counts.get("survived", 0)
    return None if judged == 0 else round(100 * caught / judged, 1)


def table(results: dict[str, dict[str, Any]]) -> str:
    columns = ["killed", "timeout", "survived", "no tests", "suspicious", "segfault", "sigkill", "error", "not checked"]
    lines = ["| module | score | mutants | " + " | ".join(columns) + " |", "|---" * (len(columns) + 3) + "|"]
    for module, result in results.items():
        counts = result["counts"]
        value = score(counts)
        cells = [str(counts.get(c, 0)) for c in columns]
        shown = "n/a" if value is None else f"{value:.1f} %"
        lines.append(f"| {module} | {shown} | {sum(counts.values())} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def reason_for(name: str, reasons: dict[str, str]) -> str:
    """The reason whose key is the longest prefix of the mutant ``name``."""
    keys = [key for key in reasons if name == key or name.startswith(key)]
    return reasons[max(keys, key=len)] if keys else "UNEXPLAINED"


def left_section(results: dict[str, dict[str, Any]], reasons: dict[str, dict[str, str]]) -> str:
    """Markdown: every mutant of a listed status, grouped by the reason it is left."""
    out = []
    for kind in LISTED:
        grouped: dict[str, list[str]] = defaultdict(list)
        for result in results.values():
            for name in result[kind]:
                grouped[reason_for(name, reasons.get(kind, {}))].append(name)
        total = sum(len(v) for v in grouped.values())
        if not total and kind not in ("survived", "no tests"):
            continue  # no crash, kill or error this run: no empty section
        out.append(f"\n## {kind}: {total}\n")
        for reason, names in sorted(grouped.items(), key=lambda item: (item[0] != "UNEXPLAINED", -len(item[1]))):
            out.append(
                f"- **{reason}** ({len(names)}): " + ", ".join(f"`{n.removeprefix('seedtree.')}`" for n in names)
            )
    return "\n".join(out) + "\n"


def _mutmut_version() -> str:
    """mutmut's version, where it is installed (the report can be rebuilt without it)."""
    try:
        return version("mutmut")
    except PackageNotFoundError:
        return "(version unknown: not installed here)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mutants", type=Path, default=Path("mutants"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--seconds", type=float, default=None, help="wall time of the run, recorded as is")
    parser.add_argument("--note", default="", help="a line written under the title (e.g. how the run ended)")
    args = parser.parse_args(argv)
    results = module_results(args.mutants)
    if not results:
        print(f"no mutmut results under {args.mutants}/: run `make mutation` first", file=sys.stderr)
        return 1
    reasons = tomllib.loads(REASONS.read_text()) if REASONS.exists() else {}
    for result in results.values():
        result["score"] = score(result["counts"])
        for kind in LISTED:
            result[kind] = {name: reason_for(name, reasons.get(kind, {})) for name in result[kind]}
    report = {
        "tool": f"mutmut {_mutmut_version()}",
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": platform.python_version(),
        "seconds": args.seconds,
        "note": args.note,
        "score": "(killed + timeout) / (killed + timeout + survived), in %",
        "modules": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "mutation.json").write_text(json.dumps(report, indent=1) + "\n")
    text = table(results)
    duration = "" if args.seconds is None else f", {args.seconds / 60:.1f} min"
    note = f"{args.note}\n\n" if args.note else ""
    left = left_section(results, reasons)
    (args.out / "mutation.md").write_text(f"# Mutation score ({report['tool']}{duration})\n\n{note}{text}\n{left}")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
