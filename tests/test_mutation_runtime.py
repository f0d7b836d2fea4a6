"""Exact behaviour of the runtime's small moving parts, pinned where other tests reach them
only in a child process or not at all (found by mutation testing, issue 24).

Pins: the fork bookkeeping (``ProcessState.child_fork_node``, ``seeding._after_fork_child``),
record listeners, ``state.resolve``, ``ambient.reset_context`` and restoring a snapshot into
a new binding, ``bind_process``, ``run_keyed`` / ``KeyedCall`` seeding the named libraries
(importing one not yet loaded), the seed-on-import hook (``find_spec`` for a missing module
or a loader without ``exec_module``, ``_seed_fresh`` touching only the imported library,
``fresh_state``), the deprecation warnings and the ``deterministic()`` warning (exact text,
pointing at the caller), the NVIDIA driver version read from bytes, and
``Manifest.log_to_mlflow`` (exact params, limits at their boundaries, batches of 100).
"""

from __future__ import annotations

import builtins
import hashlib
import importlib.abc
import importlib.machinery
import itertools
import json
import os
import platform
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from _frames import trampolined, warn_and_where

import seedtree as st
from seedtree.core.tree import SeedTree
from seedtree.runtime import ambient, deprecated, importhook, manifest, seeding, tasks
from seedtree.runtime.controllers import REGISTRY, LibController, unregister
from seedtree.runtime.state import STATE, NodeBatch, ProcessState, resolve

try:  # imported at collection, so that mutation runs (forked from a collected session) import it once
    import mlflow as _mlflow
except ImportError:
    _mlflow = None  # type: ignore[assignment]

pytestmark = pytest.mark.usefixtures("clean_seedtree")

_names = itertools.count()


@pytest.fixture
def hook_state() -> Iterator[None]:
    """Put back the seed-on-import hook's state, the fork bookkeeping of this thread and
    ``STATE.lock`` (``child_fork_node`` replaces it) after the test."""
    saved = (STATE.hook_node, STATE.hook_pending, dict(STATE.hook_fresh), STATE.lock)
    STATE.hook_fresh.clear()
    try:
        yield
    finally:
        STATE.hook_node, STATE.hook_pending, fresh, STATE.lock = saved
        STATE.hook_fresh.clear()
        STATE.hook_fresh.update(fresh)
        if hasattr(STATE._forking, "index"):
            del STATE._forking.index


class _FakeLibrary(LibController):
    """A registered library whose global "generator" is the node it was last seeded from."""

    def __init__(self, module: str) -> None:
        self.name = self.module = module

    def seed(self, node: SeedTree) -> None:
        sys.modules[self.module].seeded_from = node  # type: ignore[attr-defined]

    def capture(self) -> Any:
        return sys.modules[self.module].seeded_from

    def restore(self, state: Any) -> None:
        sys.modules[self.module].seeded_from = state  # type: ignore[attr-defined]


