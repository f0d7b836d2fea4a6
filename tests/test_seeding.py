"""seed_everything, fork safety (real os.fork and a real fork Pool) and deterministic()."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import seedtree as st
from seedtree.core.layout import MT_WORDS, WORDS_NUMPY_GLOBAL
from seedtree.core.tree import SeedTree
from seedtree.runtime import ambient, manifest, seeding

pytestmark = pytest.mark.usefixtures("clean_seedtree")
ROOT = Path(__file__).resolve().parents[1]
fork_only = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork does not exist on this platform")


def _global_draws() -> list[int]:
    """One 62/63/64-bit draw from random, numpy's global, torch's global and st.rng()."""
    return [
        random.getrandbits(64),
        int(np.random.randint(0, 2**63 - 1, dtype=np.int64)),
        int(torch.randint(0, 2**62, (1,))),
        int(st.rng().integers(0, 2**63)),
    ]


def _expected_draws(node: SeedTree) -> list[int]:
    """What _global_draws gives in a process whose globals were seeded from ``node``."""
    legacy = np.random.RandomState()
    legacy.set_state(("MT19937", node.globals_words(WORDS_NUMPY_GLOBAL, MT_WORDS), 0))
    return [
        node.random().getrandbits(64),
        int(legacy.randint(0, 2**63 - 1, dtype=np.int64)),
        int(torch.randint(0, 2**62, (1,), generator=node.torch())),
        int(node.numpy().integers(0, 2**63)),
    ]


# -- seed_everything ----------------------------------------------------------------------


def test_seed_everything_seeds_every_library_from_the_root() -> None:
    root = st.seed_everything(123)
    assert root == SeedTree(123)
    assert _global_draws() == _expected_draws(root)
    assert st.seed_everything(123) == root and _global_draws() == _expected_draws(root)  # reproducible
    st.seed_everything(124)
    assert _global_draws() != _expected_draws(root)
    assert manifest.recorded()["seed_everything"] == SeedTree(124)


def test_seed_everything_takes_a_node() -> None:
    node = SeedTree(2**90) / "run" / 2
    assert st.seed_everything(node) is node
    assert st.current() == node and seeding.fork_base() == node
    assert _global_draws() == _expected_draws(node)


def test_seed_everything_none_uses_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEEDTREE_ENTROPY", str(2**127 + 5))
    assert st.seed_everything(None) == SeedTree(2**127 + 5)
    assert st.seed_everything() == SeedTree(2**127 + 5)
    monkeypatch.setenv("SEEDTREE_ENTROPY", "not-a-number")
    with pytest.raises(ValueError, match="SEEDTREE_ENTROPY='not-a-number' is not an int"):
        st.seed_everything()


def test_seed_everything_none_without_environment_draws_fresh_recorded_entropy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SEEDTREE_ENTROPY", raising=False)
    a = st.seed_everything()
    draws = _global_draws()
    b = st.seed_everything()
    assert a != b and a.path == () and 0 <= a.entropy < 2**128
    assert manifest.recorded()["seed_everything"] == b
    st.seed_everything(a.entropy)  # the recorded entropy replays the run
    assert _global_draws() == draws


def test_seed_everything_refuses_bad_seeds() -> None:
    with pytest.raises(ValueError, match="entropy must be non-negative"):
        st.seed_everything(-3)
    with pytest.raises(TypeError, match="entropy must be a non-negative int"):
        st.seed_everything(1.5)
    with pytest.raises(TypeError, match="got bool"):
        st.seed_everything(True)


@pytest.mark.slow
def test_seed_everything_imports_and_seeds_installed_libraries() -> None:
    # In a fresh interpreter torch is installed but not imported: seed_everything imports
    # it so that it is seeded too.
    script = (
        "import sys, seedtree as st\n"
        "assert 'torch' not in sys.modules\n"
        "root = st.seed_everything(77)\n"
        "import torch\n"
        "print(torch.rand(1, generator=root.torch()).item() == torch.rand(1).item())\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"


# -- fork safety ----------------------------------------------------------------------------


def _in_child(write_fd: int, action) -> None:
    """Run ``action`` in a forked child, send its JSON result (or the traceback) back."""
    try:
        payload = {"ok": action()}
    except BaseException:
        payload = {"error": traceback.format_exc()}
    try:
        os.write(write_fd, json.dumps(payload).encode())
    finally:
        os._exit(0)


def _fork(action) -> object:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _in_child(write_fd, action)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        text = pipe.read()
    os.waitpid(pid, 0)
    payload = json.loads(text)
    assert "error" not in payload, payload.get("error")
    return payload["ok"]


@fork_only
def test_os_fork_children_draw_distinct_reproducible_streams() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        root = st.seed_everything(41)
        parent_before = _expected_draws(root)
        first = [_fork(_global_draws) for _ in range(3)]
        st.seed_everything(41)
        second = [_fork(_global_draws) for _ in range(3)]
    assert first == second  # the same program forks the same children
    assert first == [_expected_draws(root / "fork" / n) for n in range(3)]
    values = [v for draws in first for v in draws] + parent_before
    assert len(set(values)) == len(values)  # no child shares a stream with another or the parent
    # The parent's own streams are untouched by its forks.
    assert _global_draws() == _expected_draws(root)


@fork_only
def test_forked_child_forks_again_from_its_own_path() -> None:
    def child() -> dict:
        return {"own": _global_draws(), "grandchild": _fork(_global_draws)}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        root = st.seed_everything(42)
        _fork(lambda: None)
        result = _fork(child)
    assert result["own"] == _expected_draws(root / "fork" / 1)
    assert result["grandchild"] == _expected_draws(root / "fork" / 1 / "fork" / 0)


@fork_only
def test_fork_resets_a_bound_ambient_stream() -> None:
    root = st.seed_everything(43)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with st.bound(root / "bound"):
            st.rng().random()
            got = _fork(lambda: [str(st.current().path), int(st.rng().integers(0, 2**63))])
    assert got == [str((root / "fork" / 0).path), int((root / "fork" / 0).numpy().integers(0, 2**63))]


def _report_worker(queue) -> None:
    queue.put(_global_draws())


def _task_draws(_: int) -> list[int]:
    return _global_draws()


def _run_fork_pool(seed: int) -> tuple[list[list[int]], list[list[int]]]:
    st.seed_everything(seed)
    ctx = mp.get_context("fork")
    queue = ctx.SimpleQueue()
    with ctx.Pool(3, initializer=_report_worker, initargs=(queue,)) as pool:
        tasks = pool.map(_task_draws, range(9), chunksize=1)
        started = [queue.get() for _ in range(3)]
    return started, tasks


@fork_only
def test_fork_pool_workers_draw_distinct_reproducible_streams() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        started, tasks = _run_fork_pool(44)
        started_again, tasks_again = _run_fork_pool(44)
    root = SeedTree(44)
    expected = sorted(_expected_draws(root / "fork" / n) for n in range(3))
    # Workers are forked one after another: worker n starts from root / "fork" / n.
    assert sorted(started) == sorted(started_again) == expected
    # Tasks run on whichever worker is free, so only the set of streams is fixed; every
    # draw is distinct (each worker goes on along its own stream).
    values = [v for draws in tasks + started for v in draws]
    assert len(set(values)) == len(values)
    assert len(set(map(tuple, tasks_again))) == 9


# -- deterministic() ---------------------------------------------------------------------


@pytest.fixture
def torch_flags():
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]


def test_deterministic_sets_torch_flags_and_cublas(monkeypatch: pytest.MonkeyPatch, torch_flags: None) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    torch.backends.cudnn.benchmark = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PYTHONHASHSEED is set: nothing to warn about
        report = st.deterministic()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert report["torch.use_deterministic_algorithms"] is True
    assert report["torch.backends.cudnn.deterministic"] is True
    assert report["torch.backends.cudnn.benchmark"] is False
    assert report["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8" and report["PYTHONHASHSEED"] == "0"
    # torch now refuses a nondeterministic kernel instead of running it silently.
    if hasattr(torch.Tensor, "put_"):
        with pytest.raises(RuntimeError, match="deterministic"):
            torch.zeros(4).put_(torch.tensor([0, 0]), torch.tensor([1.0, 2.0]), accumulate=False)

    off = st.deterministic(False)
    assert off["torch.use_deterministic_algorithms"] is False and not torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic is False


def test_deterministic_keeps_a_user_cublas_setting(monkeypatch: pytest.MonkeyPatch, torch_flags: None) -> None:
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    monkeypatch.setenv("PYTHONHASHSEED", "1")
    assert st.deterministic()["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


@pytest.mark.parametrize("value", [None, "", "random"])
def test_deterministic_reports_and_warns_about_pythonhashseed(
    value: str | None, monkeypatch: pytest.MonkeyPatch, torch_flags: None
) -> None:
    if value is None:
        monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    else:
        monkeypatch.setenv("PYTHONHASHSEED", value)
    with pytest.warns(RuntimeWarning, match=r"PYTHONHASHSEED is not set.*only works when set before Python starts"):
        report = st.deterministic()
    assert report["PYTHONHASHSEED"] == value
    assert "PYTHONHASHSEED" not in os.environ or os.environ["PYTHONHASHSEED"] == value  # reported, not pretended


def test_ambient_default_is_reset_by_fixture() -> None:
    # The isolation fixture really starts each test unseeded (guards the other tests here).
    assert ambient.default() is None and seeding.fork_base() is None


def test_bind_process_sets_the_default_and_seeds_what_it_is_told() -> None:
    import random

    from seedtree.runtime.seeding import bind_process

    node = SeedTree(41) / "w"
    with pytest.raises(TypeError, match="^bind_process\\(\\) takes a SeedTree node, got int$"):
        bind_process(41)  # type: ignore[arg-type]
    random.seed(0)
    np.random.seed(0)
    untouched = (random.random(), np.random.random_sample())
    nothing: list[bool | list[str]] = [False, []]
    for globals_from in nothing:
        random.seed(0)
        np.random.seed(0)
        bind_process(node, globals_from)
        assert st.rng().random() == node.numpy().random()  # the ambient default is the node
        assert (random.random(), np.random.random_sample()) == untouched  # no global was seeded
    random.seed(0)
    np.random.seed(0)
    bind_process(node, ["random"])  # a list: the named libraries imported if need be, and the loaded ones
    assert random.random() == node.random().random()
    assert np.random.random_sample() != untouched[1]
    bind_process(node)  # every library already imported
    st.seed_globals(node)
    expected = (random.random(), np.random.random_sample())
    bind_process(node)
    assert (random.random(), np.random.random_sample()) == expected


def test_deterministic_reports_what_it_set(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import torch

    monkeypatch.setenv("PYTHONHASHSEED", "0")
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        report = st.deterministic(warn_only=True)
        assert report == {
            "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
            "torch.use_deterministic_algorithms": True,
            "torch.backends.cudnn.deterministic": True,
            "torch.backends.cudnn.benchmark": False,
            "PYTHONHASHSEED": "0",
            "python": sys.version.split()[0],
        }
        assert torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
    monkeypatch.setitem(sys.modules, "torch", None)  # torch absent
    monkeypatch.delenv("PYTHONHASHSEED")
    with pytest.warns(RuntimeWarning, match="^PYTHONHASHSEED is not set: set and str hashing"):
        report = st.deterministic()
    assert report["torch"] == "not installed" and report["PYTHONHASHSEED"] is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert st.deterministic(enabled=False)["PYTHONHASHSEED"] is None  # asked for nothing: no warning
