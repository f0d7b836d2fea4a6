"""Keyed maps: joblib backends, executors and pools give the same results whatever the layout."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest
from _workloads import draw_all, draw_ambient

import seedtree as st
from seedtree.joblib import Parallel, delayed, parallel_map
from seedtree.pool import keyed_map

TREE = st.SeedTree(99)
ITEMS = list(range(37))  # not a multiple of any chunk size


@pytest.fixture(scope="module")
def expected() -> list:
    return [(i, (TREE / i).numpy().random(), (TREE / i).random().random()) for i in ITEMS]


@pytest.mark.parametrize("backend", ["threading", "loky", "multiprocessing"])
@pytest.mark.parametrize("n_jobs", [1, 2, 4])
def test_parallel_map_bit_identical_across_backends(backend, n_jobs, expected):
    got = parallel_map(draw_ambient, ITEMS, TREE, n_jobs=n_jobs, backend=backend)
    assert got == [(i, float((TREE / i).numpy().standard_normal())) for i in ITEMS]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["loky", "multiprocessing"])
def test_process_backends_bind_globals_per_task(backend, expected):
    got = parallel_map(draw_all, ITEMS, TREE, n_jobs=2, backend=backend)
    inline = parallel_map(draw_all, ITEMS, TREE, n_jobs=1, backend=backend)
    assert got == inline
    assert [(i, a, b) for i, a, b, _, _ in got] == expected
    for column in (2, 3, 4):  # random, numpy global, torch global: distinct per task
        values = [row[column] for row in got]
        assert len(set(values)) == len(values)


def test_threading_refuses_bound_globals():
    with pytest.raises(ValueError, match="threads share the global RNGs"):
        parallel_map(draw_all, ITEMS, TREE, n_jobs=2, backend="threading", bind_globals=True)
    with pytest.raises(ValueError, match="threads share"):
        keyed_map(ThreadPoolExecutor(2), draw_all, ITEMS, TREE, bind_globals=True)


def test_caller_globals_restored_after_inline_run():
    st.seed_everything(5)
    before = np.random.get_state()[1].copy()
    parallel_map(draw_all, ITEMS, TREE, n_jobs=1)
    assert np.array_equal(np.random.get_state()[1], before)


def test_parallel_delayed_reads_like_joblib():
    got = Parallel(TREE, n_jobs=2, backend="loky")(delayed(draw_ambient)(i) for i in ITEMS)
    assert got == parallel_map(draw_ambient, ITEMS, TREE, n_jobs=1)
    with pytest.raises(TypeError, match="SeedTree"):
        Parallel(42)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_keyed_map_same_for_every_start_method_and_executor(method):
    ctx = multiprocessing.get_context(method)
    reference = [(i, float((TREE / i).numpy().standard_normal())) for i in ITEMS]
    # Ambient-only here (globals are covered above): spawned workers then need not import torch.
    with ProcessPoolExecutor(2, mp_context=ctx) as ex:
        assert keyed_map(ex, draw_ambient, ITEMS, TREE, bind_globals=False) == reference
    with ctx.Pool(3) as pool:
        assert keyed_map(pool, draw_ambient, ITEMS, TREE, bind_globals=False) == reference
    with ThreadPoolExecutor(4) as ex:
        assert keyed_map(ex, draw_ambient, ITEMS, TREE) == reference


def draw_global(item: int) -> float:
    return float(np.random.random())


@pytest.mark.parametrize("hint", [{"prefer": "threads"}, {"require": "sharedmem"}])
def test_thread_hints_are_threads(hint):
    """joblib's prefer/require hints pick threads: globals must not be bound per task there."""
    got = parallel_map(draw_ambient, ITEMS, TREE, n_jobs=4, **hint)
    assert got == parallel_map(draw_ambient, ITEMS, TREE, n_jobs=1)
    with pytest.raises(ValueError, match="threads share"):
        parallel_map(draw_all, ITEMS, TREE, n_jobs=2, bind_globals=True, **hint)


def test_unbound_globals_are_left_to_run_on():
    """With bind_globals off, seedtree does not touch (or rewind) the caller's globals."""
    st.seed_everything(3)
    first = parallel_map(draw_global, range(4), TREE, n_jobs=1, bind_globals=False)
    second = parallel_map(draw_global, range(4), TREE, n_jobs=1, bind_globals=False)
    assert first != second, "the caller's numpy stream runs on, as in a plain loop"


def test_lazy_results_are_refused():
    with pytest.raises(ValueError, match="return_as"):
        parallel_map(draw_ambient, ITEMS, TREE, n_jobs=2, return_as="generator")


@pytest.mark.slow
def test_a_task_that_imports_torch_itself_gets_its_own_torch_stream():
    """The parent never imported torch; the task does, after its globals were bound."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = """
