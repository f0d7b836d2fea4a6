"""The oldest declared versions are the ones tested: ``make test`` runs the controller,
loader and isolation tests a second time in ``.venv-floors`` (scripts/setup-floors.sh),
with ``SEEDTREE_FLOORS`` naming the pins it installed; this test checks the run really had
them, and that they are pyproject.toml's floors."""

from __future__ import annotations

import importlib.metadata
import os
import re
import tomllib
from pathlib import Path

import pytest

PINS = os.environ.get("SEEDTREE_FLOORS", "")


def _declared_floors() -> dict[str, str]:
    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return {m[1]: m[2] for r in declared if (m := re.fullmatch(r"(numpy|torch|joblib)>=([0-9.]+)", r))}


@pytest.mark.skipif(not PINS, reason="the floors run only (make test sets SEEDTREE_FLOORS in .venv-floors)")
def test_this_run_has_the_declared_floors() -> None:
    pins = dict(pin.split("==") for pin in PINS.split())
    assert pins == _declared_floors()
    for name, floor in pins.items():
        installed = importlib.metadata.version(name).split("+")[0]
        assert installed.split(".")[: len(floor.split("."))] == floor.split("."), (name, installed, floor)
        assert re.fullmatch(re.escape(floor) + r"(\.0)*", installed), f"{name} {installed} is not the floor {floor}"


def test_every_declared_torch_range_has_one_floor() -> None:
    """Every extra that names torch, numpy or joblib declares the same floor for it."""
    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    for name in ("numpy", "torch", "joblib"):
        floors = {m[1] for r in declared if (m := re.fullmatch(rf"{name}>=([0-9.]+)", r))}
        assert len(floors) == 1, (name, floors)
