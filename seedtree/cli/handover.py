"""The child side of ``seedtree run``: hand the recorded streams back to the runner.

``seedtree run --record out.json`` puts a fresh folder in ``SEEDTREE_RECORD_DIR`` before it
starts the command. Every Python process of the command that imports seedtree then keeps
``<folder>/streams-<pid>.json`` up to date: rewritten (atomically) at each
``seedtree.record`` and once more when the process exits normally; the runner merges the
files into the manifest. Forked, spawned and pool workers report too, even when their pool
terminates them. The first such process in a lineage (normally the command itself) adds
its environment facts at exit, so the manifest describes the interpreter that did the work.

Importing ``seedtree`` arms this; with the variable unset it does nothing and costs nothing.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..core.codec import node_to_json
from ..runtime.manifest import environment, recorded
from ..runtime.state import STATE

__all__ = ["ENV_RECORD_DIR", "ENV_RECORD_MAIN", "SCHEMA", "arm", "write"]

ENV_RECORD_DIR = "SEEDTREE_RECORD_DIR"
ENV_RECORD_MAIN = "SEEDTREE_RECORD_MAIN"  # set by the first process of a lineage to its pid
SCHEMA = "seedtree.handover"


@dataclass
class _Armed:
    """Where this process hands back to, once armed."""

    pid: int | None = None
    directory: str = ""
    main: int | None = None
    started: float = 0.0
    warned: bool = False


_armed = _Armed()


def arm() -> bool:
    """Start handing back when ``SEEDTREE_RECORD_DIR`` is set (idempotent); returns whether
    it is armed in this process."""
    directory = os.environ.get(ENV_RECORD_DIR)
    if not directory:
        return False
    if _armed.pid is not None:
        return True
    main = ENV_RECORD_MAIN not in os.environ
    if main:
        os.environ[ENV_RECORD_MAIN] = str(os.getpid())  # descendants see they are not the main process
    _armed.pid, _armed.directory = os.getpid(), directory
    _armed.main, _armed.started = (os.getpid() if main else None), time.time()
    STATE.add_record_listener(_on_record)
    atexit.register(_at_exit)
    return True


def _on_record(_name: str, _node: Any) -> None:
    write(with_environment=False)


def _at_exit() -> None:
    # A forked child inherits this handler; it runs there too, for the child's own file.
    write(with_environment=os.getpid() == _armed.main)


def write(with_environment: bool) -> None:
    """Write this process's recorded streams (and its environment facts) for the runner."""
    pid = os.getpid()
    payload = {
        "schema": SCHEMA,
        "pid": pid,
        "ppid": os.getppid(),
        "main": pid == _armed.main,
        "started": _armed.started if pid == _armed.pid else time.time(),
        "argv": list(sys.argv),
        "streams": {name: node_to_json(n, check=True) for name, n in recorded().items()},
        "environment": environment() if with_environment else None,
    }
    target = os.path.join(_armed.directory, f"streams-{pid}.json")
    tmp = f"{target}.{threading.get_ident()}.tmp"  # one per thread: records may race, never collide
    try:
        with open(tmp, "w") as fh:
            json.dump(payload, fh)
        os.replace(tmp, target)
    except (OSError, TypeError, ValueError) as exc:  # never turn the user's program into a crash
        if not _armed.warned:  # e.g. a process outliving its `seedtree run`: say it once
            _armed.warned = True
            print(f"seedtree: could not hand the recorded streams back to `seedtree run`: {exc}", file=sys.stderr)


arm()
