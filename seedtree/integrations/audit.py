"""Audit: catch duplicated random streams across the workers of a pool, joblib backend or
DataLoader, by drawing a probe from every worker's generators and looking for repeats.

Each probe draws one double from python ``random``, numpy's global, torch's global (when
torch is loaded) and the ambient ``seedtree.rng()`` (when a node is bound). Two different
workers (or one worker in two epochs) drawing the same double means they share a stream:
the chance of that by accident is about 2**-53 per pair.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..runtime import ambient
from ._checks import check_callable, check_count

__all__ = ["AuditReport", "ProbeDataset", "audit_joblib", "audit_loader", "audit_pool", "probe", "report"]


def probe() -> dict[str, float]:
    """One draw from each generator this process would use."""
    draws = {"random": random.random(), "numpy": float(np.random.random())}
    torch = sys.modules.get("torch")
    if torch is not None:
        draws["torch"] = float(torch.rand(1).item())
    try:
        draws["seedtree"] = float(ambient.rng().random())
    except RuntimeError:
        pass  # nothing bound: no ambient stream to probe
    return draws


@dataclass
class AuditReport:
    """What an audit saw. ``duplicates`` lists each repeated draw with the workers that
    drew it; ``ok`` is True when there are none and at least two workers were probed."""

    target: str
    workers: int
    draws: int
    duplicates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no draw was seen twice and at least two workers answered."""
        return not self.duplicates and self.workers >= 2

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able values."""
        return {
            "target": self.target,
            "ok": self.ok,
            "workers": self.workers,
            "draws": self.draws,
            "duplicates": self.duplicates,
        }

    def __str__(self) -> str:
        if self.duplicates:
            libs = sorted({d["library"] for d in self.duplicates})
            return (
                f"{self.target}: DUPLICATED streams in {', '.join(libs)} "
                f"({len(self.duplicates)} repeated draws across {self.workers} workers)"
            )
        if self.workers < 2:
            return f"{self.target}: inconclusive, only {self.workers} worker probed"
        return f"{self.target}: ok, {self.draws} draws from {self.workers} workers, no repeats"


def report(target: str, samples: list[tuple[str, dict[str, float]]]) -> AuditReport:
    """Build a report from ``(worker label, probe)`` pairs."""
    seen: dict[tuple[str, float], set[str]] = {}
    for label, draws in samples:
        for library, value in draws.items():
            seen.setdefault((library, value), set()).add(label)
    duplicates = [
        {"library": lib, "value": value, "seen_by": sorted(labels)}
        for (lib, value), labels in seen.items()
        if len(labels) > 1
    ]
    workers = len({label for label, _ in samples})
    return AuditReport(target, workers, sum(len(d) for _, d in samples), duplicates)


def _probe_task(_: Any, pause: float = 0.05) -> tuple[str, dict[str, float]]:
    time.sleep(pause)  # keeps one fast worker from taking every task
    return f"pid {os.getpid()}", probe()


def audit_pool(pool: Any, tasks: int = 8, rounds: int = 2) -> AuditReport:
    """Probe a ``multiprocessing.Pool`` or a ``concurrent.futures`` executor, as it is
    configured, over ``rounds`` rounds of ``tasks`` tasks."""
    check_count(tasks, "audit_pool()", "tasks", 1)
    check_count(rounds, "audit_pool()", "rounds", 1)
    samples: list[tuple[str, dict[str, float]]] = []
    for _ in range(rounds):
        if hasattr(pool, "submit"):
            samples += [f.result() for f in [pool.submit(_probe_task, i) for i in range(tasks)]]
        else:
            samples += pool.map(_probe_task, range(tasks), chunksize=1)
    return report(f"pool {type(pool).__name__}", samples)


def audit_joblib(
    backend: str = "loky", n_jobs: int = 2, tasks: int = 8, rounds: int = 2, tree: Any = None
) -> AuditReport:
    """Probe a joblib backend: plain ``joblib.Parallel`` when ``tree`` is None, else
    ``seedtree.joblib.parallel_map`` with that tree."""
    from ..core.optional import require

    check_count(tasks, "audit_joblib()", "tasks", 1)
    check_count(rounds, "audit_joblib()", "rounds", 1)
    joblib = require("joblib", "seedtree.audit.audit_joblib")
    samples: list[tuple[str, dict[str, float]]] = []
    for r in range(rounds):
        if tree is None:
            samples += joblib.Parallel(n_jobs=n_jobs, backend=backend)(
                joblib.delayed(_probe_task)(i) for i in range(tasks)
            )
        else:
            from .joblib import parallel_map

            # Each round is new work, so it gets its own subtree (a keyed task rerun on the
            # same node draws the same numbers by design).
            samples += parallel_map(_probe_task, range(tasks), tree / "round" / r, n_jobs=n_jobs, backend=backend)
    return report(f"joblib {backend} n_jobs={n_jobs}" + (" (seedtree)" if tree is not None else ""), samples)


class ProbeDataset:
    """A map-style dataset whose items are ``(worker id, probe)``; used by ``audit_loader``."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[int, dict[str, float]]:
        import torch.utils.data

        info = torch.utils.data.get_worker_info()
        return (-1 if info is None else info.id), probe()


def audit_loader(make_loader: Callable[[ProbeDataset], Any], size: int = 16, epochs: int = 2) -> AuditReport:
    """Probe a DataLoader configuration: ``make_loader(dataset)`` must return a loader over
    the given dataset (with whatever ``num_workers``, ``worker_init_fn`` or seedtree loader
    you want to check); it is iterated for ``epochs`` epochs with ``batch_size`` left to it.
    A worker's label is (epoch, worker id), so a stream that repeats across epochs counts."""
    check_callable(make_loader, "audit_loader()", "make_loader")
    check_count(size, "audit_loader()", "size", 1)
    check_count(epochs, "audit_loader()", "epochs", 1)
    dataset = ProbeDataset(size)
    loader = make_loader(dataset)
    samples: list[tuple[str, dict[str, float]]] = []
    for epoch in range(epochs):
        for batch in loader:
            for worker, draws in _unbatch(batch):
                samples.append((f"epoch {epoch} worker {worker}", draws))
    return report(f"DataLoader num_workers={getattr(loader, 'num_workers', '?')}", samples)


def _unbatch(batch: Any) -> list[tuple[int, dict[str, float]]]:
    workers, draws = batch
    workers = [int(w) for w in workers]
    keys = list(draws)
    return [(w, {k: float(draws[k][j]) for k in keys}) for j, w in enumerate(workers)]
