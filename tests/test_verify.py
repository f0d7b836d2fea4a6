"""`seedtree verify` and the output comparison it relies on."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seedtree.cli.compare import compare, first_difference, tree_digest
from seedtree.cli.verify import make_workspace

SEEDED = """
import os, sys, numpy as np, seedtree as st
root = st.root_from_env()
os.makedirs("out", exist_ok=True)
rng = (root / "train").numpy()
np.save("out/weights.npy", rng.normal(size=(4, 5)))
np.savez("out/extra.npz", a=rng.random(3), b=np.arange(4))
with open("out/log.txt", "w") as fh:
    fh.write(f"loss {rng.random():.6f}\\n")
if sys.argv[1:] == ["--torch"]:
    import torch
    torch.save({"w": torch.randn(3, 3, generator=(root / "model").torch())}, "model.pt")
print("done", open("input.txt").read().strip())   # reads a project file through the mirror
"""

URANDOM = """
import os, numpy as np
os.makedirs("out", exist_ok=True)
w = np.zeros((4, 5))
w[2, 3] = int.from_bytes(os.urandom(6), "little")   # one element the seed does not control
np.save("out/weights.npy", w)
"""

CLOCK = """
import os, time
os.makedirs("out", exist_ok=True)
with open("out/log.txt", "w") as fh:
    fh.write("header\\n")
    fh.write(f"finished at {time.time_ns()}\\n")
