"""Argument checks shared by the integrations' public entries.

Every public function that takes a tree, a callable, a count or a collection of items
checks it on entry with these, so bad input is refused before anything runs or changes,
with one line that names the function, the argument, what it got and what to pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..core.tree import SeedTree

__all__ = ["check_callable", "check_count", "check_items", "check_positive", "check_ranks", "check_tree"]


def _got(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def check_tree(value: Any, where: str, name: str = "tree") -> SeedTree:
    """``value`` if it is a SeedTree; else TypeError naming ``where`` and ``name``."""
    if not isinstance(value, SeedTree):
        raise TypeError(f"{where}: {name} must be a seedtree.SeedTree, got {_got(value)}; e.g. seedtree.SeedTree(42)")
    return value


def check_callable(value: Any, where: str, name: str = "fn") -> Callable[..., Any]:
    """``value`` if it is callable; else TypeError naming ``where`` and ``name``."""
    if not callable(value):
        raise TypeError(f"{where}: {name} must be a callable (a function), got {_got(value)}")
    fn: Callable[..., Any] = value
    return fn


def check_count(value: Any, where: str, name: str, minimum: int = 0) -> int:
    """``value`` if it is an int (not a bool) of at least ``minimum``; else TypeError or
    ValueError naming ``where`` and ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{where}: {name} must be an int >= {minimum}, got {_got(value)}")
    if value < minimum:
        raise ValueError(f"{where}: {name} must be an int >= {minimum}, got {value}")
    return value


def check_positive(value: Any, name: str) -> int:
    """``value`` as an int if it is a positive int (a NumPy integer too, never a bool);
    else ValueError naming ``name``. The loaders' counts (``batch_size``, ``world_size``)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def check_ranks(rank: Any, world_size: Any) -> tuple[int, int] | None:
    """A loader's ``rank`` and ``world_size``: both given (checked: ``0 <= rank <
    world_size``), or neither (None: the loader reads ``seedtree.ranks.rank_info()`` when
    each epoch starts, so a loader made before ``torch.distributed`` starts still reads
    its rank). One without the other is refused: the missing one would be a guess."""
    if rank is None and world_size is None:
        return None
    if rank is None or world_size is None:
        raise ValueError(
            "give rank together with world_size, or neither (then both are read from "
            "seedtree.ranks.rank_info() when each epoch starts)"
        )
    world = check_positive(world_size, "world_size")
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank < world:
        raise ValueError(f"rank {rank!r} must be an int in [0, world_size={world})")
    return int(rank), world


def check_items(value: Any, where: str) -> list[Any]:
    """``value`` as a list of task inputs; TypeError for a single str/bytes (almost always
    a mistake: it would run one task per character) and for a non-iterable."""
    if isinstance(value, (str, bytes)):
        raise TypeError(
            f"{where}: items must be a collection of task inputs, not a single {type(value).__name__}; "
            f"wrap it in a list: [{value!r}]"
        )
    if not isinstance(value, Iterable):
        raise TypeError(f"{where}: items must be an iterable of task inputs, got {_got(value)}")
    return list(value)
