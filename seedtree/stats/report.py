"""The result of a check: verdict, one row per test, JSON, a summary table and a p-value plot."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..core.optional import require

__all__ = ["Report"]


def _clean(value: Any) -> Any:
    """JSON-able: NaN/inf become None, nested containers cleaned."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


@dataclass
class Report:
    """What ``seedtree.stats.check`` found.

    ``rows`` has one dict per test: ``battery``, ``source``, ``test``, ``p`` (first run; None
    for a skipped test), ``p_retest`` (None without a re-test), ``verdict`` (``pass``, ``suspicious``:
    flagged in the first run only, ``FAIL``: flagged in the re-test, ``skipped``),
    ``statistic``, ``detail``. ``bytes_read`` says how much of the interleaved stream each
    battery read in the first run (the own battery: whole rows of ``streams`` words; PractRand:
    the length of its last report). ``first_fail`` holds, per external battery that reports
    interim results (PractRand), the first length it evaluated as FAIL in the first run
    (None: none up to ``bytes_read``).
    """

    scheme: str
    kind: str
    streams: int
    bytes_read: dict[str, int]
    root: int
    retest_root: int | None
    batteries: list[str]
    passed: bool
    rule: str
    rows: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    first_fail: dict[str, int | None] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """``PASS`` or ``FAIL``."""
        return "PASS" if self.passed else "FAIL"

    @property
    def suspicious(self) -> bool:
        """Whether the first run flagged anything (then there was a re-test)."""
        return self.retest_root is not None

    def to_dict(self) -> dict:
        """JSON-able dict (roots as decimal strings: they can exceed 64 bits)."""
        d = asdict(self)
        d["root"] = str(self.root)
        d["retest_root"] = None if self.retest_root is None else str(self.retest_root)
        d["verdict"] = self.verdict
        return _clean(d)

    def save(self, path: str | Path) -> None:
        """Write ``to_dict()`` as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def failing(self) -> list[dict]:
        """The rows that decided a FAIL."""
        return [r for r in self.rows if r["verdict"] == "FAIL"]

    def table(self) -> str:
        """A plain-text summary table, worst p-values first within each source."""
        sizes = ", ".join(f"{b} read {n / 2**20:.1f} MiB" for b, n in self.bytes_read.items())
        head = f"scheme {self.scheme} ({self.kind}), {self.streams} streams, root {self.root}: {sizes}"
        lines = [head, f"{'battery/source':<24} {'test':<34} {'p':>10} {'re-test p':>10}  verdict"]
        for r in self.rows:
            p = "-" if r["p"] is None else f"{r['p']:.3g}"
            q = "" if r["p_retest"] is None else f"{r['p_retest']:.3g}"
            where = f"{r['battery']}/{r['source']}" if r["battery"] == "own" else r["source"]
            verdict = r["verdict"] if r["verdict"] != "skipped" else f"skipped: {r['detail']}"
            lines.append(f"{where:<24} {r['test'][:34]:<34} {p:>10} {q:>10}  {verdict}")
        outcome = self.verdict
        if self.suspicious:
            outcome += f" (first run suspicious; re-tested with root {self.retest_root})"
        for battery, size in self.first_fail.items():
            where = "no FAIL" if size is None else f"first FAIL at {size} bytes"
            lines.append(f"{battery}: {where} (reports from 1 KiB to {self.bytes_read.get(battery, 0)} bytes)")
        lines.append(f"verdict: {outcome} in {self.seconds:.1f} s")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        """A PNG of -log10(p) per test (first run and re-test) against the Holm thresholds."""
        matplotlib = require("matplotlib", "Report.plot")
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = [r for r in self.rows if r["verdict"] != "skipped"]
        labels = [f"{r['source']}: {r['test']}"[:48] for r in rows]
        cap = 30.0

        def score(p: float | None) -> float:
            if p is None or math.isnan(p):
                return math.nan
            return min(cap, -math.log10(max(p, 1e-300)))

        fig, ax = plt.subplots(figsize=(9, max(3.0, 0.22 * len(rows) + 1.2)))
        y = list(range(len(rows)))
        colors = {"pass": "tab:green", "suspicious": "tab:orange", "FAIL": "tab:red"}
        ax.barh(
            y, [score(r["p"]) for r in rows], color=[colors[r["verdict"]] for r in rows], alpha=0.8, label="first run"
        )
        retest = [score(r["p_retest"]) for r in rows]
        if any(not math.isnan(v) for v in retest):
            ax.plot(retest, y, "k|", markersize=12, label="re-test")
        m = max(1, len(rows))
        ax.axvline(-math.log10(0.01 / m), color="tab:red", ls="--", lw=1, label="Holm: smallest p vs 0.01/m")
        ax.axvline(-math.log10(0.01), color="grey", ls=":", lw=1, label="0.01")
        ax.set_yticks(y, labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(f"-log10 p (capped at {cap:g})")
        ax.set_title(f"seedtree check: {self.scheme}, {self.streams} streams: {self.verdict}", fontsize=10)
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path
