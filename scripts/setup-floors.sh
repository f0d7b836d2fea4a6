#!/usr/bin/env bash
# A second environment holding the oldest versions that pyproject.toml accepts of the
# libraries whose state seedtree writes (NumPy, torch) and of joblib, which the controller
# tests use: `make test` runs the controller, loader and isolation tests in it, so the
# floors the package declares are floors it is tested on. The versions are read from
# pyproject.toml ("numpy>=1.25" installs numpy==1.25), never written twice.
set -euo pipefail
VENV=${1:-.venv-floors}
cd "$(dirname "$0")/.."
PINS=$(python3 - <<'PY'
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
declared = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
floors = {}
for requirement in declared:
    match = re.fullmatch(r"(numpy|torch|joblib)>=([0-9.]+)", requirement)
    if match:
        floors.setdefault(match[1], set()).add(match[2])
assert set(floors) == {"numpy", "torch", "joblib"}, floors
assert all(len(v) == 1 for v in floors.values()), f"one floor per library, got {floors}"
print(" ".join(f"{name}=={versions.pop()}" for name, versions in sorted(floors.items())))
PY
)
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
# shellcheck disable=SC2086  # PINS is a list of requirements
"$VENV/bin/python" -m pip install -q $PINS "pytest>=8" "hypothesis>=6.100" "psutil>=5.9"
echo "$PINS" > "$VENV/floors.txt"
