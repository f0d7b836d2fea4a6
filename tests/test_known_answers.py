"""Known answers: the exact numbers a node gives, pinned.

Each expected value is either computed here by an independent route (NumPy's own
``SeedSequence``, ``hashlib``, a plain-Python transcription of a documented algorithm) or
is a literal obtained once that way, with a comment saying how. None is obtained by calling
the code under test.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import sys
from typing import Any

import numpy as np
import pytest
from _frames import trampolined, warn_and_where

from seedtree import SeedTree
from seedtree.core import mixing
from seedtree.core import tree as tree_module
from seedtree.core.bitgen import NodeSeed, as_uint64
from seedtree.core.codec import CodecError, node_check, node_from_json, node_to_json
from seedtree.core.layout import GLOBALS_WORDS, JAX_WORDS, WORD_LIMIT, WORDS_CUDA, WORDS_GLOBALS_KEY, WORDS_JAX
from seedtree.core.shuffle import MAX_N, KeyedPermutation

ENTROPY = 20240607


def _numpy_words(entropy: int, path: tuple[int, ...], start: int, count: int) -> np.ndarray:
    """Words ``start .. start + count`` of NumPy's ``SeedSequence(entropy, spawn_key=path)``."""
    return np.random.SeedSequence(entropy, spawn_key=path).generate_state(start + count)[start:]


# -- states ---------------------------------------------------------------------------------


@pytest.mark.parametrize("start", [0, 1, 5, 624])
@pytest.mark.parametrize("form", ["list", "array", "range", "2d"])
@pytest.mark.parametrize("use_out", [False, True])
def test_states_equal_numpy_for_every_start_form_and_out(start: int, form: str, use_out: bool) -> None:
    prefix = (9, 4)
    node = SeedTree(ENTROPY, prefix)
    n_words = 3
    if form == "2d":
        keys: object = np.array([[0, 1], [2**32 - 1, 0], [7, 7]], dtype=np.int64)
        paths: list[tuple[int, ...]] = [prefix + (0, 1), prefix + (2**32 - 1, 0), prefix + (7, 7)]
    else:
        ints = [0, 1, 2**32 - 1, 7]
        if form == "range":
            keys, ints = range(3, 12, 4), [3, 7, 11]
        else:
            keys = ints if form == "list" else np.array(ints, dtype=np.uint32)
        paths = [prefix + (k,) for k in ints]
    expected = np.array([_numpy_words(ENTROPY, p, start, n_words) for p in paths], dtype=np.uint32)
    out = np.full((len(paths), n_words), 0xDEADBEEF, dtype=np.uint32) if use_out else None
    got = node.states(keys, n_words, start=start, out=out)  # type: ignore[arg-type]
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.uint32 and got.shape == (len(paths), n_words) and got.strides[1] == 4
    if use_out:
        assert got is out  # written in place, the buffer itself handed back


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_states_of_a_large_2d_batch_equal_numpy(depth: int) -> None:
    # Past the small-batch path: the block-wise derivation, one level per column, with
    # strided (non-contiguous) key columns. Rows on both sides of the size threshold and of
    # the last block are compared with NumPy.
    n = mixing.SMALL + 37
    keys = (np.arange(n * depth, dtype=np.int64).reshape(n, depth) * 2654435761) % 2**32
    node = SeedTree(ENTROPY, (9,))
    got = node.states(keys, 5)
    assert got.shape == (n, 5) and got.flags.c_contiguous
    for i in (0, 1, mixing.SMALL - 1, mixing.SMALL, n - 1):
        path = (9, *(int(k) for k in keys[i]))
        np.testing.assert_array_equal(got[i], _numpy_words(ENTROPY, path, 0, 5))


@pytest.mark.parametrize("start", [0, 3])
@pytest.mark.parametrize("use_out", [False, True])
def test_states_of_str_and_bytes_keys_for_every_start_and_out(start: int, use_out: bool) -> None:
    node = SeedTree(ENTROPY) / "s"
    keys: list[object] = ["a", b"a", 5]
    expected = np.array([(node / k).words(start, 2) for k in keys], dtype=np.uint32)  # type: ignore[operator]
    # the child of a str key is itself pinned against NumPy through its spawn key
    np.testing.assert_array_equal(expected[2], _numpy_words(ENTROPY, (node / 5).spawn_key, start, 2))
    np.testing.assert_array_equal(expected[0], _numpy_words(ENTROPY, (node / "a").spawn_key, start, 2))
    out = np.zeros((3, 2), dtype=np.uint32) if use_out else None
    got = node.states(keys, 2, start=start, out=out)  # type: ignore[arg-type]
    np.testing.assert_array_equal(got, expected)
    if use_out:
        assert got is out


@pytest.mark.parametrize("start", [0, 2])
@pytest.mark.parametrize("keys", [[], range(5, 5), np.array([], dtype=np.uint32), np.empty((0, 2), np.int64)])
@pytest.mark.parametrize("use_out", [False, True])
def test_states_of_no_keys_is_an_empty_block(start: int, keys: object, use_out: bool) -> None:
    out = np.empty((0, 4), dtype=np.uint32) if use_out else None
    got = SeedTree(ENTROPY).states(keys, 4, start=start, out=out)  # type: ignore[arg-type]
    assert got.shape == (0, 4) and got.dtype == np.uint32
    if use_out:
        assert got is out


