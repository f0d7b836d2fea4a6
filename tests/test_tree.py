"""SeedTree: NumPy equivalence bit for bit (property-based), vectorised derivation,
value semantics (pickle, hash, eq), full-width torch seeding, and threads."""

from __future__ import annotations

import pathlib
import pickle
import random
import threading

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as hs

import seedtree as st
from seedtree import SeedTree
from seedtree.core import mixing
from seedtree.core.keys import key_words
from seedtree.core.layout import MT_WORDS, WORDS_CUDA, WORDS_NUMPY_GLOBAL, WORDS_RANDOM, WORDS_TORCH_CPU

KEY = hs.integers(0, 2**32 - 1)
SMALL_KEY = hs.integers(0, 1000)
ENTROPY = hs.one_of(
    hs.integers(0, 2**32 - 1),
    hs.integers(0, 2**64 - 1),
    hs.integers(2**64, 2**128 - 1),  # above 2**64: three or four words
    hs.integers(2**128, 2**256),  # above 2**128: more words than the pool holds
)
PATH = hs.lists(hs.one_of(KEY, SMALL_KEY), min_size=0, max_size=6).map(tuple)
BIT_GENERATORS = ["PCG64", "SFC64", "Philox", "PCG64DXSM", "MT19937"]
NO_GPU = "no CUDA device on this machine (torch.cuda.is_available() is False)"


def _numpy_generator(ss: np.random.SeedSequence, name: str = "PCG64") -> np.random.Generator:
    return np.random.Generator(getattr(np.random, name)(ss))


def _draws(gen: np.random.Generator) -> tuple:
    # Raw words of the bit generator plus a few derived draws (doubles, normals, bounded ints).
    raw = gen.bit_generator.random_raw(3).tolist()
    return raw, gen.random(2).tolist(), gen.standard_normal(2).tolist(), gen.integers(0, 1000, 3).tolist()


# -- NumPy equivalence, property-based ------------------------------------------------------


@settings(max_examples=700, deadline=None)
@given(entropy=ENTROPY, path=PATH)
def test_seed_sequence_and_pcg64_equal_numpy(entropy: int, path: tuple[int, ...]) -> None:
    node = SeedTree(entropy, path)
    ss = np.random.SeedSequence(entropy, spawn_key=path)
    mine = node.seed_sequence()
    assert (mine.entropy, mine.spawn_key) == (entropy, path)
    assert node.pool == tuple(int(w) for w in ss.pool)
    assert node.spawn_key == path
    np.testing.assert_array_equal(node.generate_state(9), ss.generate_state(9))
    np.testing.assert_array_equal(node.generate_state(3, np.uint64), ss.generate_state(3, np.uint64))
    assert _draws(node.numpy()) == _draws(np.random.default_rng(ss))
    # Built step by step from the root (cached parent states) it is the same node.
    assert SeedTree(entropy).child(*path).pool == node.pool


@settings(max_examples=150, deadline=None)
@given(entropy=ENTROPY, path=PATH, name=hs.sampled_from(BIT_GENERATORS))
def test_other_bit_generators_equal_numpy(entropy: int, path: tuple[int, ...], name: str) -> None:
    node = SeedTree(entropy, path)
    ss = np.random.SeedSequence(entropy, spawn_key=path)
    assert _draws(node.numpy(name)) == _draws(_numpy_generator(ss, name))
    assert node.bit_generator(name).random_raw(4).tolist() == getattr(np.random, name)(ss).random_raw(4).tolist()


@settings(max_examples=200, deadline=None)
@given(entropy=ENTROPY, path=hs.lists(KEY, max_size=3).map(tuple), n=hs.integers(0, 12))
def test_spawn_equals_numpy_spawn(entropy: int, path: tuple[int, ...], n: int) -> None:
    node = SeedTree(entropy, path)
    kids = node.spawn(n)
    theirs = np.random.SeedSequence(entropy, spawn_key=path).spawn(n)
    assert len(kids) == n
    for kid, ss in zip(kids, theirs, strict=True):
        assert kid.spawn_key == ss.spawn_key
        np.testing.assert_array_equal(kid.generate_state(4), ss.generate_state(4))
    assert node.spawn(n) == kids  # stateless: the same children every time


