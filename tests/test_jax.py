"""``SeedTree.jax()``: typed JAX keys carrying the node's words, tested with real JAX on the CPU.

JAX runs in child processes only: once JAX has started its threads in a process, every
later ``os.fork`` there (the pool and DataLoader tests fork) warns of a possible deadlock.
One child computes what the tests check (keys, key data, draws, errors) and hands it back
as JSON; the tests compare it with what seedtree derives here, with NumPy alone.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import seedtree as st
from seedtree.core.layout import WORDS_JAX

pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")

ROOT = Path(__file__).resolve().parents[1]
IMPLS = [None, "threefry2x32", "rbg", "unsafe_rbg"]
SAMPLE = [(int(i), int(j)) for i, j in np.random.default_rng(0).integers(0, 1000, size=(40, 2))]

PROBE = """
import json, sys
import jax
import numpy as np
import seedtree as st

def data(key):
    return np.asarray(jax.random.key_data(key)).tolist()

def normal(key):
    return np.asarray(jax.random.normal(key, (6,))).tobytes().hex()

sample = json.loads(sys.argv[1])
out = {"impls": {}, "errors": {}}
node = st.SeedTree(5) / "model" / 3
for impl in [None, "threefry2x32", "rbg", "unsafe_rbg"]:
    key = node.jax(impl)
    out["impls"][str(impl)] = {
        "typed": bool(jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)), "shape": list(key.shape),
        "dtype": str(key.dtype), "data": data(key), "again": data(st.SeedTree(5, ("model", 3)).jax(impl)),
    }
legacy = st.SeedTree(1) / 0
out["legacy"] = {"ours": data(legacy.jax()), "prngkey": data(jax.random.key(legacy.seed_int(32)))}
root = st.SeedTree(2**100 + 17)
out["sample"] = [[data((root / i / j).jax()), data((root / i / j).jax("rbg"))] for i, j in sample]
draw = st.SeedTree(2024) / "init"
out["normal"] = {"default": normal((draw / 7).jax()), "rbg": normal((draw / 7).jax("rbg")),
                 "other": normal((draw / 8).jax())}
for name, impl in [("unknown", "threefry"), ("not_str", 2)]:
    try:
        node.jax(impl)
    except (TypeError, ValueError) as err:
        out["errors"][name] = [type(err).__name__, str(err)]
jax.config.update("jax_default_prng_impl", "rbg")  # impl=None must not follow JAX's default
key = (st.SeedTree(9) / 1).jax()
out["configured"] = {"dtype": str(key.dtype), "data": data(key)}
print(json.dumps(out))
"""

DRAW = """
import sys
import jax
import numpy as np
import seedtree as st
impl = None if sys.argv[1] == "default" else sys.argv[1]
key = (st.SeedTree(2024) / "init" / 7).jax(impl)
print(np.asarray(jax.random.normal(key, (6,))).tobytes().hex())
"""


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def probe() -> dict[str, Any]:
    proc = _run(PROBE, json.dumps(SAMPLE))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize(
    ("impl", "size", "dtype_name"),
    [(None, 2, "fry"), ("threefry2x32", 2, "fry"), ("rbg", 4, "rbg"), ("unsafe_rbg", 4, "urbg")],
)
def test_key_is_typed_and_carries_the_node_words(probe: dict, impl: str | None, size: int, dtype_name: str) -> None:
    got = probe["impls"][str(impl)]
    assert got["typed"] and got["shape"] == [] and dtype_name in got["dtype"]
    assert got["data"] == (st.SeedTree(5) / "model" / 3).words(WORDS_JAX, size).tolist()
    assert got["again"] == got["data"]  # a function of the node only, however it is built


def test_key_is_not_a_32_bit_seed(probe: dict) -> None:
    ours, legacy = probe["legacy"]["ours"], probe["legacy"]["prngkey"]
    assert legacy[0] == 0 and ours != legacy  # PRNGKey(int < 2**32) has a zero high word; ours is two full words
    assert ours == (st.SeedTree(1) / 0).words(WORDS_JAX, 2).tolist()


def test_million_two_level_paths_give_distinct_keys(probe: dict) -> None:
    root = st.SeedTree(2**100 + 17)
    rows, cols = np.divmod(np.arange(1_000_000), 1000)
    words = root.states(np.stack([rows, cols], axis=1), 4, start=WORDS_JAX)  # threefry: 2 words, rbg: all 4
    assert len(np.unique(np.ascontiguousarray(words[:, :2]).view(np.uint64))) == 1_000_000
    # The vectorised words are the data of the real keys that node.jax() makes in JAX.
    for (i, j), (threefry, rbg) in zip(SAMPLE, probe["sample"], strict=True):
        assert threefry == words[i * 1000 + j, :2].tolist() and rbg == words[i * 1000 + j].tolist()


@pytest.mark.parametrize("impl", ["default", "rbg"])
def test_normal_draw_is_reproducible_across_processes(probe: dict, impl: str) -> None:
    proc = _run(DRAW, impl)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == probe["normal"][impl]
    assert probe["normal"]["other"] != probe["normal"]["default"]


def test_default_impl_ignores_jax_configuration(probe: dict) -> None:
    assert probe["configured"]["dtype"] == probe["impls"]["None"]["dtype"]
    assert probe["configured"]["data"] == (st.SeedTree(9) / 1).words(WORDS_JAX, 2).tolist()


def test_bad_impl_is_refused(probe: dict) -> None:
    kind, message = probe["errors"]["unknown"]
    assert kind == "ValueError" and "not a JAX PRNG implementation" in message
    kind, message = probe["errors"]["not_str"]
    assert kind == "TypeError" and "implementation name" in message


def test_missing_jax_says_what_to_install() -> None:
    proc = _run("""
        import sys
        sys.modules["jax"] = None
        import seedtree as st
        try:
            st.SeedTree(1).jax()
        except ImportError as err:
            print(err)
    """)
    assert proc.returncode == 0, proc.stderr
    assert "seedtree[jax]" in proc.stdout and "SeedTree.jax()" in proc.stdout
