"""Every refusal of the core layer, word for word.

The messages are part of the promise (each names the problem and the fix), so they are
pinned exactly: a changed word is a changed interface. These are also the cheapest tests
that reach the core's checks, which is what lets ``make mutation`` stop at the first
failure for a mutant that changes a message instead of running every test of the module.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest

from seedtree import SeedTree
from seedtree.core import mixing
from seedtree.core.bitgen import NodeSeed, bit_generator_class
from seedtree.core.codec import CodecError, entropy_from_json, path_from_json
from seedtree.core.keys import check_int_keys, check_key
from seedtree.core.layout import GLOBALS_WORDS, expand_globals
from seedtree.core.optional import require
from seedtree.core.shuffle import KeyedPermutation

NODE = SeedTree(5, ("a", 1))


def _without(module: str, call: Any) -> Any:
    """``call()`` as if ``module`` were not installed."""
    saved = sys.modules.get(module)
    sys.modules[module] = None  # type: ignore[assignment]  # import now raises ImportError
    try:
        return call()
    finally:
        if saved is None:
            del sys.modules[module]
        else:
            sys.modules[module] = saved


BOOL_KEY = (
    "path key #{} is the bool {}; bools are not keys (True would alias 1). "
    "Use an int such as int(flag) or a str such as 'on'/'off'."
)
OUTSIDE = (
    "path key #{} ({}) is outside [0, 2**32). NumPy would split it into several 32-bit words and alias a "
    "longer path. Split it yourself into keys below 2**32 (e.g. tree / (k >> 32) / (k & 0xFFFFFFFF)) or use str(k)."
)
WRONG_TYPE = (
    "path key #{} ({}) has type {}; keys are ints in [0, 2**32), str or bytes. "
    "Convert it first, e.g. str(x) for a float or a name."
)

CASES: list[tuple[str, Any, type[Exception], str]] = [
    # keys
    ("bool key", lambda: check_key(True, 3), TypeError, BOOL_KEY.format(3, "True")),
    (
        "numpy bool key",
        lambda: check_key(np.bool_(False), 0),
        TypeError,
        BOOL_KEY.format(0, repr(np.bool_(False))),
    ),
    ("negative key", lambda: check_key(-1, 2), ValueError, OUTSIDE.format(2, -1)),
    ("key 2**32", lambda: check_key(2**32, 0), ValueError, OUTSIDE.format(0, 2**32)),
    ("float key", lambda: check_key(1.5, 1), TypeError, WRONG_TYPE.format(1, "1.5", "float")),
    ("key in a path", lambda: SeedTree(1, ("x", None)), TypeError, WRONG_TYPE.format(1, "None", "NoneType")),
    ("child key", lambda: NODE / 2**32, ValueError, OUTSIDE.format(2, 2**32)),
    (
        "str keys vectorised",
        lambda: check_int_keys(np.array(["a"]), 0),
        TypeError,
        "vectorised keys must be an integer array; for str keys derive one child at a time (tree / name) "
        "or map names to ints first",
    ),
    (
        "float keys vectorised",
        lambda: check_int_keys(np.array([1.0]), 0),
        TypeError,
        "vectorised keys must be an integer array in [0, 2**32), got dtype float64; "
        "convert with np.asarray(keys, dtype=np.uint32) after checking the range",
    ),
    (
        "bool keys vectorised",
        lambda: check_int_keys(np.array([True]), 0),
        TypeError,
        "vectorised keys must be an integer array in [0, 2**32), got dtype bool; "
        "convert with np.asarray(keys, dtype=np.uint32) after checking the range",
    ),
    (
        "3-D keys",
        lambda: check_int_keys(np.zeros((1, 1, 1), dtype=np.int64), 0),
        ValueError,
        "keys must have shape (n,) or (n, depth), got (1, 1, 1)",
    ),
    (
        "2-D keys: the column is the position",
        lambda: check_int_keys(np.array([[0, 1], [0, -1]]), 4),
        ValueError,
        OUTSIDE.format(5, -1),
    ),
    (
        "1-D keys: the first bad one",
        lambda: check_int_keys(np.array([3, 2**32 + 1, -7]), 2),
        ValueError,
        OUTSIDE.format(2, -7),
    ),
    # tree
    (
        "float entropy",
        lambda: SeedTree(1.0),
        TypeError,
        "entropy must be a non-negative int (any size), got float 1.0; "
        "for a SeedSequence use SeedTree.from_seed_sequence(ss)",
    ),
    (
        "bool entropy",
        lambda: SeedTree(True),
        TypeError,
        "entropy must be a non-negative int (any size), got bool True; "
        "for a SeedSequence use SeedTree.from_seed_sequence(ss)",
    ),
    (
        "negative entropy",
        lambda: SeedTree(-3),
        ValueError,
        "entropy must be non-negative, got -3; use abs() or a fresh SeedTree()",
    ),
    (
        "bare str path",
        lambda: SeedTree(1, "data"),
        TypeError,
        "path must be a sequence of keys, e.g. ('data',), not a bare str",
    ),
    (
        "bare bytes path",
        lambda: SeedTree(1, b"data"),
        TypeError,
        "path must be a sequence of keys, e.g. ('data',), not a bare str",
    ),
    (
        "SeedSequence without int entropy",
        lambda: SeedTree.from_seed_sequence(np.random.SeedSequence([1, 2])),
        TypeError,
        "only SeedSequences with int entropy map onto a SeedTree",
    ),
    (
        "SeedSequence of another pool size",
        lambda: SeedTree.from_seed_sequence(np.random.SeedSequence(1, pool_size=8)),
        ValueError,
        "this SeedSequence has pool_size=8; a SeedTree is NumPy's default pool of 4 words, so it would draw "
        "different numbers",
    ),
    ("negative spawn", lambda: NODE.spawn(-1), ValueError, "spawn needs a non-negative int count, got -1"),
    ("bool spawn", lambda: NODE.spawn(True), ValueError, "spawn needs a non-negative int count, got True"),
    (
        "words past 2**30",
        lambda: NODE.words(2**30 - 1, 2),
        ValueError,
        f"words({2**30 - 1}, 2) is outside the node's {2**30} distinct words [0, 2**30); "
        "offsets and counts must be non-negative and end below 2**30",
    ),
    (
        "negative word count",
        lambda: NODE.words(5, -1),
        ValueError,
        f"words(5, -1) is outside the node's {2**30} distinct words [0, 2**30); "
        "offsets and counts must be non-negative and end below 2**30",
    ),
    ("seed_int bits 0", lambda: NODE.seed_int(0), ValueError, "seed_int needs bits >= 1, got 0"),
    ("seed_int bits bool", lambda: NODE.seed_int(True), ValueError, "seed_int needs bits >= 1, got True"),
    ("seed_int bits float", lambda: NODE.seed_int(64.0), ValueError, "seed_int needs bits >= 1, got 64.0"),
    ("seed_int index -1", lambda: NODE.seed_int(64, -1), ValueError, "seed_int needs an index >= 0, got -1"),
    ("seed_int index bool", lambda: NODE.seed_int(64, False), ValueError, "seed_int needs an index >= 0, got False"),
    ("states n_words 0", lambda: NODE.states([1], 0), ValueError, "n_words must be an int of at least 1, got 0"),
    (
        "states n_words bool",
        lambda: NODE.states([1], True),
        ValueError,
        "n_words must be an int of at least 1, got True",
    ),
    (
        "states start -1",
        lambda: NODE.states([1], 4, -1),
        ValueError,
        "start must be an int with start + n_words <= 2**30, got start=-1",
    ),
    (
        "states start past the end",
        lambda: NODE.states([1], 4, 2**30 - 3),
        ValueError,
        f"start must be an int with start + n_words <= 2**30, got start={2**30 - 3}",
    ),
    (
        "states start bool",
        lambda: NODE.states([1], 4, True),
        ValueError,
        "start must be an int with start + n_words <= 2**30, got start=True",
    ),
    (
        "states out of the wrong shape",
        lambda: NODE.states([1, 2], 4, out=np.empty((2, 3), np.uint32)),
        ValueError,
        "out must be a C-contiguous uint32 array of shape (2, 4)",
    ),
    (
        "states out for str keys",
        lambda: NODE.states(["x"], 2, out=np.empty((2, 2), np.uint32)),
        ValueError,
        "out must be a C-contiguous uint32 array of shape (1, 2)",
    ),
    (
        "generators chunk 0",
        lambda: list(NODE.generators([1], chunk=0)),
        ValueError,
        "chunk must be a positive int, got 0",
    ),
    (
        "generators chunk bool",
        lambda: list(NODE.generators([1], chunk=True)),
        ValueError,
        "chunk must be a positive int, got True",
    ),
    (
        "unknown bit generator",
        lambda: bit_generator_class("MT"),
        ValueError,
        "unknown bit generator 'MT'; use one of ['MT19937', 'PCG64', 'PCG64DXSM', 'Philox', 'SFC64'] "
        "or a numpy.random.BitGenerator subclass",
    ),
    (
        "a class that is not a bit generator",
        lambda: NODE.numpy(int),
        ValueError,
        "unknown bit generator <class 'int'>; use one of ['MT19937', 'PCG64', 'PCG64DXSM', 'Philox', 'SFC64'] "
        "or a numpy.random.BitGenerator subclass",
    ),
    (
        "generate_state dtype",
        lambda: NodeSeed(NODE).generate_state(2, np.int32),
        ValueError,
        "only support uint32 or uint64",
    ),
    (
        "globals_words past the end",
        lambda: NODE.globals_words(GLOBALS_WORDS - 1, 2),
        ValueError,
        f"globals_words({GLOBALS_WORDS - 1}, 2) is outside [0, {GLOBALS_WORDS})",
    ),
    (
        "globals_words negative",
        lambda: NODE.globals_words(-1, 1),
        ValueError,
        f"globals_words(-1, 1) is outside [0, {GLOBALS_WORDS})",
    ),
    # layout, mixing
    (
        "expand_globals out",
        lambda: expand_globals(np.zeros((2, 4), np.uint32), np.empty((2, GLOBALS_WORDS), np.int32)),
        ValueError,
        f"out must be a C-contiguous uint32 array of shape (2, {GLOBALS_WORDS})",
    ),
    (
        "expand_at out",
        lambda: mixing.expand_at(
            mixing.absorb_many(NODE._mix_state(), np.array([1, 2], np.uint32))[0],
            0,
            4,
            np.empty((2, 4), np.uint32)[:, ::-1],
        ),
        ValueError,
        "out must be a C-contiguous uint32 array of shape (2, 4)",
    ),
    # shuffle
    (
        "shuffle of no node",
        lambda: KeyedPermutation(5, 10),
        TypeError,
        "KeyedPermutation needs a SeedTree node, got int",
    ),  # type: ignore[arg-type]
    ("shuffle of n < 0", lambda: KeyedPermutation(NODE, -1), ValueError, "n must be an int in [0, 2**40], got -1"),
    (
        "shuffle of n > 2**40",
        lambda: KeyedPermutation(NODE, 2**40 + 1),
        ValueError,
        f"n must be an int in [0, 2**40], got {2**40 + 1}",
    ),
    (
        "shuffle of float n",
        lambda: KeyedPermutation(NODE, 10.0),
        ValueError,
        "n must be an int in [0, 2**40], got 10.0",
    ),
    ("shuffle of bool n", lambda: KeyedPermutation(NODE, True), ValueError, "n must be an int in [0, 2**40], got True"),
    (
        "float positions",
        lambda: KeyedPermutation(NODE, 10)[np.array([1.0])],
        TypeError,
        "positions must be integers, got dtype float64",
    ),
    (
        "positions past n",
        lambda: KeyedPermutation(NODE, 10)[np.array([3, 10])],
        IndexError,
        "positions must be in [0, 10), got 3..10",
    ),
    (
        "negative position",
        lambda: KeyedPermutation(NODE, 10)[-1],
        IndexError,
        "positions must be in [0, 10), got -1..-1",
    ),
    # codec
    ("path not a list", lambda: path_from_json({"a": 1}), CodecError, "a path must be a JSON list, got dict"),
    (
        "path key object",
        lambda: path_from_json([1, {"hex": "00"}]),
        CodecError,
        "path key #1 {'hex': '00'} is not a key (expected int, str or {'bytes': hex})",
    ),
    (
        "path bytes not a str",
        lambda: path_from_json([{"bytes": 5}]),
        CodecError,
        "path key #0 {'bytes': 5} is not a key (expected int, str or {'bytes': hex})",
    ),
    (
        "path bytes not hex",
        lambda: path_from_json(["a", {"bytes": "zz"}]),
        CodecError,
        "path key #1 has bytes that are not hex: 'zz'",
    ),
    ("path key outside", lambda: path_from_json([0, -1]), ValueError, OUTSIDE.format(1, -1)),
    (
        "entropy negative",
        lambda: entropy_from_json(-1),
        CodecError,
        "entropy must be a non-negative decimal string, got -1",
    ),
    (
        "entropy signed str",
        lambda: entropy_from_json("-1"),
        CodecError,
        "entropy must be a non-negative decimal string, got '-1'",
    ),
    (
        "entropy bool",
        lambda: entropy_from_json(True),
        CodecError,
        "entropy must be a non-negative decimal string, got True",
    ),
    (
        "entropy not ascii digits",
        lambda: entropy_from_json("١٢"),
        CodecError,
        "entropy must be a non-negative decimal string, got '١٢'",
    ),
    # optional
    (
        "torch missing",
        lambda: _without("torch", lambda: NODE.torch()),
        ImportError,
        "SeedTree.torch() needs the optional package 'torch', which is not installed: "
        "pip install 'seedtree[torch]'  (or: pip install torch)",
    ),
    (
        "missing optional package",
        lambda: require("seedtree_no_such_package", "This feature"),
        ImportError,
        "This feature needs the optional package 'seedtree_no_such_package', which is not installed: "
        "pip install seedtree_no_such_package",
    ),
    (
        "missing known package",
        lambda: require("dask.no_such_module", "Dask maps"),
        ImportError,
        "Dask maps needs the optional package 'dask.no_such_module', which is not installed: "
        "pip install 'seedtree[dask]'  (or: pip install 'dask[distributed]')",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "message"), [c[1:] for c in CASES], ids=[c[0].replace(" ", "_") for c in CASES]
)
def test_each_refusal_says_exactly(call: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        call()
    assert type(info.value) is error  # not a subclass that would catch differently
    assert str(info.value) == message


def test_entropy_and_paths_that_are_accepted() -> None:
    assert entropy_from_json("0") == 0 and entropy_from_json(7) == 7 and entropy_from_json(str(2**200)) == 2**200
    assert path_from_json([0, 2**32 - 1, "s", {"bytes": "00ff"}]) == (0, 2**32 - 1, "s", b"\x00\xff")
    assert check_key(np.uint32(7), 0) == 7 and type(check_key(np.uint32(7), 0)) is int
    assert check_key(np.str_("x"), 0) == "x" and type(check_key(np.str_("x"), 0)) is str
    assert check_key(bytearray(b"ab"), 0) == b"ab" and type(check_key(memoryview(b"ab"), 0)) is bytes
