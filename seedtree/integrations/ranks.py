"""Rank and device awareness: who am I in a distributed job, and per-device streams.

Public name: ``seedtree.ranks`` (formerly ``seedtree.distributed``)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, NamedTuple

from ..core.optional import require
from ..core.tree import SeedTree
from ._checks import check_tree

if TYPE_CHECKING:
    import torch


__all__ = ["RankInfo", "cuda_generators", "current_ranks", "rank_info", "rank_tree"]


class RankInfo(NamedTuple):
    """Who this process is in a distributed job."""

    rank: int
    local_rank: int
    world_size: int


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an int; fix or unset it") from None
    if number < 0:
        raise ValueError(f"environment variable {name}={number} is negative; fix or unset it")
    return number


def rank_info() -> RankInfo:
    """Rank, local rank and world size: from ``torch.distributed`` when it is initialised,
    else from the ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` variables (torchrun, SLURM
    wrappers and accelerate set them), else a single process ``(0, 0, 1)``."""
    dist = getattr(sys.modules.get("torch"), "distributed", None)
    if dist is not None and dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        return RankInfo(rank, _env_int("LOCAL_RANK", rank), world)
    world = _env_int("WORLD_SIZE", 1)
    if world > 1 and not os.environ.get("RANK", "").strip():
        raise ValueError(
            f"WORLD_SIZE={world} but RANK is not set, so this process cannot know its rank (LOCAL_RANK is the "
            "rank on this machine only). Read the rank after torch.distributed is initialised (seedtree's loader "
            "does so when an epoch starts), or set RANK"
        )
    rank = _env_int("RANK", 0)
    if rank >= world:
        raise ValueError(f"RANK={rank} is not below WORLD_SIZE={world}; fix the launcher's environment")
    return RankInfo(rank, _env_int("LOCAL_RANK", rank), world)


def current_ranks(given: tuple[int, int] | None) -> tuple[int, int]:
    """``(rank, world_size)`` for a loader now: as given (``_checks.check_ranks``), else
    read from ``rank_info()``. Both loaders call it when an epoch starts."""
    if given is not None:
        return given
    info = rank_info()
    return info.rank, info.world_size


def rank_tree(tree: SeedTree, rank: int | None = None) -> SeedTree:
    """This rank's own node, ``tree / "rank" / rank`` (for streams that must differ per
    rank, such as dropout). Streams that must agree on every rank, such as model init, use
    a node without the rank."""
    check_tree(tree, "rank_tree()")
    return tree / "rank" / (rank_info().rank if rank is None else rank)


def cuda_generators(tree: SeedTree) -> list[torch.Generator]:
    """One generator per visible CUDA device, device d from ``tree / "device" / d``."""
    check_tree(tree, "cuda_generators()")
    torch = require("torch", "seedtree.distributed.cuda_generators")
    return [(tree / "device" / d).torch(f"cuda:{d}") for d in range(torch.cuda.device_count())]
