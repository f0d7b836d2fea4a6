#!/usr/bin/env bash
# Creates the virtual environment and installs seedtree with every extra and the test
# tools; then the external test batteries (optional: a failure there only disables them).
set -euo pipefail
VENV=${1:-.venv}
cd "$(dirname "$0")/.."
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -c constraints.txt -e '.[all,dev]'
if [ -f scripts/install-batteries.sh ]; then
    bash scripts/install-batteries.sh "$VENV" || echo "setup: external batteries not installed; their tests will skip with a reason" >&2
fi
