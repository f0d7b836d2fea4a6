"""The ambient stream: the node bound to the running context and a generator that keeps
its position there; threads, asyncio tasks and copied contexts each see their own."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import numpy as np
import pytest

import seedtree as st
from seedtree.core.tree import SeedTree
from seedtree.runtime import ambient

pytestmark = pytest.mark.usefixtures("clean_seedtree")
UNBOUND = r"no seed tree is bound here: call seedtree\.seed_everything\(seed\) first"


def test_nothing_bound_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match=UNBOUND):
        st.current()
    with pytest.raises(RuntimeError, match=UNBOUND):
        st.rng()
    assert ambient.default() is None and ambient.snapshot() == {"default": None, "node": None, "state": None}


def test_seed_everything_root_is_the_default() -> None:
    root = st.seed_everything(21)
    assert st.current() == root and ambient.default() == root
    assert st.rng().random(3).tolist() == root.numpy().random(3).tolist()


def test_rng_keeps_its_position_within_a_context() -> None:
    node = SeedTree(1) / "x"
    expected = node.numpy().random(5).tolist()
    with st.bound(node) as got:
        assert got is node and st.current() is node
        assert st.rng() is st.rng()  # one generator per binding
        assert [st.rng().random() for _ in range(5)] == expected


def test_nested_bindings_restore_the_outer_one_and_its_position() -> None:
    outer, inner = SeedTree(2) / "outer", SeedTree(2) / "inner"
    o, i = outer.numpy().random(4).tolist(), inner.numpy().random(2).tolist()
    with st.bound(outer):
        a = st.rng().random(2).tolist()
        with st.bound(inner):
            assert st.current() == inner and st.rng().random(2).tolist() == i
        assert st.current() == outer
        assert a + st.rng().random(2).tolist() == o
    with pytest.raises(RuntimeError, match=UNBOUND):
        st.current()


def test_bind_and_unbind_tokens() -> None:
    node = SeedTree(3)
    token = ambient.bind(node)
    try:
        assert st.current() == node
    finally:
        ambient.unbind(token)
    with pytest.raises(RuntimeError, match=UNBOUND):
        st.current()
    with pytest.raises(TypeError, match="bind\\(\\) takes a SeedTree, got int"):
        ambient.bind(3)
    with pytest.raises(TypeError, match="bind\\(\\) takes a SeedTree"), st.bound("root"):
        pass


def _yield_to_others() -> None:
    # Give other threads a chance to run between draws (the GIL switches on a wait).
    threading.Event().wait(0)


def test_threads_get_their_own_binding() -> None:
    root = st.seed_everything(4)
    barrier = threading.Barrier(8)
    seen: dict[int, tuple] = {}

    def work(t: int) -> None:
        default_node = st.current()  # a new thread starts unbound: it sees the default root
        barrier.wait()
        with st.bound(root / "thread" / t):
            draws = []
            for _ in range(50):
                draws.append(st.rng().integers(0, 2**63))
                _yield_to_others()
            seen[t] = (default_node, st.current(), draws)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for t, (default_node, node, draws) in seen.items():
        assert default_node == root and node == root / "thread" / t
        assert draws == (root / "thread" / t).numpy().integers(0, 2**63, 50).tolist()
    assert st.current() == root  # the main thread's binding was never touched


def test_asyncio_tasks_get_their_own_binding_and_position() -> None:
    root = SeedTree(5)

    async def task(k: int) -> list[float]:
        with st.bound(root / "task" / k):
            out = []
            for _ in range(6):
                out.append(st.rng().random())
                await asyncio.sleep(0)  # interleave with the other tasks
            return out

    async def main() -> list[list[float]]:
        return await asyncio.gather(*(task(k) for k in range(5)))

    results = asyncio.run(main())
    for k, draws in enumerate(results):
        assert draws == (root / "task" / k).numpy().random(6).tolist()


def test_copied_context_sees_the_binding_and_shares_its_stream() -> None:
    # A copied context (what asyncio tasks and executors use) sees the same node; with the
    # same node it continues the same stream rather than replaying it from the start.
    node = SeedTree(6) / "ctx"
    expected = node.numpy().random(4).tolist()
    with st.bound(node):
        first = st.rng().random(2).tolist()
        ctx = contextvars.copy_context()
        second = ctx.run(lambda: (st.current(), st.rng().random(2).tolist()))
    assert second[0] == node
    assert first + second[1] == expected


def test_seed_everything_again_starts_a_fresh_ambient_stream() -> None:
    st.seed_everything(7)
    st.rng().random(10)
    st.seed_everything(7)
    assert st.rng().random() == SeedTree(7).numpy().random()


def test_snapshot_round_trip() -> None:
    node = SeedTree(8) / 1
    with st.bound(node):
        assert ambient.snapshot()["state"] is None
        fresh = ambient.snapshot()
        st.rng().random(3)
        saved = ambient.snapshot()
        assert saved["node"] == node and saved["state"]["bit_generator"] == "PCG64"
        expected = st.rng().random(2).tolist()
        ambient.restore_snapshot(saved)
        assert st.rng().random(2).tolist() == expected
        ambient.restore_snapshot(fresh)  # not drawn from yet: starts afresh
        assert st.rng().random() == node.numpy().random()


def test_restore_outside_the_bound_block_leaves_the_default_alone() -> None:
    root = st.seed_everything(1)
    with st.bound(root / 5):
        st.rng().random()
        state = st.capture()
    st.restore(state)
    assert st.current() == root
    with st.isolate():
        st.seed_everything(2)
    assert st.current() == root, "isolate() puts the seed_everything root back"


def test_first_use_from_many_threads_gives_one_generator() -> None:
    import sys
    import threading

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for trial in range(100):
            st.seed_everything(trial)
            barrier = threading.Barrier(4)
            draws: list[float] = []

            def draw(barrier: threading.Barrier = barrier, draws: list[float] = draws) -> None:
                barrier.wait()
                draws.append(st.rng().random())

            threads = [threading.Thread(target=draw) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert len(set(draws)) == 4, f"trial {trial}: two threads started the same generator"
    finally:
        sys.setswitchinterval(old)


def test_rng_draws_equal_numpy_from_the_node() -> None:
    node = SeedTree(2**80) / 3 / 4
    with st.bound(node):
        draws = st.rng().standard_normal(4).tolist()
    theirs = np.random.default_rng(np.random.SeedSequence(2**80, spawn_key=(3, 4))).standard_normal(4).tolist()
    assert draws == theirs


# -- items of a batch (run_keyed_batch binds item j as (NodeBatch, j)) --------------------


def _draw_if(item: tuple[int, bool]) -> object:
    _, asks = item
    if not asks:
        return None
    return (st.current(), st.rng().random(2).tolist(), st.rng().integers(1 << 62))


@pytest.mark.parametrize("asking", ["all", "none", "one", "every third", "last two", "far apart"])
def test_batch_items_get_their_own_node_and_stream_whoever_else_asks(asking: str) -> None:
    """Item j of a batch sees tree / keys[j] and draws what (tree / keys[j]).numpy() draws,
    whichever items ask (their seed words derived a block at a time)."""
    from seedtree.runtime.tasks import run_keyed_batch

    tree = SeedTree(31) / "batch"
    keys = [9, 0, 4, 2**32 - 1, 17, 3, 8, *range(100, 130)]
    n = len(keys)
    asks = {
        "all": [True] * n,
        "none": [False] * n,
        "one": [j == 3 for j in range(n)],
        "every third": [j % 3 == 1 for j in range(n)],
        "last two": [j >= n - 2 for j in range(n)],
        "far apart": [j in (0, 1, 20, 21, 36) for j in range(n)],
    }[asking]
    outer = SeedTree(1) / "outer"
    with st.bound(outer):
        got = run_keyed_batch(tree, keys, _draw_if, list(enumerate(asks)), ())
        assert st.current() is outer  # the caller's binding is back
    for key, ask, value in zip(keys, asks, got, strict=True):
        if not ask:
            assert value is None
            continue
        gen = (tree / key).numpy()
        assert value == (tree / key, gen.random(2).tolist(), gen.integers(1 << 62))


def test_a_batch_items_slot_and_rng_hold_one_generator() -> None:
    """Inside item j, ``rng()`` made before or after the slot (``current()``, a snapshot)
    is one generator, and restoring a snapshot rewinds that very generator."""
    from seedtree.runtime.tasks import run_keyed_batch

    tree = SeedTree(8) / "slots"

    def item(first: str) -> tuple[bool, bool, list[float], list[float]]:
        if first == "current":
            st.current()
        gen = st.rng()
        saved = ambient.snapshot()
        drawn = gen.random(3).tolist()
        ambient.restore_snapshot(saved)
        again = st.rng().random(3).tolist()
        return st.rng() is gen, st.current() == tree / (0 if first == "rng" else 1), drawn, again

    got = run_keyed_batch(tree, [0, 1], item, ["rng", "current"], ())
    for same, node_ok, drawn, again in got:
        assert same and node_ok and drawn == again


def test_a_context_copied_inside_an_item_keeps_that_item_after_the_batch() -> None:
    from seedtree.runtime.tasks import run_keyed_batch

    tree = SeedTree(32)
    copies = run_keyed_batch(tree, [5, 6, 7], lambda _: contextvars.copy_context(), [None] * 3, ())
    seen = [ctx.run(lambda: (st.current(), st.rng().random())) for ctx in copies]
    assert seen == [(tree / k, (tree / k).numpy().random()) for k in (5, 6, 7)]


def test_a_failing_item_puts_the_callers_binding_back() -> None:
    from seedtree.runtime.tasks import run_keyed_batch

    def boom(item: int) -> int:
        if item == 2:
            raise KeyError(item)
        return item

    outer = SeedTree(2) / "outer"
    for modules in ((), ("numpy",)):
        with st.bound(outer):
            with pytest.raises(KeyError):
                run_keyed_batch(SeedTree(3), [0, 1, 2, 3], boom, [0, 1, 2, 3], modules)
            assert st.current() is outer
    with pytest.raises(ValueError, match="3 items for 2 keys"):
        run_keyed_batch(SeedTree(3), [0, 1], boom, [0, 1, 2], ())


def test_threads_of_one_item_share_its_generator_even_racing_for_it() -> None:
    """Two threads in copies of item 0's context ask for rng() at once, while nothing else
    in the batch has made its nodes yet: they must share one generator (two different
    draws, the node's first two), never make one each (the same draw twice)."""
    import sys

    from seedtree.runtime.tasks import run_keyed_batch

    def item(_: int) -> list[float]:
        barrier, out = threading.Barrier(2), []

        def body() -> None:
            barrier.wait()
            out.append(float(st.rng().random()))

        threads = [threading.Thread(target=contextvars.copy_context().run, args=(body,)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return out

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race shows if it is there
    try:
        for b in range(200):
            tree = SeedTree(5) / b
            got = run_keyed_batch(tree, list(range(256)), lambda k: item(k) if k == 0 else None, range(256), ())
            assert sorted(got[0]) == sorted((tree / 0).numpy().random(2).tolist()), f"batch {b}"
    finally:
        sys.setswitchinterval(interval)