@settings(max_examples=300, deadline=None)
@given(
    entropy=ENTROPY,
    prefix=hs.lists(KEY, max_size=3).map(tuple),
    keys=hs.lists(KEY, max_size=25),
    n_words=hs.integers(1, 10),
    form=hs.sampled_from(["uint32", "int64", "list", "uint64"]),
)
def test_states_equal_per_child_generate_state(
    entropy: int, prefix: tuple[int, ...], keys: list[int], n_words: int, form: str
) -> None:
    node = SeedTree(entropy, prefix)
    given_keys = keys if form == "list" else np.array(keys, dtype=form)
    got = node.states(given_keys, n_words)
    assert got.dtype == np.uint32 and got.shape == (len(keys), n_words) and got.flags.c_contiguous
    for row, k in zip(got, keys, strict=True):
        expected = np.random.SeedSequence(entropy, spawn_key=prefix + (k,)).generate_state(n_words)
        np.testing.assert_array_equal(row, expected)


@settings(max_examples=150, deadline=None)
@given(
    entropy=ENTROPY,
    start=hs.integers(0, 2**32 - 40),
    length=hs.integers(0, 30),
    step=hs.integers(1, 3),
    n_words=hs.integers(1, 10),
)
def test_states_of_a_range(entropy: int, start: int, length: int, step: int, n_words: int) -> None:
    keys = range(start, start + length, step)
    got = SeedTree(entropy).states(keys, n_words)
    expected = [np.random.SeedSequence(entropy, spawn_key=(k,)).generate_state(n_words) for k in keys]
    np.testing.assert_array_equal(got, np.array(expected, dtype=np.uint32).reshape(len(keys), n_words))


@settings(max_examples=150, deadline=None)
@given(
    entropy=ENTROPY,
    rows=hs.integers(0, 12),
    depth=hs.integers(1, 4),
    n_words=hs.integers(1, 10),
    seed=hs.integers(0, 2**32 - 1),
)
def test_states_of_2d_keys_derive_one_level_per_column(
    entropy: int, rows: int, depth: int, n_words: int, seed: int
) -> None:
    keys = np.random.default_rng(seed).integers(0, 2**32, size=(rows, depth), dtype=np.uint32)
    got = SeedTree(entropy, (5,)).states(keys, n_words)
    assert got.shape == (rows, n_words)
    for row, k in zip(got, keys.tolist(), strict=True):
        np.testing.assert_array_equal(row, np.random.SeedSequence(entropy, spawn_key=(5, *k)).generate_state(n_words))
    # The same as a Fortran-ordered (strided) key array.
    np.testing.assert_array_equal(SeedTree(entropy, (5,)).states(np.asfortranarray(keys), n_words), got)


@settings(max_examples=100, deadline=None)
@given(
    entropy=ENTROPY,
    keys=hs.lists(hs.one_of(KEY, hs.text(max_size=5), hs.binary(max_size=5)), max_size=10),
    n_words=hs.integers(1, 10),
)
def test_states_with_str_and_bytes_keys(entropy: int, keys: list, n_words: int) -> None:
    got = SeedTree(entropy, ("p",)).states(iter(keys), n_words)  # any iterable, even one-shot
    assert got.shape == (len(keys), n_words)
    for row, k in zip(got, keys, strict=True):
        node = SeedTree(entropy, ("p", k))
        ss = np.random.SeedSequence(entropy, spawn_key=node.spawn_key)  # str paths rebuild in NumPy too
        np.testing.assert_array_equal(row, ss.generate_state(n_words))
        assert node.spawn_key == key_words("p") + key_words(k)


@settings(max_examples=120, deadline=None)
@given(
    entropy=ENTROPY,
    keys=hs.lists(KEY, max_size=12),
    name=hs.sampled_from(BIT_GENERATORS),
    chunk=hs.integers(1, 5),
    form=hs.sampled_from(["array", "list", "range"]),
)
def test_generators_equal_per_node_numpy(entropy: int, keys: list[int], name: str, chunk: int, form: str) -> None:
    root = SeedTree(entropy, (9,))
    if form == "range":
        start = min(keys[0] if keys else 0, 2**32 - len(keys))
        given_keys = range(start, start + len(keys))
        keys = list(given_keys)
    else:
        given_keys = np.array(keys, dtype=np.int64) if form == "array" else keys
    gens = list(root.generators(given_keys, name, chunk=chunk))
    assert len(gens) == len(keys)
    for gen, k in zip(gens, keys, strict=True):
        assert _draws(gen) == _draws((root / k).numpy(name))
        assert _draws(_numpy_generator(np.random.SeedSequence(entropy, spawn_key=(9, k)), name)) == _draws(
            (root / k).numpy(name)
        )


