"""Threads share the process-wide global RNGs: a threaded map whose tasks draw from them is
refused (never a silently scheduling-dependent result), one whose tasks draw from
``seedtree.rng()`` is bit-identical for every layout.

Real joblib threading backends, real thread pools and real threads; no mocks.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing.pool import ThreadPool

import numpy as np
import pytest
import torch

import seedtree as st
from seedtree.joblib import Parallel, delayed, parallel_map
from seedtree.pool import keyed_map
from seedtree.runtime import rawmem
from seedtree.threads import run_threads

TREE = st.SeedTree(2024) / "threads"
ITEMS = list(range(40))


def numpy_global(x: int) -> float:
    return x + float(np.random.normal())


def python_random(x: int) -> float:
    return x + random.random()


def torch_global(x: int) -> float:
    return x + torch.rand(1).item()


def numpy_reseeds(x: int) -> float:
    np.random.seed(x)  # seeding the shared global from a thread races just as drawing does
    return float(np.random.normal())


def ambient_only(x: int) -> float:
    return x + float(st.rng().normal())


GLOBAL_DRAWERS = {
    "numpy": numpy_global,
    "random": python_random,
    "torch": torch_global,
    "numpy-seed": numpy_reseeds,
}


def _states() -> tuple:
    """The caller's global RNG states, comparable with ==."""
    version, internal, gauss = random.getstate()
    _, key, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return (internal, gauss), (key.tobytes(), pos, has_gauss, cached), torch.get_rng_state().numpy().tobytes()


def _refused(excinfo: pytest.ExceptionInfo[RuntimeError], library: str) -> str:
    message = str(excinfo.value)
    assert "\n" not in message, "one line"
    assert "seedtree.rng()" in message, "names the fix inside the task"
    assert "process" in message
    assert library.split("-")[0] in message, "names the library whose global RNG moved"
    return message


# -- the reported case: joblib's threading backend --------------------------------------------


def test_threading_map_drawing_numpy_global_is_refused():
    """The issue's reproducer: before, two runs gave different results and said nothing."""
    with pytest.raises(RuntimeError) as excinfo:
        parallel_map(numpy_global, ITEMS, TREE, n_jobs=2, backend="threading")
    message = _refused(excinfo, "numpy")
    assert 'backend="loky"' in message


@pytest.mark.parametrize("library", sorted(GLOBAL_DRAWERS))
def test_threading_map_drawing_any_global_is_refused(library):
    with pytest.raises(RuntimeError) as excinfo:
        parallel_map(GLOBAL_DRAWERS[library], ITEMS, TREE, n_jobs=2, backend="threading")
    _refused(excinfo, library)


@pytest.mark.parametrize("hint", [{"prefer": "threads"}, {"require": "sharedmem"}])
def test_joblib_thread_hints_and_parallel_class_are_watched_too(hint):
    with pytest.raises(RuntimeError, match=r"seedtree\.rng\(\)"):
        parallel_map(numpy_global, ITEMS, TREE, n_jobs=2, **hint)
    with pytest.raises(RuntimeError, match=r"seedtree\.rng\(\)"):
        Parallel(TREE, n_jobs=2, backend="threading")(delayed(python_random)(x) for x in ITEMS)


def test_bind_globals_false_does_not_silence_the_check():
    """``bind_globals=False`` says "do not seed them", not "draws from them are fine"."""
    with pytest.raises(RuntimeError, match="run the tasks in processes"):
        parallel_map(numpy_global, ITEMS, TREE, n_jobs=2, backend="threading", bind_globals=False)


@pytest.mark.usefixtures("clean_seedtree")
@pytest.mark.parametrize("library", sorted(GLOBAL_DRAWERS))
def test_refused_call_puts_the_callers_globals_back(library):
    """Documented: a refused call leaves random, numpy's global and torch exactly as they
    were before it, so retrying on a process backend draws what a first try would have."""
    st.seed_everything(7)
    random.random(), np.random.random(), torch.rand(3)  # the caller's own draws before the call
    before = _states()
    with pytest.raises(RuntimeError):
        parallel_map(GLOBAL_DRAWERS[library], ITEMS, TREE, n_jobs=2, backend="threading")
    assert _states() == before
    # and the caller's stream runs on from there, as if the call had not been made
    expected = np.random.RandomState()
    expected.set_state(np.random.get_state())
    assert np.random.random() == expected.random_sample()


