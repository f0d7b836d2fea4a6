"""The README's set-up commands change nothing outside the checkout and the user's caches;
what changes the system (the external batteries) is the explicit `make batteries`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = re.compile(r"apt-get|apt |dpkg|sudo|/etc/|install-batteries|sources\.list")

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _recipes(*targets: str) -> str:
    """What make would run for ``targets`` from scratch (-B: as if nothing were built)."""
    return subprocess.run(
        ["make", "-n", "-B", *targets], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout


def test_demo_and_test_change_nothing_outside_the_checkout() -> None:
    commands = _recipes("demo", "test")
    scripts = set(re.findall(r"scripts/[\w.-]+\.sh", commands))
    assert scripts == {"scripts/setup.sh", "scripts/setup-floors.sh"}, scripts  # both build venvs in the checkout
    for text in [commands] + [(ROOT / s).read_text() for s in scripts]:
        found = [line for line in text.splitlines() if SYSTEM.search(line) and not line.lstrip().startswith("#")]
        assert not found, found


def test_the_batteries_are_an_explicit_opt_in() -> None:
    assert "scripts/install-batteries.sh" in _recipes("batteries")
    readme = (ROOT / "README.md").read_text()
    assert "make batteries" in readme
