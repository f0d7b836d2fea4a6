"""Data-parallel training with seedtree: the same run on 1 or 2 ranks, without sending seeds.

    torchrun --standalone --nproc_per_node=1 examples/ddp_train.py --out runs/one
    torchrun --standalone --nproc_per_node=2 examples/ddp_train.py --out runs/two
    python examples/ddp_train.py --compare runs/one runs/two

Every stream is named by a path from one root (``--seed``, or ``SEEDTREE_ENTROPY`` set by
``seedtree run``), so each rank derives what it needs by itself (broadcast-free):

- model init from ``root / "model" / "init"``: no rank in the path, so identical on every
  rank (DDP is built with ``init_sync=False``: it does not broadcast rank 0's weights);
- augmentation: ``seedtree.torch.loader`` binds the global RNGs to ``root / "data" / e / i``
  while sample i of epoch e is loaded, so the dataset's ``torch.randn`` / ``np.random``
  calls draw a stream of their own per sample and epoch;
- dropout: the mask of sample i in epoch e comes from ``root / "dropout" / e / i``.

Ranks hold disjoint samples, so their augmentation and dropout streams are distinct, yet
each stream belongs to the sample, not to the rank: with the same global batch the data,
augmentations and dropout masks of 2 ranks pooled equal those of 1 rank, bit for bit. (For
streams that must differ per rank whatever they process, use
``seedtree.ranks.rank_tree(root)``; results then depend on the number of ranks.)

What is and is not bit-identical between 1 and 2 ranks:

- exactly equal: the initial weights, the samples of every step, their augmented tensors
  and dropout masks (pure functions of their paths);
- ``--reduce allreduce`` (plain DDP): the final weights agree to float32 rounding only.
  Each rank sums its half of the batch gradient, then gloo adds the halves; one rank sums
  the whole batch in one matmul. Floating-point addition is not associative, so the last
  bits differ and drift a little over the steps;
- ``--reduce exact``: every rank computes per-sample gradients, all ranks gather them and
  add them up in ascending sample order, the same additions in the same order on any
  number of ranks, so the final weights are bit-identical too (at the cost of sending
  per-sample gradients: fine for a demonstration, not for a large model).
Both modes use one intra-op thread per process, so kernels do not change with the thread
count.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

import seedtree as st
from seedtree.ranks import rank_info
from seedtree.torch import loader


def digest(tensor: torch.Tensor) -> str:
    """Short fingerprint of a tensor's exact bytes."""
    return hashlib.sha256(tensor.detach().contiguous().numpy().tobytes()).hexdigest()[:16]


class NoisyBlobs(torch.utils.data.Dataset):
    """Two Gaussian blobs; each read adds augmentation noise from the *global* RNGs, as
    ordinary augmentation code does (the loader makes those draws per-sample)."""

    def __init__(self, tree: st.SeedTree, n: int, dim: int) -> None:
        gen = tree.numpy()  # the base data comes from a path too, so every rank builds it alike
        self.y = gen.integers(0, 2, n)
        self.x = (gen.standard_normal((n, dim)) + 1.5 * (2 * self.y[:, None] - 1)).astype(np.float32)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        x = torch.from_numpy(self.x[i])
        x = x * np.float32(np.random.uniform(0.8, 1.2)) + 0.3 * torch.randn(x.shape)
        return x, int(self.y[i]), i


class MLP(nn.Module):
    """A small MLP whose dropout takes its mask from outside (one mask per sample)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, 2)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)) * keep)


def dropout_masks(tree: st.SeedTree, epoch: int, indices: torch.Tensor, hidden: int, p: float) -> torch.Tensor:
    """Inverted-dropout masks, sample i's from ``tree / epoch / i``."""
    rows = [(torch.rand(hidden, generator=(tree / epoch / int(i)).torch()) >= p).float() for i in indices]
    return torch.stack(rows) / (1 - p)


def exact_step_gradients(model: nn.Module, x, y, keep, idx, world_size: int) -> None:
    """Set ``p.grad`` to the global batch-mean gradient, summed in ascending sample order
    from per-sample gradients gathered from all ranks: the same float additions in the same
    order for any number of ranks."""
    params = list(model.parameters())
    rows = []
    for k in range(len(idx)):
        loss = F.cross_entropy(model(x[k : k + 1], keep[k : k + 1]), y[k : k + 1])
        rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]))
    grads, order = torch.stack(rows), idx.to(torch.int64)
    if world_size > 1:
        grads_all = [torch.empty_like(grads) for _ in range(world_size)]
        order_all = [torch.empty_like(order) for _ in range(world_size)]
        dist.all_gather(grads_all, grads)
        dist.all_gather(order_all, order)
        grads, order = torch.cat(grads_all), torch.cat(order_all)
    total = torch.zeros_like(grads[0])
    for j in torch.argsort(order).tolist():
        total += grads[j]
    total /= len(order)
    offset = 0
    for p in params:
        p.grad = total[offset : offset + p.numel()].view_as(p).clone()
        offset += p.numel()