# -- what must keep working --------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("clean_seedtree")
def test_ambient_only_tasks_pass_and_are_identical_for_every_layout():
    reference = parallel_map(ambient_only, ITEMS, TREE, n_jobs=1)
    assert reference == [x + float((TREE / x).numpy().normal()) for x in ITEMS]
    for n_jobs in (2, 4):
        for _ in range(2):  # and across runs
            assert parallel_map(ambient_only, ITEMS, TREE, n_jobs=n_jobs, backend="threading") == reference
    assert parallel_map(ambient_only, ITEMS, TREE, n_jobs=2, prefer="threads") == reference
    assert parallel_map(ambient_only, ITEMS, TREE, n_jobs=2, backend="loky") == reference
    with ThreadPoolExecutor(3) as ex:
        assert keyed_map(ex, ambient_only, ITEMS, TREE) == reference


@pytest.mark.usefixtures("clean_seedtree")
def test_callers_own_draws_before_and_after_a_threaded_map_do_not_trip_it():
    st.seed_everything(3)
    first = (random.random(), float(np.random.random()), torch.rand(1).item())
    got = parallel_map(ambient_only, ITEMS, TREE, n_jobs=2, backend="threading")
    after = (random.random(), float(np.random.random()), torch.rand(1).item())
    assert got == parallel_map(ambient_only, ITEMS, TREE, n_jobs=2, backend="threading")
    assert first != after
    st.seed_everything(3)
    assert (random.random(), float(np.random.random()), torch.rand(1).item()) == first
    parallel_map(ambient_only, ITEMS, TREE, n_jobs=2, backend="threading")
    assert (random.random(), float(np.random.random()), torch.rand(1).item()) == after, "globals untouched"


@pytest.mark.usefixtures("clean_seedtree")
@pytest.mark.parametrize("library", sorted(GLOBAL_DRAWERS))
def test_single_thread_runs_still_bind_the_globals_per_task(library):
    """n_jobs=1 (and the sequential backend) run tasks one at a time in the caller's thread:
    nothing shares the globals, they are bound per task, and results repeat."""
    fn = GLOBAL_DRAWERS[library]
    once = parallel_map(fn, ITEMS, TREE, n_jobs=1, backend="threading")
    assert once == parallel_map(fn, ITEMS, TREE, n_jobs=1, backend="threading")
    assert once == parallel_map(fn, ITEMS, TREE, n_jobs=3, backend="sequential")
    assert once == parallel_map(fn, ITEMS, TREE, n_jobs=2, backend="loky")


# -- the other places tasks run on threads next to each other ----------------------------------


@pytest.mark.parametrize("library", ["numpy", "random", "torch"])
def test_thread_pool_keyed_map_is_refused(library):
    with ThreadPoolExecutor(2) as ex, pytest.raises(RuntimeError) as excinfo:
        keyed_map(ex, GLOBAL_DRAWERS[library], ITEMS, TREE)
    message = _refused(excinfo, library)
    assert "ProcessPoolExecutor" in message
    with ThreadPool(2) as pool, pytest.raises(RuntimeError, match=r"seedtree\.rng\(\)"):
        keyed_map(pool, GLOBAL_DRAWERS[library], ITEMS, TREE)


def test_process_pool_keyed_map_is_not_watched():
    with ProcessPoolExecutor(2) as ex:
        got = keyed_map(ex, numpy_global, ITEMS[:6], TREE, bind_globals=True)
    assert got == parallel_map(numpy_global, ITEMS[:6], TREE, n_jobs=1)


def _thread_draws_numpy(i: int) -> float:
    return float(np.random.random())


def test_run_threads_drawing_a_global_is_refused_and_ambient_passes(clean_seedtree):
    st.seed_everything(1)
    before = _states()
    with pytest.raises(RuntimeError) as excinfo:
        run_threads(_thread_draws_numpy, TREE, 4)
    _refused(excinfo, "numpy")
    assert _states() == before
    got = run_threads(lambda i: float(st.rng().random()), TREE, 4)
    assert got == run_threads(lambda i: float(st.rng().random()), TREE, 4)
    assert got == [float((TREE / i).numpy().random()) for i in range(4)]
    # one thread runs next to no other task: it draws from the caller's globals, like a plain call
    assert run_threads(_thread_draws_numpy, TREE, 1) != run_threads(_thread_draws_numpy, TREE, 1)


def test_a_failing_task_reports_its_own_error():
    def boom(x: int) -> float:
        if x == 3:
            raise KeyError("task 3 failed")
        return float(st.rng().random())

    with pytest.raises(KeyError, match="task 3 failed"):
        parallel_map(boom, range(8), TREE, n_jobs=2, backend="threading")


