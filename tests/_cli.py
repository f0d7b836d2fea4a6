"""Running the real command line in a subprocess, as a user would (shared by the tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from seedtree.runtime import autoseed
from seedtree.runtime.seeding import ENV_ENTROPY


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m seedtree *args`` in ``cwd``, with none of this process's seedtree
    hand-over variables (a launcher's root, its auto-seed marker, PYTHONHASHSEED)."""
    dropped = ("PYTHONHASHSEED", ENV_ENTROPY, autoseed.ENV_AUTO_SEED)
    base = {k: v for k, v in os.environ.items() if k not in dropped}
    return subprocess.run(
        [sys.executable, "-m", "seedtree", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