def test_generators_with_2d_and_str_keys() -> None:
    root = SeedTree(77)
    keys = np.array([[1, 2], [3, 4], [3, 5]], dtype=np.uint32)
    for gen, (a, b) in zip(root.generators(keys, chunk=2), keys.tolist(), strict=True):
        assert _draws(gen) == _draws((root / a / b).numpy())
        assert gen.bit_generator.seed_seq.spawn_key == (a, b)
    for gen, k in zip(root.generators(["x", b"x", 3]), ["x", b"x", 3], strict=True):
        assert _draws(gen) == _draws((root / k).numpy())


@pytest.mark.parametrize("name", ["PCG64", "SFC64", "MT19937", "Philox"])
def test_child_generators_make_each_childs_numpy_when_asked(name: str) -> None:
    root = SeedTree(2**70 + 5, (9,))
    cases: list[tuple[object, list[SeedTree]]] = [
        ([7, 0, 2**32 - 1, 7], [root / 7, root / 0, root / (2**32 - 1), root / 7]),
        (np.array([[1, 2], [3, 4]], dtype=np.int64), [root / 1 / 2, root / 3 / 4]),
        (["x", b"x", 3], [root / "x", root / b"x", root / 3]),
        (range(5, 8), [root / 5, root / 6, root / 7]),
    ]
    for keys, nodes in cases:
        made = root.child_generators(keys, name)  # type: ignore[arg-type]
        assert len(made) == len(nodes)
        for i in (len(nodes) - 1, 0, *range(len(nodes))):  # any order, any number of times
            gen = made.make(i)
            # Built from the words derived for it: the child's node is not made (but for
            # str keys, whose words are the node's own).
            assert (gen.bit_generator.seed_seq._node_ is None) == (nodes is not cases[2][1])
            assert type(gen.bit_generator).__name__ == name
            assert _draws(gen) == _draws(nodes[i].numpy(name))
            assert gen.bit_generator.seed_seq.spawn_key == nodes[i].spawn_key
        assert made.make(0) is not made.make(0)  # a new generator each time: never shared
        gens = list(made)
        assert [g.bit_generator.seed_seq._node_ is None for g in gens] == [nodes is not cases[2][1]] * len(nodes)
        assert [g.bit_generator.seed_seq.spawn_key for g in gens] == [node.spawn_key for node in nodes]
        assert [_draws(g) for g in gens] == [_draws(node.numpy(name)) for node in nodes]


def test_child_generators_of_a_bit_generator_subclass_read_four_64_bit_words() -> None:
    class Sub(np.random.PCG64):  # not in SEED_REQUEST: seeded like NumPy seeds any, 4 x uint64
        pass

    root = SeedTree(11)
    gen = root.child_generators([5, 6], Sub).make(1)
    assert type(gen.bit_generator) is Sub and gen.bit_generator.seed_seq._node_ is None
    assert _draws(gen) == _draws(np.random.Generator(Sub(np.random.SeedSequence(11, spawn_key=(6,)))))


def test_child_generators_refuse_bad_keys_when_called() -> None:
    root = SeedTree(3) / "a"
    for bad, match in (
        ([1, -1], "#1 \\(-1\\) is outside"),
        ([2**32], "#1 \\(4294967296\\) is outside"),
        ([True], "bool"),
        ([1.0], "float"),
    ):
        with pytest.raises((ValueError, TypeError), match=match):
            root.child_generators(bad)
    with pytest.raises(ValueError, match="unknown bit generator"):
        root.child_generators([1], "PCG65")


def test_generators_over_a_huge_range_are_lazy() -> None:
    # 2**32 - 1 keys would need 34 GB as one int64 array: a chunk at a time it is nothing.
    root = SeedTree(123)
    gens = root.generators(range(2**32 - 1), chunk=3)
    firsts = [next(gens).integers(0, 2**63) for _ in range(7)]
    assert firsts == [(root / k).numpy().integers(0, 2**63) for k in range(7)]
    last = next(root.generators(range(2**32 - 1, 2**32 - 1 - 2**31, -1)))
    assert last.random() == (root / (2**32 - 1)).numpy().random()


