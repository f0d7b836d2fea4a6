"""The core value: a node of the seed tree (root entropy plus a path of keys), its key
encoding, its SeedSequence-compatible derivation, its word map and its JSON codec.

Nothing here knows the process it runs in: no global RNG, no environment, no files.
"""

from __future__ import annotations

from .keys import Key
from .tree import SeedTree

__all__ = ["Key", "SeedTree"]
