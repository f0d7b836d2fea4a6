"""``seedtree demo``: the library end to end in under a minute.

1. builds a tree and draws from a path;
2. shows that an all-int path *is* NumPy's ``SeedSequence(entropy, spawn_key=path)``;
3. captures every RNG state, draws, restores, draws again: the same numbers;
4. runs one workload under several parallel layouts (joblib sequential/threading/loky with
   1 or 2 jobs; a torch DataLoader with 0 or 2 workers) and shows bit-identical digests;
5. runs a quick independence check of sibling streams (``seedtree.stats.check``);
6. writes ``manifest.json`` and ``streams.png`` into the output folder.

The exit status is 0 only when every identity in 2-4 held (and 5 passed, when it ran).
"""

from __future__ import annotations

import hashlib
import importlib.util
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..core.tree import SeedTree
from ..runtime import ambient
from ..runtime.capture import capture, restore
from ..runtime.controllers import REGISTRY
from ..runtime.manifest import manifest, record
from ..runtime.seeding import seed_everything

__all__ = ["NoisyDataset", "SAMPLES", "TASKS", "digest", "main", "simulate"]

TASKS = 24
SAMPLES = 32


def _say(text: str = "") -> None:
    print(text, flush=True)


def _mark(ok: bool) -> str:
    return "identical" if ok else "DIFFERENT"


def digest(chunks: list[Any]) -> str:
    """A short SHA-256 over arrays/tensors (their dtype, shape and bytes), in order."""
    h = hashlib.sha256()
    for chunk in chunks:
        arr = np.asarray(chunk.numpy() if hasattr(chunk, "numpy") else chunk)
        h.update(f"{arr.dtype}{arr.shape}".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:16]


def simulate(task: int) -> np.ndarray:
    """One task of the layout demo: draws only from its own stream (``seedtree.rng()``,
    bound to ``tree / task`` by ``seedtree.joblib``), so where it runs does not matter."""
    rng = ambient.rng()
    walk = np.cumsum(rng.normal(size=64))
    return np.array([task, walk[-1], walk.max(), rng.integers(1 << 62)], dtype=np.float64)


class NoisyDataset:
    """A map-style dataset whose items draw from ``seedtree.rng()`` and torch's global
    generator (both bound to ``tree / epoch / index`` by ``seedtree.torch.loader``)."""

    def __len__(self) -> int:
        return SAMPLES

    def __getitem__(self, index: int) -> Any:
        import torch

        noise = torch.from_numpy(ambient.rng().normal(size=3).astype(np.float32))
        return torch.rand(3) + noise, index


def _layouts(tree: SeedTree) -> list[tuple[str, Callable[[], str]]]:
    layouts: list[tuple[str, Callable[[], str]]] = []
    if importlib.util.find_spec("joblib") is not None:

        def joblib_run(backend: str, n_jobs: int) -> Callable[[], str]:
            def go() -> str:
                from ..integrations.joblib import parallel_map

                return digest(parallel_map(simulate, range(TASKS), tree / "tasks", n_jobs=n_jobs, backend=backend))

            return go

        for backend, n_jobs in (("sequential", 1), ("threading", 1), ("threading", 2), ("loky", 1), ("loky", 2)):
            layouts.append((f"joblib {backend:10} n_jobs={n_jobs}", joblib_run(backend, n_jobs)))
    if importlib.util.find_spec("torch") is not None:

        def loader_run(num_workers: int) -> Callable[[], str]:
            def go() -> str:
                from ..integrations.torch import loader

                batches = loader(NoisyDataset(), tree / "data", batch_size=8, num_workers=num_workers)
                out = []
                for _epoch in range(2):
                    for values, index in batches:
                        out += [values, index]
                return digest(out)

            return go

        for workers in (0, 2):
            layouts.append((f"DataLoader num_workers={workers}", loader_run(workers)))
    return layouts