def test_states_start_reaches_the_last_word_and_no_further() -> None:
    node = SeedTree(ENTROPY)
    # The expansion's hash constants cycle every 2**30 words (NumPy's generate_state would
    # repeat word i at 2**30 + i): the last block ends exactly at WORD_LIMIT.
    last = node.states([3], 2, start=WORD_LIMIT - 2)
    np.testing.assert_array_equal(last[0], (node / 3).words(WORD_LIMIT - 2, 2))
    for start in (WORD_LIMIT - 1, WORD_LIMIT, -1, True, 1.0):
        with pytest.raises(ValueError, match="start must be an int with start"):
            node.states([3], 2, start=start)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "out",
    [
        np.zeros((2, 3), dtype=np.uint32),  # wrong shape
        np.zeros((3, 2), dtype=np.uint64),  # wrong dtype
        np.zeros((2, 6), dtype=np.uint32)[:, ::2],  # not contiguous
        [[0, 0], [0, 0], [0, 0]],  # not an array
    ],
)
@pytest.mark.parametrize("keys", [[1, 2, 3], ["a", "b", "c"], range(3)])
def test_states_refuses_an_out_it_cannot_fill(out: object, keys: object) -> None:
    for start in (0, 4):
        with pytest.raises(ValueError, match=r"out must be a C-contiguous uint32 array of shape \(3, 2\)"):
            SeedTree(ENTROPY).states(keys, 2, start=start, out=out)  # type: ignore[arg-type]


# -- key ranges at their edges --------------------------------------------------------------


@pytest.mark.parametrize(
    "keys",
    [
        [0, 2**32],
        [2**32, 0],
        [2**32 - 1, 2**32],
        [-1, 0],
        [0, -1],
        range(2**32 - 2, 2**32 + 1),
        range(0, 2**32 + 1),
        range(2**32, 2**32 - 3, -1),
        range(-1, 3),
        range(3, -2, -1),
        np.array([0, 2**32], dtype=np.int64),
        np.array([2**32, 0], dtype=np.uint64),
        np.array([[0, 1], [2**32, 0]], dtype=np.int64),
        np.array([[0, 1], [0, -1]], dtype=np.int64),
    ],
    ids=lambda keys: type(keys).__name__,  # plain ids: mutmut selects tests by id
)
def test_a_key_just_outside_the_range_is_refused_beside_valid_ones(keys: Any) -> None:
    # NumPy would read 2**32 as the words (0, 1): the path [..., 2**32] would alias [..., 0, 1].
    node = SeedTree(ENTROPY) / "k"
    for call in (node.states, node.children, lambda k: list(node.generators(k))):
        with pytest.raises(ValueError, match=r"is outside \[0, 2\*\*32\)"):
            call(keys)


@pytest.mark.parametrize(
    "keys", [range(2**32 - 3, 2**32), range(2**32 - 1, -1, -(2**31)), [2**32 - 1, 0], np.array([2**32 - 1, 0])]
)
def test_keys_at_the_top_of_the_range_are_valid(keys: object) -> None:
    node = SeedTree(ENTROPY)
    ints = [int(k) for k in keys]  # type: ignore[attr-defined]
    expected = np.array([_numpy_words(ENTROPY, (k,), 0, 2) for k in ints], dtype=np.uint32)
    np.testing.assert_array_equal(node.states(keys, 2), expected)  # type: ignore[arg-type]
    assert [c.path for c in node.children(keys)] == [(k,) for k in ints]  # type: ignore[arg-type]
    draws = [g.bit_generator.random_raw() for g in node.generators(keys)]  # type: ignore[arg-type]
    assert draws == [(node / k).numpy().bit_generator.random_raw() for k in ints]


# -- seed_int: the ints CUDA devices are seeded with -----------------------------------------

# seed_int(bits, index) is the little-endian int of node words [2**25 + index*n, +n), n =
# ceil(bits / 32), masked to ``bits`` bits. The values below were computed once with NumPy
# alone: SeedSequence(20240607, spawn_key=(3, 1)).generate_state(2**25 + 64)[2**25:], the
# words joined low word first and masked (a 128 MiB computation, too heavy for each run).
SEED_INTS = {
    (64, 0): 7168478687637366921,
    (64, 1): 3377089257757557425,
    (64, 2): 2233409552471789031,
    (64, 7): 17485622124708670676,
    (32, 0): 3700779145,
    (32, 5): 520006183,
    (1, 3): 1,
    (33, 2): 7063965159,
    (96, 1): 9592420986440329851542820041,
    (128, 3): 322552796304094289095061179746872935367,
}
# Words 0..7 of that block (the same computation): seed_int(32, i) is word i.
CUDA_WORDS = [3700779145, 1669041506, 2406302385, 786289865, 2768997863, 520006183, 3420344978, 3865405505]


@pytest.mark.parametrize(("bits", "index"), sorted(SEED_INTS))
def test_seed_int_known_answers(bits: int, index: int) -> None:
    node = SeedTree(ENTROPY, (3, 1))
    assert node.seed_int(bits, index) == SEED_INTS[bits, index]
    assert node.seed_int(bits, np.int64(index)) == SEED_INTS[bits, index]  # type: ignore[arg-type]
    assert type(node.seed_int(bits, index)) is int


