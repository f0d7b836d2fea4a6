"""seedtree.dask on real Dask: a LocalCluster of worker processes (1, then 2), the local
threaded and synchronous schedulers, the joblib Dask backend, the worker plugin, and a
worker process killed mid-run whose tasks Dask retries elsewhere."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import seedtree as st

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

from distributed import Client, LocalCluster  # noqa: E402

from seedtree.dask import client_map, delayed_map, keyed, worker_node, worker_plugin  # noqa: E402

TREE = st.SeedTree(20240917) / "dask-test"
N = 24
# numpy and random: seeding torch too would make every worker import it (seconds)
GLOBALS = ("numpy", "random")


def draw(x: int) -> tuple[int, list[float], list[float]]:
    """A task drawing from its ambient stream and from numpy's global RNG."""
    return x, st.rng().random(3).tolist(), np.random.random_sample(2).tolist()


def draw_ambient(x: int) -> tuple[int, list[float]]:
    return x, st.rng().random(3).tolist()


def expected(n: int = N) -> list[tuple[int, list[float], list[float]]]:
    """What task k must return, computed here from the paths alone."""
    out = []
    with st.isolate():
        for k in range(n):
            node = TREE / k
            st.seed_globals(node)
            out.append((k * 10, node.numpy().random(3).tolist(), np.random.random_sample(2).tolist()))
    return out


def ambient_part(results: list) -> list:
    return [(x, a) for x, a, *_ in results]


ITEMS = [k * 10 for k in range(N)]


def _cluster(**kwargs) -> LocalCluster:
    # random free ports: other clusters may be running on this machine
    return LocalCluster(dashboard_address=":0", worker_dashboard_address=":0", **kwargs)


def _use_workers(cl: LocalCluster, client: Client, n: int) -> None:
    """Scale the cluster to exactly n worker processes (tests may run in any order)."""
    cl.scale(n)
    deadline = time.monotonic() + 60
    while len(client.scheduler_info()["workers"]) != n:
        assert time.monotonic() < deadline, f"the cluster did not reach {n} workers"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cluster():
    with _cluster(n_workers=1, processes=True, threads_per_worker=1) as cl, Client(cl) as client:
        yield cl, client


def test_local_schedulers_match_the_paths() -> None:
    want = expected()
    # synchronous scheduler: the main thread runs the tasks, so the globals may be bound
    with st.isolate():
        sync = list(dask.compute(*delayed_map(draw, ITEMS, TREE, bind_globals=GLOBALS), scheduler="sync"))
    assert sync == want
    threaded = dask.compute(*delayed_map(draw_ambient, ITEMS, TREE), scheduler="threads", num_workers=4)
    assert list(threaded) == ambient_part(want)
    # in batches: start= keeps the keys one map over all items would have given
    batches = [delayed_map(draw_ambient, ITEMS[i : i + 5], TREE, start=i) for i in range(0, N, 5)]
    assert [r for batch in batches for r in dask.compute(*batch, scheduler="sync")] == ambient_part(want)


def test_threaded_scheduler_refuses_global_binding() -> None:
    with pytest.raises(RuntimeError, match="not the main thread.*seedtree.rng"):
        dask.compute(*delayed_map(draw, ITEMS[:4], TREE, bind_globals=GLOBALS), scheduler="threads", num_workers=2)


def test_one_and_two_worker_processes_give_the_same_results(cluster) -> None:
    cl, client = cluster
    want = expected()
    _use_workers(cl, client, 1)
    one = client.gather(client_map(client, draw, ITEMS, TREE, bind_globals=GLOBALS))
    one_delayed = list(dask.compute(*delayed_map(draw, ITEMS, TREE, bind_globals=GLOBALS), scheduler=client))
    _use_workers(cl, client, 2)
    pids = set(client.run(os.getpid).values())
    assert len(pids) == 2 and os.getpid() not in pids
    # pure=False: really recompute (not reuse cached keys) on the two-worker layout
    two = client.gather(client_map(client, draw, ITEMS, TREE, bind_globals=GLOBALS, pure=False))
    two_delayed = list(dask.compute(*delayed_map(draw, ITEMS, TREE, bind_globals=GLOBALS), scheduler=client))
    # both workers really ran tasks
    where = client.gather(client.map(keyed(lambda _: os.getpid(), TREE), range(40), range(40), pure=False))
    assert set(where) == pids
    assert one == one_delayed == two == two_delayed == want