def _plot(tree: SeedTree, path: Path) -> None:
    from ..core.optional import require

    matplotlib = require("matplotlib", "seedtree demo's plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for k in range(4):
        left.hist((tree / "plot" / k).numpy().random(20_000), bins=40, histtype="step", label=f"root/plot/{k}")
    left.set_title("four sibling streams: each uniform")
    left.set_xlabel("draw")
    left.legend(fontsize=8)
    a, b = (tree / "plot" / 0).numpy().random(3000), (tree / "plot" / 1).numpy().random(3000)
    right.scatter(a, b, s=2, alpha=0.5)
    right.set_title(f"stream 0 vs stream 1: no structure (r = {np.corrcoef(a, b)[0, 1]:+.3f})")
    right.set_xlabel("root/plot/0")
    right.set_ylabel("root/plot/1")
    fig.suptitle(f"seedtree demo, root {tree.entropy}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _independence(tree: SeedTree) -> dict[str, Any] | None:
    try:
        from ..stats import check

        report = check("seedtree", streams=1024, root=tree.entropy)
    except ImportError as exc:  # the battery needs scipy
        _say(f"   skipped: {exc}")
        return None
    mib = sum(report.bytes_read.values()) / (1 << 20)
    counts: dict[str, int] = {}
    for row in report.rows:
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    _say(
        f"   {len(report.rows)} tests on {report.streams} sibling streams read word by word interleaved "
        f"({mib:.0f} MiB): " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
    )
    tested = [r for r in report.rows if r.get("p") is not None]
    for row in sorted(tested, key=lambda r: r["p"])[:3]:
        _say(f"   {row['test']:18} p = {row['p']:.3g}  {row['verdict']}")
    _say(f"   verdict: {report.verdict} ({report.rule})" if len(report.rule) < 80 else f"   verdict: {report.verdict}")
    return report.to_dict()


def main(out: str = "seedtree-demo", seed: int = 20240607) -> int:
    """Run the demo, writing into ``out``; returns the exit status (0: every check held)."""
    started = time.perf_counter()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    tree = SeedTree(seed)
    failures: list[str] = []
    _say(f"seedtree demo: root entropy {seed}, writing to {folder}/\n")

    _say("1. A stream is named by its path")
    node = tree / "data" / "augment" / 7
    _say(f"   (root / 'data' / 'augment' / 7).numpy().random(3) = {np.round(node.numpy().random(3), 6).tolist()}")
    _say("   the same path gives the same stream in any process, thread or worker\n")

    _say("2. An all-int path is NumPy's own SeedSequence")
    ours = (tree / 3 / 1).numpy().random(1000)
    numpy = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3, 1))).random(1000)
    same = bool(np.array_equal(ours, numpy))
    _say(f"   (root / 3 / 1).numpy() vs default_rng(SeedSequence({seed}, spawn_key=(3, 1))): 1000 draws {_mark(same)}")
    kids = [k.numpy().random() for k in tree.spawn(4)]
    spawned = [np.random.default_rng(s).random() for s in np.random.SeedSequence(seed).spawn(4)]
    _say(f"   root.spawn(4) vs SeedSequence({seed}).spawn(4): {_mark(kids == spawned)}\n")
    if not (same and kids == spawned):
        failures.append("NumPy equivalence")

    _say("3. Capture and restore every RNG")
    seed_everything(tree)
    libraries = [c.name for c in REGISTRY.active()]
    state = capture()
    first = _draw_all()
    restore(state)
    again = _draw_all()
    _say(f"   seed_everything(root) seeded: {', '.join(libraries)}")
    _say(f"   capture(), draw, restore(), draw again: {_mark(first == again)}\n")
    if first != again:
        failures.append("capture/restore")

    _say(f"4. One workload, many layouts ({TASKS} joblib tasks; a {SAMPLES}-sample DataLoader over 2 epochs)")
    digests: dict[str, str] = {}
    reference: dict[str, str] = {}
    for name, run in _layouts(tree):
        t = time.perf_counter()
        value = run()
        digests[name] = value
        family = name.split()[0]
        ref = reference.setdefault(family, value)
        _say(f"   {name:28} {value}  {_mark(value == ref):9}  ({time.perf_counter() - t:.1f} s)")
        if value != ref:
            failures.append(f"layout {name}")
    if not digests:
        _say("   (install joblib and torch to see this: pip install 'seedtree[joblib,torch]')")
    _say("")

    _say("5. Independence of sibling streams (quick check)")
    independence = _independence(tree)
    if independence is not None and not independence.get("passed", True):
        failures.append("independence check")
    _say("")

    record("demo/tasks", tree / "tasks")
    record("demo/data", tree / "data")
    record("demo/plot", tree / "plot")
    manifest_path = manifest(tree, demo={"layouts": digests, "independence": independence, "failures": failures}).save(
        folder / "manifest.json"
    )
    plot_path = folder / "streams.png"
    try:
        _plot(tree, plot_path)
        plotted = f" and {plot_path}"
    except ImportError as exc:
        plotted = f"; no plot: {exc}"
    _say(f"6. Wrote {manifest_path} (replay: seedtree run --manifest {manifest_path} -- ...){plotted}")
    _say(
        f"\n{'all checks held' if not failures else 'FAILED: ' + ', '.join(failures)} "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return 0 if not failures else 1


def _draw_all() -> list[float]:
    draws = [random.random(), float(np.random.random()), float(ambient.rng().random())]
    if importlib.util.find_spec("torch") is not None:
        import torch

        draws.append(float(torch.rand(1).item()))
    return draws