def test_seed_int_defaults_to_64_bits_of_device_0_and_reads_the_documented_words() -> None:
    node = SeedTree(ENTROPY, (3, 1))
    assert node.seed_int() == SEED_INTS[64, 0] == CUDA_WORDS[0] | CUDA_WORDS[1] << 32
    assert [node.seed_int(32, i) for i in range(8)] == CUDA_WORDS
    assert [node.seed_int(64, i) for i in range(4)] == [
        CUDA_WORDS[2 * i] | CUDA_WORDS[2 * i + 1] << 32 for i in range(4)
    ]


def test_device_seed_words_are_disjoint_from_every_other_consumer() -> None:
    # Each consumer's node words (seedtree.core.layout): NumPy bit generators from 0 (the
    # largest request, MT19937, takes 624 words), the globals key, JAX key data, then the
    # device seeds, seed_int(bits, d) reading [WORDS_CUDA + d * n, +n).
    others = [(0, 624), (WORDS_GLOBALS_KEY, 4), (WORDS_JAX, JAX_WORDS)]
    assert (WORDS_GLOBALS_KEY, WORDS_JAX, WORDS_CUDA) == (2**24, 2**24 + 4, 2**25)
    for bits in (32, 64, 128):
        n = -(-bits // 32)
        devices = [(WORDS_CUDA + d * n, n) for d in range(1024)]
        for start, count in devices:
            for o_start, o_count in others:
                assert start + count <= o_start or o_start + o_count <= start
        assert all(a[0] + a[1] == b[0] for a, b in zip(devices, devices[1:], strict=False))  # adjacent, no overlap
    node = SeedTree(ENTROPY, (3, 1))
    seeds = [node.seed_int(64, d) for d in range(256)]
    assert len(set(seeds)) == 256
    assert not set(seeds) & {node.seed_int(64, d) for d in range(256, 512)}


def test_seed_int_of_the_last_device_that_fits_and_the_first_that_does_not() -> None:
    node = SeedTree(ENTROPY)
    last = (WORD_LIMIT - WORDS_CUDA) // 2 - 1
    words = node.words(WORD_LIMIT - 2, 2).tolist()
    assert node.seed_int(64, last) == words[0] | words[1] << 32
    with pytest.raises(ValueError, match="outside the node's"):
        node.seed_int(64, last + 1)


# -- the keyed shuffle ----------------------------------------------------------------------

_M64 = (1 << 64) - 1


def _array(value: int | np.ndarray) -> np.ndarray:
    assert isinstance(value, np.ndarray)
    return value


def _reference_permutation(entropy: int, path: tuple[int, ...], n: int, positions: list[int]) -> list[int]:
    """The documented construction, transcribed in plain Python: four Feistel rounds on the
    smallest even bit count covering n, round keys the node's words (0, 8) as four 64-bit
    little-endian words (here from NumPy's SeedSequence), round function
    ``((r ^ k) * M1, xorshift 31, * M2, xorshift 29) & mask``, then cycle-walking."""
    w = np.random.SeedSequence(entropy, spawn_key=path).generate_state(8).tolist()
    keys = [w[2 * r] | w[2 * r + 1] << 32 for r in range(4)]
    bits = max(2, max(n - 1, 1).bit_length())
    bits += bits % 2
    half = bits // 2
    mask = (1 << half) - 1

    def rounds(x: int) -> int:
        left, right = x >> half, x & mask
        for k in keys:
            f = ((right ^ k) * 0xBF58476D1CE4E5B9) & _M64
            f ^= f >> 31
            f = (f * 0x94D049BB133111EB) & _M64
            f ^= f >> 29
            left, right = right, (f & mask) ^ left
        return left << half | right

    out = []
    for p in positions:
        y = rounds(p)
        while y >= n:
            y = rounds(y)
        out.append(y)
    return out


# The first six positions (and the last) of the orders of two nodes at n = 2**40, computed
# once with _reference_permutation above (plain Python and NumPy's SeedSequence only).
FIRST_AT_2_40: dict[tuple[int, ...], list[int]] = {
    (5,): [358375515491, 553009519204, 43988798535, 678346860101, 399983165529, 340606781094],
    (6,): [858829663301, 43387870730, 155949696830, 722537412621, 844678493742, 267112257653],
}
LAST_AT_2_40: dict[tuple[int, ...], int] = {(5,): 481610396436, (6,): 406970482854}


@pytest.mark.parametrize("path", sorted(FIRST_AT_2_40))
def test_keyed_shuffle_first_positions_at_2_40(path: tuple[int, ...]) -> None:
    perm = KeyedPermutation(SeedTree(ENTROPY, path), MAX_N)
    assert MAX_N == 2**40 and len(perm) == 2**40
    got = _array(perm[np.arange(6)])
    assert got.dtype == np.int64 and got.tolist() == FIRST_AT_2_40[path]
    assert perm[2**40 - 1] == LAST_AT_2_40[path]
    assert _reference_permutation(ENTROPY, path, MAX_N, [0, 1, 2**40 - 1]) == [
        *FIRST_AT_2_40[path][:2],
        LAST_AT_2_40[path],
    ]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 10, 17, 255, 256, 257, 1000, 4097])
