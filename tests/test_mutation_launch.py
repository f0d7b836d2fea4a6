"""In-process checks of what runs at a launched process's start and of the execution
policy's run-time questions, pinned to exact effects:

- ``seedtree.runtime.autoseed`` (which stream each process of ``seedtree run`` gets) and
  the ``sitecustomize`` it installs, whose functions normally run only at interpreter
  start in processes the launcher starts (``tests/test_autoseed.py`` runs those for
  real): called here directly, with the environment, ``sys.orig_argv``, ``sys.path`` and
  the multiprocessing identity set as such a process would have them, and put back;
- ``seedtree.runtime.policy``'s ``task_modules`` / ``shared_globals_problem`` and the
  Dask checks, with real threads and real (unstarted) Dask workers and schedulers;
- ``SharedGlobalsWatch`` and ``seedtree.restore`` with libraries registered here (one
  whose generator has no state yet, one imported during the call, one not imported yet);
- ``seedtree.runtime.owned``'s ``reseed_owned``, ``repr``, pickling and the MONAI
  hand-over, and ``seedtree.runtime.capture``'s plain values and its reading back of
  CUDA states from JSON.
"""

from __future__ import annotations

import copy
import gc
import importlib
import json
import multiprocessing
import multiprocessing.context
import multiprocessing.spawn
import multiprocessing.util
import os
import pickle
import random
import sys
import threading
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import numpy as np
import pytest
from _frames import trampolined, warn_and_where

import seedtree.runtime
from seedtree import SeedTree
from seedtree.core.codec import node_from_json
from seedtree.runtime import autoseed, capture, owned, policy
from seedtree.runtime.controllers import REGISTRY, LibController
from seedtree.runtime.seeding import fork_base, seed_globals
from seedtree.runtime.state import STATE

T = TypeVar("T")

ENV = autoseed.ENV_AUTO_SEED
ENTROPY = "SEEDTREE_ENTROPY"
SITE = "seedtree.runtime.autoseed_site.sitecustomize"
TAIL = "; pass --no-auto-seed to run it unseeded\n"
PARENT = SeedTree(5) / "x"
PARENT_MARK = 'parent:{"entropy": "5", "path": ["x"]}'
PLAIN_ARGV = [sys.executable, "train.py", "--lr", "0.1"]
SPAWN_ARGV = [os.fsdecode(a) for a in multiprocessing.spawn.get_command_line(tracker_fd=5, pipe_handle=7)]
FORKSERVER_ARGV = [sys.executable, "-c", "from multiprocessing.forkserver import main; main(5, 6, ['__main__'], **{})"]


# -- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def fresh(clean_seedtree: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process the launcher started, before anything seeded it; put back afterwards.
    ``_registered`` is set: a test that wants the process-wide hooks registered asks."""
    monkeypatch.setattr(autoseed._SEEDED, "node", None)
    monkeypatch.setattr(autoseed._SEEDED, "parent", None)
    monkeypatch.setattr(autoseed, "_registered", True)
    monkeypatch.setattr(STATE, "hook_node", STATE.hook_node)
    monkeypatch.setattr(STATE, "hook_pending", STATE.hook_pending)
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv(ENTROPY, raising=False)


def as_worker(monkeypatch: pytest.MonkeyPatch, *identity: int) -> None:
    """This process's multiprocessing identity, as a worker's bootstrap sets it."""
    monkeypatch.setattr(multiprocessing.current_process(), "_identity", identity)


def draws() -> tuple[float, float]:
    return random.random(), float(np.random.rand())


def draws_after_seeding(node: SeedTree) -> tuple[float, float]:
    saved = random.getstate(), np.random.get_state()
    seed_globals(node)
    out = draws()
    random.setstate(saved[0])
    np.random.set_state(saved[1])
    return out


def ambient_default() -> SeedTree | None:
    slot = STATE.ambient_default
    return None if slot is None else slot.node


def after_fork_entries(func: Callable[..., Any]) -> list[tuple[Any, Any]]:
    """The real multiprocessing after-fork registry's entries that run ``func``."""
    return [(k, v) for k, v in list(multiprocessing.util._afterfork_registry.items()) if k[2] is func]  # type: ignore[attr-defined]


def forget_after_fork(func: Callable[..., Any]) -> None:
    for key, _ in after_fork_entries(func):
        multiprocessing.util._afterfork_registry.pop(key, None)  # type: ignore[attr-defined]


def on_thread(fn: Callable[[], T], name: str = "task-7") -> T:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=run, name=name)
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


THREAD_PROBLEM = (
    "this task runs on the thread 'task-7', not the main thread (several tasks may run at once in this process)"
)


# -- autoseed: the command --------------------------------------------------------------------


def test_start_root_seeds_the_command_exactly_from_the_root(
    fresh: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENTROPY, "1234")
    expected = draws_after_seeding(SeedTree(1234))
    root = autoseed.start_root()
    assert root == SeedTree(1234)
    assert autoseed.node() == root and autoseed._SEEDED.parent is None
    assert draws() == expected
    assert ambient_default() == root and fork_base() == root
    assert STATE.recorded() == {"auto_seed": root}
    assert os.environ[ENV] == 'parent:{"entropy": "1234", "path": []}'
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize(
    ("entropy", "why"),
    [
        (None, "SEEDTREE_ENTROPY is not set"),
        ("  ", "SEEDTREE_ENTROPY is not set"),
        ("nope", "SEEDTREE_ENTROPY='nope' is not an int; unset it or give decimal/hex entropy"),
    ],
)
def test_start_root_without_a_usable_root_says_so_and_leaves_the_process_alone(
    fresh: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], entropy: str | None, why: str
) -> None:
    if entropy is not None:
        monkeypatch.setenv(ENTROPY, entropy)
    assert autoseed.start_root() is None
    assert capsys.readouterr() == ("", f"seedtree (auto-seed): {why}, so this Python process is not seeded{TAIL}")
    assert os.environ[ENV] == "off"
    assert autoseed.node() is None and ambient_default() is None and STATE.recorded() == {}