def test_generator_seed_sequence_behaves_like_numpys() -> None:
    root = SeedTree(2**90 + 1)
    gen = next(root.generators([4]))
    ours = gen.bit_generator.seed_seq
    ref = np.random.SeedSequence(2**90 + 1, spawn_key=(4,))
    assert (ours.entropy, ours.spawn_key, ours.pool_size) == (ref.entropy, ref.spawn_key, ref.pool_size)
    # The precomputed words are handed out once; later requests still get the right words.
    np.testing.assert_array_equal(ours.generate_state(4, np.uint64), ref.generate_state(4, np.uint64))
    np.testing.assert_array_equal(ours.generate_state(700), ref.generate_state(700))
    with pytest.raises(ValueError, match="only support uint32 or uint64"):
        ours.generate_state(2, np.int16)
    # Spawning from a generator is NumPy's (stateful) spawn of the same SeedSequence.
    theirs = np.random.default_rng(ref)
    for _ in range(2):
        assert [_draws(g) for g in gen.spawn(2)] == [_draws(g) for g in theirs.spawn(2)]
    assert ours.n_children_spawned == 4
    # A Generator pickles (numpy keeps the seed sequence) and draws on where it was.
    gen.random(5)
    theirs_after = pickle.loads(pickle.dumps(gen))
    assert _draws(theirs_after) == _draws(gen)
    assert theirs_after.bit_generator.seed_seq.spawn_key == (4,)
    assert theirs_after.bit_generator.seed_seq.n_children_spawned == 4  # the spawn count travels too


def test_a_path_thousands_of_levels_deep() -> None:
    # Built one "/" at a time (each node keeps its parent): no recursion limit in the way.
    node = SeedTree(2**65 + 1)
    for i in range(3000):
        node = node / (i * 7919 % 2**32)
    ss = np.random.SeedSequence(2**65 + 1, spawn_key=tuple(i * 7919 % 2**32 for i in range(3000)))
    np.testing.assert_array_equal(node.generate_state(4), ss.generate_state(4))
    parent = np.random.SeedSequence(2**65 + 1, spawn_key=ss.spawn_key[:-1])
    np.testing.assert_array_equal(node.parent.generate_state(4), parent.generate_state(4))
    assert node.spawn_key == ss.spawn_key


def test_states_large_n_is_numpy_bit_for_bit_across_blocks() -> None:
    root = SeedTree(2**100 + 12345)
    keys = np.arange(70_000, dtype=np.uint32) * 61_333  # > two 32768-row blocks, spread-out keys
    got = root.states(keys, 5)
    for i in [0, 1, 32767, 32768, 32769, 65535, 65536, 69_999]:
        ss = np.random.SeedSequence(2**100 + 12345, spawn_key=(int(keys[i]),))
        np.testing.assert_array_equal(got[i], ss.generate_state(5))
    assert len({tuple(r) for r in got.tolist()}) == len(keys)  # no duplicated child


# -- value semantics ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "node",
    [
        SeedTree(0),
        SeedTree(42) / 3 / 1,
        SeedTree(2**200 + 7) / "data" / b"\x00" / 7,
        SeedTree(2**128 - 1).child(*range(6)),
    ],
    ids=["root", "int-path", "str-bytes-path", "deep"],
)
def test_pickle_round_trip_is_small_and_equal(node: SeedTree) -> None:
    assert len(node.pool) == 4  # fills the caches: they must not be pickled
    data = pickle.dumps(node, protocol=pickle.HIGHEST_PROTOCOL)
    assert len(data) < 120 + 8 * len(node.path)  # entropy and path: a few ints, no parent chain, no arrays
    back = pickle.loads(data)
    assert back == node and hash(back) == hash(node) and back is not node
    assert back.path == node.path and back.entropy == node.entropy
    assert _draws(back.numpy()) == _draws(node.numpy())


def test_equality_and_hash() -> None:
    a = SeedTree(5) / 1 / "x"
    b = SeedTree(5, (1, "x"))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != SeedTree(6, (1, "x")) and a != SeedTree(5, (1, b"x")) and a != SeedTree(5, ("x", 1))
    assert SeedTree(5) != 5 and (SeedTree(5) == 5) is False
    assert (a.__eq__(5)) is NotImplemented


def test_immutable() -> None:
    node = SeedTree(1) / 2
    with pytest.raises(AttributeError):
        node.entropy = 3
    with pytest.raises(AttributeError):
        node.path = ()
    with pytest.raises(AttributeError):
        node.extra = 1  # slots: no stray attributes


