"""Epoch order and custom samplers: seedtree's keyed O(1)-memory shuffle against
``torch.randperm`` and ``numpy.permutation``, and the per-sample loader with a
``WeightedRandomSampler`` against a plain DataLoader with the same sampler.

    .venv/bin/python benchmarks/loader_order.py        # ~1 min; writes results/loader_order.json
"""

from __future__ import annotations

import json
import os
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

import seedtree as st
from seedtree.core.shuffle import KeyedPermutation
from seedtree.torch import loader

OUT = Path(__file__).parent / "results" / "loader_order.json"


def best(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def peak_mib(fn) -> float:
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


class Light(Dataset):
    def __len__(self) -> int:
        return 20_000

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.random.rand(8))


def main() -> None:
    load = os.getloadavg()
    rows: dict[str, dict[str, float]] = {}
    node = st.SeedTree(1) / "order" / 0
    n = 10**6
    chunk = np.arange(1 << 16, dtype=np.int64)
    perm = KeyedPermutation(node, n)
    rows["seedtree keyed shuffle, n=1e6 (whole epoch, in chunks)"] = {
        "seconds": best(lambda: [perm[chunk[: min(len(chunk), n - lo)] + lo] for lo in range(0, n, len(chunk))]),
        "peak_MiB": peak_mib(lambda: [perm[chunk[: min(len(chunk), n - lo)] + lo] for lo in range(0, n, len(chunk))]),
    }
    rows["torch.randperm, n=1e6"] = {"seconds": best(lambda: torch.randperm(n)), "peak_MiB": 8.0}  # int64 tensor
    rows["numpy permutation, n=1e6"] = {
        "seconds": best(lambda: np.random.default_rng(0).permutation(n)),
        "peak_MiB": peak_mib(lambda: np.random.default_rng(0).permutation(n)),
    }
    big = KeyedPermutation(node, 10**9)
    million = np.arange(10**6, dtype=np.int64) * 997
    rows["seedtree keyed shuffle, n=1e9: 1e6 positions of one rank"] = {
        "seconds": best(lambda: big[million]),
        "peak_MiB": peak_mib(lambda: big[million]),
    }
    rows["numpy permutation, n=1e9 (not run: 8 GB)"] = {"seconds": float("nan"), "peak_MiB": 8 * 10**9 / 2**20}
    for name, row in rows.items():
        if name.startswith("seedtree keyed") and "1e9" in name:
            row["positions_per_s"] = 10**6 / row["seconds"]
        elif name.startswith("seedtree keyed"):
            row["positions_per_s"] = n / row["seconds"]

    weights = torch.ones(20_000)
    weights[:100] = 50.0

    def plain() -> None:
        for _ in DataLoader(Light(), batch_size=64, sampler=WeightedRandomSampler(weights, 20_000)):
            pass

    def seeded(bind: bool) -> None:
        for _ in loader(
            Light(), st.SeedTree(3), batch_size=64, bind_globals=bind, sampler=WeightedRandomSampler(weights, 20_000)
        ):
            pass

    base = best(plain, 3)
    loaders = {
        "plain DataLoader + WeightedRandomSampler": base,
        "seedtree loader + WeightedRandomSampler, ambient only": best(lambda: seeded(False), 3),
        "seedtree loader + WeightedRandomSampler, globals bound": best(lambda: seeded(True), 3),
    }
    print(f"load average {load[0]:.2f}")
    print("| epoch order | seconds | peak MiB | positions/s |\n| --- | ---: | ---: | ---: |")
    for name, row in rows.items():
        rate = row.get("positions_per_s", float("nan")) / 1e6
        print(f"| {name} | {row['seconds']:.4f} | {row['peak_MiB']:.1f} | {rate:.1f} M |")
    print("| loader, 20 000 samples, batch 64, num_workers=0 | seconds | ratio |\n| --- | ---: | ---: |")
    for name, t in loaders.items():
        print(f"| {name} | {t:.3f} | {t / base:.2f}x |")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({"load_average": load, "order": rows, "loaders": loaders}, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
