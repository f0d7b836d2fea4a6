"""Seeding plans: how to seed a set of controllers from one node, and from a run of
children at once (a DataLoader batch, a chunk of tasks) with one vectorised derivation."""

from __future__ import annotations

import operator
from collections.abc import Callable

import numpy as np

from ..core.layout import GLOBALS_WORDS, WORDS_GLOBALS_KEY, expand_globals
from ..core.tree import SeedTree
from .libcontroller import LibController
from .state import NodeRef, resolve

__all__ = ["Batch", "Plan"]


class Plan:
    """How to seed a set of controllers from one node: the node's globals expansion
    (computed once for every word-seeded controller), and each controller's slice of it.
    Callers seeding many nodes at once (a DataLoader batch, a chunk of tasks) take a
    ``Batch`` of all their rows, derived in one vectorised call, and seed row by row."""

    def __init__(self, chosen: list[LibController]) -> None:
        self.names = [c.name for c in chosen]
        # Controllers whose words lie in the globals expansion are seeded from it (one
        # expansion for all of them); any other seeds itself from the node.
        batched = [c for c in chosen if c.words is not None and 0 <= c.words[0] < sum(c.words) <= GLOBALS_WORDS]
        self.count = GLOBALS_WORDS if batched else 0
        self.steps: list[tuple[LibController, int, int]] = []
        for c in chosen:
            if c in batched and c.words is not None:
                self.steps.append((c, c.words[0], c.words[0] + c.words[1]))
            else:
                self.steps.append((c, 0, 0))  # hi 0 marks it; lo is never read then
        self.node_seeders = [c.seed for c, _, hi in self.steps if not hi]
        """Controllers that seed from the node itself (not from the batch's rows)."""
        self._free: dict[int, list[Batch]] = {}  # by size: batches handed back, for reuse

    def seed(self, node: SeedTree, words: np.ndarray | None = None) -> list[str]:
        """Seed every controller from ``node``; ``words`` are the node's words
        ``0 .. count`` if the caller has them already."""
        if words is None and self.count:
            words = node.globals_words()
        for controller, lo, hi in self.steps:
            if hi and words is not None:
                controller.seed_words(words[lo:hi])
            else:
                controller.seed(node)
        return list(self.names)

    def batch(self, tree: SeedTree, keys: list[int]) -> Batch:
        """The words of every child ``tree / k`` (int keys), derived in one vectorised
        call; seed child j with ``batch.seed(j, node)``. Hand it back with ``release``."""
        n = len(keys)
        # Buffers come in power-of-two sizes, the first n rows used: chunks of varying
        # length (a parallel map's guided chunks) reuse a few buffers instead of building
        # seeders for every new length.
        size = 1 << max(n - 1, 0).bit_length()
        try:
            batch = self._free.setdefault(size, []).pop()
        except IndexError:
            batch = Batch(self, size)
        else:
            if any(map(operator.is_not, batch.targets, self._targets())):
                batch = Batch(self, size)  # a library swapped its generator since this one was made
        if self.count:
            expand_globals(tree.states(keys, 4, WORDS_GLOBALS_KEY), out=batch.rows[:n])
            batch.refresh()
        return batch

    def _targets(self) -> list[object]:
        return [controller.target() for controller, _, hi in self.steps if hi]

    def release(self, batch: Batch) -> None:
        """Hand a batch's buffers back for the next ``batch`` call (a few are kept)."""
        free = self._free[len(batch.rows)]  # batch() made this size's list when it made the batch
        if len(free) < 4 and len(self._free) < 16:  # pragma: no mutate - bounds memory only: any bound seeds the same
            free.append(batch)


class Batch:
    """The words of a run of children for one ``Plan``, and each controller's seeders for
    each row, made once: the buffers are refilled batch after batch."""

    __slots__ = ("plan", "rows", "refreshers", "seeders", "targets")

    def __init__(self, plan: Plan, n: int) -> None:
        self.plan = plan
        self.rows = np.empty((n, plan.count), dtype=np.uint32)
        self.refreshers: list[Callable[[], None]] = []
        per_controller = []
        for controller, lo, hi in plan.steps:
            if hi:
                refresh, seeders = controller.row_seeders(self.rows[:, lo:hi])
                if refresh is not None:
                    self.refreshers.append(refresh)
                per_controller.append(seeders)
        rows = zip(*per_controller, strict=True)  # pragma: no mutate - every controller gives one per row
        self.seeders = [[f for seeders in row for f in seeders] for row in rows]
        if not per_controller:
            self.seeders = [[] for _ in range(n)]
        self.targets = plan._targets()  # what the seeders write into (see LibController.target)

    def refresh(self) -> None:
        """After the rows were refilled: let controllers do their per-batch work."""
        for refresh in self.refreshers:
            refresh()

    def seed(self, j: int, node: NodeRef) -> None:
        """Seed every controller of the plan for child ``j`` (whose node is ``node``,
        made only if a controller seeds from the node itself)."""
        for seed in self.seeders[j]:
            seed()
        if self.plan.node_seeders:
            resolved = resolve(node)
            for seed_node in self.plan.node_seeders:
                seed_node(resolved)
