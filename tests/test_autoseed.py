"""`seedtree run` / `verify` seed an unmodified Python program before its first line, and
give each Python process it starts its own stream or leave it alone: real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _cli import run_cli

import seedtree as st
from seedtree.runtime import autoseed

# Never imports seedtree: all three global RNGs, as a training script uses them.
UNMODIFIED = """
import random
import numpy as np
import torch
print(random.random(), np.random.rand(), torch.rand(1).item(), torch.randint(0, 2**31, (1,)).item())
"""

# Every kind of Python child: multiprocessing by each start method, os.fork, subprocess.
CHILDREN = r"""
import json, multiprocessing as mp, os, subprocess, sys
import numpy as np

def draw(q):
    q.put(float(np.random.rand()))

if __name__ == "__main__":
    out = {"main": float(np.random.rand())}
    for method in ("fork", "spawn", "forkserver"):  # identities 1, 2, 3 of the main process
        ctx = mp.get_context(method)
        q = ctx.Queue()
        p = ctx.Process(target=draw, args=(q,))
        p.start()
        out[method] = q.get()
        p.join()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, repr(float(np.random.rand())).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    out["os.fork"] = float(os.read(r, 100))
    code = "import numpy as np, os; print(np.random.rand(), os.environ.get('SEEDTREE_AUTO_SEED'))"
    value, mark = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split()
    out["subprocess"], out["subprocess mark"] = float(value), mark
    print(json.dumps(out))
"""


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, env=env, timeout=300)


def test_verify_finds_an_unmodified_script_reproducible(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(UNMODIFIED)
    proc = cli("verify", "--strict", "--", sys.executable, "train.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("REPRODUCIBLE: 2 tries"), proc.stdout
    assert "WARNING" not in proc.stdout and "seedtree" not in proc.stderr.replace("seedtree verify:", "")


def test_without_auto_seed_the_same_script_is_not_reproducible(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(UNMODIFIED)
    proc = cli("verify", "--no-auto-seed", "--", sys.executable, "train.py", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout.startswith("NOT REPRODUCIBLE"), proc.stdout


def test_the_command_gets_exactly_what_seed_everything_gives(tmp_path: Path, clean_seedtree: None) -> None:
    script = UNMODIFIED + "import seedtree as st\nprint(st.rng().random(), st.current())\n"
    (tmp_path / "train.py").write_text(script)
    proc = cli("run", "--seed", "1234", "--", sys.executable, "train.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    import random

    import torch

    st.seed_everything(1234)
    expected = f"{random.random()} {np.random.rand()} {torch.rand(1).item()} {torch.randint(0, 2**31, (1,)).item()}"
    expected += f"\n{st.rng().random()} {st.SeedTree(1234)}\n"
    assert proc.stdout == expected


def test_the_manifest_records_the_streams_given(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(UNMODIFIED)
    proc = cli("run", "--seed", "9", "--record", "m.json", "--", sys.executable, "train.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    manifest = st.Manifest.load(tmp_path / "m.json")
    assert manifest.streams["auto_seed"] == st.SeedTree(9)
    assert manifest.fields["run"]["auto_seed"] is True


@pytest.mark.slow
def test_each_child_process_gets_its_own_documented_stream_or_is_left_alone(
    tmp_path: Path, clean_seedtree: None
) -> None:
    (tmp_path / "kids.py").write_text(CHILDREN)
    runs = [cli("run", "--seed", "5", "--", sys.executable, "kids.py", cwd=tmp_path) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    first, second = (json.loads(r.stdout) for r in runs)

    def drawn(node: st.SeedTree) -> float:
        st.seed_everything(node)
        return float(np.random.rand())

    root = st.SeedTree(5)
    assert first["main"] == drawn(root)
    # multiprocessing children: parent / "process" / identity, whatever the start method
    assert first["fork"] == drawn(root / "process" / 1)
    assert first["spawn"] == drawn(root / "process" / 2)
    assert first["forkserver"] == drawn(root / "process" / 3)
    # os.fork: root / "fork" / n, n counting the main process's forks (the fork start method took 0)
    assert first["os.fork"] == drawn(root / "fork" / 1)
    # another Python program: left alone (not the main's stream, not fixed), and so is what it starts
    assert first["subprocess mark"] == "off"
    seeded = {k: v for k, v in first.items() if not k.startswith("subprocess")}
    assert first["subprocess"] not in seeded.values()
    assert first["subprocess"] != second["subprocess"]
    assert seeded == {k: v for k, v in second.items() if not k.startswith("subprocess")}
    assert len(set(seeded.values())) == len(seeded)  # no stream given twice


def test_a_sitecustomize_already_on_the_path_still_runs(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "sitecustomize.py").write_text("import builtins\nbuiltins.MY_SITE = 'ran'\n")
    (tmp_path / "show.py").write_text("import numpy as np\nprint(MY_SITE, np.random.rand())\n")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(mine), os.environ.get("PYTHONPATH")]))}
    runs = [cli("run", "--seed", "3", "--", sys.executable, "show.py", cwd=tmp_path, env=env) for _ in range(2)]
    assert runs[0].returncode == 0, runs[0].stderr
    assert runs[0].stdout == runs[1].stdout and runs[0].stdout.startswith("ran ")


def test_a_python_that_cannot_import_seedtree_says_so(tmp_path: Path) -> None:
    import venv

    venv.create(tmp_path / "bare", with_pip=False)  # an interpreter with neither seedtree nor numpy
    bare = tmp_path / "bare" / "bin" / "python"
    proc = cli("run", "--seed", "3", "--", str(bare), "-c", "print('ran')", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == "ran\n"
    assert "cannot import seedtree" in proc.stderr and "--no-auto-seed" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_strict_verify_names_a_seed_that_never_reaches_the_code(tmp_path: Path) -> None:
    code = "import random; random.seed(0); print(random.random())"
    proc = cli("verify", "--strict", "--", sys.executable, "-c", code, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout.startswith("SEED NOT USED:"), proc.stdout
    assert "REPRODUCIBLE" not in proc.stdout
    loose = cli("verify", "--", sys.executable, "-c", code, cwd=tmp_path)
    assert loose.returncode == 0 and loose.stdout.startswith("REPRODUCIBLE")
    assert "WARNING: a different root gave identical outputs" in loose.stdout


def test_the_site_folder_holds_only_sitecustomize() -> None:
    # Everything in it becomes importable by the command: nothing else may be there.
    names = {p.name for p in autoseed.SITE_DIR.iterdir() if p.name != "__pycache__"}
    assert names == {"sitecustomize.py"}
    text = (autoseed.SITE_DIR / "sitecustomize.py").read_text()
    for value in (autoseed.ENV_AUTO_SEED, autoseed.MARK_ROOT, autoseed.MARK_PARENT, autoseed.MARK_OFF):
        assert f'"{value}"' in text  # spelled the same on both sides
