"""`seedtree run`, `show`, `diff`, help and errors, through real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
from _cli import run_cli

import seedtree as st
from seedtree.cli import commands as cli_main
from seedtree.cli.run import hash_seed

CHILD = r"""
import json, multiprocessing as mp, os, sys
import numpy as np
import seedtree as st

def worker(_):
    st.record("worker/stream", st.root_from_env() / "worker")

if __name__ == "__main__":
    root = st.seed_everything()                 # no argument: the root `seedtree run` handed over
    st.record("model/init", root / "model" / "init")
    with mp.get_context("spawn").Pool(1) as pool:  # a second Python process that records a stream
        pool.map(worker, [0])
    out = {
        "entropy": str(root.entropy),
        "numpy_global": float(np.random.random()),
        "ambient": st.rng().random(3).tolist(),
        "hashseed": os.environ.get("PYTHONHASHSEED"),
    }
    with open(sys.argv[1], "w") as fh:
        json.dump(out, fh)
"""


def seedtree(*args: str, cwd: Path, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the real command line (`python -m seedtree`) in a subprocess."""
    return run_cli(*args, cwd=cwd, env=env, timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.slow
def test_run_hands_the_root_over_and_records_the_streams(tmp_path: Path, clean_seedtree: None) -> None:
    (tmp_path / "child.py").write_text(CHILD)
    proc = seedtree(
        "run",
        "--seed",
        "12345",
        "--record",
        "m.json",
        "--field",
        "epochs=3",
        "--",
        sys.executable,
        "child.py",
        "out.json",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    child = json.loads((tmp_path / "out.json").read_text())

    # The child's draws are exactly what this process draws from the same root.
    root = st.seed_everything(12345)
    assert child["entropy"] == "12345"
    assert child["numpy_global"] == float(np.random.random())
    assert child["ambient"] == st.rng().random(3).tolist()
    assert child["hashseed"] == str(hash_seed(root))

    manifest = st.Manifest.load(tmp_path / "m.json")
    assert manifest.root == st.SeedTree(12345)
    assert manifest.streams["model/init"] == root / "model" / "init"
    assert manifest.streams["seed_everything"] == root
    assert manifest.streams["worker/stream"] == root / "worker"  # handed back by the spawned worker
    run = manifest.fields["run"]
    assert run["command"] == [sys.executable, "child.py", "out.json"]
    assert run["exit_status"] == 0 and run["signal"] is None
    assert run["PYTHONHASHSEED"] == child["hashseed"] and run["hash_seed_from"] == "tree"
    assert run["processes_reported"] == 2
    assert manifest.fields["epochs"] == 3
    assert manifest.environment["PYTHONHASHSEED"] == child["hashseed"]  # the child's own environment


@pytest.mark.slow
def test_pythonhashseed_reaches_the_child_and_is_stable(tmp_path: Path) -> None:
    show_hash = [sys.executable, "-c", "import os; print(hash('x'), os.environ['PYTHONHASHSEED'])"]
    first = seedtree("run", "--seed", "7", "--", *show_hash, cwd=tmp_path)
    second = seedtree("run", "--seed", "7", "--", *show_hash, cwd=tmp_path)
    other = seedtree("run", "--seed", "8", "--", *show_hash, cwd=tmp_path)
    assert first.returncode == second.returncode == other.returncode == 0
    assert first.stdout == second.stdout
    assert first.stdout.split()[1] == str(hash_seed(st.SeedTree(7)))
    assert other.stdout.split()[0] != first.stdout.split()[0]
    # A PYTHONHASHSEED the user set wins.
    mine = seedtree("run", "--seed", "7", "--", *show_hash, cwd=tmp_path, env={"PYTHONHASHSEED": "0"})
    direct = subprocess.run(show_hash, env={**os.environ, "PYTHONHASHSEED": "0"}, capture_output=True, text=True)
    assert mine.stdout == direct.stdout and mine.stdout.split()[1] == "0"


def test_a_fresh_root_is_reported_so_the_run_can_be_replayed(tmp_path: Path) -> None:
    proc = seedtree("run", "--", sys.executable, "-c", "import os; print(os.environ['SEEDTREE_ENTROPY'])", cwd=tmp_path)
    assert proc.returncode == 0
    assert f"root entropy {proc.stdout.strip()} (replay with --seed {proc.stdout.strip()})" in proc.stderr


def test_exit_status_passes_through(tmp_path: Path) -> None:
    proc = seedtree(
        "run", "--seed", "1", "--record", "m.json", "--", sys.executable, "-c", "raise SystemExit(3)", cwd=tmp_path
    )
    assert proc.returncode == 3
    assert st.Manifest.load(tmp_path / "m.json").fields["run"]["exit_status"] == 3


def _start_and_signal(tmp_path: Path, child: str, sig: int) -> subprocess.CompletedProcess:
    (tmp_path / "child.py").write_text(child)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "seedtree",
            "run",
            "--seed",
            "1",
            "--record",
            "m.json",
            "--",
            sys.executable,
            "child.py",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / "ready").exists():  # the child has installed its handlers
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(sig)  # to seedtree only, not to the child's process group
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_sigterm_is_forwarded_and_the_childs_status_passes_through(tmp_path: Path) -> None:
    child = (
        "import signal, sys, time, pathlib\n"
        "def bye(sig, frame):\n"
        "    pathlib.Path('got').write_text(signal.Signals(sig).name)\n"
        "    sys.exit(7)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "pathlib.Path('ready').touch()\n"
        "time.sleep(120)\n"
    )
    proc = _start_and_signal(tmp_path, child, signal.SIGTERM)
    assert (tmp_path / "got").read_text() == "SIGTERM"
    assert proc.returncode == 7, proc.stderr
    assert st.Manifest.load(tmp_path / "m.json").fields["run"]["exit_status"] == 7


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_child_killed_by_a_signal_takes_seedtree_down_with_it(tmp_path: Path, sig: int) -> None:
    child = "import pathlib, time\npathlib.Path('ready').touch()\ntime.sleep(120)\n"
    proc = _start_and_signal(tmp_path, child, sig)
    assert proc.returncode == -sig, proc.stderr
    run = st.Manifest.load(tmp_path / "m.json").fields["run"]
    assert run["signal"] == signal.Signals(sig).name and run["exit_status"] is None


def test_a_real_time_signal_is_recorded_by_number(tmp_path: Path) -> None:
    rt = signal.SIGRTMIN + 1
    proc = seedtree("run", "--seed", "1", "--record", "m.json", "--", "sh", "-c", f"kill -{rt} $$", cwd=tmp_path)
    assert proc.returncode in (-rt, 128 + rt), proc.stderr
    assert st.Manifest.load(tmp_path / "m.json").fields["run"]["signal"] == f"SIG{rt}"


def test_record_into_a_folder_is_refused_before_the_run(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    proc = seedtree("run", "--seed", "1", "--record", "out", "--", "sh", "-c", "touch ran", cwd=tmp_path)
    assert proc.returncode != 0 and "is a folder" in one_line_error(proc)
    assert not (tmp_path / "ran").exists()


def test_command_not_found_or_not_executable_is_one_line_like_a_shell(tmp_path: Path) -> None:
    proc = seedtree("run", "--seed", "1", "--", "no-such-command-seedtree", cwd=tmp_path)
    assert proc.returncode == 127
    assert one_line_error(proc) == "seedtree run: command not found: no-such-command-seedtree"
    (tmp_path / "script.sh").write_text("echo hi\n")
    proc = seedtree("run", "--seed", "1", "--", "./script.sh", cwd=tmp_path)
    assert proc.returncode == 126
    assert "not executable" in one_line_error(proc)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "--bogus", "--", "true"], "unrecognized arguments: --bogus"),
        (["run", "--seed", "-3", "--", "true"], "root must be non-negative, got -3"),
        (["run", "--seed", "abc", "--", "true"], "root must be an int (decimal or 0x hex), got 'abc'"),
        (["run", "--seed", "1"], "no command given"),
        (["run", "--record", "/nonexistent-seedtree/m.json", "--", "true"], "cannot write --record"),
        (["run", "--field", "run=1", "--", "true"], "--field run=... is reserved"),
        (["verify", "-n", "1", "--", "true"], "-n must be at least 2"),
        (["verify", "-o", "../x", "--", "true"], "must be a path inside the current folder"),
        (["nosuchcommand"], "invalid choice: 'nosuchcommand'"),
        (["show"], "the following arguments are required: MANIFEST"),
    ],
)
def test_usage_errors_are_one_clear_line(tmp_path: Path, args: list[str], expected: str) -> None:
    proc = seedtree(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert expected in one_line_error(proc)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"schema": "seedtree.manifest", "version": 1, "root": {"entr', "is not valid JSON"),
        ('{"hello": 1}', "is not a seedtree manifest"),
        ('{"schema": "seedtree.manifest", "version": 1, "root": {"entropy": "-5"}}', "-5"),
        (None, "cannot read manifest"),
    ],
)
def test_a_corrupt_or_missing_manifest_gives_one_clear_line(tmp_path: Path, content: str | None, expected: str) -> None:
    if content is not None:
        (tmp_path / "m.json").write_text(content)
    commands = [["show", "m.json"]]
    if expected == "is not valid JSON":  # every command that reads a manifest says it the same way
        commands += [["run", "--manifest", "m.json", "--", "true"], ["diff", "m.json", "m.json"]]
    for args in commands:
        proc = seedtree(*args, cwd=tmp_path)
        assert proc.returncode == 2
        line = one_line_error(proc)
        assert "m.json" in line and expected in line


