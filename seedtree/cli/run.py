"""``seedtree run``: start a command with the root handed over through its environment.

The command is an argument vector, started with ``subprocess`` and no shell. Its environment
gets ``SEEDTREE_ENTROPY`` (which ``seedtree.root_from_env()`` and ``seed_everything()`` read) and,
unless the caller's environment already has one, a ``PYTHONHASHSEED`` derived from the root, so
str/bytes hashing and set order repeat from run to run. SIGTERM, SIGINT and SIGHUP sent to the
runner are passed on to the command (SIGINT and SIGHUP only when they did not come from the
terminal, which already sent them to the command); its exit status is returned as is
(negative: killed by that signal, like ``subprocess``). The ``seedtree`` program then dies
by the same signal (``die_by_signal``), or, for a signal a process cannot raise on itself
(SIGKILL, the OOM killer's; SIGSTOP), exits ``128 + n`` as a shell does.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core.codec import CodecError, node_from_json
from ..core.tree import SeedTree
from ..runtime.datasets import DatasetDigest, DatasetError, hash_dataset
from ..runtime.manifest import Manifest, environment
from ..runtime.seeding import ENV_ENTROPY
from .handover import ENV_RECORD_DIR, ENV_RECORD_MAIN
from .handover import SCHEMA as HANDOVER_SCHEMA

__all__ = [
    "CommandNotFound",
    "DataChanged",
    "RunResult",
    "check_datasets",
    "child_environment",
    "die_by_signal",
    "forwarding",
    "hash_seed",
    "parse_datasets",
    "run",
    "start",
]

HASHSEED = "PYTHONHASHSEED"
FORWARDED = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name))
NOT_RERAISED = frozenset(
    getattr(signal, name)
    for name in ("SIGKILL", "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGCONT", "SIGCHLD", "SIGURG", "SIGWINCH")
    if hasattr(signal, name)
)
"""Signals ``die_by_signal`` does not raise on this process: no handler can be set for
SIGKILL and SIGSTOP, and the others would stop it or do nothing rather than end it."""


class CommandNotFound(OSError):
    """The command could not be started; ``status`` is what a shell would exit with
    (127: not found, 126: found but not executable)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def hash_seed(root: SeedTree) -> int:
    """The ``PYTHONHASHSEED`` value (in [0, 2**32)) handed to commands run from ``root``."""
    return (root / "PYTHONHASHSEED").seed_int(32)


def child_environment(root: SeedTree, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) plus the handover variables for
    ``root``. A ``PYTHONHASHSEED`` already in ``base`` is kept: the user chose it."""
    env = dict(os.environ if base is None else base)
    env[ENV_ENTROPY] = str(root.entropy)
    env.setdefault(HASHSEED, str(hash_seed(root)))
    env.pop(ENV_RECORD_DIR, None)  # a nested run must not write into the outer run's folder
    env.pop(ENV_RECORD_MAIN, None)
    return env


def start(argv: Sequence[str], **popen: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen(argv, **popen)``, with a shell's answer when it cannot start."""
    if not argv:
        raise ValueError("no command given: put it after `--`, e.g. seedtree run -- python train.py")
    try:
        return subprocess.Popen(list(argv), **popen)
    except FileNotFoundError:
        raise CommandNotFound(f"command not found: {argv[0]}", 127) from None
    except PermissionError:
        raise CommandNotFound(f"permission denied: {argv[0]} is not executable", 126) from None
    except OSError as exc:  # e.g. ENOEXEC: a script without a #! line
        raise CommandNotFound(f"cannot run {argv[0]}: {exc.strerror or exc}", 126) from None


def _terminal_delivered(sig: int) -> bool:
    """Whether a SIGINT (Ctrl-C) or SIGHUP probably came from the terminal, which sends it to
    the whole foreground process group, the command included: forwarding it would deliver it
    twice. (So a ``kill -INT`` aimed at seedtree alone while it runs in the foreground of a
    terminal is not passed on; SIGTERM always is.)"""
    if sig == signal.SIGTERM:
        return False
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp():
                return True
        except OSError:
            continue
    return False