def test_nothing_draws_any_more_once_the_caller_gets_the_refusal():
    """The refusal comes once every task has stopped (later chunks of a refused call skip
    their tasks): the caller's globals, put back, stay put."""
    with pytest.raises(RuntimeError):
        parallel_map(numpy_global, range(2000), TREE, n_jobs=4, backend="threading")
    after = _states()
    time.sleep(0.2)
    assert _states() == after


@pytest.mark.usefixtures("clean_seedtree")
def test_one_thread_pools_are_not_watched():
    """One worker thread runs one task at a time: the draws follow the caller's globals,
    as in a plain loop, whatever the scheduling."""
    np.random.seed(5)
    with ThreadPoolExecutor(1) as ex:
        first = keyed_map(ex, numpy_global, ITEMS[:5], TREE)
    np.random.seed(5)
    with ThreadPool(1) as pool:
        assert keyed_map(pool, numpy_global, ITEMS[:5], TREE) == first


def test_the_message_is_one_line_naming_the_fix():
    with pytest.raises(RuntimeError) as excinfo:
        parallel_map(numpy_global, ITEMS, TREE, n_jobs=2, backend="threading")
    assert str(excinfo.value) == (
        "the joblib backend 'threading' ran tasks on threads next to each other, and the global RNG of numpy "
        "(np.random) changed meanwhile (a task, or another thread, drew from it or seeded it): threads share the "
        "process-wide global RNGs, so the results would depend on thread scheduling and are not returned. Draw "
        "from seedtree.rng() inside the task (its own stream on any thread), or run the tasks in processes "
        '(backend="loky" or "multiprocessing"). The global RNGs were put back as they were before the call.'
    )


# -- the fingerprints the check rests on -------------------------------------------------------


@pytest.mark.usefixtures("clean_seedtree")
@pytest.mark.parametrize(
    "fast",
    [
        pytest.param(
            True,
            marks=pytest.mark.skipif(not rawmem.enabled(), reason="SEEDTREE_FAST_PATHS=0: no in-place path here"),
        ),
        False,
    ],
    ids=["in-place", "portable"],
)
def test_fingerprints_move_with_every_draw_even_a_whole_twist(fast):
    """A draw moves each fingerprint, also draws that bring the position back to where it
    was (624 words: a whole twist); no draw leaves it equal. Both ways of reading: from the
    generators' memory, and through the libraries' own get_state."""
    from seedtree.runtime.controllers import REGISTRY, NumpyGlobal, PythonRandom

    st.seed_everything(11)
    controllers = {c.name: c for c in REGISTRY.active()}
    if not fast:
        controllers["random"], controllers["numpy"] = PythonRandom(), NumpyGlobal()  # never self-checked
    else:
        controllers["numpy"].snapshot()  # decides its in-place path, as the watch does
        assert controllers["random"]._fast and controllers["numpy"]._fast
    draws = {
        "random": [lambda: random.random(), lambda: [random.random() for _ in range(312)], lambda: random.gauss()],
        "numpy": [np.random.random, lambda: np.random.random_sample(312), np.random.standard_normal],
        "torch": [lambda: torch.rand(1), lambda: torch.rand(624), lambda: torch.randn(1)],
    }
    for name, calls in draws.items():
        controller = controllers[name]
        for draw in calls:
            before = controller.fingerprint()
            assert controller.fingerprint() == before
            draw()
            assert controller.fingerprint() != before, (name, draw)


def test_a_registered_library_is_watched_through_its_capture():
    class Counter(st.Binding):
        name = module = "threads_globals_counter"
        value = [0]

        def seed(self, node):
            self.value[0] = node.seed_int(64)

        def capture(self):
            return self.value[0]

        def restore(self, state):
            self.value[0] = state

    import sys
    import types

    sys.modules[Counter.module] = types.ModuleType(Counter.module)
    st.register(Counter())
    try:

        def bump(x: int) -> int:
            Counter.value[0] += 1  # a library's own global state, shared by the threads
            return x

        with pytest.raises(RuntimeError, match="global RNG of threads_globals_counter changed"):
            parallel_map(bump, ITEMS, TREE, n_jobs=2, backend="threading")
        assert Counter.value[0] == 0, "put back"
    finally:
        from seedtree.runtime.controllers import unregister

        unregister(Counter.name)
        del sys.modules[Counter.module]
