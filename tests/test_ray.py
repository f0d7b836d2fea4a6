"""seedtree.ray on a real local Ray (``ray.init(num_cpus=2)``, nothing remote): keyed task
maps bit-identical to joblib with loky, a retry after a killed worker, per-actor streams
and Ray Data rows keyed by a column, whatever the batch size and concurrency."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import seedtree as st

ROOT = Path(__file__).resolve().parents[1]
GLOBALS = ("numpy", "random")  # bound explicitly: torch would cost every worker its import


def _run(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=120
    )


def test_import_seedtree_imports_no_optional_framework() -> None:
    proc = _run("""
        import sys
        import seedtree
        print(sorted(m for m in ("ray", "jax", "sklearn", "joblib") if m in sys.modules))
    """)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_missing_ray_says_what_to_install() -> None:
    proc = _run("""
        import sys
        sys.modules["ray"] = None
        try:
            import seedtree.ray
        except ImportError as err:
            print(err)
    """)
    assert proc.returncode == 0, proc.stderr
    assert "seedtree.ray" in proc.stdout and "seedtree[ray]" in proc.stdout


def test_keyed_map_without_a_running_ray_says_so() -> None:
    pytest.importorskip("ray")
    proc = _run("""
        import seedtree as st
        from seedtree.ray import keyed_map
        try:
            keyed_map(abs, range(3), st.SeedTree(1))
        except RuntimeError as err:
            print(err)
    """)
    assert proc.returncode == 0, proc.stderr
    assert "ray.init()" in proc.stdout


ray = pytest.importorskip("ray")
from seedtree.joblib import parallel_map  # noqa: E402
from seedtree.ray import actor_nodes, bind_actor, keyed_batches, keyed_map  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def session() -> Iterator[None]:
    # Workers import this module (its functions travel by reference), so they get its folder.
    path = os.pathsep.join([str(Path(__file__).parent), str(ROOT), os.environ.get("PYTHONPATH", "")])
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    try:
        yield
    finally:
        ray.shutdown()


def simulate(x: int) -> tuple[int, float, float, float]:
    import random

    return x, float(st.rng().normal()), float(np.random.normal()), random.random()


def die_once(args: tuple[int, str]) -> tuple[int, float, float, float]:
    x, marker = args
    if x == 5 and not os.path.exists(marker):
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)  # the worker process dies mid-task, as on an OOM kill
    return simulate(x)


@pytest.mark.slow
def test_keyed_map_is_bit_identical_to_joblib_loky(session: None) -> None:
    tree = st.SeedTree(11) / "mc"
    expected = parallel_map(simulate, range(20), tree, n_jobs=2, backend="loky", bind_globals=GLOBALS)
    assert keyed_map(simulate, range(20), tree, bind_globals=GLOBALS) == expected
    assert keyed_map(simulate, range(20), tree, bind_globals=GLOBALS, chunk_size=1) == expected
    assert len({r[1] for r in expected}) == 20 and len({r[2] for r in expected}) == 20
    # Ambient stream only: the globals are left alone, and the keyed stream is the same.
    ambient = keyed_map(simulate, range(20), tree, bind_globals=False, chunk_size=3)
    assert [r[:2] for r in ambient] == [r[:2] for r in expected]
    assert [r[2] for r in ambient] != [r[2] for r in expected]


@pytest.mark.slow
def test_task_retried_after_its_worker_is_killed_draws_the_same(session: None, tmp_path: Path) -> None:
    tree = st.SeedTree(3) / "retry"
    marker = str(tmp_path / "killed-once")
    expected = [simulate_with(tree, x) for x in range(8)]
    got = keyed_map(die_once, [(x, marker) for x in range(8)], tree, bind_globals=GLOBALS, chunk_size=4, max_retries=1)
    assert os.path.exists(marker)  # the first attempt really died
    assert got == expected


def simulate_with(tree: st.SeedTree, x: int) -> tuple[int, float, float, float]:
    """What item x must draw: computed here, with its node's globals seeded and put back."""
    with st.isolate(), st.bound(tree / x):
        st.seed_globals(tree / x, list(GLOBALS))
        return simulate(x)


@ray.remote
class Walker:
    def __init__(self, node: st.SeedTree) -> None:
        bind_actor(node, bind_globals=GLOBALS)

    def own(self) -> tuple[list[float], float]:
        return st.rng().random(3).tolist(), float(np.random.random())

    def keyed(self, tree: st.SeedTree, k: int) -> float:
        with st.bound(tree / k):
            return float(st.rng().random())


@pytest.mark.slow
def test_actors_get_their_own_streams_and_pools_can_key_items(session: None) -> None:
    from ray.util import ActorPool

    tree = st.SeedTree(8)
    nodes = actor_nodes(tree, 2)
    assert nodes == [tree / "actor" / 0, tree / "actor" / 1]
    walkers = [Walker.remote(node) for node in nodes]
    own = ray.get([w.own.remote() for w in walkers])
    for (draws, global_draw), node in zip(own, nodes, strict=True):
        assert draws == node.numpy().random(3).tolist()
        with st.isolate():
            st.seed_globals(node, ["numpy"])
            assert global_draw == float(np.random.random())
    pool = ActorPool(walkers)
    items = list(pool.map(lambda actor, k: actor.keyed.remote(tree / "items", k), range(6)))
    assert items == [float((tree / "items" / k).numpy().random()) for k in range(6)]


def add_noise(batch, rngs):  # an ordinary Ray Data batch function, given one generator per row
    batch["noise"] = np.array([rng.normal() for rng in rngs])
    return batch


@pytest.mark.slow
def test_ray_data_rows_do_not_depend_on_batch_size_or_concurrency(session: None) -> None:
    tree = st.SeedTree(21) / "data"
    ds = ray.data.range(40)
    small = ds.map_batches(keyed_batches(add_noise, tree), batch_size=7).take_all()
    wide = (
        ds.repartition(4)
        .map_batches(
            keyed_batches(add_noise, tree),
            batch_size=16,
            compute=ray.data.TaskPoolStrategy(size=2),
        )
        .take_all()
    )
    noise = {row["id"]: row["noise"] for row in small}
    assert noise == {row["id"]: row["noise"] for row in wide}
    assert noise == {i: (tree / i).numpy().normal() for i in range(40)}
    # A str key column and pandas batches: the row's stream is tree / its key.
    named = ray.data.from_items([{"name": f"s{i}", "x": i} for i in range(12)])
    rows = named.map_batches(keyed_batches(add_noise, tree, key="name"), batch_size=5, batch_format="pandas")
    assert {r["name"]: r["noise"] for r in rows.take_all()} == {
        f"s{i}": (tree / f"s{i}").numpy().normal() for i in range(12)
    }


def test_keyed_batches_names_a_missing_key_column() -> None:
    fn = keyed_batches(add_noise, st.SeedTree(1))
    with pytest.raises(KeyError, match="'id'.*columns: \\['x'\\]"):
        fn({"x": np.arange(3)})
    with pytest.raises(ValueError):
        fn({"id": np.array([-1, 2])})  # not a valid path key: refused, not wrapped around


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match="SeedTree"):
        keyed_map(simulate, range(3), 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="chunk_size"):
        keyed_map(simulate, range(3), st.SeedTree(1), chunk_size=0)
    with pytest.raises(TypeError, match="SeedTree"):
        bind_actor(7)  # type: ignore[arg-type]