@pytest.fixture
def fake_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hook_state: None) -> Iterator[str]:
    """The name of a registered, installed library that is not imported yet."""
    name = f"_seedtree_fake_rng_{next(_names)}"
    (tmp_path / f"{name}.py").write_text("seeded_from = 'import'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    st.register(_FakeLibrary(name))
    try:
        yield name
    finally:
        unregister(name)
        sys.modules.pop(name, None)
        importhook.disarm()


# -- state ----------------------------------------------------------------------------------


@pytest.mark.parametrize("order", [[5, 2, 3], [0, 12, 1], [3, 3, 0]])
def test_a_batch_gives_each_item_its_own_generator_in_any_order(order: list[int]) -> None:
    # Items may ask out of order (a sample skipped, threads): each item gets its own
    # stream, never a neighbour's.
    tree = SeedTree(6) / "batch"
    keys = list(range(100, 116))
    batch = NodeBatch(tree, keys)
    for j in order:
        assert batch.generator(j).random(3).tolist() == (tree / keys[j]).numpy().random(3).tolist()


@pytest.mark.parametrize("order", [[599, 0, 256, 255, 511, 512, 300, 0], [1, 257, 513, 2]])
def test_a_batch_of_several_blocks_gives_each_item_its_own_generator(order: list[int]) -> None:
    # Seed words are derived a block of 256 items at a time: an item at or after a block
    # boundary reads its own block's row, asked for first or last.
    tree = SeedTree(6) / "blocks"
    keys = list(range(1000, 1600))
    batch = NodeBatch(tree, keys)
    rows = NodeBatch(tree, np.array([[k, 2 * k] for k in keys]))
    for j in order:
        assert batch.generator(j).random(2).tolist() == (tree / keys[j]).numpy().random(2).tolist()
        assert rows.generator(j).random(2).tolist() == (tree / keys[j] / (2 * keys[j])).numpy().random(2).tolist()


def test_a_batch_far_past_its_first_block_reads_its_own_block() -> None:
    # Blocks are found by their index: item 65 600's block is not item 1's (whose block a
    # shifted index would collide with).
    tree = SeedTree(6) / "far"
    batch = NodeBatch(tree, list(range(70_000)))
    for j in (1, 65_600, 256, 1):
        assert batch.generator(j).random(2).tolist() == (tree / j).numpy().random(2).tolist()


def test_a_bad_key_is_refused_when_its_block_asks_and_no_generator_is_kept() -> None:
    # An item's generator derives its whole block, so a bad key anywhere in it is named
    # then (at its path position, as tree / key names it); rng() keeps nothing for the item.
    tree = SeedTree(6) / "bad"
    batch = NodeBatch(tree, [1, -1, 2])
    token = ambient.VAR.set((batch, 2))
    try:
        with pytest.raises(ValueError, match=r"path key #1 \(-1\) is outside \[0, 2\*\*32\)"):
            st.rng()
    finally:
        ambient.VAR.reset(token)
    assert batch.made == {}
    assert batch.node(0) == tree / 1  # the good items' nodes are still made one by one


def test_resolve_gives_a_node_itself_and_makes_a_batch_item() -> None:
    tree = SeedTree(5)
    assert resolve(tree / "a") == tree / "a"
    assert resolve((NodeBatch(tree, [3, 8]), 1)) == tree / 8


def test_child_fork_node_without_a_reserved_index_is_none() -> None:
    state = ProcessState()
    lock = state.lock
    assert state.child_fork_node() is None  # never seeded, never forked
    assert state.lock is not lock and type(state.lock) is type(threading.RLock())
    base = SeedTree(6)
    state.start_fork_base(base)
    assert state.child_fork_node() is None  # seeded, but this thread reserved no index
    assert (state.fork_base, state.fork_count) == (base, 0)
    state.take_fork_index()  # reserves 0
    state.start_fork_base(None)  # ... then unseeded before the fork
    assert state.child_fork_node() is None
    assert (state.fork_base, state.fork_count) == (None, 0)


def test_child_fork_node_derives_from_the_reserved_index_and_restarts_the_count() -> None:
    state = ProcessState()
    base = SeedTree(7) / "run"
    state.start_fork_base(base)
    state.take_fork_index()
    state.take_fork_index()  # this thread's latest reservation: 1
    assert state.fork_count == 2
    child = state.child_fork_node()
    assert child == base / "fork" / 1
    assert (state.fork_base, state.fork_count) == (child, 0)
    state.take_fork_index()  # the child's own forks count from 0 under the child's node
    assert state.child_fork_node() == base / "fork" / 1 / "fork" / 0


def test_record_listeners_are_added_once_and_told_each_record() -> None:
    state = ProcessState()
    heard: list[tuple[str, SeedTree]] = []

    def listener(name: str, node: SeedTree) -> None:
        heard.append((name, node))

    state.add_record_listener(listener)
    state.add_record_listener(listener)
    assert state.record_listeners == [listener]
    state.record("model", SeedTree(8) / "model")
    assert heard == [("model", SeedTree(8) / "model")]


def test_node_batch_items_of_two_dimensional_keys() -> None:
    tree = SeedTree(32)
    batch = NodeBatch(tree, np.array([[1, 2], [3, 4]]))
    assert batch.node(1) == tree / 3 / 4
    assert batch.slot(1) is batch.slot(1)
    assert batch.node(0) == tree / 1 / 2 and [type(k) for k in batch.node(0).path] == [int, int]
    token = ambient.VAR.set((batch, 1))  # item 1 of the batch draws from rng(): its slot holds that generator
    try:
        gen = st.rng()
    finally:
        ambient.VAR.reset(token)
    assert batch.slot(1).gen is gen and batch.slot(0).gen is None


# -- ambient --------------------------------------------------------------------------------


def test_reset_context_rebinds_only_a_bound_context() -> None:
    parent, child = SeedTree(9) / "parent", SeedTree(9) / "child"
    ambient.reset_context(child)  # nothing bound here: stays unbound
    assert ambient.VAR.get() is None
    with st.bound(parent):
        st.rng().random()
        ambient.reset_context(child)
        assert st.current() == child
        assert st.rng().random() == child.numpy().random()  # a fresh stream, not the parent's
    assert ambient.VAR.get() is None


def test_restore_snapshot_into_a_new_binding_of_the_same_node() -> None:
    node = SeedTree(10) / "x"
    with st.bound(node):
        st.rng().random(3)
        saved = ambient.snapshot()
        expected = st.rng().random(2).tolist()
    with st.bound(node):  # a new slot: no generator yet
        ambient.restore_snapshot(saved)
        gen = st.rng()
        assert gen.random(2).tolist() == expected
        assert st.rng() is gen


# -- seeding --------------------------------------------------------------------------------


def test_after_fork_child_binds_and_seeds_the_reserved_node(hook_state: None) -> None:
    root = SeedTree(11)
    STATE.start_fork_base(root)
    STATE.take_fork_index()  # what os.register_at_fork(before=...) does in the parent
    node = root / "fork" / 0
    with st.bound(SeedTree(12)):
        seeding._after_fork_child()
        assert st.current() == node  # the child's bound context follows the fork too
    assert ambient.default() == node and seeding.fork_base() == node
    assert random.random() == node.random().random()


def test_after_fork_child_of_an_unseeded_parent_changes_nothing(hook_state: None) -> None:
    STATE.take_fork_index()  # no fork base: nothing reserved
    random.seed(3)
    seeding._after_fork_child()
    assert ambient.default() is None and seeding.fork_base() is None
    assert random.random() == random.Random(3).random()


def test_bind_process_rebinds_a_bound_context() -> None:
    node = SeedTree(13) / "worker"
    with st.bound(SeedTree(13) / "parent"):
        seeding.bind_process(node, False)
        assert st.current() == node
    assert ambient.default() == node


def test_bind_process_imports_and_seeds_a_named_library(fake_library: str) -> None:
    node = SeedTree(14) / "worker"
    seeding.bind_process(node, [fake_library])
    assert sys.modules[fake_library].seeded_from == node


def test_deterministic_warns_with_the_whole_advice_at_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # torch absent: no flags to put back
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    caught, caller = warn_and_where(2, lambda: seeding.deterministic())
    assert [w.category for w in caught] == [RuntimeWarning]
    assert str(caught[0].message) == (
        "PYTHONHASHSEED is not set: set and str hashing (and set iteration order) vary between runs. "
        "It only works when set before Python starts: launch with "
        "`seedtree run -- python ...` or `PYTHONHASHSEED=0 python ...`."
    )
    assert (caught[0].filename, caught[0].lineno) == caller
    assert trampolined(seeding.deterministic) or caller[0] == __file__


# -- deprecated forwards --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda path: SeedTree.from_env(3),
            "SeedTree.from_env() is deprecated and goes in seedtree 1.0; use seedtree.root_from_env()",
        ),
        (
            lambda path: SeedTree.from_manifest(path),
            "SeedTree.from_manifest(path) is deprecated and goes in seedtree 1.0; "
            "use seedtree.Manifest.load(path).root",
        ),
    ],
)
def test_deprecated_forwards_warn_at_the_caller(
    call: Callable[[Path], SeedTree], message: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SEEDTREE_ENTROPY", raising=False)
    path = st.Manifest(SeedTree(3)).save(tmp_path / "m.json")
    got: list[SeedTree] = []
    caught, caller = warn_and_where(3, lambda: got.append(call(path)))
    assert got == [SeedTree(3)]
    assert [(str(w.message), w.category) for w in caught] == [(message, DeprecationWarning)]
    assert (caught[0].filename, caught[0].lineno) == caller  # two above _warn: the forward's caller
    assert trampolined(deprecated._warn) or caller[0] == __file__


def test_seed_everything_imports_and_seeds_an_installed_library(fake_library: str) -> None:
    root = st.seed_everything(29)
    assert sys.modules[fake_library].seeded_from == root


def test_seed_globals_imports_only_when_asked_and_seeds_a_later_import(fake_library: str) -> None:
    node = SeedTree(30) / "n"
    with pytest.raises(TypeError) as info:
        seeding.seed_globals(5)  # type: ignore[arg-type]
    assert str(info.value) == "seed_globals() takes a SeedTree node, got int"
    seeding.seed_globals(node)
    assert fake_library not in sys.modules
    module = importlib.import_module(fake_library)  # the hook, armed with the node, seeds it now
    assert module.seeded_from == node


def test_seed_process_imports_what_it_is_told(fake_library: str) -> None:
    node = SeedTree(31) / "p"
    seeding.seed_process(node, "proc")
    assert fake_library not in sys.modules
    assert manifest.recorded()["proc"] == node and ambient.default() == node and seeding.fork_base() == node
    importhook.disarm()
    seeding.seed_process(node / 1, "proc", import_missing=[fake_library])
    assert sys.modules[fake_library].seeded_from == node / 1


# -- keyed tasks ----------------------------------------------------------------------------


def _draw(a: int, *, b: int) -> tuple[int, int, float, SeedTree]:
    return a, b, random.random(), st.current()


def test_run_keyed_seeds_the_named_globals_and_passes_keyword_arguments() -> None:
    tree = SeedTree(16)
    node = tree / 4
    got = tasks.run_keyed(_draw, tree, 4, (1,), {"b": 2}, ("random",))
    assert got == (1, 2, node.random().random(), node)


def test_keyed_call_seeds_its_modules() -> None:
    tree = SeedTree(17)
    call = tasks.KeyedCall(_draw, tree, "k", ("random",))
    assert call(5, b=6) == (5, 6, (tree / "k").random().random(), tree / "k")


def test_run_keyed_imports_a_named_library_not_loaded_yet(fake_library: str) -> None:
    tree = SeedTree(18)

    def task() -> Any:
        module = sys.modules.get(fake_library)
        return None if module is None else module.seeded_from

    assert tasks.run_keyed(task, tree, 2, (), {}, (fake_library,)) == tree / 2


def test_run_watched_batch_runs_each_keyed_item_then_checks_the_globals() -> None:
    from seedtree.runtime.policy import SharedGlobalsWatch

    tree = SeedTree(33)
    watch = SharedGlobalsWatch("a test", "nothing")
    assert tasks.run_watched_batch(watch, tree, [4, 9], lambda item: (item, st.current()), ["a", "b"]) == [
        ("a", tree / 4),
        ("b", tree / 9),
    ]
    assert watch.moved == []
    random.random()  # a task of the next chunk draws from a shared global
    assert tasks.run_watched_batch(watch, tree, [1], lambda item: item, ["c"]) == ["c"]
    assert watch.moved == ["random"]
    assert tasks.run_watched_batch(watch, tree, [2], lambda item: item, ["d"]) == []  # refused anyway


# -- the seed-on-import hook ----------------------------------------------------------------


def test_find_spec_of_a_watched_module_that_does_not_exist(hook_state: None) -> None:
    name = "_seedtree_no_such_module"
    STATE.hook_pending, STATE.hook_node = frozenset({name, "other"}), SeedTree(19)
    assert importhook._SeedOnImport().find_spec(name) is None
    assert STATE.hook_pending == frozenset({"other"})


class _LegacyLoader(importlib.abc.Loader):
    """A loader from before ``exec_module`` (only ``load_module``)."""

    def load_module(self, fullname: str) -> ModuleType:
        raise AssertionError("not loaded in this test")


class _LegacyFinder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.loader = _LegacyLoader()

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.machinery.ModuleSpec(name, self.loader) if name == self.name else None


def test_find_spec_leaves_a_loader_without_exec_module_alone(hook_state: None) -> None:
    name = "_seedtree_legacy_module"
    finder = _LegacyFinder(name)
    sys.meta_path.append(finder)
    try:
        STATE.hook_pending, STATE.hook_node = frozenset({name}), SeedTree(20)
        spec = importhook._SeedOnImport().find_spec(name)
    finally:
        sys.meta_path.remove(finder)
    assert spec is not None and spec.name == name and spec.loader is finder.loader
    assert not hasattr(finder.loader, "exec_module") and STATE.hook_pending == frozenset()


def test_seed_fresh_seeds_only_the_library_just_imported(fake_library: str, hook_state: None) -> None:
    node = SeedTree(21) / "task"
    module = importlib.import_module(fake_library)
    random.seed(4)
    np.random.seed(4)
    STATE.hook_node = node
    importhook._seed_fresh("json")  # not a registered library: nothing happens
    importhook._seed_fresh(fake_library)
    assert STATE.hook_fresh == {fake_library: "import"}
    assert module.seeded_from == node
    assert (random.random(), np.random.random_sample()) == (
        random.Random(4).random(),
        np.random.RandomState(4).random_sample(),
    )
    assert importhook.fresh_state(fake_library) == (True, "import")
    assert importhook.fresh_state("random") == (False, None)


def test_the_hook_seeds_a_library_imported_inside_a_task(fake_library: str) -> None:
    import torch  # noqa: F401  # every other registered library imported: only the fake one is missing

    node = SeedTree(22) / "task"
    assert importhook.arm(node) is True
    module = importlib.import_module(fake_library)
    importhook.disarm()
    assert module.seeded_from == node and importhook.fresh_state(fake_library) == (True, "import")
    assert REGISTRY.missing_modules() == frozenset()
    assert importhook.arm(node) is False and STATE.hook_node is None  # nothing left to watch for
    STATE.hook_node = node
    importhook.disarm()
    assert STATE.hook_node is None and STATE.hook_pending == frozenset()  # disarmed: no node is kept


def test_items_of_one_batch_importing_two_libraries_replan_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hook_state: None
) -> None:
    names = [f"_seedtree_fake_rng_{next(_names)}" for _ in range(2)]
    for name in names:
        (tmp_path / f"{name}.py").write_text("seeded_from = 'import'\n")
        st.register(_FakeLibrary(name))
    monkeypatch.syspath_prepend(str(tmp_path))
    tree = SeedTree(23) / "batch"

    def item(j: int) -> int:
        if j < 2:
            importlib.import_module(names[j])  # item 0 imports one library, item 1 the other
        return j

    try:
        assert tasks.run_keyed_batch(tree, [10, 11, 12], item, [0, 1, 2], ("random",)) == [0, 1, 2]
        # each was seeded when imported, from the importing item's node, then per item
        assert [sys.modules[name].seeded_from for name in names] == [tree / 12, tree / 12]
    finally:
        for name in names:
            unregister(name)
            sys.modules.pop(name, None)