class forwarding:
    """``with forwarding() as fwd: fwd.attach(proc)``: SIGTERM/SIGINT/SIGHUP received in the
    block are passed on to the attached process (one received before it is attached is
    passed on at ``attach``). Handlers are only installed from the main thread, where
    Python allows it; elsewhere the block just runs."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._pending: list[int] = []
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> forwarding:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in FORWARDED}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def attach(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        for sig in self._pending:
            proc.send_signal(sig)
        self._pending.clear()

    def _handle(self, sig: int, _frame: object) -> None:
        if _terminal_delivered(sig):
            return
        if self._proc is None:
            self._pending.append(sig)
        else:
            self._proc.send_signal(sig)


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What ``run`` did: the command's exit status (negative: the signal that killed it)
    and the manifest describing the run (saved if ``record`` was given)."""

    returncode: int
    manifest: Manifest


def run(
    argv: Sequence[str],
    root: SeedTree,
    record: str | os.PathLike[str] | None = None,
    fields: Mapping[str, Any] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    datasets: Mapping[str, DatasetDigest] | None = None,
) -> RunResult:
    """Run ``argv`` with ``root`` handed over; wait, forwarding signals; build the manifest
    (root, command, exit status, times, environment, the streams the command recorded, the
    ``datasets`` hashed before it started: see ``check_datasets``) and save it to ``record``
    when given. Raises ``CommandNotFound`` if it cannot start."""
    fields = dict(fields or {})
    if "run" in fields:
        raise ValueError("the field name 'run' is reserved for what seedtree run records; pick another")
    if "datasets" in fields:  # Manifest.collect takes datasets= as the data to hash
        raise ValueError("the field name 'datasets' is reserved: name the data with --dataset NAME=PATH")
    json.dumps(fields)
    env = child_environment(root)
    handback = tempfile.mkdtemp(prefix="seedtree-run-") if record is not None else None
    if handback is not None:
        env[ENV_RECORD_DIR] = handback
    try:
        started = time.time()
        with forwarding() as fwd:
            proc = start(argv, env=env, cwd=cwd)
            fwd.attach(proc)
            returncode = proc.wait()
        finished = time.time()
        reports = _read_handback(handback, proc.pid) if handback else []
    finally:
        if handback is not None:
            shutil.rmtree(handback, ignore_errors=True)
    streams, child_env = _merge(reports, proc.pid)
    if child_env is None:  # the command did not report: describe what we know it got
        child_env = environment()
        child_env[HASHSEED] = env.get(HASHSEED)
    info = {
        "command": list(argv),
        "cwd": str(Path(cwd or os.getcwd()).resolve()),
        "exit_status": returncode if returncode >= 0 else None,
        "signal": _signal_name(-returncode) if returncode < 0 else None,
        "started": _iso(started),
        "finished": _iso(finished),
        "duration_s": round(finished - started, 3),
        HASHSEED: env.get(HASHSEED),
        "hash_seed_from": "user" if HASHSEED in os.environ else "tree",
        "processes_reported": len(reports),
    }
    manifest = dataclasses.replace(
        Manifest.collect(root, run=info, **fields),
        streams=streams,
        environment=child_env,
        datasets=dict(datasets or {}),
    )
    if record is not None:
        manifest.save(record)
    return RunResult(returncode, manifest)


def die_by_signal(sig: int) -> None:
    """End this process by ``sig``, as the command it ran was, so that whoever started
    ``seedtree`` sees the same death (a shell's ``exec`` would). Returns without doing
    anything for the signals in ``NOT_RERAISED``: the caller then exits with ``128 + sig``,
    the status a shell reports for a command killed by that signal (137 for SIGKILL)."""
    if sig in NOT_RERAISED:
        return
    try:
        signal.signal(sig, signal.SIG_DFL)
    except (OSError, ValueError):  # a signal this platform will not let us take
        return
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
    os.kill(os.getpid(), sig)


