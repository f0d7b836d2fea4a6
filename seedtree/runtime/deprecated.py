"""The entry points seedtree 0.1 offered as methods of ``SeedTree`` and that now live in
the layer that owns each concept. They stay, as forwards that warn, until seedtree 1.0,
when they go.

The value knows nothing of its consumers (``seedtree.core`` imports nothing above it), so
these are attached to the class here, from the runtime, when ``seedtree`` is imported:

========================================  ==========================================
deprecated                                use instead
========================================  ==========================================
``SeedTree.from_env(default)``            ``seedtree.root_from_env(default)``
``SeedTree.from_manifest(path)``          ``seedtree.Manifest.load(path).root``
``node.manifest(**fields)``               ``seedtree.manifest(node, **fields)``
========================================  ==========================================
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from ..core.tree import SeedTree
from .manifest import Manifest, manifest
from .seeding import root_from_env

__all__ = ["REMOVED_IN"]

REMOVED_IN = "1.0"


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated and goes in seedtree {REMOVED_IN}; use {new}", DeprecationWarning, stacklevel=3)


def _from_env(cls: type[SeedTree], default: int | None = None) -> SeedTree | None:
    """Deprecated: ``seedtree.root_from_env(default)``."""
    _warn("SeedTree.from_env()", "seedtree.root_from_env()")
    return root_from_env(default)


def _from_manifest(cls: type[SeedTree], path: str | os.PathLike[str]) -> SeedTree:
    """Deprecated: ``seedtree.Manifest.load(path).root``."""
    _warn("SeedTree.from_manifest(path)", "seedtree.Manifest.load(path).root")
    return Manifest.load(path).root


def _manifest(self: SeedTree, **fields: Any) -> Manifest:
    """Deprecated: ``seedtree.manifest(node, **fields)``."""
    _warn("SeedTree.manifest()", "seedtree.manifest(node, ...)")
    return manifest(self, **fields)


setattr(SeedTree, "from_env", classmethod(_from_env))  # noqa: B010  (declared for type checkers in core/tree.py)
setattr(SeedTree, "from_manifest", classmethod(_from_manifest))  # noqa: B010
setattr(SeedTree, "manifest", _manifest)  # noqa: B010