def test_raw_keyed_with_client_map_and_delayed(cluster) -> None:
    _, client = cluster
    keys = ["a", "b", 3]
    got = client.gather(client.map(keyed(draw_ambient, TREE), keys, [1, 2, 3]))
    assert got == [(x, (TREE / k).numpy().random(3).tolist()) for k, x in zip(keys, [1, 2, 3], strict=True)]
    one = dask.delayed(keyed(draw_ambient, TREE))("a", 1).compute(scheduler=client)
    assert one == got[0]
    tail = client.gather(client_map(client, draw_ambient, ITEMS[10:], TREE, start=10))
    assert tail == ambient_part(expected())[10:]


def test_joblib_dask_backend_matches_other_backends(cluster) -> None:
    joblib_mod = pytest.importorskip("joblib")
    from seedtree.joblib import parallel_map

    _, client = cluster
    with joblib_mod.parallel_config(backend="dask"):
        on_dask = parallel_map(draw_ambient, ITEMS, TREE)
    assert on_dask == parallel_map(draw_ambient, ITEMS, TREE, n_jobs=2, backend="threading")
    assert on_dask == ambient_part(expected())
    # and the tasks really ran on the worker processes
    with joblib_mod.parallel_config(backend="dask"):
        pids = parallel_map(lambda _: os.getpid(), range(8), TREE)
    assert os.getpid() not in pids


def test_worker_plugin_gives_each_worker_its_own_path(cluster) -> None:
    cl, client = cluster
    _use_workers(cl, client, 2)
    client.register_plugin(worker_plugin(TREE, bind_globals=GLOBALS))

    def report(dask_worker) -> tuple[object, tuple, float, float]:
        return dask_worker.name, st.current().path, np.random.random_sample(), st.rng().random()

    seen = client.run(report)
    assert len(seen) == 2
    names = [str(name) for name, *_ in seen.values()]
    assert len(set(names)) == 2  # LocalCluster names them 0, 1, ...
    with st.isolate():
        for name, path, glob, amb in seen.values():
            node = worker_node(TREE, name)
            assert path == node.path == TREE.path + ("worker", str(name))
            st.seed_globals(node)
            assert glob == np.random.random_sample()
            assert amb == node.numpy().random()
    globs = [glob for *_, glob, _ in seen.values()]
    assert globs[0] != globs[1]
    # keyed tasks still see their own key's stream on top of the worker default
    assert client.gather(client_map(client, draw_ambient, ITEMS, TREE, pure=False)) == ambient_part(expected())


def _log_draw(x: int, log_dir: str) -> tuple[int, list[float], list[float]]:
    log = Path(log_dir) / f"{os.getpid()}.log"
    with log.open("a") as fh:
        fh.write(f"start {x}\n")
    time.sleep(0.04)
    result = draw(x)
    with log.open("a") as fh:
        fh.write(f"end {x}\n")
    return result


def _events(log_dir: Path) -> dict[int, list[tuple[str, int]]]:
    out = {}
    for path in log_dir.glob("*.log"):
        lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
        out[int(path.stem)] = [(what, int(x)) for what, x in lines]
    return out


def test_killed_worker_tasks_are_retried_with_the_same_numbers(cluster, tmp_path: Path) -> None:
    cl, client = cluster
    _use_workers(cl, client, 2)
    n = 60
    items = [k * 10 for k in range(n)]
    futures = client_map(client, _log_draw, items, TREE, log_dir=str(tmp_path), bind_globals=GLOBALS, pure=False)
    # kill a worker process while it is in the middle of a task
    victim = None
    deadline = time.monotonic() + 30
    while victim is None and time.monotonic() < deadline:
        time.sleep(0.02)
        for pid, events in _events(tmp_path).items():
            started = [x for what, x in events if what == "start"]
            if len(started) >= 4 and events[-1][0] == "start":
                victim = pid
                break
    assert victim is not None, "no worker got going within 30 s"
    os.kill(victim, signal.SIGKILL)
    results = client.gather(futures)
    # nothing lost, nothing duplicated: one result per task, each exactly its key's numbers
    assert results == expected(n)
    events = _events(tmp_path)
    on_victim = {x for what, x in events[victim] if what == "start"}
    assert on_victim, "the killed worker had run nothing"
    ended_elsewhere = {x for pid, ev in events.items() if pid != victim for what, x in ev if what == "end"}
    # every task the killed worker had run or was running (its results died with it) ran
    # again in another process, and the results above show the retries drew the same numbers
    assert on_victim <= ended_elsewhere
    assert len(client.scheduler_info()["workers"]) == 2  # the nanny restarted the worker


