"""Per-worker initialisers for real pools, hand-made threads, rank info, and the audit."""

from __future__ import annotations

import functools
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
import torch
from _workloads import draw_globals_once
from torch.utils.data import DataLoader

import seedtree as st
from seedtree import SeedTree
from seedtree.audit import audit_joblib, audit_loader, audit_pool
from seedtree.core.layout import MT_WORDS, WORDS_NUMPY_GLOBAL
from seedtree.pool import initializer, worker_node
from seedtree.ranks import rank_info, rank_tree
from seedtree.runtime.state import STATE
from seedtree.threads import Thread, run_threads
from seedtree.torch import loader as _loader
from seedtree.torch import worker_init_fn

# These tests exercise the shuffled order (loader() shuffles only when asked, as DataLoader).
loader = functools.partial(_loader, shuffle=True)

TREE = st.SeedTree(31337)


@pytest.fixture
def no_fork_hook():
    """The plain-pool hazard only shows when seed_everything's fork hook is not armed."""
    saved = (STATE.fork_base, STATE.fork_count)
    STATE.fork_base = None
    yield
    STATE.fork_base, STATE.fork_count = saved


def _both_started(barrier) -> None:
    barrier.wait(timeout=120)  # no worker takes tasks before both exist


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_pool_initializer_gives_distinct_worker_streams(method):
    ctx = multiprocessing.get_context(method)
    barrier = ctx.Barrier(2)
    with ctx.Pool(2, initializer=initializer(TREE, then=_both_started, then_args=(barrier,))) as pool:
        rows = pool.map(draw_globals_once, range(8), chunksize=1)
    first_by_pid = {}
    for pid, *draws, path in rows:
        first_by_pid.setdefault(pid, (draws, path))
    assert len(first_by_pid) == 2, "both workers should have run tasks"
    for column in range(3):
        values = [row[1 + column] for row in rows]
        assert len(set(values)) == len(values), f"library {column} repeats across workers"
    for draws, path in first_by_pid.values():
        # Each worker's first draws are those of its own node, tree / "worker" / identity.
        node = SeedTree(TREE.entropy, path)
        assert path[0] == "worker" and len(path) > 1
        assert draws[0] == node.random().random()
        legacy = np.random.RandomState()
        legacy.set_state(("MT19937", node.globals_words(WORDS_NUMPY_GLOBAL, MT_WORDS), 0))
        assert draws[1] == legacy.random_sample()
        assert draws[2] == torch.rand(1, generator=node.torch()).item()


def test_executor_initializer_chains_user_initializer(tmp_path):
    marker = tmp_path / "ran"
    with ProcessPoolExecutor(
        2,
        mp_context=multiprocessing.get_context("fork"),
        initializer=initializer(TREE, then=_touch, then_args=(str(marker),)),
    ) as ex:
        rows = [f.result() for f in [ex.submit(draw_globals_once, i) for i in range(6)]]
    assert marker.exists()
    values = [r[2] for r in rows]
    assert len(set(values)) == len(values)


def _touch(path: str) -> None:
    with open(path, "a") as fh:
        fh.write(f"{os.getpid()}\n")


def test_worker_node_comes_from_process_identity():
    assert worker_node(TREE) == TREE / "worker"  # the main process has an empty identity
    with pytest.raises(TypeError, match="SeedTree"):
        initializer("tree")


def test_threads_distinct_and_reproducible():
    def work(i):
        return [st.rng().random() for _ in range(1000)]

    first = run_threads(work, TREE, 8)
    again = run_threads(work, TREE, 8)
    assert first == again
    flat = [x for row in first for x in row]
    assert len(set(flat)) == len(flat)
    assert first[3][0] == (TREE / 3).numpy().random()
    t = Thread(TREE / "x", target=lambda: st.current())
    t.start()
    t.join()
    assert t.result == TREE / "x"


def test_rank_info_from_environment(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert rank_info() == (3, 1, 4)
    assert rank_tree(TREE) == TREE / "rank" / 3
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ValueError, match="RANK='x'"):
        rank_info()
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        rank_info()


def test_audit_catches_plain_fork_pool_and_passes_seedtree(no_fork_hook):
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        plain = audit_pool(pool)
    assert not plain.ok and {d["library"] for d in plain.duplicates} >= {"numpy"}
    assert "DUPLICATED" in str(plain)
    with ctx.Pool(2, initializer=initializer(TREE)) as pool:
        fixed = audit_pool(pool)
    assert fixed.ok, str(fixed)


@pytest.mark.slow
def test_audit_joblib_and_loader(no_fork_hook):
    assert not audit_joblib("multiprocessing", 2).ok  # joblib's fork pool inherits numpy's state
    assert audit_joblib("multiprocessing", 2, tree=TREE).ok
    hooked = audit_loader(
        lambda ds: DataLoader(
            ds, batch_size=2, num_workers=2, persistent_workers=True, worker_init_fn=worker_init_fn(TREE)
        )
    )
    assert hooked.ok, str(hooked)
    per_sample = audit_loader(lambda ds: loader(ds, TREE, batch_size=2, num_workers=2, persistent_workers=True))
    assert per_sample.ok, str(per_sample)


def test_audit_catches_persistent_workers_reseeded_identically():
    """A worker_init_fn that reseeds from the worker id alone repeats across epochs."""
    bad = audit_loader(
        lambda ds: DataLoader(
            ds, batch_size=2, num_workers=2, worker_init_fn=_seed_by_id, generator=torch.Generator().manual_seed(0)
        )
    )
    assert not bad.ok


def _seed_by_id(worker_id: int) -> None:
    import numpy as np

    np.random.seed(1000 + worker_id)