"""

SEEDLESS = """
import numpy as np
np.save("result.npy", np.arange(5.0) * 2)
"""


def seedtree(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHASHSEED", "SEEDTREE_ENTROPY")}
    return subprocess.run(
        [sys.executable, "-m", "seedtree", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name, code in (("seeded.py", SEEDED), ("urandom.py", URANDOM), ("clock.py", CLOCK), ("seedless.py", SEEDLESS)):
        (tmp_path / name).write_text(code)
    (tmp_path / "input.txt").write_text("from the project\n")
    return tmp_path


# -- the command -------------------------------------------------------------------------


@pytest.mark.slow
def test_verify_passes_a_deterministic_script(project: Path) -> None:
    # The line in docs/cli.md: several outputs, a folder among them, --strict.
    args = [
        "verify",
        "-n",
        "2",
        "--seed",
        "42",
        "--strict",
        "-o",
        "out/",
        "-o",
        "model.pt",
        "--",
        sys.executable,
        "seeded.py",
    ]
    if importlib.util.find_spec("torch") is None:
        args = args[:7] + args[9:]
    else:
        args.append("--torch")
    proc = seedtree(*args, cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("REPRODUCIBLE: 2 tries with root 42 gave identical outputs")
    assert "out  sha256 " in proc.stdout
    assert "WARNING" not in proc.stdout  # a different root did change the outputs
    assert not (project / "out").exists() and not (project / "model.pt").exists()  # tries wrote their own copies


def test_verify_fails_a_script_reading_os_urandom_naming_the_element(project: Path) -> None:
    proc = seedtree("verify", "--seed", "1", "-o", "out", "--", sys.executable, "urandom.py", cwd=project)
    assert proc.returncode == 1
    assert proc.stdout.startswith("NOT REPRODUCIBLE")
    assert "out/weights.npy (try 1 vs try 2): element [2, 3] differs:" in proc.stdout
    assert "(1 of 20 elements differ)" in proc.stdout


def test_verify_fails_a_script_reading_the_clock_naming_the_line(project: Path) -> None:
    proc = seedtree("verify", "--seed", "1", "-o", "out/log.txt", "--", sys.executable, "clock.py", cwd=project)
    assert proc.returncode == 1
    assert "out/log.txt (try 1 vs try 2): line 2 differs: 'finished at " in proc.stdout


def test_verify_warns_when_the_seed_does_not_reach_the_code(project: Path) -> None:
    args = ["-o", "result.npy", "--", sys.executable, "seedless.py"]
    proc = seedtree("verify", "--seed", "3", *args, cwd=project)
    assert proc.returncode == 0
    assert "WARNING: a different root gave identical outputs" in proc.stdout
    strict = seedtree("verify", "--strict", "--seed", "3", *args, cwd=project)
    # Under --strict that is the verdict, not a REPRODUCIBLE line with a failing status.
    assert strict.returncode == 1 and strict.stdout.startswith("SEED NOT USED:"), strict.stdout
    assert "REPRODUCIBLE" not in strict.stdout and "the seed is not reaching the code" in strict.stdout


def test_verify_compares_stdout_without_outputs_and_reports_failed_runs(project: Path) -> None:
    ok = seedtree(
        "verify",
        "-n",
        "3",
        "--no-root-check",
        "--",
        sys.executable,
        "-c",
        "import seedtree as st; print(st.root_from_env().numpy().random())",
        cwd=project,
    )
    assert ok.returncode == 0 and "<stdout>  sha256" in ok.stdout and "3 tries" in ok.stdout
    bad = seedtree("verify", "--", sys.executable, "-c", "import os; print(os.urandom(8).hex())", cwd=project)
    assert bad.returncode == 1 and "<stdout> (try 1 vs try 2): line 1 differs" in bad.stdout
    failing = seedtree(
        "verify", "--", sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(4)", cwd=project
    )
    assert failing.returncode == 1
    assert "try 1 exited with status 4" in failing.stdout and "boom" in failing.stdout
    missing = seedtree("verify", "-o", "never.npy", "--", sys.executable, "-c", "pass", cwd=project)
    assert missing.returncode == 1 and "try 1 did not write never.npy" in missing.stdout


# -- working copies ----------------------------------------------------------------------


def test_workspace_mirrors_the_project_but_not_the_outputs(tmp_path: Path) -> None:
    project, dest = tmp_path / "p", tmp_path / "w"
    (project / "data").mkdir(parents=True)
    (project / "data" / "big.bin").write_bytes(b"x" * 10)
    (project / "results" / "old").mkdir(parents=True)
    (project / "results" / "old" / "stale.npy").write_text("stale")
    (project / "results" / "notes.txt").write_text("keep")
    (project / "train.py").write_text("pass")
    dest.mkdir()
    make_workspace(project, ["results/old", "results/new/a.npy"], dest)
    assert (dest / "train.py").is_symlink() and (dest / "data").is_symlink()
    assert not (dest / "results").is_symlink() and (dest / "results").is_dir()
    assert (dest / "results" / "notes.txt").is_symlink()
    assert (dest / "results" / "old").is_dir() and not any((dest / "results" / "old").iterdir())  # fresh, empty
    assert (dest / "results" / "new").is_dir() and not (dest / "results" / "new" / "a.npy").exists()


# -- comparison --------------------------------------------------------------------------


def _pair(tmp_path: Path, name: str) -> tuple[Path, Path]:
    (tmp_path / "a").mkdir(exist_ok=True)
    (tmp_path / "b").mkdir(exist_ok=True)
    return tmp_path / "a" / name, tmp_path / "b" / name


def test_identical_outputs_compare_equal(tmp_path: Path) -> None:
    a, b = _pair(tmp_path, "x.npy")
    np.save(a, np.arange(6.0).reshape(2, 3))
    np.save(b, np.arange(6.0).reshape(2, 3))
    assert compare(a, b) == []
    assert compare(tmp_path / "a", tmp_path / "b") == []
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")


def test_arrays_are_compared_bit_for_bit(tmp_path: Path) -> None:
    x = np.array([[0.0, np.nan], [1.0, 2.0]])
    y = x.copy()
    assert first_difference(x, y) is None  # the same NaN bits are equal
    y[0, 0] = -0.0
    assert first_difference(x, y) == "element [0, 0] differs: 0.0 vs -0.0 (1 of 4 elements differ)"
    assert first_difference(x, x.astype(np.float32)) == "dtype float64 vs float32"
    assert first_difference(x, x.T.copy()[:1]) == "shape (2, 2) vs (1, 2)"
    assert first_difference(np.float64(1.5).reshape(()), np.float64(2.5).reshape(())).startswith(
        "element [] differs: 1.5 vs 2.5"
    )


def test_npz_names_the_array_and_element(tmp_path: Path) -> None:
    a, b = _pair(tmp_path, "x.npz")
    np.savez(a, w=np.zeros(5), v=np.ones(3))
    np.savez(b, w=np.zeros(5), v=np.array([1.0, 1.0, 7.0]))
    [diff] = compare(a, b, "x.npz")
    assert str(diff) == "x.npz: array 'v': element [2] differs: 1.0 vs 7.0 (1 of 3 elements differ)"
    np.savez(b, w=np.zeros(5))
    assert "['v'] only in the first run" in compare(a, b)[0].detail


def test_torch_files_name_the_tensor_and_element(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    a, b = _pair(tmp_path, "ckpt.pt")
    state = {"model": {"w": torch.zeros(3, 4), "b": torch.ones(2)}, "step": 10}
    torch.save(state, a)
    state["model"]["w"][1, 2] = 0.5
    torch.save(state, b)
    [diff] = compare(a, b)
    assert diff.detail == "tensor at ['model']['w'] element [1, 2] differs: 0.0 vs 0.5 (1 of 12 elements differ)"
    state["model"]["w"][1, 2] = 0.0
    state["step"] = 11
    torch.save(state, b)
    assert compare(a, b)[0].detail == "value at ['step']: 10 vs 11"


def test_text_binary_and_folder_differences(tmp_path: Path) -> None:
    a, b = _pair(tmp_path, "log.txt")
    a.write_text("one\ntwo\nthree\n")
    b.write_text("one\ntwo\nTHREE\n")
    assert compare(a, b)[0].detail == "line 3 differs: 'three' vs 'THREE'"
    a2, b2 = _pair(tmp_path, "blob.bin")
    a2.write_bytes(bytes(range(256)) * 10)
    b2.write_bytes(bytes(range(256)) * 5 + b"\xff" + bytes(range(256))[1:] + bytes(range(256)) * 4)
    assert compare(a2, b2)[0].detail == "byte 1280 differs (files of 2560 and 2560 bytes)"
    (tmp_path / "a" / "only-a.txt").write_text("x")
    diffs = [str(d) for d in compare(tmp_path / "a", tmp_path / "b", "out")]
    assert diffs == [
        "out/blob.bin: byte 1280 differs (files of 2560 and 2560 bytes)",
        "out/log.txt: line 3 differs: 'three' vs 'THREE'",
        "out/only-a.txt: only in the first run",
    ]
