"""seedtree.mixing against numpy.random.SeedSequence itself, word for word."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from seedtree.core import mixing

WORD = hs.integers(0, 2**32 - 1)
ENTROPY = hs.one_of(
    hs.integers(0, 2**32 - 1), hs.integers(2**32, 2**64), hs.integers(2**64, 2**128), hs.integers(2**128, 2**300)
)


def _pool(entropy: int, spawn_key: tuple[int, ...] = ()) -> tuple[int, ...]:
    return tuple(int(w) for w in np.random.SeedSequence(entropy, spawn_key=spawn_key).pool)


@pytest.mark.parametrize(
    ("value", "words"),
    [(0, (0,)), (1, (1,)), (2**32 - 1, (2**32 - 1,)), (2**32, (0, 1)), (2**64 + 5, (5, 0, 1))],
)
def test_int_to_words_is_little_endian_32_bit(value: int, words: tuple[int, ...]) -> None:
    assert mixing.int_to_words(value) == words


@settings(max_examples=300, deadline=None)
@given(entropy=ENTROPY, spawn_key=hs.lists(WORD, max_size=6).map(tuple))
def test_incremental_absorb_equals_seedsequence_pool(entropy: int, spawn_key: tuple[int, ...]) -> None:
    # NumPy zero-pads a short run entropy to the pool size only when there is a spawn key;
    # initial_state always pads, which hashes the same when there is none.
    state = mixing.initial_state(mixing.int_to_words(entropy))
    for word in spawn_key:  # one word at a time: a parent's state summarises its whole path
        state = mixing.absorb(state, (word,))
    assert state[0] == _pool(entropy, spawn_key)


@settings(max_examples=200, deadline=None)
@given(entropy=ENTROPY, start=hs.integers(0, 40), count=hs.integers(0, 40))
def test_expand_is_generate_state_from_any_offset(entropy: int, start: int, count: int) -> None:
    ss = np.random.SeedSequence(entropy)
    pool = mixing.initial_state(mixing.int_to_words(entropy))[0]
    got = mixing.expand(pool, start, count)
    assert got.dtype == np.uint32
    np.testing.assert_array_equal(got, ss.generate_state(start + count)[start:])


def test_expand_far_offset_matches_the_hash_schedule() -> None:
    # An offset of 2**24 words is too far to compare against generate_state directly;
    # check it against a window computed the slow way from a nearby start instead.
    pool = mixing.initial_state((7,))[0]
    start = 1 << 24
    near = mixing.expand(pool, start - 3, 8)
    np.testing.assert_array_equal(near[3:], mixing.expand(pool, start, 5))


@settings(max_examples=150, deadline=None)
@given(
    entropy=ENTROPY,
    prefix=hs.lists(WORD, max_size=3).map(tuple),
    keys=hs.lists(hs.lists(WORD, min_size=1, max_size=3), min_size=1, max_size=12).filter(
        lambda rows: len({len(r) for r in rows}) == 1
    ),
    n_words=hs.integers(1, 10),
)
def test_vectorised_derivation_equals_per_child_seedsequence(
    entropy: int, prefix: tuple[int, ...], keys: list[list[int]], n_words: int
) -> None:
    parent = mixing.initial_state(mixing.int_to_words(entropy))
    parent = mixing.absorb(parent, prefix)
    arr = np.array(keys, dtype=np.uint32)
    expected = np.stack(
        [np.random.SeedSequence(entropy, spawn_key=prefix + tuple(row)).generate_state(n_words) for row in keys]
    )
    np.testing.assert_array_equal(mixing.derive_states(parent, arr, n_words), expected)
    pools, _ = mixing.absorb_many(parent, arr)
    np.testing.assert_array_equal(mixing.expand_at(pools, 0, n_words), expected)
    if arr.shape[1] == 1:  # 1-D keys mean one key level
        np.testing.assert_array_equal(mixing.derive_states(parent, arr[:, 0], n_words), expected)


def test_block_boundaries_and_strided_key_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    # A tiny block forces many blocks, a short last block and non-contiguous key columns.
    monkeypatch.setattr(mixing, "BLOCK", 7)
    rng = np.random.default_rng(5)
    keys = rng.integers(0, 2**32, size=(45, 3), dtype=np.uint32)
    parent = mixing.initial_state(mixing.int_to_words(2**70 + 3))
    expected = np.stack(
        [np.random.SeedSequence(2**70 + 3, spawn_key=tuple(int(k) for k in row)).generate_state(6) for row in keys]
    )
    got = mixing.derive_states(parent, keys, 6)
    assert got.shape == (45, 6) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)
    # Same children whatever the block size.
    monkeypatch.setattr(mixing, "BLOCK", 32768)
    np.testing.assert_array_equal(mixing.derive_states(parent, keys, 6), expected)


def test_empty_and_depth_zero_inputs() -> None:
    parent = mixing.initial_state((1,))
    assert mixing.derive_states(parent, np.empty(0, np.uint32), 4).shape == (0, 4)
    assert mixing.derive_states(parent, np.empty((0, 2), np.uint32), 3).shape == (0, 3)
    same = mixing.derive_states(parent, np.empty((3, 0), np.uint32), 5)
    np.testing.assert_array_equal(same, np.tile(np.random.SeedSequence(1).generate_state(5), (3, 1)))


def test_no_overflow_warnings_from_uint32_arithmetic() -> None:
    # Wrapping multiplication is the point; NumPy must not warn about it (scalar maths warns).
    parent = mixing.initial_state((2**32 - 1, 2**32 - 1))
    with np.errstate(all="raise"):
        mixing.derive_states(parent, np.array([[2**32 - 1, 0]], np.uint32), 9)
        mixing.expand(parent[0], 3, 9)
