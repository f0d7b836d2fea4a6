#!/usr/bin/env bash
# Installs the external test batteries used by `seedtree check` and builds our TestU01 harness.
#
#   bash scripts/install-batteries.sh [VENV]      (as root; VENV defaults to .venv)
#
# - TestU01 (Debian testu01-bin, libtestu01-0-dev) lives in Debian's non-free component. If
#   apt cannot see it, this adds a sources entry for non-free that reuses the archive address
#   already configured on this machine (read from /etc/apt/sources.list*: no host is written here).
# - dieharder (Debian main).
# - The harness seedtree/stats/testu01_harness.c is compiled to $VENV/bin/seedtree-testu01,
#   where `seedtree check --battery testu01` looks for it (or set SEEDTREE_TESTU01=/path).
# - PractRand is not packaged: put its RNG_test on PATH to enable it.
#
# Idempotent and fast when done: nothing is fetched when the packages are there, and the
# harness is rebuilt only when its source is newer than the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
SRC=seedtree/stats/testu01_harness.c
BIN="$VENV/bin/seedtree-testu01"
PACKAGES=(testu01-bin libtestu01-0-dev dieharder)
NONFREE_LIST=/etc/apt/sources.list.d/seedtree-nonfree.sources

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-batteries: need root to install ${missing[*]} (run: sudo bash $0 $VENV)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Add non-free next to every configured Debian archive that carries 'main' (same
    # address, suites and keyring), unless a non-free entry is already there.
    if [ ! -f "$NONFREE_LIST" ] && ! grep -rqsE '^[^#]*(Components:.*|deb .*)\snon-free(\s|$)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        python3 - "$NONFREE_LIST" <<'PY'
import glob, re, sys

stanzas = []  # (uris, suites, signed_by)
def keep(suite):  # the security archive is not needed for these packages
    return not suite.endswith("-security")

for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for block in re.split(r"\n\s*\n", open(path).read()):
        fields = {}
        for line in block.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if fields.get("enabled", "yes").lower() == "no" or "deb" not in fields.get("types", "").split():
            continue
        if "main" not in fields.get("components", "").split():
            continue
        suites = [s for s in fields.get("suites", "").split() if keep(s)]
        if suites and fields.get("uris"):
            stanzas.append((fields["uris"], suites, fields.get("signed-by")))

for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        m = re.match(r"^\s*deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.*)$", line)
        if not m or "main" not in m.group(4).split() or not keep(m.group(3)):
            continue
        opts = m.group(1) or ""
        signed = re.search(r"signed-by=(\S+?)[\s\]]", opts)
        stanzas.append((m.group(2), [m.group(3)], signed.group(1) if signed else None))

if not stanzas:
    sys.exit("install-batteries: no Debian archive with 'main' found in /etc/apt/sources.list*; "
             "add the non-free component for your mirror by hand")
with open(sys.argv[1], "w") as out:
    out.write("# Added by seedtree scripts/install-batteries.sh: non-free, for TestU01.\n")
    for uris, suites, signed_by in stanzas:
        out.write(f"\nTypes: deb\nURIs: {uris}\nSuites: {' '.join(suites)}\nComponents: non-free\n")
        if signed_by:
            out.write(f"Signed-By: {signed_by}\n")
print(f"install-batteries: enabled non-free in {sys.argv[1]}")
PY
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    echo "install-batteries: installed ${missing[*]}"
fi

if [ ! -x "$BIN" ] || [ "$SRC" -nt "$BIN" ]; then
    [ -d "$VENV/bin" ] || { echo "install-batteries: no virtual environment at $VENV (run scripts/setup.sh first)" >&2; exit 1; }
    gcc -O2 -Wall -o "$BIN.tmp" "$SRC" -ltestu01 -ltestu01probdist -ltestu01mylib -lm
    mv "$BIN.tmp" "$BIN"
    echo "install-batteries: built $BIN"
fi
command -v RNG_test >/dev/null || echo "install-batteries: PractRand's RNG_test is not on PATH (optional; not packaged)"
