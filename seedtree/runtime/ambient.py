"""The ambient stream: the node bound to the running context, and a generator for it.

Integrations bind the node of the work being run (a sample, a task, a worker) with
``bound(node)``; code deep inside that work calls ``seedtree.rng()`` instead of threading a
generator through every call. The binding lives in a ``contextvars`` variable, so a binding
made in one thread or asyncio task is not seen by the others (a context copied on purpose,
e.g. ``asyncio.to_thread``, shares its binding and so one generator). Outside any binding
the ambient node is the root given to ``seed_everything`` (one shared generator: NumPy's
generators are thread-safe, but draws from several threads then depend on scheduling;
bind per-thread nodes with ``seedtree.threads`` when that matters).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

import numpy as np

from ..core.tree import SeedTree
from .state import STATE, AmbientSlot, Binding

__all__ = [
    "VAR",
    "bind",
    "bound",
    "current",
    "default",
    "reset_context",
    "restore_snapshot",
    "rng",
    "set_default",
    "snapshot",
    "unbind",
]

_var: ContextVar[Binding | None] = ContextVar("seedtree_ambient", default=None)
VAR = _var
"""The context variable holding the binding. Hot paths that bind item after item of a
batch set ``(node_batch, j)`` on it directly (``runtime.tasks.run_keyed_batch``): a
tuple costs less than a slot object, and the node is made only if asked for."""
_first_use = threading.Lock()

_UNBOUND = (
    "no seed tree is bound here: call seedtree.seed_everything(seed) first, or run this "
    "inside a seedtree integration (DataLoader, joblib, pool, threads)"
)


def _slot() -> AmbientSlot | None:
    """The slot of this context's binding, else the default's, else None."""
    binding = _var.get()
    if binding is None:
        return STATE.ambient_default
    if isinstance(binding, tuple):
        return binding[0].slot(binding[1])
    return binding


def _binding() -> AmbientSlot:
    binding = _slot()
    if binding is None:
        raise RuntimeError(_UNBOUND)
    return binding


def current() -> SeedTree:
    """The node bound to the running context (else the ``seed_everything`` root)."""
    return _binding().node


def rng() -> np.random.Generator:
    """A NumPy Generator for ``current()``, created on first use in a context and then
    returned again, so its position carries across calls within that context. It draws
    exactly what ``current().numpy()`` draws."""
    # Inlined _binding(): this is the call code makes per draw site, so once the
    # generator exists it costs a context-variable read and a type check (and, for an
    # item of a batch, one slot lookup).
    raw = _var.get()
    binding: AmbientSlot | None
    if isinstance(raw, AmbientSlot):
        binding = raw
    elif raw is None:
        binding = STATE.ambient_default
        if binding is None:
            raise RuntimeError(_UNBOUND)
    else:  # item j of a batch: its generator is held by the batch, no slot is made
        batch, j = raw
        made = batch.made
        gen = made.get(j)  # pragma: no mutate - a fast path: setdefault below returns the one made
        if gen is None:
            # No lock: threads of one item racing here each build a generator (no draw
            # happened from either yet), and setdefault hands every one the first published.
            gen = made.setdefault(j, batch.generator(j))
        return gen
    gen = binding.gen  # pragma: no mutate - the check under the lock finds it: this one saves the lock
    if gen is None:
        with _first_use:  # two threads sharing a binding must not both start a generator
            gen = binding.gen
            if gen is None:
                gen = binding.gen = binding.node.numpy()
    return gen


def bind(node: SeedTree) -> Token[Binding | None]:
    """Bind ``node`` for the rest of this context (worker initialisers use this); returns
    the token that ``unbind`` takes to undo it."""
    if not isinstance(node, SeedTree):
        raise TypeError(f"bind() takes a SeedTree, got {type(node).__name__}")
    return _var.set(AmbientSlot(node))


def unbind(token: Token[Binding | None]) -> None:
    """Undo a ``bind``."""
    _var.reset(token)


@contextmanager
def bound(node: SeedTree) -> Iterator[SeedTree]:
    """``with bound(node):`` makes ``node`` the ambient node inside the block."""
    token = bind(node)
    try:
        yield node
    finally:
        _var.reset(token)


def set_default(node: SeedTree | None) -> None:
    """Make ``node`` the ambient node wherever nothing is bound (``seed_everything`` does)."""
    STATE.ambient_default = None if node is None else AmbientSlot(node)


def default() -> SeedTree | None:
    """The ``seed_everything`` root, or None."""
    slot = STATE.ambient_default
    return None if slot is None else slot.node


def snapshot() -> dict[str, Any]:
    """Where ``rng()`` stands: the default node, the node ``rng()`` reads here and its
    generator's state (None if not drawn from yet)."""
    binding = _slot()
    gen = None if binding is None else binding.gen
    return {
        "default": default(),
        "node": None if binding is None else binding.node,
        "state": None if gen is None else gen.bit_generator.state,
    }


def restore_snapshot(saved: dict[str, Any]) -> None:
    """Put back what ``snapshot`` returned: the default node, and the generator position
    of the node ``rng()`` reads here if it is the same node (a snapshot taken inside
    ``bound(a)`` does not bind ``a`` where it is restored)."""
    if saved["default"] != default():
        set_default(saved["default"])
    binding = _slot()
    if binding is None or binding.node != saved["node"]:
        return
    if saved["state"] is None:
        binding.gen = None
    elif binding.gen is not None:  # rewind in place: code holding rng() keeps one generator
        binding.gen.bit_generator.state = saved["state"]
    else:
        gen = binding.node.numpy()
        gen.bit_generator.state = saved["state"]
        binding.gen = gen


def reset_context(node: SeedTree) -> None:
    """Rebind this context to ``node`` if something is bound here (used after fork, so a
    child does not continue its parent's ambient stream)."""
    if _var.get() is not None:
        _var.set(AmbientSlot(node))
