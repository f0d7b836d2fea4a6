"""Timing shared by the benchmark scripts."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any


def best_of(fn: Callable[[], object], repeats: int) -> float:
    """Best-of-``repeats`` wall time of ``fn()`` in seconds (the machine is shared: noise
    only ever adds time, so the minimum is the least disturbed run)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def rounds_of(
    variants: dict[str, Callable[[], Any]], rounds: int, per: int = 1
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU (``time.process_time``: this process, all its threads) seconds per call
    of each variant divided by ``per``, ``rounds`` times, the variants interleaved in each
    round in a rotating order (no variant always runs first)."""
    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            c0, t0 = time.process_time(), time.perf_counter()
            variants[name]()
            wall[name].append((time.perf_counter() - t0) / per)
            cpu[name].append((time.process_time() - c0) / per)
    return wall, cpu


def interleaved(variants: dict[str, Callable[[], Any]], rounds: int, per: int = 1) -> dict[str, list[float]]:
    """Wall seconds per call of each variant (see ``rounds_of``)."""
    return rounds_of(variants, rounds, per)[0]


def paired_ratio(times: dict[str, list[float]], name: str, base: str) -> float:
    """Median over rounds of time(name) / time(base) in the same round."""
    return statistics.median(a / b for a, b in zip(times[name], times[base], strict=True))


def paired_diff(times: dict[str, list[float]], name: str, base: str) -> float:
    """Median over rounds of time(name) - time(base) in the same round."""
    return statistics.median(a - b for a, b in zip(times[name], times[base], strict=True))


def load_average() -> list[float]:
    """The 1, 5 and 15-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]
