"""Hand-made threads with their own reproducible streams.

The global RNGs of random, numpy and torch are shared by all threads of a process, so
threads get their randomness from the ambient stream: a ``Thread`` made here runs its
target with its node bound, and ``seedtree.rng()`` inside it is that node's generator.
Threads given the same nodes draw the same numbers, however the OS schedules them.

    threads = [seedtree.threads.Thread(tree / i, target=work, args=(chunk,))
               for i, chunk in enumerate(chunks)]

Code in a thread that draws from the global RNGs (``random.random()``, ``np.random.*``,
``torch.rand``) races with every other thread: ``run_threads`` refuses such a run (it
raises ``RuntimeError`` naming the fix once all its threads have stopped, instead of
returning results that depend on scheduling). A lone ``Thread`` cannot know what runs
next to it and is not checked: draw from ``seedtree.rng()`` there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ..core.tree import SeedTree
from ..runtime import ambient
from ..runtime.policy import SharedGlobalsWatch
from ._checks import check_callable, check_count, check_tree

__all__ = ["Thread", "run_threads"]


class Thread(threading.Thread):
    """A ``threading.Thread`` whose target runs with ``node`` as the ambient node.

    Only ``seedtree.rng()`` is the thread's own: the global RNGs are the process's, shared
    with every other thread, and never seeded here (nor checked: see ``run_threads``)."""

    def __init__(
        self,
        node: SeedTree,
        target: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        **thread_kwargs: Any,
    ) -> None:
        check_tree(node, "seedtree.threads.Thread", "node")
        check_callable(target, "seedtree.threads.Thread", "target")
        if not isinstance(args, tuple) or not (kwargs is None or isinstance(kwargs, dict)):
            raise TypeError("seedtree.threads.Thread: args must be a tuple and kwargs a dict, as for threading.Thread")
        super().__init__(**thread_kwargs)
        self.node = node
        self._call = (target, args, kwargs or {})
        self.result: Any = None

    def run(self) -> None:
        target, args, kwargs = self._call
        with ambient.bound(self.node):
            self.result = target(*args, **kwargs)


def run_threads(target: Callable[..., Any], tree: SeedTree, n: int, *args: Any) -> list[Any]:
    """Run ``target(i, *args)`` in ``n`` threads, thread i with ``tree / i`` bound; returns
    the results in index order (exceptions propagate from the first failing thread).
    ``n`` may be 0 (no threads, an empty list); a negative or non-int ``n``, a
    non-callable ``target`` or a ``tree`` that is not a SeedTree is refused before any
    thread starts.

    Guarantee: the results are the same on every run, given ``target`` draws only from
    ``seedtree.rng()``. With ``n`` >= 2, a run during which a global RNG (``random``,
    numpy's, torch's) moved is refused: ``RuntimeError`` naming the fix, raised once
    every thread has stopped, with the caller's global RNGs put back as they were
    before the call. One thread runs next to no other and is not checked."""
    check_callable(target, "run_threads()", "target")
    check_tree(tree, "run_threads()")
    check_count(n, "run_threads()", "n (the number of threads)")
    errors: list[BaseException] = []

    def call(i: int) -> Any:
        try:
            return target(i, *args)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller below
            errors.append(exc)
            raise

    watch = None
    if n >= 2:
        fix = 'e.g. seedtree.joblib.parallel_map(target, range(n), tree, backend="loky"), which binds the same nodes'
        watch = SharedGlobalsWatch("run_threads()", fix)
    threads = [Thread(tree / i, target=call, args=(i,), name=f"seedtree-{i}") for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    if watch is not None:
        watch.finish()
    return [t.result for t in threads]
