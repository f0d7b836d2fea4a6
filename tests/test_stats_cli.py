"""`seedtree stream` and `seedtree check` through real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seedtree.stats import Interleaved, first_outputs

ROOT = Path(__file__).resolve().parents[1]
SEEDTREE = str(Path(sys.executable).parent / "seedtree")


def run(*args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([SEEDTREE, *args], capture_output=True, cwd=ROOT, env=env, timeout=300, **kw)


def test_stream_bytes_equal_the_in_process_source() -> None:
    proc = run("stream", "--scheme", "seedtree", "--streams", "7", "--root", "123", "--bytes", "5603")
    assert proc.returncode == 0, proc.stderr
    expected = np.concatenate(list(Interleaved("seedtree", 7, 123).chunks(7 * 701)))
    assert proc.stdout == expected.astype("<u8").tobytes()[:5603]


def test_stream_first_outputs() -> None:
    proc = run("stream", "--scheme", "numpy-spawn", "--first", "4", "--root", "9", "--bytes", str(32 * 5000))
    assert proc.returncode == 0, proc.stderr
    blocks = first_outputs("numpy-spawn", 9, 5000, 4)
    assert proc.stdout == np.concatenate([b.T.reshape(-1) for b in blocks]).astype("<u8").tobytes()


def test_endless_stream_exits_quietly_on_a_closed_pipe() -> None:
    script = (
        f"{SEEDTREE} stream --scheme naive-pcg64 --streams 64 --root 1 | head -c 100 | wc -c; "
        "echo status=${PIPESTATUS[0]}"
    )
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["100", "status=0"]
    assert proc.stderr == ""


def test_stream_prints_a_fresh_root_so_it_can_be_replayed() -> None:
    proc = run("stream", "--streams", "2", "--bytes", "64")
    root = int(proc.stderr.decode().split("root")[1])
    again = run("stream", "--streams", "2", "--bytes", "64", "--root", str(root))
    assert proc.stdout == again.stdout and len(proc.stdout) == 64


def test_check_passes_with_exit_0_and_writes_json_and_plot(tmp_path: Path) -> None:
    out, png = tmp_path / "r.json", tmp_path / "r.png"
    proc = run(
        "check",
        "--scheme",
        "seedtree",
        "--streams",
        "256",
        "--bytes",
        "4M",
        "--root",
        "77",
        "--json",
        str(out),
        "--plot",
        str(png),
        "--progress",
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verdict: PASS" in proc.stdout and "MiB/s" in proc.stderr  # summary table and progress bar
    report = json.loads(out.read_text())
    assert report["verdict"] == "PASS" and report["passed"] is True
    assert report["scheme"] == "seedtree" and report["streams"] == 256 and report["root"] == "77"
    assert report["bytes_read"] == {"own": 4 << 20}
    assert {r["verdict"] for r in report["rows"]} <= {"pass", "skipped"}
    assert all(isinstance(r["test"], str) and (r["p"] is None or 0 <= r["p"] <= 1) for r in report["rows"])
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_check_fails_with_exit_1_via_python_m(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "seedtree",
            "check",
            "--scheme",
            "duplicated",
            "--streams",
            "256",
            "--bytes",
            "2M",
            "--root",
            "5",
            "--json",
            str(out),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "verdict: FAIL" in proc.stdout and proc.stderr == ""
    report = json.loads(out.read_text())
    assert report["verdict"] == "FAIL" and report["retest_root"] is not None
    assert any(r["verdict"] == "FAIL" and r["test"] == "collisions" for r in report["rows"])


def test_check_errors_exit_2_with_the_fix() -> None:
    proc = run("check", "--bytes", "15", "--streams", "1024", text=True)
    assert proc.returncode == 2 and "give at least 16 bytes" in proc.stderr
    proc = run("check", "--scheme", "seed-plus-one", text=True)
    assert proc.returncode == 2 and "unknown scheme 'seed-plus-one'" in proc.stderr
    proc = run("check", "--bytes", "12Q", text=True)
    assert proc.returncode == 2 and "not a size" in proc.stderr


def test_missing_tools_give_a_clear_message_never_a_pass(tmp_path: Path) -> None:
    env = dict(os.environ, PATH=str(tmp_path), SEEDTREE_TESTU01=str(tmp_path / "absent"))
    for battery, message in (
        ("testu01", "battery 'testu01' is not available: the harness seedtree-testu01 was not found"),
        ("practrand", "battery 'practrand' is not available: PractRand's RNG_test is not on PATH"),
        ("dieharder", "battery 'dieharder' is not available: dieharder is not on PATH"),
    ):
        proc = run("check", "--battery", f"own,{battery}", "--streams", "64", "--bytes", "1M", env=env, text=True)
        assert proc.returncode == 2, proc.stdout
        assert message in proc.stderr and "PASS" not in proc.stdout
    proc = run("check", "--list", env=env, text=True)
    assert proc.returncode == 0 and "testu01              not installed" in proc.stdout


@pytest.mark.parametrize(
    "text,value",
    [("4096", 4096), ("16M", 16 << 20), ("1G", 1 << 30), ("4GiB", 4 << 30), ("512KB", 512 << 10), ("1.5K", 1536)],
)
def test_sizes(text: str, value: int) -> None:
    from seedtree.stats.commands import parse_size

    assert parse_size(text) == value


def _doc_commands() -> list[str]:
    """The lines of the ```bash blocks of docs/statistics.md's section after its marker."""
    text = (ROOT / "docs" / "statistics.md").read_text()
    section = text.split("<!-- section: independence -->", 1)[1].split("\n## ", 2)[1]
    blocks = section.split("```bash\n")[1:]
    return [line for block in blocks for line in block.split("```")[0].splitlines() if line.strip()]


@pytest.mark.parametrize("line", _doc_commands())
def test_doc_shell_examples(line: str, tmp_path: Path) -> None:
    if "(minutes)" in line or "RNG_test" in line:
        pytest.skip("long or needs PractRand: the same options are tested above with small sizes")
    command, _, comment = line.partition("#")
    expected = int(comment.split("exit status")[1].split()[0]) if "exit status" in comment else 0
    env = dict(os.environ, PATH=str(Path(SEEDTREE).parent) + os.pathsep + os.environ["PATH"])
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == expected, proc.stdout + proc.stderr
    if "--json" in command:
        assert json.loads((tmp_path / "report.json").read_text())["verdict"] == ("FAIL" if expected else "PASS")
