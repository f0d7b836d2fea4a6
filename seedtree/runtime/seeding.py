"""Seeding a whole program: ``seed_everything``, ``seed_globals``, fork safety, the root
handed over by ``seedtree run``, and the determinism switch.

Vocabulary used across the package: to *seed* is to set the global generators of the
registered libraries from a node; to *bind* is to make a node the ambient node of a
context (``seedtree.rng()``); ``bind_process`` does both for a whole worker process.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

from ..core.tree import SeedTree
from . import ambient, importhook, manifest
from .controllers import REGISTRY, ImportMissing
from .state import STATE

__all__ = [
    "ENV_ENTROPY",
    "as_tree",
    "bind_process",
    "deterministic",
    "fork_base",
    "root_from_env",
    "seed_everything",
    "seed_globals",
    "seed_process",
]

ENV_ENTROPY = "SEEDTREE_ENTROPY"
"""The variable through which ``seedtree run`` hands its root to the command it runs."""


def root_from_env(default: int | None = None) -> SeedTree | None:
    """The root handed over by ``seedtree run`` (``SEEDTREE_ENTROPY``); else
    ``SeedTree(default)`` if a default is given, else None."""
    value = os.environ.get(ENV_ENTROPY)
    if value is None or not value.strip():
        return None if default is None else SeedTree(default)
    try:
        entropy = int(value.strip(), 0)
    except ValueError:
        raise ValueError(f"{ENV_ENTROPY}={value!r} is not an int; unset it or give decimal/hex entropy") from None
    return SeedTree(entropy)


def seed_globals(node: SeedTree, import_missing: ImportMissing = False) -> list[str]:
    """Seed every active library's global generator from ``node``; returns their names.

    Libraries not yet imported are skipped unless named in ``import_missing`` (or it is
    True): a worker whose parent uses torch must import and seed it before the task runs,
    or a task that imports torch itself would get torch's fixed default seed, the same in
    every worker. Integrations pass the parent's loaded modules; ``seed_everything``
    passes True. Until the next task, a registered library imported later is seeded from
    ``node`` at its import.
    """
    if not isinstance(node, SeedTree):
        raise TypeError(f"seed_globals() takes a SeedTree node, got {type(node).__name__}")
    names = REGISTRY.plan(import_missing).seed(node)
    importhook.arm(node)
    return names


def as_tree(seed: int | SeedTree | None) -> SeedTree:
    """An int becomes ``SeedTree(int)``; a SeedTree is kept; None means the root handed
    over by ``seedtree run`` (``SEEDTREE_ENTROPY``), else fresh OS entropy (recorded)."""
    if isinstance(seed, SeedTree):
        return seed
    if seed is None:
        return root_from_env() or SeedTree()
    return SeedTree(seed)


def seed_everything(seed: int | SeedTree | None = None) -> SeedTree:
    """Seed python ``random``, NumPy's global, torch's CPU generator and every CUDA
    device from ``seed`` and make it the ambient root; returns the root.

    Each library gets its own stream from the root's words (never one small int, never
    the same value for two libraries or two devices). Installed libraries that are not yet
    imported are imported so that they are seeded too. After ``os.fork`` the child's
    generators are reseeded from ``root / "fork" / n`` (n counts this process's forks), so
    forked workers never share a stream and the run stays reproducible. When threads fork
    at the same moment, each fork still takes its own n (reserved atomically before the
    fork): which child gets which n then depends on scheduling, that they differ does not.
    """
    root = as_tree(seed)
    seed_process(root, "seed_everything", import_missing=True)
    return root


def seed_process(node: SeedTree, record_as: str, import_missing: ImportMissing = False) -> None:
    """What ``seed_everything`` does with its root, for any node: seed the global RNGs
    (libraries imported later are seeded at their import), make ``node`` the ambient
    default, record it under ``record_as``, and reseed forked children from
    ``node / "fork" / n``. ``import_missing`` as for ``seed_globals``."""
    seed_globals(node, import_missing=import_missing)  # validates nothing can fail below before state changes
    ambient.set_default(node)
    manifest.record(record_as, node)
    STATE.start_fork_base(node)
    if not STATE.fork_hook_installed and hasattr(os, "register_at_fork"):
        os.register_at_fork(before=STATE.take_fork_index, after_in_child=_after_fork_child)
        STATE.fork_hook_installed = True


def _after_fork_child() -> None:
    node = STATE.child_fork_node()
    if node is not None:
        bind_process(node)


def bind_process(node: SeedTree, globals_from: ImportMissing = True) -> None:
    """Make ``node`` this process's ambient node (the default, and the running context's
    if something is bound there) and seed global RNGs from it: with True those of every
    library already imported, with a list those of the named libraries (imported if need
    be), with False or an empty list none. Worker initialisers and the fork hook use it."""
    if not isinstance(node, SeedTree):
        raise TypeError(f"bind_process() takes a SeedTree node, got {type(node).__name__}")
    ambient.set_default(node)
    ambient.reset_context(node)
    if globals_from is True:
        seed_globals(node)
    elif globals_from:
        seed_globals(node, globals_from)


def fork_base() -> SeedTree | None:
    """The node this process's forked children derive from (None before seed_everything)."""
    return STATE.fork_base


def deterministic(enabled: bool = True, warn_only: bool = False) -> dict[str, Any]:
    """Ask torch for deterministic algorithms and cuDNN kernels, and set
    ``CUBLAS_WORKSPACE_CONFIG`` (needed by deterministic cuBLAS). Returns a report of what
    was set and what could not be fixed from inside the program: ``PYTHONHASHSEED`` only
    takes effect before the interpreter starts, so when unset it is reported and warned
    about, never pretended (``seedtree run`` sets it)."""
    report: dict[str, Any] = {}
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    report["CUBLAS_WORKSPACE_CONFIG"] = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    try:
        import torch
    except ImportError:
        report["torch"] = "not installed"
    else:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
        torch.backends.cudnn.deterministic = enabled
        torch.backends.cudnn.benchmark = not enabled and torch.backends.cudnn.benchmark
        report["torch.use_deterministic_algorithms"] = torch.are_deterministic_algorithms_enabled()
        report["torch.backends.cudnn.deterministic"] = torch.backends.cudnn.deterministic
        report["torch.backends.cudnn.benchmark"] = torch.backends.cudnn.benchmark
    hashseed = os.environ.get("PYTHONHASHSEED")
    report["PYTHONHASHSEED"] = hashseed
    if hashseed in (None, "", "random") and enabled:
        warnings.warn(
            "PYTHONHASHSEED is not set: set and str hashing (and set iteration order) vary "
            "between runs. It only works when set before Python starts: launch with "
            "`seedtree run -- python ...` or `PYTHONHASHSEED=0 python ...`.",
            RuntimeWarning,
            stacklevel=2,
        )
    report["python"] = sys.version.split()[0]
    return report
