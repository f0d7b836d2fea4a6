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
    png = (tmp_path / "demo-out" / "streams.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
