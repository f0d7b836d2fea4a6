"""`seedtree run` and `verify`, ended by a signal (SIGKILL included), leave no process and no
folder behind: real processes, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from seedtree.runtime.seeding import ENV_ENTROPY

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")

# The command: says its pid, then waits to be ended.
COMMAND = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(600)"
PATIENCE = 120  # seconds to wait for an event that must happen; never a measure of speed


def _wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {PATIENCE} s: {what}")
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _launch(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], int, Path]:
    """Start `seedtree <args> -- python -c COMMAND`, with its own temporary folder; return
    the launcher, the command's pid once it runs, and that temporary folder."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    pidfile = tmp_path / "pid"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHASHSEED", ENV_ENTROPY)}
    env["TMPDIR"] = str(tmp)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "seedtree", *args, "--", sys.executable, "-c", COMMAND, str(pidfile)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), "the command to start")
    return launcher, int(pidfile.read_text()), tmp


def _check_nothing_left(command: int, tmp: Path) -> None:
    _wait_for(lambda: _gone(command), f"the command (pid {command}) to end")
    _wait_for(lambda: not any(tmp.iterdir()), f"the launcher's folders in {tmp} to be removed")


CASES = [
    ("verify", signal.SIGTERM),
    ("verify", signal.SIGINT),
    ("verify", signal.SIGHUP),
    ("verify", signal.SIGKILL),
    ("run", signal.SIGTERM),
    ("run", signal.SIGKILL),
]


@pytest.mark.slow
@pytest.mark.parametrize(("command", "sig"), CASES, ids=[f"{c}-{s.name}" for c, s in CASES])
def test_a_signal_leaves_no_process_and_no_folder(tmp_path: Path, command: str, sig: signal.Signals) -> None:
    args = [command, "--seed", "1"] + (["--record", "m.json"] if command == "run" else [])
    launcher, pid, tmp = _launch(tmp_path, *args)
    try:
        assert any(tmp.iterdir())  # it made its folder
        launcher.send_signal(sig)
        _, err = launcher.communicate(timeout=PATIENCE)
        # It ends as the command did: by the same signal (SIGKILL: it was killed itself).
        assert launcher.returncode == -sig, err
        _check_nothing_left(pid, tmp)
        assert b"Traceback" not in err
    finally:  # a failure must not leave the command behind either
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)
