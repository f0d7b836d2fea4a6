"""seedtree: parallel random streams named by their path.

One root entropy plus a path of keys names every stream; the stream for a path is a pure
function of the two, so results do not depend on who computes them (thread, process,
worker, rank, device) or on how many of them there are. See README.md.

Integrations live in their own modules and import their library lazily:
``seedtree.torch``, ``seedtree.joblib``, ``seedtree.pool``, ``seedtree.threads``,
``seedtree.distributed``, ``seedtree.dask``.
"""

from __future__ import annotations

from . import handover as _handover  # noqa: F401  (arms `seedtree run --record`'s write-back)
from .ambient import bound, current, rng
from .bindings import Binding, capture, isolate, register, restore, seed_globals
from .manifest import Manifest, ManifestError, record
from .seeding import deterministic, seed_everything
from .tree import SeedTree

__version__ = "0.1.0"

__all__ = [
    "Binding",
    "Manifest",
    "ManifestError",
    "SeedTree",
    "bound",
    "capture",
    "current",
    "deterministic",
    "isolate",
    "record",
    "register",
    "restore",
    "rng",
    "seed_everything",
    "seed_globals",
]