@pytest.mark.slow
def test_show_diff_and_replay_from_a_manifest(tmp_path: Path) -> None:
    entropy = 2**100 + 17  # wider than any JSON number reader keeps
    printer = [sys.executable, "-c", "import os; print(os.environ['SEEDTREE_ENTROPY'])"]
    assert seedtree("run", "--seed", str(entropy), "--record", "a.json", "--", *printer, cwd=tmp_path).returncode == 0
    assert seedtree("run", "--seed", "5", "--record", "b.json", "--", *printer, cwd=tmp_path).returncode == 0

    shown = seedtree("show", "a.json", cwd=tmp_path)
    assert shown.returncode == 0
    assert f"root      {entropy}  ({hex(entropy)})" in shown.stdout
    assert f"seedtree run --seed {entropy}" in shown.stdout
    assert "exit_status" in shown.stdout and "PYTHONHASHSEED" in shown.stdout
    as_json = json.loads(seedtree("show", "--json", "a.json", cwd=tmp_path).stdout)
    assert as_json["root"]["entropy"] == str(entropy)

    replay = seedtree("run", "--manifest", "a.json", "--", *printer, cwd=tmp_path)
    assert replay.returncode == 0 and replay.stdout.strip() == str(entropy)

    same = seedtree("diff", "a.json", "a.json", cwd=tmp_path)
    assert same.returncode == 0 and "match" in same.stdout
    differ = seedtree("diff", "a.json", "b.json", cwd=tmp_path)
    assert differ.returncode == 1
    assert f"root: {entropy}  ->  5" in differ.stdout
    assert "fields.run.PYTHONHASHSEED" in differ.stdout
    # Timestamps always differ and are listed apart, not counted.
    significant = differ.stdout.split("expected to differ")[0]
    assert "fields.run.started" not in significant and "fields.run.started" in differ.stdout


