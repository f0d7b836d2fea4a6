"""Seeding a whole program: ``seed_everything``, fork safety and the determinism switch."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable
from typing import Any

from . import ambient, bindings, manifest
from .tree import SeedTree

_fork_state = {"base": None, "count": 0, "hooked": False}


def as_tree(seed: int | SeedTree | None) -> SeedTree:
    """An int becomes ``SeedTree(int)``; a SeedTree is kept; None means the root handed
    over by ``seedtree run`` (``SEEDTREE_ENTROPY``), else fresh OS entropy (recorded)."""
    if isinstance(seed, SeedTree):
        return seed
    if seed is None:
        return SeedTree.from_env() or SeedTree()
    return SeedTree(seed)


def seed_everything(seed: int | SeedTree | None = None) -> SeedTree:
    """Seed python ``random``, NumPy's global, torch's CPU generator and every CUDA
    device from ``seed`` and make it the ambient root; returns the root.

    Each library gets its own stream from the root's words (never one small int, never
    the same value for two libraries or two devices). Installed libraries that are not yet
    imported are imported so that they are seeded too. After ``os.fork`` the child's
    generators are reseeded from ``root / "fork" / n`` (n counts this process's forks), so
    forked workers never share a stream and the run stays reproducible.
    """
    root = as_tree(seed)
    ambient.set_default(root)
    bindings.seed_globals(root, import_missing=True)
    manifest.record("seed_everything", root)
    _fork_state["base"] = root
    _fork_state["count"] = 0
    if not _fork_state["hooked"] and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_parent=_after_fork_parent, after_in_child=_after_fork_child)
        _fork_state["hooked"] = True
    return root


def _after_fork_parent() -> None:
    if _fork_state["base"] is not None:
        _fork_state["count"] += 1


def _after_fork_child() -> None:
    base = _fork_state["base"]
    if base is None:
        return
    node = base / "fork" / _fork_state["count"]
    _fork_state["base"] = node
    _fork_state["count"] = 0
    bind_process(node)


def bind_process(node: SeedTree, globals_from: bool | Iterable[str] = True) -> None:
    """Make ``node`` this process's ambient node (the default, and the running context's
    if something is bound there) and seed global RNGs from it: with True those of every
    library already imported, with a list those of the named libraries (imported if need
    be), with False or an empty list none. Worker initialisers and the fork hook use it."""
    ambient.set_default(node)
    ambient.reset_context(node)
    if globals_from is True:
        bindings.seed_globals(node)
    elif globals_from:
        bindings.seed_globals(node, globals_from)


def fork_base() -> SeedTree | None:
    """The node this process's forked children derive from (None before seed_everything)."""
    return _fork_state["base"]


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
