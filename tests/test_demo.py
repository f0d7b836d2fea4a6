"""`seedtree demo` (what `make demo` runs), end to end in a real subprocess."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import seedtree as st


def test_demo_shows_layout_invariance_and_writes_a_manifest_and_a_plot(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHASHSEED", "SEEDTREE_ENTROPY")}
    proc = subprocess.run(
        [sys.executable, "-m", "seedtree", "demo", "--out", "demo-out", "--seed", "777"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "DIFFERENT" not in out and "all checks held" in out
    assert "1000 draws identical" in out and "SeedSequence(777).spawn(4): identical" in out
    assert "capture(), draw, restore(), draw again: identical" in out

    layouts = dict(re.findall(r"^   ((?:joblib|DataLoader)[^\n]*?)\s+([0-9a-f]{16})  identical", out, re.M))
    expected = []
    if importlib.util.find_spec("joblib"):
        expected += [
            "joblib sequential n_jobs=1",
            "joblib threading  n_jobs=1",
            "joblib threading  n_jobs=2",
            "joblib loky       n_jobs=1",
            "joblib loky       n_jobs=2",
        ]
    if importlib.util.find_spec("torch"):
        expected += ["DataLoader num_workers=0", "DataLoader num_workers=2"]
    for name in expected:
        assert name in layouts, out
    for family in ("joblib", "DataLoader"):  # one digest per workload, whatever the layout
        assert len({d for n, d in layouts.items() if n.startswith(family)}) <= 1

    manifest = st.Manifest.load(tmp_path / "demo-out" / "manifest.json")
    assert manifest.root == st.SeedTree(777)
    assert manifest.streams["demo/tasks"] == st.SeedTree(777) / "tasks"
    recorded = manifest.fields["demo"]["layouts"]
    assert {" ".join(k.split()) for k in recorded} == {" ".join(k.split()) for k in expected}
    assert manifest.fields["demo"]["failures"] == []
    json.dumps(manifest.to_dict())
    if importlib.util.find_spec("torch"):
        assert "shuffled epoch from 0, 2, 4 workers and resumed mid-epoch: identical (plotted)" in out
    png = (tmp_path / "demo-out" / "streams.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_the_picture_shows_layout_invariance_with_labelled_axes(tmp_path: Path) -> None:
    import pytest

    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    from seedtree.cli import demo

    tree = st.SeedTree(5)
    layouts = {label: demo.epoch_values(tree, w, r) for label, w, r in demo.LAYOUTS_PLOTTED}
    assert [label for label, _, _ in demo.LAYOUTS_PLOTTED] == [
        "0 workers",
        "2 workers",
        "4 workers",
        "2 workers, resumed",
    ]
    assert all(v == layouts["0 workers"] for v in layouts.values()) and len(layouts["0 workers"]) == demo.SAMPLES
    panels = demo._plot(tree, tmp_path / "p.png", layouts)
    assert panels[0][0] == "the same numbers whatever the layout"
    assert all(title and x and y for title, x, y in panels), panels


def test_a_minimal_install_says_which_sections_were_skipped(tmp_path: Path) -> None:
    # joblib, torch, scipy and matplotlib made unimportable, as in `pip install seedtree`.
    script = (
        "import sys\n"
        "for name in ('joblib', 'torch', 'scipy', 'matplotlib'):\n"
        "    sys.modules[name] = None\n"
        "import importlib.util\n"
        "find = importlib.util.find_spec\n"
        "blocked = ('joblib', 'torch', 'scipy', 'matplotlib')\n"
        "importlib.util.find_spec = lambda n, *a: None if n.split('.')[0] in blocked else find(n, *a)\n"
        "from seedtree.cli import demo\n"
        "sys.exit(demo.main(out='out', seed=3))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHASHSEED", "SEEDTREE_ENTROPY")}
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert "all checks held" not in proc.stdout
    assert last.startswith("the checks that ran held; skipped: 4 (joblib, torch not installed), 5 (scipy"), last
    assert "the plot (matplotlib not installed)" in last