def train(args: argparse.Namespace) -> dict:
    rank, _, world_size = rank_info()  # from torchrun's RANK / WORLD_SIZE
    if args.batch_size % world_size or args.samples % args.batch_size:
        raise SystemExit(
            f"--batch-size {args.batch_size} must be a multiple of the {world_size} ranks and divide "
            f"--samples {args.samples}: the global batch is split evenly over the ranks"
        )
    torch.set_num_threads(1)  # same kernels whatever the number of processes
    if world_size > 1 or "TORCHELASTIC_RUN_ID" in os.environ:
        dist.init_process_group("gloo")
    root = st.root_from_env(default=args.seed)

    with st.isolate():  # seed the globals for construction only, then put them back
        st.seed_globals(root / "model" / "init")
        model = MLP(args.dim, args.hidden)
    init_digest = digest(torch.cat([p.reshape(-1) for p in model.parameters()]))
    net = model
    if args.reduce == "allreduce" and world_size > 1:
        net = nn.parallel.DistributedDataParallel(model, init_sync=False)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)

    data = loader(
        NoisyBlobs(root / "points", args.samples, args.dim),
        root / "data",
        batch_size=args.batch_size // world_size,
        shuffle=True,
        rank=rank,
        world_size=world_size,
        num_workers=args.workers,
    )
    seen = []  # (epoch, step, sample, rank, augmented-x digest, dropout-mask digest)
    for epoch in range(args.epochs):
        data.set_epoch(epoch)
        for step, (x, y, idx) in enumerate(data):
            keep = dropout_masks(root / "dropout", epoch, idx, args.hidden, args.dropout)
            seen += [[epoch, step, int(i), rank, digest(x[k]), digest(keep[k])] for k, i in enumerate(idx.tolist())]
            opt.zero_grad()
            if args.reduce == "exact":
                exact_step_gradients(model, x, y, keep, idx, world_size)
            else:
                F.cross_entropy(net(x, keep), y).backward()  # DDP averages the ranks' gradients
            opt.step()

    weights = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    mine = {"rank": rank, "init": init_digest, "weights": digest(weights), "seen": seen}
    everyone = [mine]
    if dist.is_initialized():
        everyone = [None] * world_size
        dist.all_gather_object(everyone, mine)  # results, for the report: no seeds are sent
        # DDP's reducer must be gone before its process group: destroyed the other way
        # round, a rank can abort at exit ("terminate called without an active exception").
        del net
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
    return {
        "world_size": world_size,
        "reduce": args.reduce,
        "entropy": str(root.entropy),
        "config": {k: getattr(args, k) for k in ("samples", "batch_size", "epochs", "dim", "hidden", "dropout", "lr")},
        "init": [r["init"] for r in everyone],
        "weights_digest": [r["weights"] for r in everyone],
        "seen": sorted(item for r in everyone for item in r["seen"]),
        "weights": weights.double().tolist(),  # float32 values, exact in JSON
    }


def compare(a: dict, b: dict) -> list[tuple[str, bool, str]]:
    """What two runs share: (claim, holds, detail) rows."""

    def pooled(run: dict) -> list:  # per step, the samples with their digests, ranks left out
        return sorted([e, s, i, xd, md] for e, s, i, _, xd, md in run["seen"])

    diff = float(np.max(np.abs(np.array(a["weights"]) - np.array(b["weights"]))))
    rows = [
        ("same root and config", a["entropy"] == b["entropy"] and a["config"] == b["config"], ""),
        ("model init identical on every rank of both runs", len(set(a["init"] + b["init"])) == 1, a["init"][0]),
        ("every sample read once per epoch (disjoint rank shards)", all(_disjoint(r) for r in (a, b)), ""),
        ("pooled samples, augmentations and dropout masks equal", pooled(a) == pooled(b), f"{len(a['seen'])} reads"),
        ("every augmentation and dropout stream distinct", all(_distinct(r) for r in (a, b)), ""),
    ]
    if a["reduce"] == b["reduce"] == "exact":
        rows.append(("final weights bit-identical", a["weights"] == b["weights"], f"max |diff| = {diff:.3g}"))
    else:  # a different order of float additions: equal up to rounding, not bit for bit
        rows.append(("final weights equal up to float32 rounding", diff < 1e-4, f"max |diff| = {diff:.3g}"))
    return rows


def _disjoint(run: dict) -> bool:
    keys = [(e, i) for e, _, i, *_ in run["seen"]]
    return len(keys) == len(set(keys))


def _distinct(run: dict) -> bool:
    aug = [xd for *_, xd, _ in run["seen"]]
    masks = [md for *_, md in run["seen"]]
    return len(set(aug)) == len(aug) and len(set(masks)) == len(masks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for run.json (written by rank 0)")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("RUN_A", "RUN_B"), help="compare two --out folders")
    parser.add_argument("--seed", type=int, default=2024, help="root entropy (SEEDTREE_ENTROPY wins if set)")
    parser.add_argument("--reduce", choices=("allreduce", "exact"), default="allreduce")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16, help="global batch, split over the ranks")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dim", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--dropout", type=float, default=0.25)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers per rank")
    args = parser.parse_args(argv)

    if args.compare:
        a, b = (json.loads((folder / "run.json").read_text()) for folder in args.compare)
        print(
            f"{args.compare[0]} ({a['world_size']} rank(s), {a['reduce']}) vs "
            f"{args.compare[1]} ({b['world_size']} rank(s), {b['reduce']})"
        )
        rows = compare(a, b)
        for claim, holds, detail in rows:
            print(f"  {'yes' if holds else 'NO ':3}  {claim}" + (f"  ({detail})" if detail else ""))
        return 0 if all(holds for _, holds, _ in rows) else 1

    result = train(args)
    if rank_info().rank == 0 or result["world_size"] == 1:
        print(
            f"{result['world_size']} rank(s), reduce={args.reduce}: init {result['init'][0]}, "
            f"{len(result['seen'])} sample reads, final weights {result['weights_digest'][0]}"
        )
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "run.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
