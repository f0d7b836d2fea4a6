"""The one owner of process-wide state.

Everything seedtree keeps per process lives in the single ``STATE`` object below, with
the lock it needs: the ambient default (the ``seed_everything`` root), the fork counter,
the record ledger and its listeners, and the arming of the seed-on-import hook. Other
modules read and change it only through this object, so there is one place to look when
asking "what does seedtree remember in this process?". The values a binding holds are
defined here too, because ``STATE`` holds them: ``AmbientSlot`` (a node and its
``rng()`` generator) and ``NodeBatch`` (item j of a batch, its node made on demand).

Fork counter. Several threads may fork at the same moment. Each fork takes its index
under the lock *before* the fork (``os.register_at_fork(before=...)`` runs in the forking
thread), and the child reads the index its own forking thread took, so two children can
never get the same index. Which racing fork gets which index depends on scheduling;
that the indices are distinct does not.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.tree import ChildGenerators, SeedTree

__all__ = ["STATE", "AmbientSlot", "BatchSlot", "Binding", "NodeBatch", "NodeRef", "ProcessState", "resolve"]


class AmbientSlot:
    """The ambient binding of one context: a node and, once ``rng()`` was called, its generator."""

    __slots__ = ("node", "gen")

    def __init__(self, node: SeedTree) -> None:
        self.node = node
        self.gen: np.random.Generator | None = None


class BatchSlot(AmbientSlot):
    """Item j's slot of a ``NodeBatch``. Its node is made when first asked for (an item
    that only draws from ``rng()`` never needs it), and its generator is the one the batch
    holds for j (``seedtree.rng()`` of a batch item makes it without making a slot)."""

    __slots__ = ("_batch", "_j", "_path", "_made")

    def __init__(self, batch: NodeBatch, j: int, path: tuple[Any, ...]) -> None:
        # Not the base's __init__: its ``gen = None`` would drop a generator made already.
        self._batch, self._j, self._path = batch, j, path
        self._made: SeedTree | None = None

    @property  # over the base's attribute: made from the batch's tree and the item's keys
    def node(self) -> SeedTree:
        if self._made is None:
            self._made = self._batch.tree.child(*self._path)
        return self._made

    @node.setter
    def node(self, value: SeedTree) -> None:
        self._made = value

    @property  # over the base's attribute: the batch holds one generator per item
    def gen(self) -> np.random.Generator | None:
        return self._batch.made.get(self._j)

    @gen.setter
    def gen(self, value: np.random.Generator | None) -> None:
        if value is None:
            self._batch.made.pop(self._j, None)
        else:
            self._batch.made[self._j] = value


class NodeBatch:
    """The children ``tree / k`` of a run of keys (a DataLoader batch, a chunk of tasks),
    made only when asked for. Binding item j of a batch is then one ``(batch, j)`` tuple:
    work that never asks for its node (no ``seedtree.rng()``, no ``current()``) pays
    nothing for it, and work that does gets exactly ``tree / keys[j]``. A key is validated
    when its node is made, or with the other keys of its block of 256 when an item of the
    block first asks for its generator."""

    __slots__ = ("tree", "keys", "made", "_slots", "_blocks")

    def __init__(self, tree: SeedTree, keys: Any) -> None:
        self.tree = tree
        self.keys = keys
        self.made: dict[int, np.random.Generator] = {}
        """Item j's ``seedtree.rng()`` generator, once made."""
        self._slots: dict[int, AmbientSlot] = {}
        self._blocks: dict[int, ChildGenerators] = {}

    def slot(self, j: int) -> AmbientSlot:
        """Item j's binding: its node, and its ``rng()`` generator once one was made. Threads
        of one item (copied contexts) may race here: ``dict.setdefault`` publishes the
        first slot made and hands it to every thread, so they share one generator."""
        made = self._slots.get(j)  # pragma: no mutate - perf only: setdefault below returns the slot made
        if made is None:
            key = self.keys[j]
            path = tuple(int(k) for k in key) if isinstance(key, np.ndarray) else (key,)
            made = self._slots.setdefault(j, BatchSlot(self, j, path))
        return made

    def node(self, j: int) -> SeedTree:
        """``tree / keys[j]``."""
        return self.slot(j).node

    def generator(self, j: int) -> np.random.Generator:
        """A new ``(tree / keys[j]).numpy()`` (what ``seedtree.rng()`` returns for item j).
        The seed words of item j's block of ``_BLOCK`` items are derived in one vectorised
        call when an item of the block first asks, so a batch whose items all draw pays
        about 2 µs per item (half of it NumPy's own cost of a Generator). Thread-safe: threads
        racing on one block derive it alike and keep one; each call makes a new generator."""
        b = j >> _BLOCK_BITS
        lo = b << _BLOCK_BITS
        # Not mutated: a block found or derived again gives the same words.
        block = self._blocks.get(b)  # pragma: no mutate
        if block is None:
            block = self._blocks.setdefault(b, self.tree.child_generators(self.keys[lo : lo + _BLOCK]))
        return block.make(j - lo)


