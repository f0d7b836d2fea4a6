"""The invariance oracle's long run: many more configurations than CI's budget.

    python benchmarks/oracle.py --examples 2000

Draws map-style and stream configurations with hypothesis (the strategies of
tests/test_oracle.py), checks each against the single-process uninterrupted run
(tests/_oracle.py) and writes the count and any divergence to
benchmarks/results/oracle.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ["SEEDTREE_ORACLE_EXPLORE"] = "1"  # new configurations each run

from _oracle import OutsidePromise, check  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from test_oracle import map_configs, stream_configs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000, help="configurations in all (default 2000)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "oracle.json"))
    args = parser.parse_args()
    found: list[str] = []
    counts = {"map": 0, "stream": 0}
    outside = {"map": 0, "stream": 0}

    def run(kind: str, strategy, n: int) -> None:  # noqa: ANN001
        @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(strategy())
        def one(cfg) -> None:  # noqa: ANN001
            try:
                error = check(cfg)
            except OutsidePromise:
                outside[kind] += 1  # drawn outside the promise (ranks checkpointed out of step)
                return
            except Exception as exc:  # noqa: BLE001 - a refusal or crash is a finding too: keep going
                error = f"{type(exc).__name__}: {exc} ({cfg.describe()})"
            counts[kind] += 1
            if error is not None:
                found.append(error)
            if sum(counts.values()) % 100 == 0:  # progress, for a run that is stopped early
                print(f"{sum(counts.values())} configurations, {len(found)} divergences", flush=True)

        one()

    start = time.perf_counter()
    run("map", map_configs, args.examples * 2 // 3)
    run("stream", stream_configs, args.examples - args.examples * 2 // 3)
    result = {
        "configurations": counts,
        "total": sum(counts.values()),
        "outside_the_promise": outside,
        "divergences": found,
        "seconds": round(time.perf_counter() - start, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['total']} configurations ({counts}), {len(found)} divergences, {result['seconds']} s")
    for line in found[:10]:
        print(" ", line)


if __name__ == "__main__":
    main()
