"""Streaming loader overhead, side by side with what users do today.

A DataLoader epoch over JSONL shards (default 16 shards, 48 000 samples) with the same light
numpy augmentation as ``workers.py`` (~60 us per sample), batches of 64, 2 persistent workers:

- plain ``DataLoader`` over an ``IterableDataset`` that splits its shards among workers
  (``get_worker_info``), no seeding hook;
- the same with seedtree's per-worker hook ``worker_init_fn(tree)`` (what seedtree offered
  for streams before: its streams depend on the number of workers);
- ``seedtree.torch.loader(ShardedStream(...))`` with the globals bound per sample, ambient
  only, and with a 1 000-sample shuffle buffer.

Also the whole per-sample cost in-process (``num_workers=0``, no augmentation): the map-style
loader over a trivial dataset beside the stream loader over a trivial in-memory reader.

Overhead is CPU time per sample (main process plus workers, from psutil), against the plain
DataLoader: on a shared machine it is far steadier than wall time. Wall times are printed too.

    python benchmarks/streaming.py [--samples 48000] [--repeats 5]
Prints a table and writes benchmarks/results/streaming.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

import seedtree as st
from seedtree.torch import ShardedStream, loader, worker_init_fn

RESULTS = Path(__file__).parent / "results"
SHARDS = 16


def read_jsonl(path: str, start: int = 0):
    with open(path) as f:
        for j, line in enumerate(f):
            if j >= start:
                yield json.loads(line)


def augment(sample: dict) -> float:
    x = np.random.rand(48, 48)
    x = np.flip(x, axis=int(np.random.randint(2))) + np.random.normal(0.0, 0.1, x.shape)
    return float(x.mean()) + sample["id"]


class WorkerSplitJsonl(IterableDataset):
    """What a user writes today: each worker reads every num_workers-th shard."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths

    def __iter__(self):
        info = get_worker_info()
        mine = self.paths if info is None else self.paths[info.id :: info.num_workers]
        for path in mine:
            for sample in read_jsonl(path):
                yield augment(sample)


def count_reader(n: int, start: int = 0):
    yield from range(start, n)


def write_shards(folder: str, samples: int) -> list[str]:
    paths, per = [], samples // SHARDS
    for i in range(SHARDS):
        path = os.path.join(folder, f"shard-{i:02d}.jsonl")
        with open(path, "w") as f:
            f.writelines(json.dumps({"id": i * per + j, "text": "x" * 40}) + "\n" for j in range(per))
        paths.append(path)
    return paths


class Trivial:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def epoch(dl) -> int:
    return sum(1 for _ in dl)


def cpu_seconds() -> float:
    """CPU time of this process and its live children (the persistent workers)."""
    me = psutil.Process()
    return sum(sum(p.cpu_times()[:2]) for p in [me, *me.children(recursive=True)])


def interleaved_best(variants: dict, repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """Best-of-``repeats`` wall time and CPU time (main process plus workers) of an epoch of
    each variant, the variants taking turns within each repeat. On a shared machine the CPU
    time is the robust number: a worker doing long bursts of work gets a smaller share of a
    loaded CPU than one that often sleeps, which moves wall time but not CPU time."""
    wall = dict.fromkeys(variants, float("inf"))
    cpu = dict.fromkeys(variants, float("inf"))
    for _ in range(repeats):
        for name, dl in variants.items():
            c0, t0 = cpu_seconds(), time.perf_counter()
            epoch(dl)
            wall[name] = min(wall[name], time.perf_counter() - t0)
            cpu[name] = min(cpu[name], cpu_seconds() - c0)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=48_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    t0 = time.perf_counter()
    load_start = os.getloadavg()[0]
    tree = st.SeedTree(2024)
    kw = dict(batch_size=64, num_workers=2, persistent_workers=True)
    shuffled = dict(kw, shuffle=True)  # seedtree's loader: the shard order drawn from the tree, as measured before
    with tempfile.TemporaryDirectory() as folder:
        paths = write_shards(folder, args.samples)
        n = SHARDS * (args.samples // SHARDS)
        variants = {
            "plain DataLoader, workers split shards": DataLoader(WorkerSplitJsonl(paths), **kw),
            "same + seedtree worker_init_fn": DataLoader(
                WorkerSplitJsonl(paths), worker_init_fn=worker_init_fn(tree), generator=tree.torch(), **kw
            ),
            "seedtree loader(ShardedStream), globals": loader(
                ShardedStream(paths, read_jsonl, transform=augment), tree, **shuffled
            ),
            "seedtree loader(ShardedStream), ambient only": loader(
                ShardedStream(paths, read_jsonl, transform=augment), tree, bind_globals=False, **shuffled
            ),
            "seedtree loader, globals + shuffle_buffer=1000": loader(
                ShardedStream(paths, read_jsonl, transform=augment, shuffle_buffer=1000), tree, **shuffled
            ),
        }
        for dl in variants.values():
            epoch(dl)  # warm-up: start the persistent workers
        rows, cpu = interleaved_best(variants, args.repeats)
    base = cpu["plain DataLoader, workers split shards"]
    overhead = {k: (v - base) / n * 1e6 for k, v in cpu.items()}

    # In-process, no augmentation: the whole per-sample cost of each loader (binding, the
    # DataLoader's own machinery, restoring the caller's globals after each batch), the
    # map-style loader over a trivial dataset beside the stream over a trivial reader.
    m = 50_000
    per_shard = m // SHARDS
    in_process = {}
    for bind in (True, False):
        kind = "globals" if bind else "ambient only"
        in_process[f"map-style loader, {kind}"] = loader(
            Trivial(m), tree, batch_size=64, shuffle=True, bind_globals=bind
        )
        in_process[f"stream loader, {kind}"] = loader(
            ShardedStream([per_shard] * SHARDS, count_reader), tree, batch_size=64, bind_globals=bind
        )
    for dl in in_process.values():
        epoch(dl)
    alone = {k: v / m * 1e6 for k, v in interleaved_best(in_process, args.repeats)[1].items()}
    result = {
        "samples": n,
        "shards": SHARDS,
        "epoch_seconds": rows,
        "epoch_cpu_seconds": cpu,
        "overhead_cpu_us_per_sample": overhead,
        "in_process_cpu_us_per_sample": alone,
        "load_average": [load_start, os.getloadavg()[0]],
        "seconds": time.perf_counter() - t0,
    }
    print(f"\nDataLoader epoch, {n} samples in {SHARDS} JSONL shards, 2 workers (best of {args.repeats})")
    print(f"{'variant':50s} {'wall s':>8s} {'CPU s':>8s} {'CPU overhead us/sample':>23s}")
    for name, secs in rows.items():
        print(f"{name:50s} {secs:8.3f} {cpu[name]:8.3f} {overhead[name]:23.1f}")
    print("\nCPU per sample, in-process (num_workers=0), no augmentation, batches of 64")
    for name, us in alone.items():
        print(f"{name:50s} {us:8.2f} us")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "streaming.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {RESULTS / 'streaming.json'} in {result['seconds']:.0f} s")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