def test_global_binding_refused_where_globals_are_shared() -> None:
    with _cluster(n_workers=1, processes=False, threads_per_worker=2) as cl, Client(cl) as client:
        # the ambient stream is safe on a threaded worker...
        assert client.gather(client_map(client, draw_ambient, ITEMS, TREE)) == ambient_part(expected())
        # ...binding the globals per task is not
        with pytest.raises(RuntimeError, match="runs 2 threads"):
            client.gather(client_map(client, draw, ITEMS[:2], TREE, bind_globals=GLOBALS))
    with _cluster(n_workers=2, processes=False, threads_per_worker=1) as cl, Client(cl) as client:
        with pytest.raises(RuntimeError, match="shares its process"):
            client.gather(client_map(client, draw, ITEMS[:2], TREE, bind_globals=GLOBALS))
        with pytest.raises(RuntimeError, match="cannot give each worker a stream of its own"):
            client.register_plugin(worker_plugin(TREE, bind_globals=GLOBALS))


def test_bad_input_is_refused_with_a_clear_error() -> None:
    with pytest.raises(TypeError, match="SeedTree"):
        keyed(draw, 42)
    with pytest.raises(TypeError, match="callable"):
        keyed(42, TREE)
    with pytest.raises(TypeError, match="not a single str"):
        delayed_map(draw, "abc", TREE)
    with pytest.raises(ValueError, match="2\\*\\*32|range|key"):
        keyed(draw_ambient, TREE)(2**32, 1)


def test_bind_globals_true_means_the_libraries_this_process_uses() -> None:
    from seedtree.runtime import controllers as bindings

    assert keyed(draw, TREE, bind_globals=True).modules == bindings.REGISTRY.loaded_modules()
    assert keyed(draw, TREE, bind_globals=True).required
    # the default: the same libraries, seeded only where the task has the globals to itself
    assert keyed(draw, TREE).modules == bindings.REGISTRY.loaded_modules()
    assert not keyed(draw, TREE).required
    assert keyed(draw, TREE, bind_globals=False).modules == ()
    assert keyed(draw, TREE, bind_globals=["numpy"]).modules == ("numpy",)
    with pytest.raises(TypeError, match="list of module names"):
        keyed(draw, TREE, bind_globals="numpy")
    with pytest.raises(ValueError, match=r"\['nupmy'\].*no seedtree binding"):
        keyed(draw, TREE, bind_globals=["numpy", "nupmy"])


def test_keyed_tasks_have_stable_dask_tokens() -> None:
    from dask.base import tokenize

    assert tokenize(keyed(draw, TREE)) == tokenize(keyed(draw, TREE))
    assert tokenize(keyed(draw, TREE)) != tokenize(keyed(draw, TREE / 1))
    assert tokenize(keyed(draw, TREE)) != tokenize(keyed(draw, TREE, bind_globals=GLOBALS))
    task = keyed(draw, TREE, bind_globals=GLOBALS)
    assert pickle.loads(pickle.dumps(task)).modules == GLOBALS


def test_without_dask_the_error_says_what_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['dask'] = sys.modules['distributed'] = None  # as if not installed\n"
        "import seedtree as st, seedtree.dask as sd\n"
        "for call in (lambda: sd.worker_plugin(st.SeedTree(1)), lambda: sd.delayed_map(abs, [1], st.SeedTree(1))):\n"
        "    try:\n"
        "        call()\n"
        "    except ImportError as err:\n"
        "        print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2
    assert all("pip install 'seedtree[dask]'" in line for line in lines)
    assert "worker_plugin" in lines[0] and "delayed_map" in lines[1]
