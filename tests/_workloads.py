"""Picklable workloads shared by the multi-process tests (spawned children import this)."""

from __future__ import annotations

import random

import numpy as np

import seedtree as st

# torch is imported inside the functions that need it, so spawned workers running the
# torch-free workloads start quickly.


class MixedDataset:
    """Each item mixes every RNG a user's augmentation code might call."""

    def __init__(self, n: int = 37) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        import torch

        values = [float(i), random.random(), float(np.random.rand()), torch.rand(1).item(), st.rng().random()]
        return torch.tensor(values, dtype=torch.float64)


def draw_all(item: int) -> tuple[int, float, float, float, float]:
    """A task that draws from the ambient stream and from every global RNG."""
    import torch

    return (item, st.rng().random(), random.random(), float(np.random.random()), torch.rand(1).item())


def draw_ambient(item: int) -> tuple[int, float]:
    return item, float(st.rng().standard_normal())


def draw_globals_once(_: int) -> tuple[int, float, float, float]:
    import os
    import time

    import torch

    time.sleep(0.05)
    return os.getpid(), random.random(), float(np.random.random()), torch.rand(1).item(), st.current().path


def gloo_rank_epoch(rank: int, world_size: int, init_file: str, out_dir: str, entropy: int) -> None:
    """One torch.distributed rank: loads an epoch with seedtree's loader, saves what it saw."""
    import torch
    import torch.distributed as dist

    from seedtree.torch import loader

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        dl = loader(MixedDataset(), st.SeedTree(entropy), batch_size=4, num_workers=1)  # rank from dist
        torch.save(torch.cat(list(dl)), f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def write_jsonl_shards(folder, lengths: list[int]) -> list[str]:
    """JSONL shards of the given lengths; sample j of shard i is ``{"id": 1000 * i + j}``."""
    import json
    import os

    paths = []
    for i, n in enumerate(lengths):
        path = os.path.join(str(folder), f"shard-{i:03d}.jsonl")
        with open(path, "w") as f:
            f.writelines(json.dumps({"id": 1000 * i + j}) + "\n" for j in range(n))
        paths.append(path)
    return paths


def read_jsonl(path: str, start: int = 0):
    """A seekable reader (the ``start`` protocol): the samples of one JSONL shard from ``start``."""
    import json

    with open(path) as f:
        for j, line in enumerate(f):
            if j >= start:
                yield json.loads(line)


def read_jsonl_no_seek(path: str):
    return read_jsonl(path)


def mixed_transform(sample: dict):
    """Per-sample augmentation drawing from every RNG a user's code might call."""
    import torch

    values = [float(sample["id"]), random.random(), float(np.random.rand()), torch.rand(1).item(), st.rng().random()]
    return torch.tensor(values, dtype=torch.float64)


def gloo_rank_stream(rank: int, world_size: int, init_file: str, out_dir: str, entropy: int, shards: list[str]) -> None:
    """One torch.distributed rank: loads an epoch of a sharded stream, saves what it saw."""
    import torch
    import torch.distributed as dist

    from seedtree.torch import ShardedStream, loader

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        stream = ShardedStream(shards, read_jsonl, transform=mixed_transform, lanes=4)
        dl = loader(stream, st.SeedTree(entropy), batch_size=2, num_workers=2)  # rank from dist
        torch.save(torch.cat(list(dl)), f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()