def test_diff_folds_a_long_list_into_one_short_line(tmp_path: Path) -> None:
    losses = [round(1 / (k + 1), 6) for k in range(1000)]
    changed = losses[:500] + [0.5] + losses[501:]
    for name, value in (("a.json", losses), ("b.json", changed)):
        field = f"losses={json.dumps(value)}"
        run = seedtree(
            "run", "--seed", "5", "--field", field, "--record", name, "--", sys.executable, "-c", "", cwd=tmp_path
        )
        assert run.returncode == 0, run.stderr
    differ = seedtree("diff", "a.json", "b.json", cwd=tmp_path)
    assert differ.returncode == 1
    line = next(line for line in differ.stdout.splitlines() if "fields.losses" in line)
    assert line == "  fields.losses: list of 1000 -> list of 1000; first difference at [500]: 0.001996  ->  0.5"
    assert max(len(line) for line in differ.stdout.splitlines()) <= 200


def test_version_and_help_for_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main.main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"seedtree {st.__version__}"
    declared = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]["version"]
    assert st.__version__ == declared  # the package and its metadata state one version
    sub = next(a for a in cli_main.build_parser()._actions if a.dest == "command")
    for name in ("run", "verify", "doctor", "show", "diff", "demo"):
        assert name in sub.choices
    for name in sub.choices:
        with pytest.raises(SystemExit) as exit_info:
            cli_main.main([name, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: seedtree {name}" in capsys.readouterr().out


def _in_a_terminal(argv: list[str], cwd: Path, ready: Path | None = None, keys: bytes = b"") -> tuple[int, bytes]:
    """Run ``argv`` as the foreground job of a fresh pseudo-terminal; once ``ready`` exists,
    type ``keys``. Returns the exit status and what the terminal showed."""
    pty = pytest.importorskip("pty")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    pid, master = pty.fork()
    if pid == 0:  # the child: a new session whose controlling terminal is the pty
        try:
            os.chdir(cwd)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    output = b""
    try:
        if ready is not None:
            deadline = time.monotonic() + 60
            while not ready.exists():
                assert time.monotonic() < deadline
                time.sleep(0.02)
        os.write(master, keys)
        while True:  # drain the terminal so the processes never block on it
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(master)
    assert os.WIFEXITED(status), output
    return os.WEXITSTATUS(status), output


@pytest.mark.slow
def test_ctrl_c_in_a_terminal_reaches_the_command_once(tmp_path: Path) -> None:
    """The terminal sends Ctrl-C's SIGINT to the whole foreground group, the command
    included; seedtree must not forward a second one."""
    # Python's C-level handler writes one byte per delivered signal to the wakeup fd, so the
    # command counts deliveries, not just the (coalescing) Python-level handler calls.
    (tmp_path / "child.py").write_text(
        "import os, pathlib, signal, sys, time\n"
        "r, w = os.pipe()\n"
        "os.set_blocking(w, False)\n"
        "os.set_blocking(r, False)\n"
        "signal.signal(signal.SIGINT, lambda sig, frame: None)\n"
        "signal.set_wakeup_fd(w)\n"
        "pathlib.Path('ready').touch()\n"
        "data, deadline = b'', time.monotonic() + 60\n"
        "while len(data) == 0 and time.monotonic() < deadline:\n"
        "    time.sleep(0.01)\n"
        "    try:\n"
        "        data = os.read(r, 64)\n"
        "    except BlockingIOError:\n"
        "        pass\n"
        "time.sleep(1.0)  # room for a duplicate to arrive\n"
        "try:\n"
        "    data += os.read(r, 64)\n"
        "except BlockingIOError:\n"
        "    pass\n"
        "sys.exit(10 + data.count(bytes([signal.SIGINT])))\n"
    )
    argv = [sys.executable, "-m", "seedtree", "run", "--seed", "1", "--", sys.executable, "child.py"]
    status, output = _in_a_terminal(argv, tmp_path, ready=tmp_path / "ready", keys=b"\x03")  # Ctrl-C
    assert status == 11, output  # exactly one SIGINT reached the command

    # A duplicate is often merged by the kernel anyway, so check the decision itself too:
    # in a terminal's foreground a SIGINT is the terminal's; without a terminal it is forwarded.
    probe = [
        sys.executable,
        "-c",
        "import signal; from seedtree.cli.run import _terminal_delivered as t; "
        "raise SystemExit(t(signal.SIGINT) * 2 + t(signal.SIGTERM))",
    ]
    assert _in_a_terminal(probe, tmp_path)[0] == 2
    assert subprocess.run(probe, stdin=subprocess.DEVNULL, capture_output=True).returncode == 0
