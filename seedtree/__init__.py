"""seedtree: parallel random streams named by their path.

One root entropy plus a path of keys names every stream; the stream for a path is a pure
function of the two, so results do not depend on who computes them (thread, process,
worker, rank, device) or on how many of them there are. See README.md and the docs/ site.

Layers (each imports only those listed after it): ``cli`` → integrations (``seedtree.torch``,
``seedtree.joblib``, ``seedtree.pool``, ``seedtree.threads``, ``seedtree.dask``,
``seedtree.ranks``, ``seedtree.ray``, ``seedtree.audit``; in ``seedtree/integrations/``) → ``runtime`` →
``core``. ``stats`` builds on ``core`` alone.
"""

from __future__ import annotations

from .cli import handover as _handover  # noqa: E402, F401  (arms `seedtree run --record`'s write-back)
from .core.tree import SeedTree  # noqa: E402
from .core.version import VERSION as __version__  # noqa: E402, F401
from .runtime import deprecated as _deprecated  # noqa: E402, F401  (SeedTree.from_env & co. until 1.0)
from .runtime.ambient import bound, current, rng  # noqa: E402
from .runtime.capture import capture, isolate, restore  # noqa: E402
from .runtime.controllers import LibController, register  # noqa: E402
from .runtime.manifest import Manifest, ManifestError, manifest, record  # noqa: E402
from .runtime.seeding import deterministic, root_from_env, seed_everything, seed_globals  # noqa: E402

Binding = LibController
"""The former name of ``LibController`` (kept: code written for seedtree 0.1 subclasses it)."""

__all__ = [
    "Binding",
    "LibController",
    "Manifest",
    "ManifestError",
    "SeedTree",
    "bound",
    "capture",
    "current",
    "deterministic",
    "isolate",
    "manifest",
    "record",
    "register",
    "restore",
    "rng",
    "root_from_env",
    "seed_everything",
    "seed_globals",
]