_BLOCK_BITS = 8  # items whose seed words are derived together: 256 (a batch or a chunk of one)
_BLOCK = 1 << _BLOCK_BITS  # pragma: no mutate - a longer block derives more words, the same generators


Binding = AmbientSlot | tuple[NodeBatch, int]
"""What a context binds: a slot of its own, or item j of a ``NodeBatch``."""
NodeRef = SeedTree | tuple[NodeBatch, int]
"""A node, or item j of a ``NodeBatch`` (made when first needed)."""


def resolve(ref: NodeRef) -> SeedTree:
    """The node ``ref`` stands for."""
    return ref[0].node(ref[1]) if isinstance(ref, tuple) else ref


RecordListener = Callable[[str, SeedTree], None]


@dataclass
class ProcessState:
    """Process-wide state (see the module docstring). One instance: ``STATE``."""

    ambient_default: AmbientSlot | None = None
    fork_base: SeedTree | None = None
    fork_count: int = 0
    fork_hook_installed: bool = False
    ledger: dict[str, SeedTree] = field(default_factory=dict)
    record_listeners: list[RecordListener] = field(default_factory=list)
    hook_node: NodeRef | None = None
    """The node the seed-on-import hook seeds newly imported libraries from (None: disarmed)."""
    hook_pending: frozenset[str] = frozenset()
    """Installed registered libraries not imported yet, which the hook watches for."""
    hook_fresh: dict[str, object] = field(default_factory=dict)
    """Controller name -> the library's RNG state just after its first import."""
    lock: threading.RLock = field(default_factory=threading.RLock)
    _forking: threading.local = field(default_factory=threading.local)

    # -- fork counter -------------------------------------------------------------------

    def start_fork_base(self, base: SeedTree | None) -> None:
        """Forked children of this process derive from ``base / "fork" / n`` from now on."""
        with self.lock:
            self.fork_base, self.fork_count = base, 0

    def take_fork_index(self) -> None:
        """Before a fork, in the forking thread: reserve the next index atomically."""
        with self.lock:
            # the index is only read where a fork base exists (child_fork_node)
            self._forking.index = self.fork_count if self.fork_base is not None else None
            if self.fork_base is not None:
                self.fork_count += 1

    def child_fork_node(self) -> SeedTree | None:
        """In a forked child: the node its fork reserved (and it becomes the child's fork
        base, with a fresh counter), or None when nothing was seeded before the fork."""
        index: int | None = getattr(self._forking, "index", None)
        base = self.fork_base
        # The lock may have been held by another thread of the parent at fork time: the
        # child has only this thread, so it starts with a fresh lock.
        self.lock = threading.RLock()
        if base is None or index is None:
            return None
        node = base / "fork" / index
        self.fork_base, self.fork_count = node, 0
        return node

    # -- record ledger ------------------------------------------------------------------

    def record(self, name: str, node: SeedTree) -> None:
        with self.lock:
            self.ledger[name] = node
            listeners = list(self.record_listeners)
        for listener in listeners:
            listener(name, node)

    def recorded(self) -> dict[str, SeedTree]:
        with self.lock:
            return dict(self.ledger)

    def add_record_listener(self, listener: RecordListener) -> None:
        """Call ``listener(name, node)`` after every ``record`` (the ``seedtree run``
        write-back uses it)."""
        with self.lock:
            if listener not in self.record_listeners:
                self.record_listeners.append(listener)


STATE = ProcessState()
