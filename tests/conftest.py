"""Shared fixtures. Kept opt-in: tests that touch process-wide seedtree state ask for
``clean_seedtree`` so that they neither see nor leak global RNG states, the ambient
default, the fork bookkeeping or the manifest ledger."""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from seedtree.runtime import ambient
from seedtree.runtime.state import STATE


@pytest.fixture
def clean_seedtree() -> Iterator[None]:
    """Run a test as if seedtree had never been used in this process, then put back the
    global RNG states and seedtree's module state as they were (saved here by hand, not
    with ``seedtree.capture``, which is under test)."""
    with _clean_state():
        yield


@pytest.fixture(scope="module")
def clean_seedtree_module() -> Iterator[None]:
    """``clean_seedtree`` around a module-scoped fixture (one that trains a reference run)."""
    with _clean_state():
        yield


@contextlib.contextmanager
def _clean_state() -> Iterator[None]:
    py_state = random.getstate()
    np_state = np.random.get_state()
    torch = sys.modules.get("torch")
    torch_state = torch.get_rng_state() if torch is not None else None
    default = STATE.ambient_default
    fork_state = (STATE.fork_base, STATE.fork_count)
    ledger = STATE.recorded()
    ambient.set_default(None)
    STATE.start_fork_base(None)
    with STATE.lock:
        STATE.ledger.clear()
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        if torch_state is not None:
            torch.set_rng_state(torch_state)
        STATE.ambient_default = default
        STATE.fork_base, STATE.fork_count = fork_state
        with STATE.lock:
            STATE.ledger.clear()
            STATE.ledger.update(ledger)