import json
import sys
import seedtree as st
from seedtree.joblib import parallel_map
from _workloads import draw_all
got = parallel_map(draw_all, range(6), st.SeedTree(99), n_jobs=2, backend="loky")
assert "torch" not in sys.modules
print(json.dumps([row[4] for row in got]))
"""
    tests = Path(__file__).parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tests.parent), str(tests)]))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    import torch

    drawn = json.loads(proc.stdout)
    expected = [torch.rand(1, generator=(TREE / k).torch()).item() for k in range(6)]
    assert drawn == expected


@pytest.mark.usefixtures("clean_seedtree")  # it seeds everything: leave no default behind
def test_inline_maps_keep_the_callers_ambient_generator():
    st.seed_everything(4)
    held = st.rng()
    held.random()
    parallel_map(draw_all, range(3), TREE, n_jobs=1)
    assert st.rng() is held, "the caller's ambient generator is neither replaced nor rewound"


FAKE_LIBRARY = """
state = [0]


def seed(value):
    state[0] = value


def draw():
    state[0] = (state[0] * 6364136223846793005 + 1442695040888963407) % 2**64
    return state[0]
"""


class FakeBinding(st.Binding):
    """A registered library that the tasks import for the first time."""

    name = "fakerng"
    module = "fakerng"

    def seed(self, node):
        import fakerng

        fakerng.seed(node.seed_int(64, 7))

    def capture(self):
        import fakerng

        return fakerng.state[0]

    def restore(self, state):
        import fakerng

        fakerng.state[0] = state


def import_and_draw(item):
    import fakerng

    return fakerng.draw()


def import_from_two_and_draw(item):
    if item < 2:
        return None
    import fakerng

    return fakerng.draw()


def test_a_library_first_imported_by_a_later_task_of_a_chunk_is_seeded_from_that_task(tmp_path, monkeypatch):
    import sys

    from seedtree.runtime import controllers
    from seedtree.runtime.tasks import run_keyed_batch

    (tmp_path / "fakerng.py").write_text(FAKE_LIBRARY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fakerng", raising=False)
    st.register(FakeBinding())
    try:
        controllers.REGISTRY._installed.pop("fakerng", None)
        with st.isolate():  # one batch of five, as a DataLoader batch or a chunk of tasks runs
            got = run_keyed_batch(
                TREE, list(range(5)), import_from_two_and_draw, list(range(5)), controllers.REGISTRY.loaded_modules()
            )
        expected = [None, None]
        for k in range(2, 5):
            value = (TREE / k).seed_int(64, 7)
            expected.append((value * 6364136223846793005 + 1442695040888963407) % 2**64)
        assert got == expected, "task 2 imports it (seeded from task 2's node), tasks 3 and 4 are seeded per task"
    finally:
        controllers.unregister("fakerng")
        controllers.REGISTRY._plans.clear()


def test_a_library_first_imported_by_inline_tasks_is_seeded_per_task_then_put_back(tmp_path, monkeypatch):
    import sys

    (tmp_path / "fakerng.py").write_text(FAKE_LIBRARY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fakerng", raising=False)
    st.register(FakeBinding())
    try:
        from seedtree.runtime import controllers as bindings

        bindings.REGISTRY._installed.pop("fakerng", None)
        got = parallel_map(import_and_draw, range(4), TREE, n_jobs=1, bind_globals=True)
        expected = []
        for k in range(4):
            value = (TREE / k).seed_int(64, 7)
            expected.append((value * 6364136223846793005 + 1442695040888963407) % 2**64)
        assert got == expected, "every task, also the one that imported it, draws from its own node"
        import fakerng

        assert fakerng.state[0] == 0, "the caller gets the library as it was on import"
    finally:
        from seedtree.runtime import controllers as bindings

        bindings.unregister("fakerng")
        bindings.REGISTRY._plans.clear()


@pytest.mark.parametrize("n_tasks", [0, 1, 7, 37, 2000, 10_001])
@pytest.mark.parametrize("n_jobs", [1, 2, 16])
def test_guided_chunks_cover_every_task_once_and_end_with_single_tasks(n_tasks: int, n_jobs: int) -> None:
    from seedtree.integrations.joblib import _chunks

    chunks = list(_chunks(n_tasks, n_jobs))
    assert [i for lo, hi in chunks for i in range(lo, hi)] == list(range(n_tasks))
    sizes = [hi - lo for lo, hi in chunks]
    assert all(1 <= s <= 256 for s in sizes)
    assert sizes == sorted(sizes, reverse=True)  # long while much is left, short at the end
    if n_tasks >= 2 * n_jobs:
        assert sizes[-2 * n_jobs :] == [1] * (2 * n_jobs)