def test_identity_accessors() -> None:
    root = SeedTree(8)
    node = root / "data" / 7 / b"\x01"
    assert node.parent == root / "data" / 7 and node.parent.parent.parent == root and root.parent is None
    assert SeedTree(8, ("data", 7)).parent == root / "data"  # no cached parent: rebuilt
    assert node.root == root and node.name == "data/7/b'\\x01'" and root.name == ""
    assert repr(root) == "SeedTree(8)" and repr(root / 1) == "SeedTree(8, path=(1,))"
    assert eval(repr(node), {"SeedTree": SeedTree}) == node
    assert root.child() == root and root.child("a", 1) == root / "a" / 1


def test_entropy_validation() -> None:
    for bad, error, message in [
        (-1, ValueError, r"entropy must be non-negative, got -1"),
        (-(2**70), ValueError, r"entropy must be non-negative"),
        (1.0, TypeError, r"entropy must be a non-negative int \(any size\), got float 1\.0"),
        (True, TypeError, r"got bool True"),
        (np.bool_(False), TypeError, r"entropy must be a non-negative int"),
        ("42", TypeError, r"got str '42'"),
        (np.random.SeedSequence(1), TypeError, r"SeedTree\.from_seed_sequence\(ss\)"),
    ]:
        with pytest.raises(error, match=message):
            SeedTree(bad)
    assert SeedTree(np.uint64(2**63)).entropy == 2**63 and type(SeedTree(np.int8(3)).entropy) is int


def test_fresh_entropy_is_128_bit_and_replayable() -> None:
    a, b = SeedTree(), SeedTree()
    assert a != b and a.entropy != b.entropy
    # Exactly 128 bits: of 64 fresh roots, all lie below 2**128 and one at least reaches 2**127
    # (129 or 127 bits would fail this with probability 1 - 2**-64).
    fresh = [SeedTree().entropy for _ in range(64)]
    assert all(0 <= e < 2**128 for e in fresh) and max(fresh) >= 2**127
    assert _draws(SeedTree(a.entropy).numpy()) == _draws(a.numpy())


def test_from_seed_sequence_and_root_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    ss = np.random.SeedSequence(2**70, spawn_key=(3, 4))
    assert SeedTree.from_seed_sequence(ss) == SeedTree(2**70, (3, 4))
    with pytest.raises(TypeError, match="only SeedSequences with int entropy"):
        SeedTree.from_seed_sequence(np.random.SeedSequence([1, 2]))
    monkeypatch.delenv("SEEDTREE_ENTROPY", raising=False)
    assert st.root_from_env() is None and st.root_from_env(5) == SeedTree(5)
    monkeypatch.setenv("SEEDTREE_ENTROPY", "0x1F")
    assert st.root_from_env(5) == SeedTree(31)
    monkeypatch.setenv("SEEDTREE_ENTROPY", str(2**130))
    assert st.root_from_env() == SeedTree(2**130)
    monkeypatch.setenv("SEEDTREE_ENTROPY", "abc")
    with pytest.raises(ValueError, match=r"SEEDTREE_ENTROPY='abc' is not an int"):
        st.root_from_env()


def test_the_0_1_entry_points_on_the_value_warn_and_forward(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setenv("SEEDTREE_ENTROPY", "0x1F")
    with pytest.warns(DeprecationWarning, match=r"SeedTree.from_env\(\) is deprecated and goes in seedtree 1.0"):
        assert SeedTree.from_env(5) == SeedTree(31)
    with pytest.warns(DeprecationWarning, match=r"use seedtree.manifest\(node, ...\)"):
        recorded = (SeedTree(9) / "sub").manifest(experiment="x")
    assert recorded.root == SeedTree(9) and recorded.fields == {"experiment": "x"}
    path = recorded.save(tmp_path / "m.json")
    with pytest.warns(DeprecationWarning, match=r"use seedtree.Manifest.load\(path\).root"):
        assert SeedTree.from_manifest(path) == SeedTree(9)


def test_spawn_arguments() -> None:
    root = SeedTree(3)
    assert root.spawn(3, start=10) == [root / 10, root / 11, root / 12]
    assert root.spawn(0) == [] and root.spawn(np.int64(2)) == root.spawn(2)
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="spawn needs a non-negative int count"):
            root.spawn(bad)


