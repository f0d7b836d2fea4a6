"""Two real torch.distributed (gloo) ranks together see exactly the single-process epoch."""

from __future__ import annotations

import functools

import torch
import torch.multiprocessing as tmp
from _workloads import MixedDataset, gloo_rank_epoch

import seedtree as st
from seedtree.torch import loader as _loader

# These tests exercise the shuffled order (loader() shuffles only when asked, as DataLoader).
loader = functools.partial(_loader, shuffle=True)


def test_two_gloo_ranks_pool_to_the_single_process_epoch(tmp_path):
    entropy = 777
    tmp.spawn(gloo_rank_epoch, args=(2, str(tmp_path / "init"), str(tmp_path), entropy), nprocs=2, join=True)
    shards = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    single = torch.cat(list(loader(MixedDataset(), st.SeedTree(entropy), batch_size=4)))
    ids = [set(s[:, 0].tolist()) for s in shards]
    assert not ids[0] & ids[1], "ranks must not share samples"
    pooled = torch.cat(shards)
    assert torch.equal(pooled[pooled[:, 0].argsort()], single[single[:, 0].argsort()])