def test_seeding_registers_the_fork_hooks_once(fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    real_register_at_fork = os.register_at_fork
    ours: list[dict[str, Any]] = []

    def register_at_fork(**hooks: Any) -> None:
        if hooks.get("after_in_child") is autoseed._after_os_fork:
            ours.append(hooks)  # recorded, not installed: this test process keeps its hooks
        else:
            real_register_at_fork(**hooks)

    monkeypatch.setattr(os, "register_at_fork", register_at_fork)
    monkeypatch.setattr(autoseed, "_registered", False)
    before = after_fork_entries(autoseed._after_start)
    try:
        autoseed._seed(SeedTree(8), "auto_seed")
        added = [e for e in after_fork_entries(autoseed._after_start) if e not in before]
        assert [value for _, value in added] == [autoseed._SEEDED]
        assert ours == [{"after_in_child": autoseed._after_os_fork}]
        assert autoseed._registered is True
        autoseed._seed(SeedTree(9), "auto_seed")  # once per process: fork children inherit both
        assert [e for e in after_fork_entries(autoseed._after_start) if e not in before] == added
        assert len(ours) == 1
    finally:
        for key, _ in [e for e in after_fork_entries(autoseed._after_start) if e not in before]:
            multiprocessing.util._afterfork_registry.pop(key, None)  # type: ignore[attr-defined]


# -- autoseed: multiprocessing children and forks ---------------------------------------------


def test_start_child_seeds_a_worker_from_its_parent_and_identity(
    fresh: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    as_worker(monkeypatch, 2, 3)
    expected = PARENT / "process" / 2 / 3
    wanted = draws_after_seeding(expected)
    assert autoseed.start_child(PARENT_MARK) == expected
    assert autoseed.node() == expected and ambient_default() == expected
    assert draws() == wanted
    assert STATE.recorded() == {"auto_seed/process/2.3": expected}
    assert os.environ[ENV] == 'parent:{"entropy": "5", "path": ["x", "process", 2, 3]}'
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("already", ["seeded", "given its parent's node by a fork"])
def test_start_child_leaves_a_process_already_handled_alone(
    fresh: None, monkeypatch: pytest.MonkeyPatch, already: str
) -> None:
    as_worker(monkeypatch, 1)
    monkeypatch.setenv(ENV, PARENT_MARK)
    mine = SeedTree(77)
    if already == "seeded":
        autoseed._SEEDED.node = mine
    else:
        autoseed._SEEDED.parent = mine
    assert autoseed.start_child(PARENT_MARK) is None
    assert os.environ[ENV] == PARENT_MARK
    assert STATE.recorded() == {} and ambient_default() is None
    assert (autoseed._SEEDED.node, autoseed._SEEDED.parent) == ((mine, None) if already == "seeded" else (None, mine))


@pytest.mark.parametrize(
    "payload",
    [
        "{oops",
        '{"entropy": "5"}',
        '{"entropy": "5", "path": [1.5]}',  # a key no node has: TypeError from the key check
        '{"entropy": "5", "path": [-1]}',  # ValueError from the key check
    ],
)
def test_start_child_with_a_damaged_mark_says_so_and_turns_auto_seed_off(
    fresh: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], payload: str
) -> None:
    as_worker(monkeypatch, 1)
    with pytest.raises((ValueError, TypeError)) as info:
        node_from_json(json.loads(payload))
    assert autoseed.start_child("parent:" + payload) is None
    message = f"SEEDTREE_AUTO_SEED is damaged ({info.value}), so this worker process is not seeded"
    assert capsys.readouterr() == ("", f"seedtree (auto-seed): {message}{TAIL}")
    assert os.environ[ENV] == "off"
    assert autoseed.node() is None and STATE.recorded() == {}


def test_a_process_that_is_no_multiprocessing_child_is_left_alone(
    fresh: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    as_worker(monkeypatch)  # the main process: no identity
    monkeypatch.setenv(ENV, PARENT_MARK)
    assert autoseed.start_child(PARENT_MARK) is None
    assert os.environ[ENV] == "off"
    assert autoseed.node() is None and STATE.recorded() == {} and ambient_default() is None
    assert capsys.readouterr() == ("", "")


def test_after_os_fork_makes_the_fork_node_the_process_s_own(fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    parent, forked = SeedTree(4), SeedTree(4) / "fork" / 2
    autoseed._SEEDED.node = parent
    STATE.start_fork_base(forked)  # what seed_process's own fork hook made this child's base
    autoseed._after_os_fork()
    assert (autoseed._SEEDED.parent, autoseed._SEEDED.node) == (parent, forked)
    assert os.environ[ENV] == 'parent:{"entropy": "4", "path": ["fork", 2]}'


def test_after_os_fork_without_a_fork_base_marks_nothing(fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, PARENT_MARK)
    autoseed._SEEDED.node = SeedTree(4)
    autoseed._after_os_fork()
    assert (autoseed._SEEDED.parent, autoseed._SEEDED.node) == (SeedTree(4), None)
    assert os.environ[ENV] == PARENT_MARK


def test_after_os_fork_of_an_unseeded_process_does_nothing(fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, PARENT_MARK)
    STATE.start_fork_base(SeedTree(4) / "fork" / 0)
    autoseed._after_os_fork()
    assert (autoseed._SEEDED.parent, autoseed._SEEDED.node) == (None, None)
    assert os.environ[ENV] == PARENT_MARK


def test_after_start_seeds_a_forked_worker_once(
    fresh: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    as_worker(monkeypatch, 4)
    seeded = autoseed._Seeded()
    seeded.parent = PARENT
    autoseed._after_start(seeded)
    assert seeded.parent is None
    assert autoseed.node() == PARENT / "process" / 4
    assert STATE.recorded() == {"auto_seed/process/4": PARENT / "process" / 4}
    autoseed._after_start(seeded)  # nothing left to do
    assert autoseed.node() == PARENT / "process" / 4 and len(STATE.recorded()) == 1
    assert capsys.readouterr() == ("", "")


def test_after_start_in_a_child_of_an_unseeded_process_does_nothing(
    fresh: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    as_worker(monkeypatch, 4)
    autoseed._after_start(autoseed._Seeded())
    assert autoseed.node() is None and STATE.recorded() == {} and ENV not in os.environ
    assert capsys.readouterr() == ("", "")


def unseedable_worker(monkeypatch: pytest.MonkeyPatch) -> str:
    """Make this process a worker whose identity no path key can hold; the line it must print."""
    as_worker(monkeypatch, 2**32)
    with pytest.raises(ValueError) as info:
        PARENT.child("process", 2**32)
    return f"seedtree (auto-seed): could not seed this worker process (ValueError: {info.value}){TAIL}"


def test_after_start_reports_a_worker_it_cannot_seed(
    fresh: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = unseedable_worker(monkeypatch)
    seeded = autoseed._Seeded()
    seeded.parent = PARENT
    autoseed._after_start(seeded)  # multiprocessing would swallow the error: it is said instead
    assert capsys.readouterr() == ("", expected)
    assert seeded.parent is None and autoseed.node() is None and STATE.recorded() == {}


# -- sitecustomize ----------------------------------------------------------------------------


@pytest.fixture
def site(fresh: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ModuleType]:
    """The launcher's ``sitecustomize``, imported under its package name (its first import
    runs it with nothing to seed and nothing to chain to); the hooks a test makes it
    install are taken out again."""
    saved_path = sys.path[:]
    sys.path[:] = [str(tmp_path)]
    try:
        module = importlib.import_module(SITE)
    finally:
        sys.path[:] = saved_path
    spawn = multiprocessing.context.SpawnProcess
    monkeypatch.setattr(spawn, "_after_fork", spawn.__dict__["_after_fork"])
    monkeypatch.setattr(module, "_held", [])
    monkeypatch.delitem(sys.modules, "sitecustomize", raising=False)
    monkeypatch.setattr(sys, "orig_argv", PLAIN_ARGV)
    try:
        yield module
    finally:
        forget_after_fork(module._child_started)


@pytest.mark.parametrize(
    ("argv", "started"),
    [(SPAWN_ARGV, "spawn"), (FORKSERVER_ARGV, "forkserver"), (PLAIN_ARGV, None), ([sys.executable, "-c", "1"], None)],
)
def test_site_tells_how_multiprocessing_started_the_interpreter(
    site: ModuleType, monkeypatch: pytest.MonkeyPatch, argv: list[str], started: str | None
) -> None:
    monkeypatch.setattr(sys, "orig_argv", argv)
    assert site._started_by_multiprocessing() == started


def test_site_in_a_python_without_orig_argv_sees_no_multiprocessing(
    site: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(sys, "orig_argv")  # Python < 3.10, which a command may still run
    assert site._started_by_multiprocessing() is None


def test_site_root_mark_seeds_the_command(
    site: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENV, "root")
    monkeypatch.setenv(ENTROPY, "77")
    site._seed()
    assert autoseed.node() == SeedTree(77) and STATE.recorded() == {"auto_seed": SeedTree(77)}
    assert os.environ[ENV] == 'parent:{"entropy": "77", "path": []}'
    assert capsys.readouterr() == ("", "")


def test_site_root_mark_where_seedtree_cannot_be_imported(
    site: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENV, "root")
    monkeypatch.setenv(ENTROPY, "77")
    monkeypatch.delattr(seedtree.runtime, "autoseed")
    monkeypatch.setitem(sys.modules, "seedtree.runtime.autoseed", None)
    with pytest.raises(ImportError) as info:
        from seedtree.runtime import autoseed as _  # noqa: F401
    site._seed()
    assert os.environ[ENV] == "off"
    why = f"{sys.executable} cannot import seedtree ({info.value}), so this program is not seeded"
    assert capsys.readouterr() == ("", f"seedtree (auto-seed): {why}{TAIL}")
    assert autoseed.node() is None and STATE.recorded() == {}


def test_site_without_a_mark_does_nothing(site: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    site._seed()
    assert ENV not in os.environ and autoseed.node() is None
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize(
    ("mark", "argv"),
    [(PARENT_MARK, PLAIN_ARGV), ("off", SPAWN_ARGV), ("off", FORKSERVER_ARGV), ("off", PLAIN_ARGV)],
)
def test_site_leaves_other_python_programs_alone(
    site: ModuleType, monkeypatch: pytest.MonkeyPatch, mark: str, argv: list[str]
) -> None:
    stdlib_hook = multiprocessing.context.SpawnProcess.__dict__["_after_fork"]
    monkeypatch.setenv(ENV, mark)
    monkeypatch.setattr(sys, "orig_argv", argv)
    site._seed()
    assert os.environ[ENV] == "off"
    assert multiprocessing.context.SpawnProcess.__dict__["_after_fork"] is stdlib_hook
    assert site._held == [] and after_fork_entries(site._child_started) == []
    assert autoseed.node() is None and STATE.recorded() == {}


def test_site_seeds_a_spawned_worker_when_it_starts_its_work(
    site: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdlib_hook = multiprocessing.context.SpawnProcess.__dict__["_after_fork"]
    monkeypatch.setenv(ENV, PARENT_MARK)
    monkeypatch.setattr(sys, "orig_argv", SPAWN_ARGV)
    site._seed()
    assert multiprocessing.context.SpawnProcess.__dict__["_after_fork"] is not stdlib_hook
    assert autoseed.node() is None and os.environ[ENV] == PARENT_MARK  # the main module is re-imported unseeded
    as_worker(monkeypatch, 2)  # the bootstrap has set the identity, then runs the hook
    multiprocessing.context.SpawnProcess._after_fork()  # type: ignore[attr-defined]
    assert autoseed.node() == PARENT / "process" / 2
    assert STATE.recorded() == {"auto_seed/process/2": PARENT / "process" / 2}
    assert site._held == [] and after_fork_entries(site._child_started) == []
    assert capsys.readouterr() == ("", "")


def test_site_seeds_each_forkserver_worker_when_it_starts_its_work(
    site: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdlib_hook = multiprocessing.context.SpawnProcess.__dict__["_after_fork"]
    monkeypatch.setenv(ENV, PARENT_MARK)
    monkeypatch.setattr(sys, "orig_argv", FORKSERVER_ARGV)
    site._seed()
    assert [parent.mark for parent in site._held] == [PARENT_MARK]
    entries = after_fork_entries(site._child_started)
    assert [value for _, value in entries] == site._held
    assert multiprocessing.context.SpawnProcess.__dict__["_after_fork"] is stdlib_hook
    assert autoseed.node() is None and os.environ[ENV] == PARENT_MARK
    as_worker(monkeypatch, 3)  # a process the forkserver forked runs the after-fork hooks
    (key, parent), *_ = entries
    key[2](parent)
    assert autoseed.node() == PARENT / "process" / 3
    assert capsys.readouterr() == ("", "")


def test_site_reports_a_worker_it_cannot_seed(
    site: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = unseedable_worker(monkeypatch)
    site._child_started(site._Parent(PARENT_MARK))  # multiprocessing would swallow the error
    assert capsys.readouterr() == ("", expected)
    assert autoseed.node() is None


def test_site_runs_the_sitecustomize_it_hides_once(
    site: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "sitecustomize.py").write_text("CHAINED = __name__\n")
    monkeypatch.chdir(site._HERE)
    # "" (the working directory, here the site folder) and the site folder itself are skipped
    monkeypatch.setattr(sys, "path", ["", site._HERE + os.sep, str(theirs)])
    monkeypatch.setenv(ENV, PARENT_MARK)  # running the launcher's own file again would turn it off
    site._chain()
    module = sys.modules["sitecustomize"]
    assert module.__file__ == str(theirs / "sitecustomize.py")
    assert module.CHAINED == "sitecustomize"
    assert os.environ[ENV] == PARENT_MARK


def test_site_without_a_hidden_sitecustomize_chains_nothing(
    site: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "path", [site._HERE, str(tmp_path)])
    site._chain()
    assert "sitecustomize" not in sys.modules


def test_site_skips_a_sitecustomize_folder_without_code(
    site: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "sitecustomize").mkdir()  # a namespace package: nothing to run
    monkeypatch.setattr(sys, "path", [site._HERE, str(tmp_path)])
    site._chain()
    assert "sitecustomize" not in sys.modules


# -- policy: which globals a task seeds -------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "seeded"), [("processes", True), ("inline", True), ("task", True), ("threads", False), ("other", False)]
)
def test_modules_for_by_default_seeds_where_each_worker_has_its_globals(where: policy.Where, seeded: bool) -> None:
    expected = REGISTRY.loaded_modules() if seeded else ()
    assert "numpy" in REGISTRY.loaded_modules()
    assert policy.modules_for(None, where, "the pool") == expected


def test_modules_for_with_a_yes_or_a_no() -> None:
    assert policy.modules_for(True, "processes", "the pool") == REGISTRY.loaded_modules()
    assert policy.modules_for(True, "other", "the pool") == REGISTRY.loaded_modules()
    assert policy.modules_for(False, "processes", "the pool") == ()
    assert policy.modules_for(False, "threads", "the pool") == ()


@pytest.mark.parametrize("bind_globals", [True, ["numpy"]])
def test_modules_for_refuses_globals_on_threads(bind_globals: policy.BindGlobals) -> None:
    with pytest.raises(ValueError) as info:
        policy.modules_for(bind_globals, "threads", "the thread pool")
    assert str(info.value) == (
        "bind_globals=True cannot be used with the thread pool: threads share the global RNGs of random, "
        "numpy and torch, so per-task seeding would race and results would depend on scheduling. "
        "Use seedtree.rng() inside the task (the ambient stream is per-thread and safe), or a "
        "process backend."
    )


def test_modules_for_with_module_names() -> None:
    assert policy.modules_for(["numpy", "random"], "processes", "the pool") == ("numpy", "random")
    assert policy.modules_for(iter(["random"]), "inline", "the pool") == ("random",)
    assert policy.modules_for([], "threads", "the pool") == ()  # none asked: nothing to refuse
    with pytest.raises(ValueError) as info:
        policy.modules_for(["numpy", "nope", "random"], "processes", "the pool")
    known = sorted({c.module for c in REGISTRY.all().values()})
    assert known == ["numpy", "random", "torch"]
    assert str(info.value) == (
        "bind_globals names ['nope'], whose global RNG no seedtree binding seeds (no LibController is registered "
        "for it); name some of ['numpy', 'random', 'torch'], or register a seedtree.LibController for it"
    )
    with pytest.raises(TypeError) as type_info:
        policy.modules_for("numpy", "processes", "the pool")
    assert str(type_info.value) == "bind_globals takes True/False/None or a list of module names, e.g. ('numpy',)"


# -- policy: decided where a task runs --------------------------------------------------------


def test_task_modules_on_the_main_thread_seeds_what_was_asked() -> None:
    assert policy.shared_globals_problem() is None
    assert policy.task_modules(("random", "numpy"), True) == ("random", "numpy")
    assert policy.task_modules(("numpy",), False) == ("numpy",)
    assert policy.task_modules((), True) == ()


def test_task_modules_on_a_thread() -> None:
    assert on_thread(policy.shared_globals_problem) == THREAD_PROBLEM
    assert on_thread(lambda: policy.task_modules(("numpy",), False)) == ()  # the default: none
    assert on_thread(lambda: policy.task_modules((), True)) == ()  # nothing asked, nothing refused
    with pytest.raises(RuntimeError) as info:
        on_thread(lambda: policy.task_modules(("numpy",), True))
    assert str(info.value) == policy.GLOBALS_ERROR.format(problem=THREAD_PROBLEM)
    with pytest.raises(RuntimeError) as info:
        on_thread(lambda: policy.task_modules(("numpy",), True, " See the Dask guide."))
    assert str(info.value) == policy.GLOBALS_ERROR.format(problem=THREAD_PROBLEM) + " See the Dask guide."


def test_shared_globals_problem_without_distributed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "distributed", raising=False)
    assert policy.shared_globals_problem() is None
    assert on_thread(policy.shared_globals_problem) == THREAD_PROBLEM


@pytest.fixture
def dask(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Makes real Dask workers and schedulers, not started (nothing connects or listens
    but a scheduler's HTTP server, stopped afterwards with the rest). No other live one
    may be in this process."""
    distributed = pytest.importorskip("distributed")
    from distributed.core import Status

    gc.collect()
    gone = (Status.closing, Status.closed, Status.failed)
    live = [s for s in (*distributed.Worker._instances, *distributed.Scheduler._instances) if s.status not in gone]
    assert live == []
    monkeypatch.setattr(sys, "path", sys.path[:])  # each server puts its scratch folder first on it
    made: list[Any] = []

    def make(kind: str, **kwargs: Any) -> Any:
        if kind == "scheduler":
            obj = distributed.Scheduler(dashboard_address=":0", local_directory=str(tmp_path))
        else:
            obj = distributed.Worker("tcp://127.0.0.1:1", local_directory=str(tmp_path), **kwargs)
        made.append(obj)
        return obj

    yield make
    for obj in made:
        obj.stop()  # the synchronous part of close(): releases its scratch folder
        http_server = getattr(obj, "http_server", None)
        if http_server is not None:
            http_server.stop()
        obj.status = Status.closed


def test_a_lone_one_thread_dask_worker_has_the_globals_to_itself(dask: Callable[..., Any]) -> None:
    worker = dask("worker", nthreads=1, name="w1")
    assert policy.dask_process_problem(worker) is None
    assert policy.dask_worker_problem(worker) is None


def test_a_dask_worker_with_threads_shares_the_globals(dask: Callable[..., Any]) -> None:
    worker = dask("worker", nthreads=2, name="w2")
    assert policy.dask_worker_problem(worker) == "the Dask worker 'w2' runs 2 threads, which share those globals"


SHARED = (
    "the Dask worker 'a' shares its process with other workers or with the scheduler and client "
    "(LocalCluster(processes=False)?)"
)


@pytest.mark.parametrize("gone", ["closing", "closed", "failed"])
def test_a_dask_worker_next_to_another_live_one_shares_the_globals(dask: Callable[..., Any], gone: str) -> None:
    from distributed.core import Status

    a, b = dask("worker", nthreads=1, name="a"), dask("worker", nthreads=1, name="b")
    assert policy.dask_process_problem(a) == SHARED
    assert policy.dask_worker_problem(a) == SHARED
    b.status = Status[gone]
    assert policy.dask_process_problem(a) is None


@pytest.mark.parametrize("gone", ["closing", "closed", "failed"])
def test_a_dask_worker_next_to_a_live_scheduler_shares_the_globals(dask: Callable[..., Any], gone: str) -> None:
    from distributed.core import Status

    a = dask("worker", nthreads=1, name="a")
    scheduler = dask("scheduler")
    assert policy.dask_process_problem(a) == SHARED
    scheduler.status = Status[gone]
    assert policy.dask_process_problem(a) is None


def test_shared_globals_problem_in_a_dask_task(dask: Callable[..., Any]) -> None:
    from distributed.worker import _worker_cvar

    assert policy.shared_globals_problem() is None  # distributed imported, no task running
    worker = dask("worker", nthreads=2, name="w2")
    token = _worker_cvar.set(worker)  # what the worker sets around each task it runs
    try:
        assert policy.shared_globals_problem() == "the Dask worker 'w2' runs 2 threads, which share those globals"
        with pytest.raises(RuntimeError) as info:
            policy.task_modules(("numpy",), True)
        assert str(info.value) == policy.GLOBALS_ERROR.format(
            problem="the Dask worker 'w2' runs 2 threads, which share those globals"
        )
    finally:
        _worker_cvar.reset(token)


# -- policy: the watch over threaded runs, and restore, with libraries registered here ------


class ToyRng(LibController):
    """A registered library of our own: its module holds its global generator's state, an
    int. ``started=False``: the generator has no state yet (as CUDA's before it starts)."""

    def __init__(self, name: str, module: str, started: bool = True) -> None:
        self.name, self.module, self.started = name, module, started

    def _lib(self) -> Any:
        return sys.modules[self.module]

    def seed(self, node: SeedTree) -> None:
        self._lib().state = int(node.words(0, 1)[0])

    def capture(self) -> int:
        return int(self._lib().state)

    def restore(self, state: int) -> None:
        self._lib().state = state

    def validate(self, state: Any) -> None:
        if not isinstance(state, int):
            raise ValueError(f"a {self.name} state is an int, got {state!r}")

    def fingerprint(self) -> Any:
        return self._lib().state if self.started else None


@pytest.fixture
def toys(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., ModuleType]]:
    """Registers a ``ToyRng`` and returns its library's module, made in memory (``loaded=False``:
    made but not imported yet); unregisters them afterwards."""
    monkeypatch.setattr(REGISTRY, "_installed", dict(REGISTRY._installed))  # drop what it learns here
    made: list[str] = []

    def make(name: str, loaded: bool = True, started: bool = True) -> ModuleType:
        module = types.ModuleType(f"seedtree_test_{name}")
        module.state = 1  # type: ignore[attr-defined]
        if loaded:
            monkeypatch.setitem(sys.modules, module.__name__, module)
        REGISTRY.register(ToyRng(name, module.__name__, started))
        made.append(name)
        return module

    yield make
    for name in made:
        REGISTRY.unregister(name)


def test_the_watch_skips_a_generator_with_no_state_yet_and_checks_the_next(
    toys: Callable[..., ModuleType],
) -> None:
    toys("toy_unstarted", started=False)
    moving = toys("toy_moving")
    watch = policy.SharedGlobalsWatch("the test's threads", "use processes")
    assert "toy_unstarted" not in watch.baseline and watch.baseline["toy_moving"] == 1
    assert watch.check() is False
    moving.state = 2  # type: ignore[attr-defined]
    assert watch.check() is True and watch.moved == ["toy_moving"]
    with pytest.raises(RuntimeError) as info:
        watch.finish()
    assert str(info.value) == policy._DRAWN_ERROR.format(
        what="the test's threads", libraries="toy_moving", fix="use processes"
    )
    assert moving.state == 1  # put back


def test_the_watch_takes_a_library_imported_during_the_call_as_it_finds_it(
    toys: Callable[..., ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    late = toys("toy_late", loaded=False)
    watch = policy.SharedGlobalsWatch("the test's threads", "use processes")
    assert "toy_late" not in watch.baseline
    late.state = 5  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, late.__name__, late)  # a task imports it
    assert watch.check() is False and watch.baseline["toy_late"] == 5
    watch.finish()  # nothing moved
    late.state = 6  # type: ignore[attr-defined]
    assert watch.check() is True and watch.moved == ["toy_late"]


@pytest.mark.parametrize("n", [2, 3])
def test_finish_names_every_global_that_moved_and_puts_them_back(clean_seedtree: None, n: int) -> None:
    torch = pytest.importorskip("torch")
    saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
    watch = policy.SharedGlobalsWatch("the thread pool", "use a process pool")
    random.random()
    np.random.rand()
    if n == 3:
        torch.rand(1)
    with pytest.raises(RuntimeError) as info:
        watch.finish()
    libraries = (
        "python's random, numpy (np.random) and torch (CPU)" if n == 3 else "python's random and numpy (np.random)"
    )
    assert str(info.value) == policy._DRAWN_ERROR.format(
        what="the thread pool", libraries=libraries, fix="use a process pool"
    )
    assert random.getstate() == saved[0]
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), saved[1], strict=True))
    assert torch.equal(torch.get_rng_state(), saved[2])


def test_restore_names_a_part_no_binding_handles() -> None:
    with pytest.raises(ValueError) as info:
        capture.restore({"format": capture.STATE_FORMAT, "nope": 1})
    assert str(info.value) == (
        "the state holds 'nope', which no registered binding handles (no LibController has that name); "
        "register one first"
    )


def test_restore_puts_back_a_library_made_in_memory(toys: Callable[..., ModuleType]) -> None:
    module = toys("toy_memory")  # in sys.modules, but no finder knows it
    capture.restore({"format": capture.STATE_FORMAT, "toy_memory": 42})
    assert module.state == 42


def test_restore_imports_an_installed_library_not_imported_yet(
    toys: Callable[..., ModuleType], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    name = "seedtree_test_toy_file"
    (tmp_path / f"{name}.py").write_text("state = 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    REGISTRY.register(ToyRng("toy_file", name))
    try:
        capture.restore({"format": capture.STATE_FORMAT, "toy_file": 42})
        assert sys.modules[name].state == 42
    finally:
        REGISTRY.unregister("toy_file")
        sys.modules.pop(name, None)


def test_restore_skips_a_library_absent_here(toys: Callable[..., ModuleType]) -> None:
    toys("toy_absent", loaded=False)  # captured where it was used, restored where it is not installed
    capture.restore({"format": capture.STATE_FORMAT, "toy_absent": 42})
    assert "seedtree_test_toy_absent" not in sys.modules


# -- owned ------------------------------------------------------------------------------------


class Keyed:
    """Re-keyed through the hook: keeps the nodes it was given."""

    def __init__(self) -> None:
        self.nodes: list[SeedTree] = []

    def seedtree_reseed(self, node: SeedTree) -> None:
        self.nodes.append(node)


class Holder:
    def __init__(self, *parts: Any) -> None:
        self.parts = list(parts)


def test_reseed_owned_keys_each_object_found_from_its_own_stream() -> None:
    a, b = Keyed(), Keyed()
    holder = Holder(a, b)
    node = SeedTree(3) / "item" / 0
    finder = owned.reseed_owned(holder, node)
    assert finder.roots == (holder,)
    assert (a.nodes, b.nodes) == ([node / "owned" / 0], [node / "owned" / 1])
    finder.reseed(node / 1)
    assert b.nodes == [node / "owned" / 1, node / 1 / "owned" / 1]


def test_repr_before_and_after_the_search() -> None:
    finder = owned.OwnedGenerators(Holder(Keyed(), Keyed()), Keyed())
    assert repr(finder) == "OwnedGenerators(2 root(s), not searched yet)"
    assert len(finder) == 3
    assert repr(finder) == (
        "OwnedGenerators(None:[1] (root hook), 0:[0].parts[0] (seedtree_reseed), 1:[0].parts[1] (seedtree_reseed))"
    )


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_a_copied_finder_keeps_the_names_of_its_roots(how: str) -> None:
    finder = owned.OwnedGenerators(Holder(Keyed()), Keyed(), names=("data", "transform"))
    assert finder.found  # searched here: the copy searches again where it lands
    twin = pickle.loads(pickle.dumps(finder)) if how == "pickle" else copy.deepcopy(finder)
    assert twin.names == ("data", "transform")
    assert twin.found == (
        owned.Owner(None, "transform", "root hook"),
        owned.Owner(0, "data.parts[0]", "seedtree_reseed"),
    )


def test_a_monai_object_is_handed_its_generator_once_and_again_when_replaced() -> None:
    pytest.importorskip("monai")
    from monai.transforms import Randomizable

    class Counting(Randomizable):
        def __init__(self) -> None:
            self.handed = 0

        def set_random_state(self, seed: int | None = None, state: Any = None) -> Counting:
            self.handed += 1
            super().set_random_state(seed, state)
            return self

        def randomize(self, data: Any) -> None:
            pass

    obj, other = Counting(), Counting()
    finder = owned.OwnedGenerators([obj, Keyed(), other])  # objects 0 and 2 are keyed from the globals expansion
    for k in range(3):
        finder.reseed(SeedTree(1) / k)
    assert (obj.handed, other.handed) == (1, 1)
    obj.R = np.random.RandomState(0)  # replaced by someone else
    finder.reseed(SeedTree(1) / 3)
    assert (obj.handed, other.handed) == (2, 1)
    for k, randomizable in ((0, obj), (2, other)):
        state = randomizable.R.get_state()
        assert isinstance(state, tuple)
        assert np.array_equal(state[1], (SeedTree(1) / 3 / "owned" / k).globals_words(0, 624))


class TagSet(set[object]):
    """A set with attributes: still a set, so not searched."""


def _not_searched(kind: str) -> Any:
    keyed = Keyed()
    if kind == "module":
        module = types.ModuleType("seedtree_test_globals")
        module.keyed = keyed  # type: ignore[attr-defined]
        return module
    if kind == "set":
        tagged = TagSet()
        tagged.keyed = keyed  # type: ignore[attr-defined]
        return tagged
    if kind == "tensor":
        tensor = pytest.importorskip("torch").zeros(1)
        tensor.keyed = keyed
        return tensor
    frame = pytest.importorskip("pandas").DataFrame({"a": [1]})
    if kind == "grouped data":  # its class's module is "pandas.api.typing": the package is its first part
        grouped = frame.groupby("a")
        grouped.keyed = keyed
        return grouped
    frame.attrs["keyed"] = keyed
    return frame


@pytest.mark.parametrize("kind", ["module", "set", "tensor", "data frame", "grouped data"])
def test_modules_sets_tensors_and_data_are_not_searched(kind: str) -> None:
    finder = owned.OwnedGenerators(Holder(_not_searched(kind), Keyed()))
    assert finder.found == (owned.Owner(0, "parts[1]", "seedtree_reseed"),)


# -- capture: CUDA states read back from JSON -------------------------------------------------


def test_cuda_states_written_as_byte_lists_become_tensors_again() -> None:
    torch = pytest.importorskip("torch")
    cuda = REGISTRY.get("torch_cuda")
    assert cuda is not None
    out = capture._device_tensors(cuda, [[0, 255], [], [7]])
    assert [t.dtype for t in out] == [torch.uint8] * 3
    assert [t.tolist() for t in out] == [[0, 255], [], [7]]


@pytest.mark.parametrize(
    "value",
    [[[256]], [[-1]], [[True, 1]], [[1.5]], [(0, 1)], [[0], "ab"], [], "ab", None],
)
def test_what_is_no_list_of_byte_lists_goes_to_validate_as_it_is(value: Any) -> None:
    pytest.importorskip("torch")
    cuda = REGISTRY.get("torch_cuda")
    assert cuda is not None
    assert capture._device_tensors(cuda, value) is value


def test_only_the_cuda_state_is_turned_into_tensors() -> None:
    pytest.importorskip("torch")
    cpu = REGISTRY.get("torch")
    assert cpu is not None
    value = [[0, 1], [2]]
    assert capture._device_tensors(cpu, value) is value


def test_plain_turns_only_torch_tensors_into_lists() -> None:
    torch = pytest.importorskip("torch")
    assert capture._plain(torch.tensor([1, 2], dtype=torch.uint8)) == [1, 2]
    assert capture._plain([torch.tensor([3]), 5]) == [[3], 5]
    assert capture._plain((torch.tensor([3]), torch.tensor([4]))) == [[3], [4]]
    for value in (np.arange(3), [np.arange(2), 5], {"key": [1, 2]}, (1, 2)):
        assert capture._plain(value) is value


class Slotted:
    __slots__ = ("gen", "other")

    def __init__(self, gen: Any) -> None:
        self.gen = gen  # "other" is left unset: reading it fails, and the search goes on


def _closure_with_an_empty_cell_first(gen: Any) -> Callable[[], Any]:
    def f() -> Any:
        return a_unset, b_gen  # noqa: F821 - a_unset is a cell that is never filled

    b_gen = gen
    return f
    a_unset = None  # never runs: makes a_unset a cell of f


def test_the_search_walks_partials_closures_and_slots_and_stops_at_long_containers() -> None:
    import functools

    found = [Keyed() for _ in range(5)]
    closure = _closure_with_an_empty_cell_first(found[3])
    assert closure.__code__.co_freevars == ("a_unset", "b_gen")  # the empty cell comes first
    roots = (
        [None] * (owned.MAX_ITEMS - 1) + [found[0]],  # exactly MAX_ITEMS items: searched
        [None] * owned.MAX_ITEMS + [Keyed()],  # one more: data, not searched
        {**{i: None for i in range(owned.MAX_ITEMS - 1)}, "last": found[1]},
        {**{i: None for i in range(owned.MAX_ITEMS)}, "last": Keyed()},
        functools.partial(Holder(found[2]).__init__),
        closure,
        Slotted(found[4]),
    )
    finder = owned.OwnedGenerators(*roots)
    assert [(o.key, o.path) for o in finder.found] == [
        (0, f"[0][{owned.MAX_ITEMS - 1}]"),
        (1, "[2]['last']"),
        (2, "[4].func.__self__.parts[0]"),
        (3, "[5].__closure__[1]"),
        (4, "[6].gen"),
    ]


class WeakSlotted:
    __slots__ = ("__weakref__", "__dict__", "gen")  # the special slots first: skipped, not the end

    def __init__(self, gen: Any, attr: Any) -> None:
        self.gen = gen
        self.attr = attr  # in the instance __dict__, searched once as ".attr"


class OneSlot:
    __slots__ = "gen"  # a bare str names one slot

    def __init__(self, gen: Any) -> None:
        self.gen = gen


class TwoSlots:
    __slots__ = ("unset", "gen")

    def __init__(self, gen: Any) -> None:
        self.gen = gen  # "unset" is never assigned: reading it raises


def test_slots_are_read_by_name_each_once() -> None:
    a, b, c = Keyed(), Keyed(), Keyed()
    finder = owned.OwnedGenerators(WeakSlotted(a, b), OneSlot(c))
    assert [(o.key, o.path) for o in finder.found] == [(0, "[0].attr"), (1, "[0].gen"), (2, "[1].gen")]
    assert [o.path for o in owned.OwnedGenerators(TwoSlots(a)).found] == ["gen"]  # read on past an unset slot
    obj = WeakSlotted(a, b)
    assert list(owned._children(obj, "gen")) == [(".attr", b)]  # the child the caller re-keys itself
    assert list(owned._children(obj, "attr")) == [(".gen", a)]


def test_the_global_generators_are_not_owned_and_an_empty_finder_is_false() -> None:
    import torch

    holder = Holder(random._inst, np.random.mtrand._rand, torch.default_generator)  # type: ignore[attr-defined]
    finder = owned.OwnedGenerators(holder)
    assert finder.found == () and finder.unkeyed == () and not finder and len(finder) == 0
    mine = Holder(random.Random(1), np.random.RandomState(1))
    with pytest.warns(owned.UnkeyedGeneratorWarning, match=r"^seedtree cannot re-key 2 generator\(s\) held here"):
        unkeyed = owned.OwnedGenerators(mine).unkeyed
    assert unkeyed == (
        "parts[0] (random.Random)",  # one root: paths start at it
        "parts[1] (numpy.random.mtrand.RandomState)",
    )


def test_the_search_without_torch_or_monai_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # as if never imported
    monkeypatch.delitem(sys.modules, "monai.transforms.transform", raising=False)
    monkeypatch.delitem(sys.modules, "albumentations.core.composition", raising=False)
    monkeypatch.delitem(sys.modules, "albumentations.core.transforms_interface", raising=False)
    kinds = owned._Kinds()
    assert (kinds.tensor, kinds.randomizable, kinds.albumentations) == (None, None, ())
    assert kinds.generators == (np.random.Generator, np.random.RandomState, np.random.BitGenerator, random.Random)
    a = Keyed()
    assert [(o.key, o.path) for o in owned.OwnedGenerators(Holder(a, [1.5, "x"])).found] == [(0, "parts[0]")]


def test_a_torch_still_being_imported_is_not_taken_for_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    # While torch imports itself (an import hook, a circular import) sys.modules holds a
    # module with neither its Generator class nor its default generator yet.
    monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))
    kinds = owned._Kinds()
    assert kinds.tensor is None and kinds.generators[-1] is random.Random
    with pytest.warns(owned.UnkeyedGeneratorWarning):
        assert owned.OwnedGenerators(Box(np.random.default_rng(1))).unkeyed == (
            "inner (numpy.random._generator.Generator)",
        )


def test_a_bare_albumentations_transform_is_found() -> None:
    albumentations = pytest.importorskip("albumentations")
    transform = albumentations.HorizontalFlip(p=0.5)
    composed = albumentations.Compose([albumentations.VerticalFlip(p=0.5)])
    finder = owned.OwnedGenerators(Holder(transform, composed))
    assert [(o.path, o.kind) for o in finder.found] == [
        ("parts[0]", "albumentations"),
        ("parts[1]", "albumentations"),
    ]


class Leaf:
    """An object the search enters (and counts) that holds nothing."""


class Box:
    def __init__(self, inner: Any) -> None:
        self.inner = inner


def test_the_search_stops_after_max_objects_and_says_so_once() -> None:
    def roots(leaves_in_last: int) -> list[list[Any]]:
        # the root list, 20 lists and the leaves are searched objects, and so is the Keyed at the end
        return [[Leaf() for _ in range(999)] for _ in range(19)] + [[Leaf() for _ in range(leaves_in_last)] + [Keyed()]]

    assert owned.MAX_OBJECTS == 1 + 20 + 19 * 999 + 997 + 1
    exactly = owned.OwnedGenerators(roots(997))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [o.path for o in exactly.found] == ["[19][997]"]  # the 20 000th object: still searched
    one_more = owned.OwnedGenerators(roots(998))
    caught, where = warn_and_where(3, lambda: one_more.found)
    assert one_more.found == ()  # the 20 001st is not reached
    assert [str(w.message) for w in caught] == [
        f"seedtree stopped looking for generators after {owned.MAX_OBJECTS} objects; anything owning one further "
        "in is not re-keyed (give the dataset a seedtree_reseed(node) method)"
    ]
    assert (caught[0].filename, caught[0].lineno) == where
    assert trampolined(owned.OwnedGenerators._search) or where[0] == __file__


def test_the_search_goes_max_depth_levels_down_and_no_further() -> None:
    def chain(depth: int) -> Any:  # a Keyed `depth` attributes below the root
        obj: Any = Keyed()
        for _ in range(depth):
            obj = Box(obj)
        return obj

    assert [o.path for o in owned.OwnedGenerators(chain(owned.MAX_DEPTH)).found] == ["inner" + ".inner" * 15]
    assert owned.OwnedGenerators(chain(owned.MAX_DEPTH + 1)).found == ()
    # the search goes on past a branch too deep: a sibling searched after it is found
    assert [o.path for o in owned.OwnedGenerators(Holder(chain(owned.MAX_DEPTH), Keyed())).found] == ["parts[1]"]


def test_unkeyed_generators_are_warned_about_once_at_the_caller() -> None:
    g = random.Random(1)
    finder = owned.OwnedGenerators(Box(g), Box(g), np.random.default_rng(1))
    caught, where = warn_and_where(3, lambda: finder.found)
    assert [str(w.message) for w in caught] == [
        "seedtree cannot re-key 2 generator(s) held here per sample: [0].inner (random.Random), "
        "[2] (numpy.random._generator.Generator). Forked workers share their streams and what they draw "
        "depends on the worker layout: draw from seedtree.rng() instead, or give the object holding one a "
        "seedtree_reseed(node) method"
    ]
    assert [w.category for w in caught] == [owned.UnkeyedGeneratorWarning]
    assert (caught[0].filename, caught[0].lineno) == where
    assert trampolined(owned.OwnedGenerators._search) or where[0] == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # searched once: asking again warns no more
        assert finder.unkeyed == ("[0].inner (random.Random)", "[2] (numpy.random._generator.Generator)")
    with pytest.warns(owned.UnkeyedGeneratorWarning):
        assert owned.OwnedGenerators(random.Random(2)).unkeyed == ("<root> (random.Random)",)
    box = Box(None)
    box.Xrng = random.Random(3)  # type: ignore[attr-defined]  # a name starting with X: only "." is stripped
    with pytest.warns(owned.UnkeyedGeneratorWarning):
        assert owned.OwnedGenerators(box).unkeyed == ("Xrng (random.Random)",)


def test_roots_paths_and_names_as_shown() -> None:
    a = Keyed()
    box = Box(None)
    box.Xattr = Keyed()  # type: ignore[attr-defined]  # a name starting with X: only "." is stripped
    assert owned.OwnedGenerators(a).found == (owned.Owner(None, "<root>", "root hook"),)
    assert owned.OwnedGenerators(a, Box(a)).found == (owned.Owner(None, "[0]", "root hook"),)  # not found twice
    assert owned.OwnedGenerators(box).found == (owned.Owner(0, "Xattr", "seedtree_reseed"),)
    assert owned.OwnedGenerators(None, box, names=("x", "y")).found == (owned.Owner(0, "y.Xattr", "seedtree_reseed"),)
    with pytest.raises(ValueError) as info:
        owned.OwnedGenerators(a, box, names=("one",))
    assert str(info.value) == "OwnedGenerators got 2 roots but 1 names"


@pytest.mark.parametrize("own_r", [False, True])
def test_a_monai_transforms_own_generator_is_replaced_not_reported(own_r: bool) -> None:
    transforms = pytest.importorskip("monai.transforms")
    flip = transforms.RandFlip(prob=0.5)
    if own_r:
        flip.set_random_state(seed=1)  # an R of the instance's own (else it is the class's default)
        assert "R" in vars(flip)
    inner = Keyed()
    flip.helper = Box(inner)  # the transform's other children are searched on
    finder = owned.OwnedGenerators(Box(flip))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its R is the generator handed over: not an unkeyed one
        assert finder.found == (
            owned.Owner(0, "inner", "monai"),
            owned.Owner(1, "inner.helper.inner", "seedtree_reseed"),
        )