def test_a_plan_imports_no_library_unless_asked(fake_library: str) -> None:
    assert fake_library not in REGISTRY.plan().names and fake_library not in sys.modules  # the default
    assert fake_library in REGISTRY.plan(True).names and fake_library in sys.modules


@pytest.mark.parametrize(("name", "shown"), [("", "''"), (5, "5"), (None, "None")])
def test_record_refuses_a_name_that_is_not_a_non_empty_str(name: Any, shown: str) -> None:
    with pytest.raises(TypeError) as info:
        manifest.record(name, SeedTree(1))
    assert str(info.value) == f"record() needs a non-empty str name first, got {shown}"
    with pytest.raises(TypeError) as info:
        manifest.record("x", 5)  # type: ignore[arg-type]
    assert str(info.value) == (
        "record('x', ...) needs a SeedTree node, got int 5; "
        "record the node itself, e.g. st.record(name, root / 'model')"
    )
    assert manifest.recorded() == {}


# -- manifest: environment, hardware, save ---------------------------------------------------


def test_environment_names_each_fact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # torch not imported: its flags are not described
    monkeypatch.setenv("PYTHONHASHSEED", "7")
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    env = manifest.environment()
    assert list(env) == [
        "python",
        "implementation",
        "platform",
        "host",
        "numpy",
        "torch",
        "seedtree",
        "PYTHONHASHSEED",
        "CUBLAS_WORKSPACE_CONFIG",
        "git",
        "hardware",
        "packages",
    ]
    assert env["implementation"] == platform.python_implementation() and env["numpy"] == np.__version__
    assert (env["torch"], env["seedtree"]) == (manifest.version("torch"), manifest.version("seedtree"))
    assert (env["PYTHONHASHSEED"], env["CUBLAS_WORKSPACE_CONFIG"]) == ("7", ":16:8")


