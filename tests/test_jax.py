"""``SeedTree.jax()``: typed JAX keys carrying the node's words, tested with real JAX on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import seedtree as st
from seedtree.core.layout import WORDS_JAX

jax = pytest.importorskip("jax")

ROOT = Path(__file__).resolve().parents[1]
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


@pytest.mark.parametrize(
    ("impl", "size", "dtype_name"),
    [(None, 2, "fry"), ("threefry2x32", 2, "fry"), ("rbg", 4, "rbg"), ("unsafe_rbg", 4, "urbg")],
)
def test_key_is_typed_and_carries_the_node_words(impl: str | None, size: int, dtype_name: str) -> None:
    node = st.SeedTree(5) / "model" / 3
    key = node.jax(impl)
    assert jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ()
    assert dtype_name in str(key.dtype)
    data = np.asarray(jax.random.key_data(key))
    assert data.dtype == np.uint32 and data.shape == (size,)
    assert np.array_equal(data, node.words(WORDS_JAX, size))
    # A function of the node only: the same node however it is built.
    again = st.SeedTree(5, ("model", 3)).jax(impl)
    assert np.array_equal(np.asarray(jax.random.key_data(again)), data)


def test_key_is_not_a_32_bit_seed() -> None:
    # Two nodes whose keys agreed in the low 32 bits would be PRNGKey(int) in disguise;
    # the full key words differ, and no key equals PRNGKey(seed_int(32)).
    node = st.SeedTree(1) / 0
    data = np.asarray(jax.random.key_data(node.jax()))
    legacy = np.asarray(jax.random.key_data(jax.random.key(node.seed_int(32))))
    assert not np.array_equal(data, legacy)
    assert data[0] != 0  # PRNGKey(int < 2**32) always has a zero high word


def test_million_two_level_paths_give_distinct_keys() -> None:
    root = st.SeedTree(2**100 + 17)
    rows, cols = np.divmod(np.arange(1_000_000), 1000)
    keys = np.stack([rows, cols], axis=1)
    words = root.states(keys, 4, start=WORDS_JAX)  # threefry takes the first 2, rbg all 4
    assert len(np.unique(np.ascontiguousarray(words[:, :2]).view(np.uint64))) == len(keys)
    # The vectorised words are the real keys' data: check a sample of actual node.jax() calls.
    sample = np.random.default_rng(0).choice(len(keys), 40, replace=False)
    for r in sample:
        node = root / int(keys[r, 0]) / int(keys[r, 1])
        assert np.array_equal(np.asarray(jax.random.key_data(node.jax())), words[r, :2])
        assert np.array_equal(np.asarray(jax.random.key_data(node.jax("rbg"))), words[r])


@pytest.mark.parametrize("impl", ["default", "rbg"])
def test_normal_draw_is_reproducible_across_processes(impl: str) -> None:
    here = np.asarray(
        jax.random.normal((st.SeedTree(2024) / "init" / 7).jax(None if impl == "default" else impl), (6,))
    )
    proc = _run(DRAW, impl)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == here.tobytes().hex()
    other = np.asarray(jax.random.normal((st.SeedTree(2024) / "init" / 8).jax(), (6,)))
    assert not np.array_equal(other, here)


def test_default_impl_ignores_jax_configuration() -> None:
    # impl=None is threefry2x32 even where the user switched JAX's default PRNG.
    proc = _run("""
        import jax, numpy as np, seedtree as st
        jax.config.update("jax_default_prng_impl", "rbg")
        key = (st.SeedTree(9) / 1).jax()
        print(key.dtype, np.asarray(jax.random.key_data(key)).tolist())
    """)
    assert proc.returncode == 0, proc.stderr
    node = st.SeedTree(9) / 1
    assert proc.stdout.split()[0] == str(node.jax().dtype)
    assert proc.stdout.strip().endswith(str(node.words(WORDS_JAX, 2).tolist()))


def test_bad_impl_is_refused() -> None:
    node = st.SeedTree(3)
    with pytest.raises(ValueError, match="not a JAX PRNG implementation"):
        node.jax("threefry")
    with pytest.raises(TypeError, match="implementation name"):
        node.jax(2)  # type: ignore[arg-type]


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
