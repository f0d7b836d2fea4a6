"""Stream schemes and the interleaved source: each scheme builds its streams exactly as
the recipe it names, and the source interleaves them word by word, chunk-size independent."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from seedtree import SeedTree
from seedtree.stats import Interleaved, first_outputs, get_scheme, user_scheme
from seedtree.stats.schemes import PCG_DEFAULT_INCREMENT_128, SCHEMES, SHIFT_DRAWS

FULL = 1 << 64


def words(gen: np.random.Generator, n: int) -> np.ndarray:
    return gen.integers(0, FULL, size=n, dtype=np.uint64)


def take(name: str, root: int, i: int, n: int) -> np.ndarray:
    return get_scheme(name).streams(root, range(i, i + 1))[0].take(n)


@pytest.mark.parametrize("n", [3, 5000])  # both sides of the random_raw / integers switch
def test_seedtree_streams_are_the_librarys_children(n: int) -> None:
    for i in (0, 1, 77):
        assert np.array_equal(take("seedtree", 42, i, n), words((SeedTree(42) / i).numpy(), n))


def test_numpy_spawn_is_seedsequence_spawn() -> None:
    kids = np.random.SeedSequence(9).spawn(4)
    for i in range(4):
        assert np.array_equal(take("numpy-spawn", 9, i, 10), words(np.random.default_rng(kids[i]), 10))


def test_common_recipes_are_built_as_named() -> None:
    assert np.array_equal(take("default-rng-plus-i", 100, 3, 8), words(np.random.default_rng(103), 8))
    rs = np.random.RandomState(1005)
    assert np.array_equal(take("naive-mt19937", 1000, 5, 8), rs.randint(0, FULL, size=8, dtype=np.uint64))


def test_controls_have_their_defect_by_construction() -> None:
    dup = get_scheme("duplicated").streams(3, range(3))
    a, b, c = (s.take(16) for s in dup)
    assert np.array_equal(a, b) and np.array_equal(b, c)

    base = take("shifted", 3, 0, SHIFT_DRAWS + 8)
    assert np.array_equal(take("shifted", 3, 1, 8), base[SHIFT_DRAWS:])

    state = get_scheme("naive-pcg64").streams(10, range(2, 3))[0]._gen.bit_generator.state["state"]
    assert state == {"state": 12, "inc": PCG_DEFAULT_INCREMENT_128}
    state = get_scheme("pcg64-increments").streams(10, range(2, 3))[0]._gen.bit_generator.state["state"]
    assert state == {"state": 10, "inc": 5}


def test_torch_schemes() -> None:
    torch = pytest.importorskip("torch")
    streams = get_scheme("torch-32bit").streams(5, range(3))
    first = streams[0].take(32)
    # torch's CPU manual_seed keeps 32 bits, so seeds differing above bit 32 give one stream.
    assert all(np.array_equal(first, s.take(32)) for s in streams[1:])
    gen = torch.Generator()
    gen.manual_seed(5 + 4)
    expected = torch.empty(6, dtype=torch.int64).random_(-(1 << 63), None, generator=gen).numpy().view(np.uint64)
    assert np.array_equal(take("torch-worker", 5, 4, 6), expected)


def test_user_schemes(tmp_path, monkeypatch) -> None:
    def make(i: int) -> np.random.Generator:
        return np.random.default_rng([i, 2024])

    assert np.array_equal(user_scheme(make).streams(0, range(7, 8))[0].take(5), words(make(7), 5))
    (tmp_path / "my_rngs.py").write_text("import numpy as np\ndef gen(i):\n    return np.random.default_rng([i, 7])\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    scheme = get_scheme("my_rngs:gen")
    assert scheme.kind == "user"
    assert np.array_equal(scheme.streams(0, range(2, 3))[0].take(4), words(np.random.default_rng([2, 7]), 4))
    sys.modules.pop("my_rngs", None)


def test_bad_scheme_names_say_what_to_use() -> None:
    with pytest.raises(ValueError, match="unknown scheme 'nope'.*seedtree.*module:function"):
        get_scheme("nope")
    with pytest.raises(ValueError, match="cannot load user scheme 'no_such_module_x:f'"):
        get_scheme("no_such_module_x:f")
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        user_scheme(lambda i: 3).streams(0, range(1))


def test_every_named_scheme_is_described() -> None:
    kinds = {s.kind for s in SCHEMES.values()}
    assert kinds == {"good", "control", "common"}
    assert {"seedtree", "numpy-spawn", "loader-globals"} == {n for n, s in SCHEMES.items() if s.kind == "good"}
    assert {"duplicated", "shifted", "naive-pcg64", "naive-mt19937", "pcg64-increments", "torch-32bit"} == {
        n for n, s in SCHEMES.items() if s.kind == "control"
    }


@pytest.mark.parametrize("k", [1, 3, 64])
def test_interleaving_is_word_by_word_and_chunk_size_free(k: int) -> None:
    n_rows = 700
    expected = np.stack([words((SeedTree(11) / i).numpy(), n_rows) for i in range(k)], axis=1).reshape(-1)
    for chunk_bytes in (8, 4096, 1 << 20):
        src = Interleaved("seedtree", k, 11, chunk_bytes=chunk_bytes)
        got = np.concatenate(list(src.chunks(n_rows * k)))
        assert np.array_equal(got, expected)


def test_blocks_are_rows_of_streams_and_bounded() -> None:
    src = Interleaved("seedtree", 8192, 1, chunk_bytes=1 << 20)
    block = src.next_block(src.rows)
    assert block.shape == (src.rows, 8192)
    assert src.rows == 256  # the floor that keeps per-stream calls amortised: 16 MiB per block here
    assert np.array_equal(block[:3, 5], words((SeedTree(1) / 5).numpy(), 3))
    with pytest.raises(ValueError, match="not a whole number of rows"):
        next(Interleaved("seedtree", 3, 1).chunks(10))
    with pytest.raises(ValueError, match="streams must be an int"):
        Interleaved("seedtree", 0, 1)


def test_first_outputs_stream() -> None:
    blocks = list(first_outputs("seedtree", 5, 5000, words=4, start=10))
    assert [b.shape for b in blocks] == [(4, 4096), (4, 904)]
    flat = np.concatenate([b.T.reshape(-1) for b in blocks])
    for child in (0, 4095, 4096, 4999):
        assert np.array_equal(flat[4 * child : 4 * child + 4], words((SeedTree(5) / (10 + child)).numpy(), 4))
