"""Fuzzing the three places that read what a user hands back: manifests, captured RNG
states and loader states.

Property, for every input: it either loads and round-trips equal, or raises the one
documented error type with a message (``ManifestError`` for manifests, ``ValueError`` for
``restore`` and ``load_state_dict``); no other exception, and no RNG state changes on a
refused input. Mutations of real manifests must never change a root or a stream silently.

The suite runs ``SEEDTREE_FUZZ_EXAMPLES`` examples per property (default 60: seconds);
``benchmarks/fuzz.py`` runs the same properties much longer and reports what it tried.
"""

from __future__ import annotations

import collections
import copy
import json
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

import seedtree as st
from seedtree.core.codec import node_from_json
from seedtree.runtime import ambient

EXAMPLES = int(os.environ.get("SEEDTREE_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # found inputs are reported by the failure itself; no .hypothesis/ writes
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
TRIED: collections.Counter[str] = collections.Counter()
"""Inputs tried per property (``benchmarks/fuzz.py`` reports it)."""

SCRATCH = Path(tempfile.mkdtemp(prefix="seedtree-fuzz-"))

# -- strategies --------------------------------------------------------------------------

# (10**4400 is past Python's 4300-digit str limit: built, so that hypothesis can print the strategy)
HUGE = hs.sampled_from([2**32, 2**64, 2**128 + 1, -(2**63), -1]) | hs.builds(pow, hs.just(10), hs.just(4400))
SCALARS = (
    hs.none()
    | hs.booleans()
    | hs.integers(min_value=-(2**70), max_value=2**70)
    | HUGE
    | hs.floats(allow_nan=True, allow_infinity=True)
    | hs.text(max_size=12)
    | hs.sampled_from(["0", "1" * 5000, "0x10", "-5", "nan", " 7", "७"])
)
JSON_VALUES = hs.recursive(
    SCALARS,
    lambda kids: hs.lists(kids, max_size=4) | hs.dictionaries(hs.text(max_size=8), kids, max_size=4),
    max_leaves=10,
)
EMPTY = hs.sampled_from([None, 0, "", [], {}])


def mutate(data: hs.DataObject, value: Any) -> Any:
    """A copy of ``value`` (JSON-like) with one small edit somewhere inside: a leaf tweaked
    (an int moved by one, a character changed) or replaced by any JSON value, a key or
    element dropped or added, a list cut short, or a container replaced by a scalar or an
    empty one. Containers are never replaced by other arbitrary containers: that is many
    edits at once, a file written by hand, not a damaged one."""
    if isinstance(value, dict) and value:
        op = data.draw(hs.sampled_from(["descend", "descend", "descend", "drop", "add", "empty"]))
        if op == "descend":
            key = data.draw(hs.sampled_from(sorted(value, key=repr)))
            return {**value, key: mutate(data, value[key])}
        if op == "drop":
            key = data.draw(hs.sampled_from(sorted(value, key=repr)))
            return {k: v for k, v in value.items() if k != key}
        if op == "add":
            return {**value, data.draw(hs.text(max_size=8)): data.draw(JSON_VALUES)}
        return data.draw(EMPTY | SCALARS)
    if isinstance(value, list) and value:
        op = data.draw(hs.sampled_from(["descend", "descend", "descend", "drop", "cut", "add", "empty"]))
        i = data.draw(hs.integers(0, len(value) - 1))
        if op == "descend":
            return value[:i] + [mutate(data, value[i])] + value[i + 1 :]
        if op == "drop":
            return value[:i] + value[i + 1 :]
        if op == "cut":
            return value[:i]
        if op == "add":
            return value[:i] + [data.draw(JSON_VALUES)] + value[i:]
        return data.draw(EMPTY | SCALARS)
    op = data.draw(hs.sampled_from(["tweak", "tweak", "replace"]))
    if op == "tweak" and isinstance(value, int) and not isinstance(value, bool):
        return value + data.draw(hs.sampled_from([-1, 1, 2**32, -(2**32)]))
    if op == "tweak" and isinstance(value, str) and value:
        i = data.draw(hs.integers(0, len(value) - 1))
        return value[:i] + data.draw(hs.characters(codec="utf-8")) + value[i + 1 :]
    return data.draw(JSON_VALUES)


def mutate_text(data: hs.DataObject, text: str) -> str:
    """``text`` with one character changed, dropped or inserted."""
    i = data.draw(hs.integers(0, len(text) - 1))
    op = data.draw(hs.sampled_from(["change", "drop", "insert"]))
    char = data.draw(hs.sampled_from(list('0123456789abcdefx"{}[],: -.\\')) | hs.characters(codec="utf-8"))
    if op == "change":
        return text[:i] + char + text[i + 1 :]
    if op == "drop":
        return text[:i] + text[i + 1 :]
    return text[:i] + char + text[i:]


# -- every RNG state, to check that a refused input changed none ------------------------


def all_states() -> tuple[Any, ...]:
    torch = sys.modules.get("torch")
    snap = ambient.snapshot()
    return (
        random.getstate(),
        repr(np.random.get_state(legacy=False)),
        None if torch is None else torch.get_rng_state().tolist(),
        snap["default"],
        snap["node"],
        repr(snap["state"]),
    )


def one_line_message(exc: BaseException) -> None:
    assert str(exc).strip(), f"{type(exc).__name__} without a message"


# -- manifests ---------------------------------------------------------------------------

ROOT = st.SeedTree(0x5EED_F022)
STREAMS = {
    "model/init": ROOT / "model" / 7,
    "data": ROOT / "data" / b"\x01\xff" / "aug",
    "other root": st.SeedTree(12345) / (2**32 - 1),
}
BASE_MANIFEST = st.Manifest(
    ROOT,
    STREAMS,
    {"python": "3.11", "torch": None},
    "2026-01-01T00:00:00+00:00",
    {"experiment": "fuzz", "lr": 0.1, "tags": ["a", 1]},
).to_dict()
BASE_TEXT = json.dumps(BASE_MANIFEST, indent=2)


def dumps(value: Any) -> bytes:
    """JSON text of ``value``, even with ints past Python's 4300-digit str limit (the
    reader must cope with such a file)."""
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        return json.dumps(value).encode()
    finally:
        sys.set_int_max_str_digits(limit)


def load_text(raw: bytes) -> st.Manifest:
    path = SCRATCH / "m.json"
    path.write_bytes(raw)
    return st.Manifest.load(path)


def check_round_trip(manifest: st.Manifest) -> None:
    again = st.Manifest.from_dict(json.loads(json.dumps(manifest.to_dict())))
    assert json.dumps(again.to_dict()) == json.dumps(manifest.to_dict())
    assert again.root == manifest.root and again.streams == manifest.streams


def manifest_property(raw: bytes, *, unchanged: bool) -> None:
    """Loads and round-trips, or ManifestError; with ``unchanged``, a manifest that loads
    has the original root and streams (a small edit never changes them silently)."""
    try:
        manifest = load_text(raw)
    except st.ManifestError as exc:
        one_line_message(exc)
        return
    check_round_trip(manifest)
    saved = manifest.save(SCRATCH / "again.json")
    assert json.dumps(st.Manifest.load(saved).to_dict()) == json.dumps(manifest.to_dict())
    if unchanged:
        assert manifest.root == ROOT, f"the root changed silently to {manifest.root!r}"
        assert manifest.streams == STREAMS, f"streams changed silently: {manifest.streams!r}"


DOCUMENTS = hs.fixed_dictionaries(
    {"schema": hs.just("seedtree.manifest"), "version": hs.just(1) | SCALARS},
    optional={
        "root": JSON_VALUES,
        "streams": JSON_VALUES,
        "checks": JSON_VALUES,
        "environment": JSON_VALUES,
        "fields": JSON_VALUES,
        "created": JSON_VALUES,
    },
)


@FUZZ
@given(raw=hs.binary(max_size=400) | hs.text(max_size=400).map(str.encode))
def test_manifest_from_arbitrary_bytes(raw: bytes) -> None:
    TRIED["manifest: arbitrary bytes"] += 1
    manifest_property(raw, unchanged=False)


@FUZZ
@given(doc=DOCUMENTS)
def test_manifest_from_arbitrary_documents(doc: dict[str, Any]) -> None:
    TRIED["manifest: arbitrary documents"] += 1
    manifest_property(dumps(doc), unchanged=False)


@FUZZ
@given(data=hs.data())
def test_manifest_with_one_edit_never_changes_a_stream_silently(data: hs.DataObject) -> None:
    TRIED["manifest: one structural edit"] += 1
    manifest_property(dumps(mutate(data, BASE_MANIFEST)), unchanged=True)


@FUZZ
@given(data=hs.data())
def test_manifest_with_one_changed_character_never_changes_a_stream_silently(data: hs.DataObject) -> None:
    TRIED["manifest: one changed character"] += 1
    manifest_property(mutate_text(data, BASE_TEXT).encode("utf-8", "surrogatepass"), unchanged=True)


def test_manifest_edge_cases_found_by_fuzzing() -> None:
    """Inputs the fuzzer found, kept as plain regression cases."""
    for text in (
        '{"schema": "seedtree.manifest", "version": ' + "1" * 5000 + "}",  # int over Python's 4300-digit limit
        '{"schema": "seedtree.manifest", "version": 1, "root": {"entropy": "' + "1" * 5000 + '"}}',
        '{"schema": "seedtree.manifest", "version": 1, "root": {"entropy": "1"}, "fields": {"a": '
        + "[" * 5000
        + "]" * 5000
        + "}}",  # loads with json's C parser, but json.dumps cannot write it back
    ):
        manifest_property(text.encode(), unchanged=False)


# -- restore() of captured states --------------------------------------------------------

NODE = st.SeedTree(77) / "fuzz"


def _base_state() -> dict[str, Any]:
    pytest.importorskip("torch")
    with st.isolate(), ambient.bound(NODE):
        st.seed_globals(NODE / "globals", import_missing=["random", "numpy", "torch"])
        random.random(), np.random.standard_normal(), st.rng().random(2)  # a cached gaussian, a moved ambient
        state = st.capture()
    state["torch"] = state["torch"].tolist()  # as JSON gives it back; restore takes both
    state.pop("torch_cuda", None)
    return state


def _expected_after(part: str, value: Any) -> Any:
    """What the library reports after accepting ``value``: set on a fresh generator."""
    if part == "random":
        probe = random.Random()
        probe.setstate((value["version"], tuple(value["internal"]), value["gauss_next"]))
        return probe.getstate()
    if part == "numpy":
        probe_np = np.random.RandomState()
        probe_np.set_state(
            ("MT19937", np.asarray(value["key"], dtype=np.uint32), value["pos"], value["has_gauss"], value["gauss"])
        )
        return repr(probe_np.get_state(legacy=False))
    if part == "torch":
        return list(value)
    raise AssertionError(part)


def _actual(part: str) -> Any:
    if part == "random":
        return random.getstate()
    if part == "numpy":
        return repr(np.random.get_state(legacy=False))
    return sys.modules["torch"].get_rng_state().tolist()


BASE_STATE: dict[str, Any] | None = None


@FUZZ
@given(data=hs.data())
def test_restore_of_a_mutated_state(data: hs.DataObject) -> None:
    global BASE_STATE
    TRIED["restore: one edit"] += 1
    if BASE_STATE is None:
        BASE_STATE = _base_state()
    state = mutate(data, copy.deepcopy(BASE_STATE))
    with st.isolate(), ambient.bound(NODE):
        st.rng().random()  # somewhere else than the captured position
        before = all_states()
        try:
            st.restore(state)
        except ValueError as exc:
            one_line_message(exc)
            assert all_states() == before, f"a refused state changed an RNG state ({exc})"
            return
        # Accepted: every part is now in effect, as the library itself reads it.
        for part in ("random", "numpy", "torch"):
            if part in state:
                assert _actual(part) == _expected_after(part, state[part]), part
        if "ambient" in state:
            # The generator position applies to the node read here when it is the captured
            # node (documented: a state captured inside bound(a) does not bind a elsewhere).
            saved = state["ambient"]
            assert ambient.current() == NODE
            if saved["node"] is not None and node_from_json(saved["node"]) == NODE and saved["state"] is not None:
                probe = NODE.numpy()
                probe.bit_generator.state = saved["state"]
                assert st.rng().bit_generator.state == probe.bit_generator.state


# -- the loader's load_state_dict -------------------------------------------------------


class Items:
    """A tiny map-style dataset: item i and one draw from its ambient stream."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> tuple[int, float]:
        return i, float(st.rng().random())


LOADER_TREE = st.SeedTree(99) / "loader"


def _loader() -> Any:
    from seedtree.torch import loader

    return loader(Items(), LOADER_TREE, batch_size=3, shuffle=True, rank=0, world_size=1)


def _rest(ld: Any) -> list[Any]:
    return [[(int(i), float(x)) for i, x in zip(*batch, strict=True)] for batch in ld]


BASE_LOADER: dict[str, Any] | None = None


@FUZZ
@given(data=hs.data())
def test_loader_load_state_dict_of_a_mutated_state(data: hs.DataObject) -> None:
    global BASE_LOADER
    pytest.importorskip("torch")
    TRIED["loader.load_state_dict: one edit"] += 1
    if BASE_LOADER is None:
        first = _loader()
        batches = iter(first)
        next(batches), next(batches)
        BASE_LOADER = copy.deepcopy(first.state_dict())
        del batches
    state = mutate(data, copy.deepcopy(BASE_LOADER))
    ld = _loader()
    before = all_states()
    try:
        ld.load_state_dict(state)
    except ValueError as exc:
        one_line_message(exc)
        assert all_states() == before, f"a refused loader state changed an RNG state ({exc})"
        assert ld.state_dict() == _loader().state_dict(), "a refused state moved the loader"
        return
    assert all_states() == before
    # Accepted: it round-trips, and the loader runs from it.
    again = _loader()
    again.load_state_dict(copy.deepcopy(ld.state_dict()))
    assert again.state_dict() == ld.state_dict()
    with st.isolate():
        assert _rest(again) == _rest(ld)


# -- the stream loader's load_state_dict --------------------------------------------------

STREAM_LENGTHS = [4, 0, 7, 3, 5, 2]  # uneven, one empty: 6 shards over 4 lanes


def read_stream_shard(shard: int, start: int = 0) -> Any:
    """Shard s of the fuzzed stream: sample j is ``(1000 * s + j, one draw of its stream)``."""
    for j in range(start, STREAM_LENGTHS[shard]):
        yield 1000 * shard + j, float(st.rng().random())


def _stream_loader(lengths: bool) -> Any:
    from seedtree.torch import ShardedStream, loader

    stream = ShardedStream(
        list(range(len(STREAM_LENGTHS))),
        read_stream_shard,
        lanes=4,
        shuffle_buffer=3,
        lengths=STREAM_LENGTHS if lengths else None,
    )
    return loader(stream, LOADER_TREE / "stream", batch_size=2, shuffle=True, rank=0, world_size=1)


BASE_STREAM: dict[str, Any] | None = None


@FUZZ
@given(data=hs.data())
def test_stream_loader_load_state_dict_of_a_mutated_state(data: hs.DataObject) -> None:
    """The stream loader's state (lanes with shard, position, shuffle buffer, draws and
    batches) with one edit, loaded by a loader that knows the shard lengths (everything is
    checked) or does not (positions are checked against what the counts account for)."""
    global BASE_STREAM
    pytest.importorskip("torch")
    TRIED["stream loader.load_state_dict: one edit"] += 1
    if BASE_STREAM is None:
        first = _stream_loader(lengths=True)
        batches = iter(first)
        for _ in range(5):  # mid-epoch: lanes mid-shard, buffers full, one lane past a shard
            next(batches)
        BASE_STREAM = json.loads(json.dumps(first.state_dict()))
        del batches
    lengths = data.draw(hs.booleans(), label="lengths known")
    state = mutate(data, copy.deepcopy(BASE_STREAM))
    ld = _stream_loader(lengths)
    before = all_states()
    untouched = _stream_loader(lengths).state_dict()
    try:
        ld.load_state_dict(state)
    except ValueError as exc:
        one_line_message(exc)
        assert "\n" not in str(exc), "one line"
        assert all_states() == before, f"a refused stream state changed an RNG state ({exc})"
        assert ld.state_dict() == untouched and ld.cursor.resume is None, f"a refused state moved the loader ({exc})"
        return
    assert all_states() == before
    # Accepted: it round-trips, and the loader runs from it, reading no sample twice.
    again = _stream_loader(lengths)
    again.load_state_dict(json.loads(json.dumps(ld.state_dict())))
    assert again.state_dict() == ld.state_dict()
    with st.isolate():
        try:
            rest = _rest(again)
        except ValueError as exc:
            # Without lengths a buffered sample past its shard's end is only seen on reading.
            assert not lengths and "cannot rebuild the shuffle buffer" in str(exc), exc
            return
        assert rest == _rest(ld)
    ids = [i for batch in rest for i, _ in batch]
    assert len(ids) == len(set(ids)), "a resumed state must not read a sample twice"


def test_a_checkpoint_taken_after_an_elastic_resume_resumes_where_it_was() -> None:
    """Found by fuzzing the loader state: after a resume on another number of ranks, a
    checkpoint reloaded on the new layout went back to the start of the epoch (it kept
    the batches done since the resume, not where they began), replaying samples."""
    pytest.importorskip("torch")
    from seedtree.torch import loader

    two = loader(Items(), LOADER_TREE, batch_size=2, rank=0, world_size=2)
    next(iter(two))  # one batch on each of two ranks: 4 samples of the epoch consumed
    one = loader(Items(), LOADER_TREE, batch_size=2, rank=0, world_size=1)
    one.load_state_dict(two.state_dict())
    batches = iter(one)
    first = next(batches)
    checkpoint = copy.deepcopy(one.state_dict())
    with st.isolate():
        rest = [[int(i) for i in b[0]] for b in batches]
    again = loader(Items(), LOADER_TREE, batch_size=2, rank=0, world_size=1)
    again.load_state_dict(checkpoint)
    with st.isolate():
        assert [[int(i) for i in b[0]] for b in again] == rest
    assert len(rest) == 2 and len(first[0]) == 2  # 10 items: 4 before the resume, 2 + 4 after


@pytest.mark.parametrize(
    "damage",
    [
        "torch byte 68 + 1",  # torch ignores it (the high half of a state word): accepted, then not what was given
        "numpy gauss 10**400",  # passed the checks, then numpy's set_state raised OverflowError mid-restore
    ],
)
def test_restore_edge_cases_found_by_fuzzing(damage: str) -> None:
    """Inputs the fuzzer found, kept as plain regression cases: refused as damaged, with
    nothing changed."""
    global BASE_STATE
    if BASE_STATE is None:
        BASE_STATE = _base_state()
    state = copy.deepcopy(BASE_STATE)
    if damage.startswith("torch"):
        state["torch"][68] = (state["torch"][68] + 1) % 256
    else:
        state["numpy"]["gauss"] = 10**400
    with st.isolate(), ambient.bound(NODE):
        before = all_states()
        with pytest.raises(ValueError, match="torch: the state is damaged|numpy: the state is refused"):
            st.restore(state)
        assert all_states() == before