def test_environment_describes_torch_when_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)  # both off by default: set, they show
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    env = manifest.environment()
    assert list(env)[10:15] == ["cuda", "cudnn", "deterministic_algorithms", "cudnn_deterministic", "cudnn_benchmark"]
    assert env["cuda"] == torch.version.cuda
    assert env["cudnn"] == (torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None)
    assert env["deterministic_algorithms"] is torch.are_deterministic_algorithms_enabled()
    assert env["cudnn_deterministic"] is True and env["cudnn_benchmark"] is True


def test_hardware_copies_the_gpus_and_reads_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    gpus = {"source": "nvidia-smi", "count": 2, "names": ("A100", "H100"), "driver": "550.54.15"}
    monkeypatch.setattr(manifest, "_gpus", lambda: gpus)  # a machine with GPUs (none here)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    hw = manifest.hardware()
    assert list(hw) == ["machine", "cpu", "cpu_count", "cpu_usable", "gpus", "CUDA_VISIBLE_DEVICES"]
    assert hw["gpus"] == {"source": "nvidia-smi", "count": 2, "names": ["A100", "H100"], "driver": "550.54.15"}
    assert hw["CUDA_VISIBLE_DEVICES"] == "1,0"
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # macOS, Windows
    assert manifest.hardware()["cpu_usable"] is None