def test_unknown_bit_generator_is_named() -> None:
    with pytest.raises(ValueError, match=r"unknown bit generator 'pcg'; use one of \['MT19937', 'PCG64'"):
        SeedTree(1).numpy("pcg")
    with pytest.raises(ValueError, match="unknown bit generator"):
        SeedTree(1).generators([1], bit_generator=int)
    gen = SeedTree(1).numpy(np.random.SFC64)  # a class works too
    assert _draws(gen) == _draws(_numpy_generator(np.random.SeedSequence(1), "SFC64"))


# -- other libraries from a node ----------------------------------------------------------


def test_word_ranges_of_consumers_are_disjoint_and_distinct() -> None:
    node = SeedTree(12) / "n"
    blocks = {
        "numpy": node.words(0, 624),
        "random": node.globals_words(WORDS_RANDOM, 624),
        "numpy_global": node.globals_words(WORDS_NUMPY_GLOBAL, 624),
        "torch": node.globals_words(WORDS_TORCH_CPU, 626),
        "cuda": node.words(WORDS_CUDA, 16),
    }
    seen = np.concatenate(list(blocks.values()))
    assert len(np.unique(seen)) >= len(seen) - 2  # 32-bit words: a chance repeat or two at most
    for a in blocks:
        for b in blocks:
            if a != b:
                assert not np.array_equal(blocks[a][:4], blocks[b][:4])


def test_random_state_is_624_node_words() -> None:
    node = SeedTree(4) / "r"
    version, internal, gauss = node.python_random_state()
    words = node.globals_words(WORDS_RANDOM, MT_WORDS).tolist()
    assert version == 3 and gauss is None and len(internal) == MT_WORDS + 1
    assert list(internal[:MT_WORDS]) == words
    assert internal[MT_WORDS] == 0  # a fresh block: the first draws read the words, tempered
    first = words[0] ^ (words[0] >> 11)  # MT19937's tempering of word 0
    first ^= (first << 7) & 0x9D2C5680
    first ^= (first << 15) & 0xEFC60000
    assert node.random().getrandbits(32) == first ^ (first >> 18)
    r, ref = node.random(), random.Random()
    ref.setstate(node.python_random_state())
    assert isinstance(r, random.Random)
    assert [r.random() for _ in range(3)] == [ref.random() for _ in range(3)]
    assert node.random().getrandbits(64) != (SeedTree(4) / "s").random().getrandbits(64)


def test_seed_int_per_index_is_distinct_and_full_width() -> None:
    # What CUDA device d is seeded with: runs without a GPU.
    node = SeedTree(99) / "cuda"
    seeds = [node.seed_int(64, d) for d in range(64)]
    assert len(set(seeds)) == 64 and all(0 <= s < 2**64 for s in seeds)
    assert max(seeds) >= 2**62  # uses the whole 64 bits
    assert seeds != [(SeedTree(99) / "other").seed_int(64, d) for d in range(64)]
    assert node.seed_int(32, 0) < 2**32 and node.seed_int(128, 0) < 2**128
    w = node.words(WORDS_CUDA, 2).tolist()
    assert node.seed_int(64, 0) == w[0] | w[1] << 32


def test_words_stay_inside_the_expansion_period() -> None:
    node = SeedTree(3)
    # The hash constants of the expansion cycle every 2**30 words: word 2**30 + i would be
    # word i again, so words() refuses to go there rather than hand out repeats.
    pool = node.pool
    np.testing.assert_array_equal(mixing.expand(pool, 2**30, 4), node.words(0, 4))
    assert len(node.words(2**30 - 4, 4)) == 4 and len(node.words(5, 0)) == 0
    for start, count in [(2**30 - 3, 4), (2**30, 1), (-1, 2), (0, -1)]:
        with pytest.raises(ValueError, match=r"outside the node's 1073741824 distinct words"):
            node.words(start, count)
    for bad in (0, -64, True, 64.0):
        with pytest.raises(ValueError, match="seed_int needs bits >= 1"):
            node.seed_int(bad)
    for bad in (-1, 1.0, False):
        with pytest.raises(ValueError, match="seed_int needs an index >= 0"):
            node.seed_int(64, bad)


def test_numpy_str_keys_become_plain_str() -> None:
    node = SeedTree(1) / np.str_("data")
    assert node == SeedTree(1) / "data" and type(node.path[0]) is str
    assert b"numpy" not in pickle.dumps(node)


def _torch_mt_words(gen: torch.Generator) -> np.ndarray:
    image = gen.get_state().numpy()
    return image[24 : 24 + 8 * MT_WORDS].view("<u8").astype(np.uint32)


