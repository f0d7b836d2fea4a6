"""The wheel holds everything the package needs at run time: built from pyproject.toml,
installed into a fresh virtual environment, and run from there."""

from __future__ import annotations

import json
import site
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_wheel_installs_and_runs_in_a_fresh_venv(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    wheel = next(tmp_path.glob("seedtree-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), "the LICENSE is missing from the wheel"
    for needed in (
        "seedtree/runtime/autoseed_site/sitecustomize.py",
        "seedtree/py.typed",
        "seedtree/stats/testu01_harness.c",
        "seedtree/core/tree.py",
        "seedtree/cli/commands.py",
        "seedtree/integrations/torch.py",
    ):
        assert needed in names, f"{needed} is missing from the wheel"

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # The test environment's packages (numpy, torch, joblib) without its editable seedtree:
    # a path in a .pth file is put on sys.path, but the .pth files inside it are not run.
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "test-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )

    where = subprocess.run(
        [str(python), "-c", "import seedtree, seedtree.torch, seedtree.joblib; print(seedtree.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(purelib), where.stdout  # the wheel's copy, not the checkout
    program = env_dir / "bin" / "seedtree"
    version = subprocess.run([str(program), "--version"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("seedtree "), version.stderr
    doctor = subprocess.run(
        [str(program), "doctor", "--json"], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert json.loads(doctor.stdout)["schema"] == "seedtree.doctor", doctor.stderr
    # The installed launcher seeds an unmodified program (its sitecustomize shipped).
    draw = [str(program), "run", "--seed", "7", "--", str(python), "-c", "import random; print(random.random())"]
    runs = [subprocess.run(draw, capture_output=True, text=True, cwd=tmp_path, timeout=120) for _ in range(2)]
    assert runs[0].returncode == 0 and runs[0].stdout == runs[1].stdout, runs[0].stderr


def test_sdist_holds_the_license(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    sdist = next(tmp_path.glob("seedtree-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
    top = names[0].split("/")[0]
    assert f"{top}/LICENSE" in names, "the LICENSE is missing from the sdist"