def test_save_writes_indented_json_through_a_sibling_tmp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    saved = st.Manifest(SeedTree(27), {"a": SeedTree(27) / "a"}, fields={"k": 1})
    path = saved.save(tmp_path / "m.json")
    assert path == tmp_path / "m.json" and [p.name for p in tmp_path.iterdir()] == ["m.json"]
    assert path.read_text() == json.dumps(saved.to_dict(), indent=2) + "\n"

    def crash(src: Any, dst: Any) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="^disk gone$"):
        st.Manifest(SeedTree(28)).save(path)
    assert st.Manifest.load(path).root == SeedTree(27)  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.json.tmp"]


# -- manifest: reading back ---------------------------------------------------------------


def _document() -> dict[str, Any]:
    return st.Manifest(SeedTree(5), {"a": SeedTree(5) / "x"}).to_dict()


def _changed(path: str, value: Any) -> dict[str, Any]:
    """The document with ``value`` at the dotted ``path`` (``...`` removes the entry)."""
    data = _document()
    *parents, last = path.split(".")
    here = data
    for part in parents:
        here = here[part]
    if value is ...:
        del here[last]
    else:
        here[last] = value
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, 'S is not a seedtree manifest (no "schema": "seedtree.manifest")'),
        (_changed("schema", "other"), 'S is not a seedtree manifest (no "schema": "seedtree.manifest")'),
        (_changed("version", True), "S has an invalid version True (expected an int >= 1)"),
        (_changed("version", 0), "S has an invalid version 0 (expected an int >= 1)"),
        (_changed("version", 2), "S has version 2, newer than this seedtree reads (1); upgrade seedtree"),
        (_changed("root", ...), 'S has no valid "root" entry (expected {"entropy": "<decimal string>"})'),
        (_changed("root.entropy", ...), 'S has no valid "root" entry (expected {"entropy": "<decimal string>"})'),
        (
            _changed("root.entropy", "-5"),
            "S: the root entropy must be a non-negative decimal string, got '-5'",
        ),
        (
            _changed("root.entropy_hex", "0x6"),
            "S: root entropy '5' and entropy_hex '0x6' disagree; the file is corrupt: restore it or record a new run",
        ),
        (_changed("streams", []), "S: 'streams' must be a JSON object mapping names to {entropy, path}"),
        (_changed("checks", []), """S: 'checks' must be an object {"streams": {name: check}}"""),
        (_changed("checks.streams", []), """S: 'checks' must be an object {"streams": {name: check}}"""),
        (
            _changed("checks.streams.a", ...),
            "S: stream 'a' has no check; the file was damaged or edited by hand",
        ),
        (
            _changed("checks.streams.b", "0"),
            "S: a check names the stream 'b', which is missing; the file is damaged",
        ),
        (_changed("checks.streams.a", 5), "S: the check of stream 'a' must be a string"),
        (_changed("streams.a", 5), "S: stream 'a' must be an object with 'entropy' and 'path', got 5"),
        (
            _changed("streams.a.path", ...),
            "S: stream 'a' must be an object with 'entropy' and 'path', got {'entropy': '5'}",
        ),
        (
            _changed("streams.a.entropy", ...),
            "S: stream 'a' must be an object with 'entropy' and 'path', got {'path': ['x']}",
        ),
        (_changed("streams.a.path", "x"), "S: stream 'a' is malformed: a path must be a JSON list, got str"),
        (
            _changed("streams.a.path", ["y"]),
            "S: stream 'a' is damaged: its entropy or path does not match its check ('cf28ec1e6dcdcd6c'); "
            "restore the file or record a new run",
        ),
        (_changed("environment", []), "S: 'environment' and 'fields' must be JSON objects"),
        (_changed("fields", 5), "S: 'environment' and 'fields' must be JSON objects"),
        (_changed("created", 5), "S: 'created' must be a timestamp string, got 5"),
        (_changed("datasets", []), "S: 'datasets' must be a JSON object mapping names to dataset hashes"),
        (
            _changed("datasets", {"d": None}),
            "S: dataset 'd' must be an object with path, kind, sha256, files, links, bytes; got None; "
            "the file is damaged or edited by hand",
        ),
    ],
)
def test_from_dict_names_its_source_and_the_problem(data: Any, message: str) -> None:
    with pytest.raises(manifest.ManifestError) as info:
        st.Manifest.from_dict(data, source="S")
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"root": 5}, "Manifest root must be a SeedTree, got int"),
        ({"streams": []}, "Manifest streams must be a dict of name -> SeedTree, got list"),
        ({"streams": {"a": 5}}, "Manifest streams must map str names to SeedTree nodes; 'a' maps to int"),
        ({"streams": {1: SeedTree(1)}}, "Manifest streams must map str names to SeedTree nodes; 1 maps to SeedTree"),
        ({"environment": []}, "Manifest environment, fields and datasets must be dicts"),
        ({"fields": []}, "Manifest environment, fields and datasets must be dicts"),
        ({"datasets": []}, "Manifest environment, fields and datasets must be dicts"),
    ],
)
def test_a_manifest_refuses_parts_of_the_wrong_type(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError) as info:
        st.Manifest(**{"root": SeedTree(1), **arguments})
    assert str(info.value) == message