def _iso(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.UTC).isoformat(timespec="milliseconds")


def _read_handback(directory: str, main_pid: int) -> list[dict[str, Any]]:
    reports = []
    for path in sorted(Path(directory).glob("streams-*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a process killed mid-write leaves only its .tmp, never half a file
        if isinstance(data, dict) and data.get("schema") == HANDOVER_SCHEMA:
            reports.append(data)
    # The command itself first, then the other processes in the order they started.
    reports.sort(key=lambda r: (r.get("pid") != main_pid, not r.get("main"), r.get("started", 0), r.get("pid", 0)))
    return reports


def _merge(reports: list[dict[str, Any]], main_pid: int) -> tuple[dict[str, SeedTree], dict[str, Any] | None]:
    """One stream table from every process's report. A name recorded with different nodes
    by different processes is kept for the first (the command) and stored again as
    ``name@pid<N>`` for the others, so nothing recorded is dropped."""
    streams: dict[str, SeedTree] = {}
    child_env = None
    for report in reports:
        if child_env is None and report.get("main") and isinstance(report.get("environment"), dict):
            child_env = report["environment"]
        for name, entry in (report.get("streams") or {}).items():
            try:
                node = node_from_json(entry)
            except CodecError as exc:  # said, never dropped silently
                print(
                    f"seedtree run: stream {name!r} reported by pid {report.get('pid')} is damaged ({exc}); "
                    "it is not in the manifest",
                    file=sys.stderr,
                )
                continue
            if name in streams and streams[name] != node:
                name = f"{name}@pid{report.get('pid')}"
            streams.setdefault(name, node)
    return streams, child_env


def _signal_name(number: int) -> str:
    """``SIGTERM`` for 15; real-time signals (no enum member) as ``SIG<n>``."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"


# -- datasets: hashed before the command starts, checked against a replayed manifest -------


class DataChanged(DatasetError):
    """A dataset's content differs from what the replayed manifest recorded."""


def parse_datasets(specs: Sequence[str]) -> dict[str, str]:
    """``["train=data/train", ...]`` as ``{name: path}``; DatasetError for a spec that is not
    NAME=PATH or a name given twice."""
    named: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise DatasetError(f"--dataset {spec!r} is not NAME=PATH, e.g. --dataset train=data/train")
        if name in named:
            raise DatasetError(
                f"--dataset {name} is given twice ({named[name]} and {path}); give each dataset one name"
            )
        named[name] = path
    return named


def check_datasets(
    named: Mapping[str, str],
    recorded: Mapping[str, DatasetDigest] | None = None,
    allow_change: bool = False,
    progress: bool | None = None,
) -> dict[str, DatasetDigest]:
    """Hash the datasets of a run: those ``named`` now and, on a replay, those the manifest
    ``recorded`` (at their recorded path, unless ``named`` gives the name a new one). A
    recorded dataset whose hash changed raises ``DataChanged`` naming it and both hashes,
    unless ``allow_change``: then its entry keeps the recorded hash as ``previous``.
    DatasetError for data that cannot be hashed."""
    recorded = recorded or {}
    paths = {name: entry.path for name, entry in recorded.items()}
    paths.update(named)
    digests = {}
    for name, path in paths.items():
        try:
            digest = hash_dataset(path, name=name, progress=progress)
        except DatasetError as exc:
            if name in recorded and name not in named:
                raise DatasetError(
                    f"{exc} (recorded by the manifest; give its place now with --dataset {name}=PATH)"
                ) from None
            raise
        before = recorded.get(name)
        if before is not None and before.sha256 != digest.sha256:
            if not allow_change:
                raise DataChanged(
                    f"dataset {name!r} at {path} changed since the manifest was recorded: sha256 {before.sha256} "
                    f"recorded, {digest.sha256} now ({before.files} -> {digest.files} files, {before.bytes} -> "
                    f"{digest.bytes} bytes); restore the data, or run anyway with --allow-data-change"
                )
            digest = dataclasses.replace(digest, previous=before.sha256)
        digests[name] = digest
    return digests
