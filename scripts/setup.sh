#!/usr/bin/env bash
# Creates the virtual environment and installs seedtree with every extra and the test
# tools (pinned by constraints.txt). It changes nothing outside the checkout and the user's
# caches: the external test batteries, which need system packages, are `make batteries`.
set -euo pipefail
VENV=${1:-.venv}
cd "$(dirname "$0")/.."
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -c constraints.txt -e '.[all,dev]'