def test_from_dict_names_the_manifest_when_no_source_is_given() -> None:
    with pytest.raises(manifest.ManifestError) as info:
        st.Manifest.from_dict(None)
    assert str(info.value) == 'manifest is not a seedtree manifest (no "schema": "seedtree.manifest")'


def test_from_dict_reads_optional_entries_as_empty() -> None:
    data = _document()
    for key in ("streams", "checks", "environment", "fields", "created"):
        del data[key]
    assert st.Manifest.from_dict(data) == st.Manifest(SeedTree(5))
    back = st.Manifest.from_dict(_changed("checks", ...), source="S")  # written by hand: no checks
    assert back.streams == {"a": SeedTree(5) / "x"}
    assert st.Manifest.from_dict(_changed("fields", {"k": 1})).fields == {"k": 1}
    no_streams = {**_document(), "streams": {}, "checks": {}}  # "checks" without its "streams" entry
    assert st.Manifest.from_dict(no_streams) == st.Manifest(SeedTree(5))
    with pytest.raises(manifest.ManifestError) as info:
        st.Manifest.from_dict(_changed("checks", {}), source="S")
    assert str(info.value) == "S: stream 'a' has no check; the file was damaged or edited by hand"


@pytest.mark.skipif(os.name == "nt", reason="a shell script stands in for git")
def test_a_git_that_hangs_is_given_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "git"
    fake.write_text("#!/bin/sh\nexec sleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setattr(manifest, "_GIT_TIMEOUT_S", 0.2)
    started = time.monotonic()
    assert manifest._git_commit(str(tmp_path)) is None
    assert time.monotonic() - started < 10


_FAKE_GIT = """#!/bin/sh
case "$1" in
  rev-parse) echo 0123abcd ;;
  diff) {diff} ;;
  ls-files) {ls_files} ;;
esac
"""


@pytest.mark.skipif(os.name == "nt", reason="a shell script stands in for git")
@pytest.mark.parametrize(
    ("diff", "ls_files", "expected"),
    [
        (
            "echo 'fatal: bad object' >&2; exit 128",
            "printf 'a\\000b\\000'",
            {"commit": "0123abcd", "dirty": None, "diff_sha256": None, "untracked": 2},
        ),
        (
            "echo change",
            "exit 1",
            {
                "commit": "0123abcd",
                "dirty": True,
                "diff_sha256": hashlib.sha256(b"change\n").hexdigest(),
                "untracked": None,
            },
        ),
    ],
)
def test_git_commit_reports_what_git_could_not_tell_as_none(
    diff: str, ls_files: str, expected: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "git"
    fake.write_text(_FAKE_GIT.format(diff=diff, ls_files=ls_files))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    assert manifest._git_commit(str(tmp_path)) == expected


def test_load_names_the_file_in_each_refusal(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    with pytest.raises(manifest.ManifestError) as info:
        st.Manifest.load(path)
    assert str(info.value) == f"cannot read manifest {path}: No such file or directory"
    try:
        json.loads("9" * 5000)
    except ValueError as exc:
        too_long = str(exc)
    for content, message in [
        (
            b'{"a": ',
            f"{path} is not valid JSON (line 1, column 7: Expecting value); "
            "the file is truncated or corrupt: restore it or record a new run",
        ),
        (b"[" * 100_000, f"{path} is not a seedtree manifest: its JSON is nested too deeply"),
        (b"9" * 5000, f"{path} is not a seedtree manifest: {too_long}"),
        (b"\x80", f"{path} is not a seedtree manifest: it is not UTF-8 text (a binary or pickle file?)"),
        (b"{}", f'{path} is not a seedtree manifest (no "schema": "seedtree.manifest")'),
    ]:
        path.write_bytes(content)
        with pytest.raises(manifest.ManifestError) as info:
            st.Manifest.load(path)
        assert str(info.value) == message
    path.write_text('{"schema": "seedtree.manifest", "version": 1, "root": {"entropy": "5"}}', "utf-8")
    assert st.Manifest.load(str(path)) == st.Manifest(SeedTree(5))


# -- manifest: the NVIDIA driver ------------------------------------------------------------


@pytest.mark.parametrize(
    ("first_line", "expected"),
    [
        (b"NVRM version: NVIDIA UNIX Kernel Module  1.0-9631  Thu Nov  8 2007\n", "1.0-9631"),  # one-digit major
        (b"NVRM version: NVIDIA \xff\xfe Kernel Module  550.54.15  Tue Mar\n", "550.54.15"),  # not UTF-8
        (b"NVRM version: NVIDIA UNIX Kernel Module  550.54.15\xff  Tue Mar\n", "550.54.15\ufffd"),
        (b"NVRM version: NVIDIA v.2 Kernel Module 470 (no dotted version)\n", None),
    ],
)
def test_the_nvidia_driver_version_is_read_from_bytes(
    first_line: bytes, expected: str | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    version_file = tmp_path / "version"
    version_file.write_bytes(first_line)
    real_open = builtins.open

    def fake_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        return real_open(version_file if file == "/proc/driver/nvidia/version" else file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    assert manifest._nvidia_driver() == expected


# -- manifest: MLflow -----------------------------------------------------------------------


def test_log_to_mlflow_without_mlflow_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(ImportError) as info:
        st.Manifest(SeedTree(23)).log_to_mlflow()
    assert str(info.value) == (
        "Manifest.log_to_mlflow() needs the optional package 'mlflow', which is not installed: "
        "pip install 'seedtree[mlflow]'  (or: pip install mlflow-skinny)"
    )


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """MLflow (imported only here) logging to a file store under ``tmp_path``."""
    if _mlflow is None:
        pytest.skip("mlflow is not installed")
    mlflow = _mlflow
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    try:
        yield mlflow
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(previous)


def _params(mlflow: Any, run_id: str) -> dict[str, str]:
    params: dict[str, str] = mlflow.MlflowClient().get_run(run_id).data.params
    return params


def test_log_to_mlflow_logs_exactly_these_params_and_the_manifest(mlflow_store: Any, tmp_path: Path) -> None:
    root = SeedTree(24)
    environment = {
        "python": "3.11.9",
        "numpy": "2.0.0",
        "torch": "2.4.0",
        "cuda": "12.1",
        "cudnn": 90100,
        "seedtree": "0.9.0",
        "host": "not logged",
    }
    streams = {
        "v1.2/x": root / "a",
        "X.X": root / "b",
        "./..": root / "c",
        "trail/": root / "d",
        "a:b": root / "e",
        "a?b": root / "f",
        "a_b": root / "g",
        "other": SeedTree(5) / b"\x01",
    }
    logged = st.Manifest(root, streams, environment)
    run_id = logged.log_to_mlflow()
    assert _params(mlflow_store, run_id) == {
        "seedtree.root": "24",
        "seedtree.stream.v1.2/x": '["a"]',
        "seedtree.stream.X.X": '["b"]',
        "seedtree.stream._/__": '["c"]',
        "seedtree.stream.trail/_": '["d"]',
        "seedtree.stream.a_b": '["e"]',
        "seedtree.stream.a_b-2": '["f"]',
        "seedtree.stream.a_b-3": '["g"]',
        "seedtree.stream.other": '5:[{"bytes": "01"}]',  # another root is named
        "seedtree.python": "3.11.9",
        "seedtree.numpy": "2.0.0",
        "seedtree.torch": "2.4.0",
        "seedtree.cuda": "12.1",
        "seedtree.cudnn": "90100",
        "seedtree.seedtree": "0.9.0",
    }
    client = mlflow_store.MlflowClient()
    assert [a.path for a in client.list_artifacts(run_id)] == ["seedtree-manifest.json"]
    local = client.download_artifacts(run_id, "seedtree-manifest.json", str(tmp_path))
    assert json.loads(Path(local).read_text()) == logged.to_dict()


def test_log_to_mlflow_sends_batches_of_100(mlflow_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    root = SeedTree(25)
    streams = {f"s{i}": root / i for i in range(250)}
    batches: list[list[str]] = []
    real_log_params = mlflow_store.log_params

    def log_params(params: dict[str, Any]) -> None:
        batches.append(list(params))
        real_log_params(params)

    monkeypatch.setattr(mlflow_store, "log_params", log_params)
    run_id = st.Manifest(root, streams).log_to_mlflow()
    names = ["seedtree.root", *(f"seedtree.stream.s{i}" for i in range(250))]
    assert batches == [names[:100], names[100:200], names[200:]]
    assert len(_params(mlflow_store, run_id)) == 251


def test_log_to_mlflow_limits_are_inclusive(mlflow_store: Any) -> None:
    root = SeedTree(26)
    longest_name = "n" * (250 - len("seedtree.stream."))
    longest_value = root / ("v" * (6000 - len('[""]')))
    run_id = st.Manifest(root, {longest_name: root / 1, "v": longest_value}).log_to_mlflow()
    params = _params(mlflow_store, run_id)
    assert params["seedtree.stream." + longest_name] == "[1]"
    assert len(params["seedtree.stream.v"]) == 6000
    mlflow_store.end_run()

    over_key = st.Manifest(root, {longest_name + "n": root / 1})
    with mlflow_store.start_run() as run, pytest.raises(ValueError) as info:
        over_key.log_to_mlflow()
    key = "seedtree.stream." + longest_name + "n"
    assert str(info.value) == (
        f"MLflow param {key[:60]!r}... is over MLflow's limits (key 250, value 6000 characters); "
        "use a shorter stream name (the manifest artifact is not limited)"
    )
    assert _params(mlflow_store, run.info.run_id) == {}

    over_value = st.Manifest(root, {"v": root / ("v" * (6001 - len('[""]')))})
    with (
        mlflow_store.start_run() as run,
        pytest.raises(ValueError, match="^MLflow param 'seedtree.stream.v'... is over"),
    ):
        over_value.log_to_mlflow()
    assert _params(mlflow_store, run.info.run_id) == {}


def test_apply_call_passes_the_arguments_and_the_keywords() -> None:
    def echo(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
        return args, kwargs

    assert tasks.apply_call((echo, (1, 2), {"x": 3})) == ((1, 2), {"x": 3})


def test_the_import_hook_goes_first_in_line(fake_library: str) -> None:
    class Finder:
        def find_spec(self, *args: Any) -> None:
            return None

    hook = importhook._HOOK
    installed = hook in sys.meta_path  # an earlier test may have armed it: start without it
    if installed:
        sys.meta_path.remove(hook)
    first = Finder()
    sys.meta_path.insert(0, first)
    try:
        assert importhook.arm(SeedTree(3)) is True  # the fake library is not imported yet
        assert sys.meta_path[0] is hook  # before every other finder: it sees each import
    finally:
        importhook.disarm()
        sys.meta_path.remove(first)
        if hook in sys.meta_path:
            sys.meta_path.remove(hook)
        if installed:
            sys.meta_path.insert(0, hook)