def test_torch_cpu_generator_gets_the_whole_mersenne_twister_state() -> None:
    a, b = SeedTree(1) / "t" / 0, SeedTree(1) / "t" / 1
    ga, gb = a.torch(), b.torch()
    assert ga.device.type == "cpu"
    np.testing.assert_array_equal(_torch_mt_words(ga), a.globals_words(WORDS_TORCH_CPU, MT_WORDS))
    np.testing.assert_array_equal(_torch_mt_words(gb), b.globals_words(WORDS_TORCH_CPU, MT_WORDS))

    # Not a 32-bit manual_seed state: manual_seed(s) fills the twister from s by a recurrence,
    # state[i] = 1812433253 * (state[i-1] ^ state[i-1] >> 30) + i; ours does not follow it.
    def follows_seed_recurrence(words: np.ndarray) -> bool:
        w = words.astype(np.uint64)
        nxt = np.uint64(1812433253) * (w[:-1] ^ (w[:-1] >> np.uint64(30))) + np.arange(1, MT_WORDS, dtype=np.uint64)
        return bool(np.array_equal(nxt & np.uint64(0xFFFFFFFF), w[1:]))

    assert follows_seed_recurrence(_torch_mt_words(torch.Generator().manual_seed(2**40 + 3)))  # the check works
    assert not follows_seed_recurrence(_torch_mt_words(ga))
    ref = torch.Generator().manual_seed(int(ga.initial_seed()) & 0xFFFFFFFF)
    assert not np.array_equal(_torch_mt_words(ref), _torch_mt_words(ga))
    # Draws: distinct between nodes, identical for the same node, and what numpy's MT19937
    # with the same key draws (torch's twister is the standard one).
    x = torch.randint(0, 2**31, (8,), generator=ga)
    assert torch.equal(x, torch.randint(0, 2**31, (8,), generator=a.torch()))
    assert not torch.equal(x, torch.randint(0, 2**31, (8,), generator=gb))
    mt = np.random.MT19937()
    mt.state = {"bit_generator": "MT19937", "state": {"key": a.globals_words(WORDS_TORCH_CPU, MT_WORDS), "pos": 0}}
    outputs = set((mt.random_raw(16) % 2**31).tolist())
    assert set(x.tolist()) <= outputs  # each torch draw comes out of that very twister
    tail = a.globals_words(WORDS_TORCH_CPU + MT_WORDS, 2).tolist()
    assert ga.initial_seed() == (tail[0] | tail[1] << 32) & (2**63 - 1)  # reported seed: 63 bits of the node
    assert all(b.torch().initial_seed() < 2**63 for b in st.SeedTree(3).spawn(64))  # fits an int64, as torch's


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)
def test_torch_cuda_generators_get_distinct_64_bit_seeds() -> None:
    node = SeedTree(5) / "gpu"
    for d in range(torch.cuda.device_count()):
        gen = node.torch(f"cuda:{d}")
        assert gen.device == torch.device("cuda", d)
        assert gen.initial_seed() == node.seed_int(64, d)
    g0 = node.torch("cuda:0")
    x = torch.rand(4, device="cuda:0", generator=g0)
    assert torch.equal(x, torch.rand(4, device="cuda:0", generator=node.torch("cuda:0")))
    assert not torch.equal(x, torch.rand(4, device="cuda:0", generator=(SeedTree(5) / "gpu2").torch("cuda:0")))


# -- threads --------------------------------------------------------------------------------