def test_keyed_shuffle_equals_the_reference_construction(n: int) -> None:
    # Small n walk cycles often (the domain is up to 4n): every position is compared.
    perm = KeyedPermutation(SeedTree(ENTROPY, (5,)), n)
    assert _array(perm[np.arange(n)]).tolist() == _reference_permutation(ENTROPY, (5,), n, list(range(n)))


@pytest.mark.parametrize("n", [70_000, 2**40])
def test_keyed_shuffle_of_many_positions_at_once_equals_the_reference(n: int) -> None:
    # More positions than one block of the vectorised evaluation (2**16), in an order that
    # is not sorted: the positions on both sides of each block edge are compared.
    perm = KeyedPermutation(SeedTree(ENTROPY, (6,)), n)
    positions = (np.arange(140_001, dtype=np.int64) * 7919) % n
    got = _array(perm[positions])
    assert got.shape == positions.shape and got.dtype == np.int64
    picks = [0, 1, 65_535, 65_536, 65_537, 131_071, 131_072, 140_000]
    expected = _reference_permutation(ENTROPY, (6,), n, [int(positions[i]) for i in picks])
    assert got[picks].tolist() == expected
    if n == 70_000:
        assert np.array_equal(np.sort(got[:n]), np.arange(n))  # a bijection: every index once


