"""Path keys: every bad key is refused with a message naming it, its position and the fix;
str and bytes keys never alias int paths or each other."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from seedtree import SeedTree
from seedtree.core.codec import path_from_json, path_to_json
from seedtree.core.keys import check_int_keys, check_key, key_words

BAD_KEYS = [
    (2**32, ValueError, r"path key #2 \(4294967296\) is outside \[0, 2\*\*32\).*alias.*str\(k\)"),
    (2**64 + 1, ValueError, r"path key #2 \(18446744073709551617\) is outside \[0, 2\*\*32\)"),
    (-1, ValueError, r"path key #2 \(-1\) is outside \[0, 2\*\*32\).*Split it"),
    (np.int64(-5), ValueError, r"path key #2 \(-5\) is outside"),
    (True, TypeError, r"path key #2 is the bool True; bools are not keys \(True would alias 1\).*int\(flag\)"),
    (False, TypeError, r"path key #2 is the bool False"),
    (np.bool_(True), TypeError, r"path key #2 is the bool (np\.)?(True|bool_\(True\)).*bools are not keys"),
    (1.5, TypeError, r"path key #2 \(1\.5\) has type float; keys are ints in \[0, 2\*\*32\), str or bytes.*str\(x\)"),
    (2.0, TypeError, r"path key #2 \(2\.0\) has type float"),
    (np.float32(3), TypeError, r"path key #2 .* has type float32"),
    (None, TypeError, r"path key #2 \(None\) has type NoneType"),
    (object(), TypeError, r"path key #2 \(<object object at .*>\) has type object"),
    ((1, 2), TypeError, r"path key #2 \(\(1, 2\)\) has type tuple"),
]


@pytest.mark.parametrize(("key", "error", "message"), BAD_KEYS, ids=[repr(k[0])[:20] for k in BAD_KEYS])
def test_bad_keys_are_refused_everywhere(key: object, error: type, message: str) -> None:
    root = SeedTree(3)
    with pytest.raises(error, match=message):
        root / "a" / 0 / key
    with pytest.raises(error, match=message):
        root.child("a", 0, key)
    with pytest.raises(error, match=message):
        SeedTree(3, ("a", 0, key))
    with pytest.raises(error, match=message):
        check_key(key, 2)
    with pytest.raises(error, match=message.replace("#2", "#1")):
        (root / "a").states([0, key])  # a list of keys: the child level is position 1
    with pytest.raises(error, match=message.replace("#2", "#1")):
        (root / "a").generators([0, 7, key])


def test_numpy_would_alias_what_seedtree_refuses() -> None:
    # The reason for the range check: NumPy splits a big int into 32-bit words.
    big = np.random.SeedSequence(1, spawn_key=(2**32,)).generate_state(4)
    np.testing.assert_array_equal(big, np.random.SeedSequence(1, spawn_key=(0, 1)).generate_state(4))
    with pytest.raises(ValueError, match="outside"):
        SeedTree(1) / 2**32


def test_good_keys_are_canonical() -> None:
    assert check_key(np.uint32(7), 0) == 7 and type(check_key(np.uint32(7), 0)) is int
    assert check_key(np.int64(2**32 - 1), 0) == 2**32 - 1
    assert check_key(bytearray(b"ab"), 0) == b"ab" and type(check_key(bytearray(b"ab"), 0)) is bytes
    assert check_key(memoryview(b"ab"), 0) == b"ab"
    assert SeedTree(1) / np.uint8(3) == SeedTree(1) / 3
    assert hash(SeedTree(1) / np.uint8(3)) == hash(SeedTree(1) / 3)


def test_path_must_be_a_sequence_not_a_bare_str() -> None:
    with pytest.raises(TypeError, match="path must be a sequence of keys"):
        SeedTree(1, "data")
    with pytest.raises(TypeError, match="path must be a sequence of keys"):
        SeedTree(1, b"data")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("a",), (b"a",)),
        (("",), (b"",)),
        (("1",), (1,)),
        (("0",), (0,)),
        (("ab",), ("a", "b")),
        ((b"ab",), (b"a", b"b")),
        (("a", 1), (1, "a")),
        (("a",), (0, 0, 0, 0)),
        (("é",), ("e\u0301",)),  # no Unicode normalisation: different strings, different keys
        (("a",), ("A",)),
    ],
)
def test_distinct_paths_give_distinct_streams(a: tuple, b: tuple) -> None:
    x, y = SeedTree(11, a), SeedTree(11, b)
    assert x != y
    assert x.spawn_key != y.spawn_key
    assert x.pool != y.pool
    assert x.numpy().integers(0, 2**63) != y.numpy().integers(0, 2**63)


def test_str_keys_never_collide_with_small_int_paths() -> None:
    # A str key is four hash words: for it to alias an int path, that path would have to
    # spell out its 128-bit hash. Check a few thousand names against every int path a
    # program plausibly uses (four words each below 2**20): none is even close.
    words = np.array([key_words(f"name-{i}") for i in range(5000)] + [key_words(str(i)) for i in range(5000)])
    assert words.shape == (10000, 4)
    assert (words.max(axis=1) >= 2**20).all()
    assert len({tuple(w) for w in words.tolist()}) == 10000


def test_str_and_bytes_keys_use_distinct_personalisations() -> None:
    assert key_words("a") != key_words(b"a")
    assert key_words("a") == key_words("a")  # stable: a pure function of the key
    # The documented encoding, pinned (changing it would change every str-keyed stream):
    # BLAKE2b-128 of the UTF-8 bytes, personalised, read as four little-endian words.
    digest = hashlib.blake2b("dätä".encode(), digest_size=16, person=b"seedtree:str").digest()
    assert key_words("dätä") == tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))
    digest = hashlib.blake2b(b"\x00", digest_size=16, person=b"seedtree:bytes").digest()
    assert key_words(b"\x00") == tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))
    assert key_words("\ud800") != key_words("")  # lone surrogates are keys too, not errors
    assert all(0 <= w < 2**32 for w in key_words("x" * 10000))


@pytest.mark.parametrize(
    ("keys", "error", "message"),
    [
        (np.array([0.5, 1.0]), TypeError, r"integer array in \[0, 2\*\*32\), got dtype float64"),
        (np.array([True, False]), TypeError, r"integer array in \[0, 2\*\*32\), got dtype bool"),
        (np.array(["a", "b"]), TypeError, r"for str keys derive one child at a time"),
        (np.array([b"a"]), TypeError, r"for str keys derive one child at a time"),
        (np.array([1, "a"], dtype=object), TypeError, r"for str keys derive one child at a time"),
        (np.array([[[1]]]), ValueError, r"keys must have shape \(n,\) or \(n, depth\), got \(1, 1, 1\)"),
        (np.array([1, -1]), ValueError, r"path key #4 \(-1\) is outside"),
        (np.array([1, 2**32]), ValueError, r"path key #4 \(4294967296\) is outside"),
        (np.array([[1, 2], [3, 2**40]]), ValueError, r"path key #5 \(1099511627776\) is outside"),
        (np.array([[1, -7], [3, 4]], dtype=np.int8), ValueError, r"path key #5 \(-7\) is outside"),
        (np.array([2**63], dtype=np.uint64), ValueError, r"path key #4 \(9223372036854775808\) is outside"),
    ],
)
def test_bad_key_arrays_are_refused(keys: np.ndarray, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        check_int_keys(keys, 4)
    node = SeedTree(1, (0, 0, 0, 0))  # path length 4: its children's keys are at position 4
    with pytest.raises(error, match=message):
        node.states(keys)
    with pytest.raises(error, match=message):
        node.generators(keys)  # refused when called, not at the first next()


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (range(-1, 3), r"path key #0 \(-1\) is outside"),
        (range(2**32 - 2, 2**32 + 1), r"path key #0 \(4294967296\) is outside"),
        (range(5, -2, -1), r"path key #0 \(-1\) is outside"),
        ([1, 2**70], r"path key #0 \(1180591620717411303424\) is outside"),
        ([-(2**70), 3], r"path key #0 \(-1180591620717411303424\) is outside"),
        ([1, 2.5], r"path key #0 \(2\.5\) has type float"),
        (["a", None], r"path key #0 \(None\) has type NoneType"),
        ([0, np.bool_(False)], r"path key #0 is the bool"),
    ],
)
def test_bad_key_ranges_and_lists_name_the_key(keys: object, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        SeedTree(1).states(keys)


def test_states_validates_n_words() -> None:
    for bad in (0, -1, True, 2.0, "4"):
        with pytest.raises(ValueError, match="n_words must be an int of at least 1"):
            SeedTree(1).states([1], n_words=bad)


def test_path_json_round_trip_and_errors() -> None:
    path = (0, 2**32 - 1, "data", "", b"\x00\xff", "ü")
    as_json = path_to_json(path)
    assert as_json == [0, 2**32 - 1, "data", "", {"bytes": "00ff"}, "ü"]
    assert path_from_json(as_json) == path
    with pytest.raises(ValueError, match="a path must be a JSON list, got dict"):
        path_from_json({"a": 1})
    with pytest.raises(ValueError, match=re.escape("path key #1 {'hex': '00'} is not a key")):
        path_from_json([1, {"hex": "00"}])
    with pytest.raises(ValueError, match=r"path key #0 \(4294967296\) is outside"):
        path_from_json([2**32])
    with pytest.raises(TypeError, match="path key #2 is the bool True"):
        path_from_json([1, 2, True])
    with pytest.raises(TypeError, match=r"path key #0 \(1\.0\) has type float"):
        path_from_json([1.0])