def test_eight_threads_deriving_from_one_tree_never_share_a_stream() -> None:
    root = SeedTree(2024)
    shared = root / "shared"  # one node object, its cached state filled by racing threads
    barrier = threading.Barrier(8)
    results: dict[int, dict] = {}

    def work(t: int) -> None:
        barrier.wait()
        out = {
            "nodes": [(shared / t / i).numpy().integers(0, 2**63) for i in range(100)],
            "spawn": [k.numpy().integers(0, 2**63) for k in shared.spawn(20, start=1000 + 20 * t)],
            "states": shared.states(np.arange(5000 * t, 5000 * (t + 1))),
            "gens": [g.integers(0, 2**63) for g in shared.generators(range(10_000 + 300 * t, 10_000 + 300 * (t + 1)))],
            "same": [k.numpy().integers(0, 2**63) for k in shared.spawn(5)],  # every thread: same path
            "ambient": None,
        }
        with st.bound(shared / "ambient" / t):
            out["ambient"] = st.rng().integers(0, 2**63, 50).tolist()
        results[t] = out

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(results) == list(range(8))

    firsts = []
    for t, out in results.items():
        firsts += out["nodes"] + out["spawn"] + out["gens"] + out["states"][:, 0].tolist() + out["ambient"][:1]
        # Each thread got exactly what a serial, single-threaded computation gives.
        assert out["nodes"] == [(root / "shared" / t / i).numpy().integers(0, 2**63) for i in range(100)]
        serial = SeedTree(2024, ("shared",)).states(range(5000 * t, 5000 * (t + 1)))
        np.testing.assert_array_equal(out["states"], serial)
        assert out["ambient"] == (root / "shared" / "ambient" / t).numpy().integers(0, 2**63, 50).tolist()
        assert out["same"] == results[0]["same"]  # the same path is the same stream, whoever asks
    # 64-bit draws / 32-bit words: a repeat among distinct streams would be a shared stream.
    states_words = np.concatenate([out["states"][:, 0] for out in results.values()])
    assert len(np.unique(states_words)) >= len(states_words) - 2  # 40k 32-bit words: birthday allows a couple
    others = [x for out in results.values() for x in out["nodes"] + out["spawn"] + out["gens"] + out["ambient"][:1]]
    assert len(set(others)) == len(others)


def test_numpy_stateful_spawn_is_the_hazard_that_seedtree_removes() -> None:
    # A documented demonstration, no more. NumPy's SeedSequence.spawn is stateful: which
    # child a caller gets depends on how many were handed out before, so threads sharing
    # one SeedSequence get children in scheduling order (and a racing counter update can
    # hand two of them the same child). seedtree's spawn is a pure function of the path.
    ss = np.random.SeedSequence(7)
    first, second = ss.spawn(1)[0], ss.spawn(1)[0]
    assert first.spawn_key == (0,) and second.spawn_key == (1,)  # same call, different child
    root = SeedTree(7)
    assert root.spawn(1) == root.spawn(1) == [root / 0]

    shared = np.random.SeedSequence(7)
    barrier = threading.Barrier(8)
    got: dict[int, tuple] = {}

    def take(t: int) -> None:
        barrier.wait()
        got[t] = shared.spawn(1)[0].spawn_key

    threads = [threading.Thread(target=take, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    # Which thread got which child is up to the scheduler: only the total is certain.
    assert shared.n_children_spawned == 8


def test_from_seed_sequence_refuses_another_pool_size() -> None:
    with pytest.raises(ValueError, match="pool_size=8"):
        SeedTree.from_seed_sequence(np.random.SeedSequence(42, pool_size=8))


def test_entropy_beyond_128_bits_follows_numpy_concatenation() -> None:
    """Documented, not hidden: NumPy's own SeedSequence aliases these two."""
    assert SeedTree(2**128).numpy().random() == (SeedTree(0) / 1).numpy().random()
    assert np.random.default_rng(np.random.SeedSequence(2**128)).random() == SeedTree(2**128).numpy().random()


def test_globals_expansion_is_the_documented_keyed_splitmix64() -> None:
    """Rebuilt in plain python from the layout's description: key (a, b) = node words
    [2**24, +4) as two 64-bit halves; output k = fmix64((a + (k + 1) * G) ^ b), low word first."""
    from seedtree.core.layout import GLOBALS_WORDS, WORDS_GLOBALS_KEY, expand_globals

    mask = 2**64 - 1

    def fmix(z: int) -> int:
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    for node in (SeedTree(0), SeedTree(2**100 + 7) / "g" / 3):
        w = node.words(WORDS_GLOBALS_KEY, 4).tolist()
        a, b = w[0] | w[1] << 32, w[2] | w[3] << 32
        expected = []
        for k in range(GLOBALS_WORDS // 2):
            z = fmix(((a + (k + 1) * 0x9E3779B97F4A7C15) & mask) ^ b)
            expected += [z & 0xFFFFFFFF, z >> 32]
        assert node.globals_words().tolist() == expected
    keys = SeedTree(3).states(range(5), 4, WORDS_GLOBALS_KEY)
    rows = expand_globals(keys)
    for k in range(5):  # vectorised over a batch = one node at a time
        np.testing.assert_array_equal(rows[k], (SeedTree(3) / k).globals_words())
    with pytest.raises(ValueError, match="outside"):
        SeedTree(3).globals_words(GLOBALS_WORDS - 1, 2)