@pytest.mark.parametrize("n", [1, 3, 10, 257, 70_000, 2**32 - 5, 2**32, 2**32 + 1])
def test_keyed_shuffle_by_round_tables_equals_the_arithmetic(n: int) -> None:
    # Enough positions at once (at least a half's 2**bits values, domains up to 2**32) are
    # evaluated through per-round tables; one position at a time, by the arithmetic. Both
    # give the reference construction's indices, cycle-walks included.
    perm = KeyedPermutation(SeedTree(ENTROPY, (7,)), n)
    half = max(2, (n - 1).bit_length() + (n - 1).bit_length() % 2) // 2
    many = (np.arange(max(1 << half, 5), dtype=np.int64) * 40_503) % n
    tabled = _array(perm[many])
    picks = sorted({0, 1, 2, len(many) // 2, len(many) - 1} & set(range(len(many))))
    one_by_one = [perm[int(many[i])] for i in picks]
    reference = _reference_permutation(ENTROPY, (7,), n, [int(many[i]) for i in picks])
    assert tabled[picks].tolist() == one_by_one == reference
    assert (perm._tables is not None) == (n <= 2**32)  # a larger domain never builds tables
    few = KeyedPermutation(SeedTree(ENTROPY, (7,)), n)
    assert few[np.array([n - 1])].tolist() == [perm[n - 1]]
    assert few._tables is None  # fewer positions than a table holds (at least 2): none built
    if n <= 70_000:
        assert np.array_equal(np.sort(_array(perm[np.arange(n)])), np.arange(n))


def test_keyed_shuffle_pickles_without_its_tables_and_reads_older_pickles() -> None:
    import copy

    perm = KeyedPermutation(SeedTree(ENTROPY, (7,)), 1000)
    order = _array(perm[np.arange(1000)])
    assert perm._tables is not None
    for again in (pickle.loads(pickle.dumps(perm)), copy.deepcopy(perm)):
        assert again._tables is None and len(again) == 1000  # a cache: rebuilt on demand
        assert _array(again[np.arange(1000)]).tolist() == order.tolist() and again._tables is not None
    # A pickle from before the tables: the default state of a class with slots.
    older = KeyedPermutation.__new__(KeyedPermutation)
    older.__setstate__((None, {"n": perm.n, "_half": perm._half, "_mask": perm._mask, "_keys": perm._keys}))
    assert _array(older[np.arange(1000)]).tolist() == order.tolist()


def test_keyed_shuffle_of_ten_is_pinned() -> None:
    # Computed once with _reference_permutation(20240607, (5,), 10, range(10)).
    perm = KeyedPermutation(SeedTree(ENTROPY, (5,)), 10)
    assert _array(perm[np.arange(10)]).tolist() == [2, 7, 3, 9, 5, 0, 4, 6, 8, 1]


def test_keyed_shuffle_return_types() -> None:
    perm = KeyedPermutation(SeedTree(ENTROPY, (5,)), 10)
    for position in (3, np.int64(3), np.uint8(3), np.array(3)):
        got = perm[position]  # type: ignore[index]
        assert type(got) is int and got == 9
    for positions, shape in [
        ([3, 0], (2,)),
        (np.array([3, 0], dtype=np.uint16), (2,)),
        (np.array([[3, 0], [1, 1]]), (2, 2)),
        (np.array([], dtype=np.int64), (0,)),
        (np.empty((0, 3), dtype=np.int64), (0, 3)),
    ]:
        got = perm[positions]  # type: ignore[index]
        assert isinstance(got, np.ndarray) and got.dtype == np.int64 and got.shape == shape
    assert _array(perm[np.array([[3, 0], [1, 1]])]).tolist() == [[9, 2], [7, 7]]


@pytest.mark.parametrize("n", [-1, MAX_N + 1, True, 2.0, "10", None])
def test_keyed_shuffle_refuses_n(n: object) -> None:
    with pytest.raises(ValueError, match=r"n must be an int in \[0, 2\*\*40\]"):
        KeyedPermutation(SeedTree(ENTROPY), n)  # type: ignore[arg-type]


def test_keyed_shuffle_accepts_the_edges_of_n() -> None:
    assert len(KeyedPermutation(SeedTree(ENTROPY), 0)) == 0
    assert KeyedPermutation(SeedTree(ENTROPY), np.int64(1))[0] == 0  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="^KeyedPermutation needs a SeedTree node, got SeedSequence$"):
        KeyedPermutation(np.random.SeedSequence(1), 4)  # type: ignore[arg-type]


@pytest.mark.parametrize(("positions", "error"), [(10, IndexError), (-1, IndexError), ([0, 10], IndexError)])
def test_keyed_shuffle_refuses_positions_outside(positions: object, error: type) -> None:
    perm = KeyedPermutation(SeedTree(ENTROPY, (5,)), 10)
    with pytest.raises(error, match=r"positions must be in \[0, 10\)"):
        perm[positions]  # type: ignore[index]
    with pytest.raises(TypeError, match="positions must be integers, got dtype float64"):
        perm[np.array([1.0])]


# -- the node codec -------------------------------------------------------------------------

NODE = SeedTree(2**70 + 5, ("data", 7, b"\x00\xff"))
# The check field: hashlib.blake2b(text, digest_size=8, person=b"seedtree:node") of the text
# '["1180591620717411303429",["data",7,{"bytes":"00ff"}]]', computed once with hashlib.
NODE_JSON: dict[str, Any] = {
    "entropy": "1180591620717411303429",
    "path": ["data", 7, {"bytes": "00ff"}],
    "check": "e25c573db40b902e",
}


def test_node_codec_literal() -> None:
    assert node_to_json(NODE, check=True) == NODE_JSON
    assert node_to_json(NODE) == {k: v for k, v in NODE_JSON.items() if k != "check"}
    assert node_check(NODE) == NODE_JSON["check"]
    text = json.dumps([NODE_JSON["entropy"], NODE_JSON["path"]], separators=(",", ":"))
    assert hashlib.blake2b(text.encode(), digest_size=8, person=b"seedtree:node").hexdigest() == NODE_JSON["check"]
    assert node_from_json(NODE_JSON) == NODE
    assert node_from_json(json.loads(json.dumps(NODE_JSON))) == NODE
    # A root, and a non-ASCII key (written escaped): computed once the same way.
    assert node_check(SeedTree(0)) == "c9e34744fc22d289"
    assert node_check(SeedTree(7, ("\u00e9",))) == "3321e4c3f9ded7dc"


def test_node_codec_without_a_check_and_with_one_passed_apart() -> None:
    plain = {"entropy": NODE_JSON["entropy"], "path": NODE_JSON["path"]}
    assert node_from_json(plain) == NODE  # a file edited by hand may leave the check out
    assert node_from_json(plain, check=NODE_JSON["check"]) == NODE
    with pytest.raises(CodecError, match="does not match its entropy and path"):
        node_from_json(plain, check="0" * 16)
    # A check in the data wins over one passed apart.
    assert node_from_json(NODE_JSON, check="0" * 16) == NODE


@pytest.mark.parametrize(
    "damage",
    [
        {"entropy": "1180591620717411303428"},  # one digit of the entropy
        {"path": ["data", 8, {"bytes": "00ff"}]},  # an int key
        {"path": ["date", 7, {"bytes": "00ff"}]},  # a str key
        {"path": ["data", 7, {"bytes": "00fe"}]},  # a bytes key
        {"path": ["data", 7, "\x00\xff"]},  # bytes read as a str
        {"path": ["data", 7]},  # a key dropped
        {"path": ["data", 7, {"bytes": "00ff"}, 0]},  # a key added
        {"check": "e25c573db40b902f"},  # the check itself
        {"check": "E25C573DB40B902E"},  # the check in upper case
        {"check": ""},
        {"check": 0},
    ],
    ids=lambda damage: "-".join(damage),
)
def test_node_codec_catches_each_kind_of_damage(damage: dict[str, Any]) -> None:
    with pytest.raises(CodecError, match="does not match its entropy and path: the entry was damaged or edited"):
        node_from_json({**NODE_JSON, **damage})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "a node must be an object with 'entropy' and 'path', got \\[\\]"),
        ({"path": []}, "a node must be an object"),
        ({"entropy": "1"}, "a node must be an object"),
        ({"entropy": "-1", "path": []}, "entropy must be a non-negative decimal string, got '-1'"),
        ({"entropy": "١", "path": []}, "entropy must be a non-negative decimal string"),  # a non-ASCII digit
        ({"entropy": "", "path": []}, "entropy must be a non-negative decimal string"),
        ({"entropy": True, "path": []}, "entropy must be a non-negative decimal string, got True"),
        ({"entropy": -1, "path": []}, "entropy must be a non-negative decimal string, got -1"),
        ({"entropy": 1.0, "path": []}, "entropy must be a non-negative decimal string, got 1.0"),
        ({"entropy": "1", "path": "data"}, "a path must be a JSON list, got str"),
        ({"entropy": "1", "path": [{"bytes": "0g"}]}, "path key #0 has bytes that are not hex: '0g'"),
        ({"entropy": "1", "path": [{"bytes": 1}]}, "path key #0 {'bytes': 1} is not a key"),
        ({"entropy": "1", "path": [0, {"bytes": "00", "x": 1}]}, "path key #1 .* is not a key"),
        ({"entropy": "1", "path": [{"hex": "00"}]}, "path key #0 .* is not a key"),
    ],
)
def test_node_codec_refuses_malformed_values(data: object, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        node_from_json(data)


def test_node_codec_reads_hand_written_values() -> None:
    assert node_from_json({"entropy": 5, "path": []}) == SeedTree(5)
    assert node_from_json({"entropy": 0, "path": [0]}) == SeedTree(0, (0,))
    assert node_from_json({"entropy": "0012", "path": [{"bytes": ""}]}) == SeedTree(12, (b"",))
    with pytest.raises(ValueError, match=r"path key #1 \(4294967296\) is outside"):
        node_from_json({"entropy": "1", "path": [0, 2**32]})
    with pytest.raises(TypeError, match="path key #0 is the bool True"):
        node_from_json({"entropy": "1", "path": [True]})
    long = {"entropy": "x" * 200, "path": []}
    with pytest.raises(CodecError, match=r"got '" + "x" * 60):
        node_from_json(long)
    with pytest.raises(CodecError, match=r"got \{'entropy': 'xxx.*\.\.\.$"):
        node_from_json({"entropy": "x" * 200})


def test_node_codec_shortens_what_it_quotes_to_80_characters() -> None:
    # The message quotes the value's repr whole up to 80 characters, else its first 77 and "...".
    for length, quoted in [(76, None), (77, 77)]:
        value = ["x" * length]  # repr: length + 4 characters
        text = repr(value)
        with pytest.raises(CodecError) as caught:
            node_from_json(value)
        expected = text if quoted is None else text[:quoted] + "..."
        assert str(caught.value) == f"a node must be an object with 'entropy' and 'path', got {expected}"
        assert len(text) == length + 4 and len(expected) == 80


# -- value semantics the tests above rely on ---------------------------------------------------


def test_hash_follows_the_identity() -> None:
    paths: list[tuple[int | str, ...]] = [(), (1,), ("a",)]
    nodes = [SeedTree(e, p) for e in range(20) for p in paths]
    assert len({hash(n) for n in nodes}) == len(nodes)  # distinct values, distinct hashes here
    assert all(hash(n) == hash((n.entropy, n.path)) for n in nodes)
    assert hash(SeedTree(3) / "a") == hash(SeedTree(3, ("a",)))


def test_bit_generator_defaults_to_numpys_pcg64() -> None:
    node = SeedTree(ENTROPY, (2,))
    made = node.bit_generator()
    expected = np.random.PCG64(np.random.SeedSequence(ENTROPY, spawn_key=(2,)))
    assert type(made) is np.random.PCG64 and made.state == expected.state


def test_node_seed_pickles_without_a_spawn_count_until_it_spawns() -> None:
    seed = SeedTree(ENTROPY, (2,)).numpy().bit_generator.seed_seq
    assert isinstance(seed, NodeSeed)
    fresh = pickle.loads(pickle.dumps(seed))
    assert seed.__reduce__()[2] is None  # nothing but the node
    assert fresh.spawn_key == (2,) and fresh.n_children_spawned == 0
    seed.spawn(2)
    again = pickle.loads(pickle.dumps(seed))
    assert again.n_children_spawned == 2  # the stateful spawn count goes along, as NumPy's does
    expected = np.random.SeedSequence(ENTROPY, spawn_key=(2,))
    expected.spawn(2)
    assert again.spawn(1)[0].spawn_key == expected.spawn(1)[0].spawn_key == (2, 2)


def test_from_seed_sequence_refuses_other_entropy() -> None:
    ss = np.random.SeedSequence([1, 2])
    with pytest.raises(TypeError, match="^only SeedSequences with int entropy map onto a SeedTree$"):
        SeedTree.from_seed_sequence(ss)


# -- other consumers' words -------------------------------------------------------------------

# Node words [2**24 + 4, +4) of SeedTree(20240607, (3, 1)) (the JAX key data), computed once
# with NumPy alone: SeedSequence(20240607, spawn_key=(3, 1)).generate_state(2**24 + 8)[2**24 + 4:].
JAX_KEY_WORDS = [554371559, 117355047, 3487454866, 3261418561]


def test_random_seed_is_the_globals_key_as_a_128_bit_int() -> None:
    node = SeedTree(ENTROPY, (3, 1))
    values: list[int] = []
    caught, caller = warn_and_where(2, lambda: values.append(node.random_seed()))
    assert [w.category for w in caught] == [DeprecationWarning]
    assert str(caught[0].message) == (
        "SeedTree.random_seed() is deprecated: python's random now gets a whole state; use node.random() "
        "or node.python_random_state() (random.Random(node.random_seed()) is not node.random())"
    )
    # The four words [2**24, +4), little-endian (computed once as above).
    assert values == [35711984756092819310093883103048469641]
    # blamed on the caller's line, not on seedtree
    assert (caught[0].filename, caught[0].lineno) == caller
    assert trampolined(SeedTree.random_seed) or caller[0] == __file__


def test_random_state_is_numpys_mt19937_of_the_seed_sequence() -> None:
    node = SeedTree(ENTROPY, (3, 1))
    expected = np.random.RandomState(np.random.MT19937(np.random.SeedSequence(ENTROPY, spawn_key=(3, 1))))
    got = node.random_state()
    assert isinstance(got, np.random.RandomState)
    state, expected_state = got.get_state(legacy=False), expected.get_state(legacy=False)
    assert np.array_equal(state["state"]["key"], expected_state["state"]["key"])
    assert state["state"]["pos"] == expected_state["state"]["pos"]
    assert got.random_sample(3).tolist() == expected.random_sample(3).tolist()


def test_jax_key_data_are_the_node_words_after_the_globals_key() -> None:
    jax = pytest.importorskip("jax")
    node = SeedTree(ENTROPY, (3, 1))
    key = node.jax()
    assert jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    # threefry2x32 (also when impl is None) takes 2 words, rbg 4: words [2**24 + 4, ...).
    assert np.asarray(jax.random.key_data(key)).tolist() == JAX_KEY_WORDS[:2]
    assert np.asarray(jax.random.key_data(node.jax("threefry2x32"))).tolist() == JAX_KEY_WORDS[:2]
    assert np.asarray(jax.random.key_data(node.jax("rbg"))).reshape(-1).tolist() == JAX_KEY_WORDS
    with pytest.raises(TypeError, match="^impl must be a JAX PRNG implementation name such as 'rbg', got int$"):
        node.jax(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'nope' is not a JAX PRNG implementation"):
        node.jax("nope")


def test_jax_keys_larger_than_the_reserved_words_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("jax")
    node = SeedTree(ENTROPY, (3, 1))
    # No JAX implementation takes more than 4 words today; a future one larger than the 16
    # words seedtree reserves must be refused, not read into the next consumer's words.
    monkeypatch.setattr(tree_module, "_jax_key_shape", lambda impl: (17,))
    with pytest.raises(ValueError) as info:
        node.jax("threefry2x32")
    assert str(info.value) == "the JAX PRNG 'threefry2x32' takes 17 key words; seedtree reserves 16 per node"
    monkeypatch.setattr(tree_module, "_jax_key_shape", lambda impl: (16,))
    with pytest.raises(Exception) as info:  # 16 fits seedtree's words: JAX itself refuses the shape
        node.jax("threefry2x32")
    assert "seedtree reserves" not in str(info.value)


def test_jax_missing_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jax", None)  # import jax now raises ImportError
    with pytest.raises(ImportError) as info:
        SeedTree(ENTROPY).jax()
    assert str(info.value) == (
        "SeedTree.jax() needs the optional package 'jax', which is not installed: "
        "pip install 'seedtree[jax]'  (or: pip install jax)"
    )


# -- children --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "keys",
    [[4, 0, 2**32 - 1], range(3, 7), np.array([9, 1], dtype=np.uint32), np.array([[1, 2], [3, 4]]), ["a", b"b", 5]],
    ids=["list", "range", "array", "rows", "mixed"],
)
def test_children_are_the_nodes_one_step_below_with_their_words(keys: Any) -> None:
    root = SeedTree(ENTROPY, (3,))
    rows = [list(k) if isinstance(k, list) else [k] for k in (keys.tolist() if isinstance(keys, np.ndarray) else keys)]
    made = root.children(keys)
    assert [node.path for node in made] == [(3, *row) for row in rows]
    for node, row in zip(made, rows, strict=True):
        assert node.entropy == ENTROPY
        assert node.parent.path == (3, *row[:-1])
        if len(row) == 1:
            assert node.parent is root  # the link that lets a child reuse its parent's mixed state
        int_path = all(isinstance(k, int) for k in row)
        expected = _numpy_words(ENTROPY, (3, *row), 0, 8) if int_path else root.child(*row).generate_state(8)
        assert node.generate_state(8).tolist() == expected.tolist()
        assert node == root.child(*row) and node.spawn_key == root.child(*row).spawn_key


class OwnPCG64(np.random.PCG64):
    """A user's own bit generator class (seedtree knows its parent's seed request only)."""


@pytest.mark.parametrize("bit_generator", ["PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937", OwnPCG64])
@pytest.mark.parametrize("keys", [[3, 9], range(3, 5), np.array([[3, 1], [9, 2]])], ids=["list", "range", "rows"])
def test_generators_hand_each_bit_generator_its_words_without_making_its_node(bit_generator: Any, keys: Any) -> None:
    # What makes a ready Generator cost about a microsecond: the words of every child are derived
    # in one vectorised call and handed over as the bit generator's seed, so no child node is
    # made (NodeSeed only makes one when asked for more). Words of the wrong shape or dtype would
    # still give the right generator, through the node: only this shows they are handed over.
    root = SeedTree(ENTROPY, ("gens",))
    made = list(root.generators(keys, bit_generator))
    paths = [
        (k,) if isinstance(k, int) else tuple(k) for k in (keys.tolist() if isinstance(keys, np.ndarray) else keys)
    ]
    for gen, path in zip(made, paths, strict=True):
        seed = gen.bit_generator.seed_seq
        assert isinstance(seed, NodeSeed) and seed._node_ is None  # handed over: no node made
        assert (
            gen.bit_generator.random_raw(2).tolist()
            == root.child(*path).numpy(bit_generator).bit_generator.random_raw(2).tolist()
        )


def test_globals_words_of_no_words_is_empty() -> None:
    node = SeedTree(ENTROPY, (3, 1))
    assert node.globals_words(5, 0).shape == (0,) and node.globals_words(GLOBALS_WORDS, 0).shape == (0,)
    np.testing.assert_array_equal(node.globals_words(5, 2), node.globals_words()[5:7])


def test_expand_globals_takes_any_int_keys_and_lays_out_words_for_either_byte_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from seedtree.core.layout import expand_globals

    keys = SeedTree(ENTROPY).states(range(3), 4, WORDS_GLOBALS_KEY)
    expected = expand_globals(keys)
    np.testing.assert_array_equal(expand_globals(keys.astype(np.int64)), expected)  # converted, not reinterpreted
    # A big-endian machine holds each 64-bit output high word first. Pretending to be one here
    # runs that path on little-endian memory: the same outputs, each pair of words swapped.
    monkeypatch.setattr(sys, "byteorder", "big")
    swapped = expand_globals(keys)
    np.testing.assert_array_equal(swapped.reshape(-1, 2)[:, ::-1].reshape(swapped.shape), expected)


def test_node_seed_hands_over_its_words_only_when_they_are_what_is_asked() -> None:
    parent = SeedTree(ENTROPY, ("p",))
    prefix = parent.states([4], 8)[0].view(np.uint64)  # 4 uint64 words of parent / 4
    seed = NodeSeed(None, parent, 4, prefix)
    np.testing.assert_array_equal(seed.generate_state(8, np.uint32), (parent / 4).generate_state(8))  # not the prefix
    assert seed._node_ is not None  # asked for another dtype: the node itself was made
    seed = NodeSeed(None, parent, 4, prefix)
    assert seed.generate_state(2, np.uint64).tolist() == (parent / 4).generate_state(2, np.uint64).tolist()
    assert seed._node_ is not None  # another count: the same
    seed = NodeSeed(None, parent, 4, prefix)
    assert seed.generate_state(4, np.uint32).tolist() == (parent / 4).generate_state(4).tolist()  # as many, 32-bit
    seed = NodeSeed(None, parent, 4, prefix)
    assert seed.generate_state(4, np.uint64) is prefix and seed._node_ is None  # exactly the words: handed over
    assert seed.generate_state(4, np.uint64) is not prefix  # only once
    assert seed.generate_state(0).shape == (0,)  # and nothing of it is left to hand over
    seed = NodeSeed(None, parent, 4, prefix)
    assert seed.generate_state(4, "uint64") is prefix  # the dtype named another way


def test_uint64_seeds_pair_words_low_first_on_either_byte_order() -> None:
    """NumPy's generate_state(n, uint64) is w[2k] | w[2k+1] << 32 on every machine; so is
    seedtree's, whichever byte order the words are stored in (a big-endian machine's '>u4')."""
    sequence = np.random.SeedSequence(ENTROPY, spawn_key=(3,))
    words = sequence.generate_state(8)
    expected = sequence.generate_state(4, np.uint64).tolist()
    assert expected == [w0 | w1 << 32 for w0, w1 in zip(words[0::2].tolist(), words[1::2].tolist(), strict=True)]
    for stored in (words, words.astype(">u4"), words.astype("<u4")):
        got = as_uint64(stored)
        assert got.dtype == np.uint64 and got.tolist() == expected
    rows = np.stack([words, words[::-1]]).astype(">u4")  # rows of a batch (SeedTree.generators)
    assert as_uint64(rows).tolist() == [expected, as_uint64(words[::-1].copy()).tolist()]
    node = SeedTree(ENTROPY, (3,))
    assert node.generate_state(4, np.uint64).tolist() == expected


@pytest.mark.parametrize("start", [0, 5, 1 << 20])
def test_rows_of_no_keys_are_the_node_itself(start: int) -> None:
    node = SeedTree(ENTROPY, ("a",))
    got = node.states(np.zeros((3, 0), dtype=np.uint32), 4, start)
    assert got.dtype == np.uint32 and got.tolist() == [node.words(start, 4).tolist()] * 3
    pool, _ = mixing.absorb_many(node._mix_state(), np.zeros((3, 0), dtype=np.uint32))
    assert [p.dtype for p in pool] == [np.dtype(np.uint32)] * 4  # pool words are uint32 arrays, as documented
    assert [p.tolist() for p in pool] == [[w] * 3 for w in node.pool]


def test_expand_at_fills_the_out_it_is_given_or_refuses_it() -> None:
    state = mixing.absorb_many(SeedTree(ENTROPY)._mix_state(), np.array([1, 2], np.uint32))[0]
    out = np.empty((2, 8), np.uint32)
    assert mixing.expand_at(state, 3, 8, out) is out  # a multiple of the pool: filled in place
    expected = [(SeedTree(ENTROPY) / k).words(3, 8).tolist() for k in (1, 2)]
    assert out.tolist() == expected
    assert mixing.expand_at(state, 3, 6).tolist() == [row[:6] for row in expected]  # a trimmed buffer
    assert mixing.expand_at(list(state), 3, 8).tolist() == expected  # four arrays of pool words too
    for bad in (np.empty((2, 4), np.uint32), np.empty((2, 8), np.int32), np.empty((8, 2), np.uint32).T):
        with pytest.raises(ValueError) as info:
            mixing.expand_at(state, 3, 8, bad)
        assert str(info.value) == "out must be a C-contiguous uint32 array of shape (2, 8)"
