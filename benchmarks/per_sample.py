"""Per-sample cost of seedtree's loader, where each microsecond goes, side by side with
Grain, WebDataset and torchdata (issue 23).

Every section runs its contenders interleaved, round after round, in this one process
(rotating order; medians; differences and ratios are medians of the per-round
differences and ratios against the plain baseline of the same round), ``num_workers=0``,
batches of 64. Times are CPU seconds of this process (``time.process_time``, every thread
counted: Grain reads with threads) per sample; wall times are in the JSON too.

a. loader, a dataset that draws nothing (``dataset[i] == i``): plain
   ``DataLoader(shuffle=True)`` against seedtree's ``loader`` with the globals bound and
   ambient only: µs added per sample.
b. ``seedtree.rng()`` first use in a sample: the ambient-only loader over a dataset whose
   ``__getitem__`` calls ``seedtree.rng()`` once, against the same loader over one that
   does not.
c. records that draw 8 floats (a float64 array of 8 per record, batches of 64): plain
   DataLoader (``np.random.rand(8)``), seedtree globals bound (the same dataset),
   seedtree ambient only (``seedtree.rng().random(8)``), naive
   ``np.random.default_rng([seed, epoch, i]).random(8)``, torchdata's
   ``StatefulDataLoader`` (``np.random.rand(8)``) and Grain (``rng.random(8)`` in a
   ``random_map``) in several configurations, its best one named.
d. WebDataset tar shards (written here, in a temporary folder): ``loader(ShardedStream(...))``
   reading the tars with WebDataset's own tar reader, against WebDataset's shuffled
   pipeline (``WebDataset(shardshuffle=...).shuffle(buffer).map(work)``): same shards,
   same buffer size, same per-sample work, both through a DataLoader.
e. keyed shuffle, a whole epoch of n = 10^6 positions: seedtree's ``KeyedPermutation`` (and
   the loader's sampler, which also builds the items) against ``torch.randperm``, NumPy's
   ``permutation`` and Grain's ``index_shuffle`` (one Python call per position, as Grain's
   ``shuffle`` calls it; timed on a slice of the epoch). Plus a published fact: the lag-1
   correlation of neighbouring positions of Grain's ``index_shuffle`` at its default 4
   rounds, n = 10^6; and the table path's own passes alone, a reference for its speed.
f. per-stage breakdown of seedtree's loader per sample (globals bound, batches of 64):
   each stage's function timed alone on the same batch shapes, interleaved.

Each target is printed with its floor, computed from this run's own stages (``floors``):
what the streams' definitions cost whatever the code around them.

    python benchmarks/per_sample.py            # ~1.5 min on 2 cores, quiet
    python benchmarks/per_sample.py --quick    # ~20 s: fewer rounds and samples
Writes benchmarks/results/per_sample.json and per_sample.png. Needs the ``bench`` extra
(grain, webdataset, torchdata): a missing one is skipped with its reason in the JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _timing import load_average, paired_diff, paired_ratio, rounds_of
from streaming import Trivial as Nothing  # dataset[i] == i: no draw, no stream
from torch.utils.data import DataLoader, default_collate

import seedtree as st
from seedtree.torch import ShardedStream, loader

RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 64
SEED = 2024


# -- helpers ---------------------------------------------------------------------------------


def internal(dotted: str) -> Any:
    """A seedtree internal the breakdown calls (``module:attr.attr``), or a clear failure
    naming it: main's internals move, and a stage must never silently time something else."""
    module, _, attrs = dotted.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for attr in attrs.split("."):
            obj = getattr(obj, attr)
    except (ImportError, AttributeError) as exc:
        raise SystemExit(
            f"per_sample.py: the seedtree internal {dotted} is gone ({exc}); it moved or was renamed: "
            "update the breakdown (section f) to call its new home"
        ) from None
    return obj


def epoch_of(dl: Any) -> Callable[[], None]:
    def run() -> None:
        for _ in dl:
            pass

    return run


def measure(variants: dict[str, Callable[[], Any]], rounds: int, per: int, base: str | None) -> dict[str, Any]:
    """Interleaved rounds (after one warm-up call each): median µs per unit of CPU and wall
    time, and against ``base`` the median per-round difference (µs) and ratio."""
    for fn in variants.values():
        fn()
    wall, cpu = rounds_of(variants, rounds, per)
    rows: dict[str, Any] = {}
    for name in variants:
        row = {
            "cpu_us": statistics.median(cpu[name]) * 1e6,
            "wall_us": statistics.median(wall[name]) * 1e6,
            "cpu_us_range": [min(cpu[name]) * 1e6, max(cpu[name]) * 1e6],
        }
        if base is not None and name != base:
            row["cpu_added_us"] = paired_diff(cpu, name, base) * 1e6
            row["cpu_ratio"] = paired_ratio(cpu, name, base)
            row["wall_added_us"] = paired_diff(wall, name, base) * 1e6
            row["wall_ratio"] = paired_ratio(wall, name, base)
        rows[name] = row
    return {"rounds": rounds, "per_round_units": per, "baseline": base, "rows": rows}


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("seedtree", "numpy", "torch", "grain", "webdataset", "torchdata"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def optional(name: str) -> tuple[Any, str | None]:
    try:
        return importlib.import_module(name), None
    except ImportError as exc:
        return None, f"{name} not installed ({exc}): pip install -e '.[bench]' -c constraints.txt"


# -- a, b: datasets that draw nothing / ask for their stream -----------------------------------


class AsksStream(Nothing):
    """Calls ``seedtree.rng()`` once (its first use in the sample), draws nothing."""

    def __getitem__(self, i: int) -> int:
        st.rng()
        return i


def section_a(n: int, rounds: int) -> dict[str, Any]:
    tree = st.SeedTree(SEED)
    variants = {
        "plain DataLoader": epoch_of(DataLoader(Nothing(n), batch_size=BATCH, shuffle=True)),
        "seedtree loader, globals bound": epoch_of(loader(Nothing(n), tree, batch_size=BATCH, shuffle=True)),
        "seedtree loader, ambient only": epoch_of(
            loader(Nothing(n), tree, batch_size=BATCH, shuffle=True, bind_globals=False)
        ),
    }
    out = measure(variants, rounds, n, "plain DataLoader")
    out["dataset"] = f"{n} samples, dataset[i] == i (draws nothing), batch {BATCH}, shuffle=True, num_workers=0"
    return out


def section_b(n: int, rounds: int) -> dict[str, Any]:
    tree = st.SeedTree(SEED)
    kw: dict[str, Any] = {"batch_size": BATCH, "shuffle": True, "bind_globals": False}
    variants = {
        "ambient only, sample never asks": epoch_of(loader(Nothing(n), tree, **kw)),
        "ambient only, st.rng() once per sample": epoch_of(loader(AsksStream(n), tree, **kw)),
    }
    out = measure(variants, rounds, n, "ambient only, sample never asks")
    out["dataset"] = f"{n} samples, dataset[i] == i, with or without one seedtree.rng() call; batch {BATCH}"
    out["floors"] = stream_floors(n, rounds)
    return out


def stream_floors(n: int, rounds: int) -> dict[str, Any]:
    """What making a NumPy Generator costs through NumPy's public API, per call: the floor
    under ``seedtree.rng()``'s first use that does not share a generator between samples
    (measured with the cyclic garbage collector off)."""
    bits = np.random.PCG64(0)
    image = bits.state
    seq = np.random.SeedSequence(SEED, spawn_key=(0, 1))
    node = st.SeedTree(SEED) / 0

    words = seq.generate_state(4, np.uint64)

    class Given(np.random.bit_generator.ISeedSequence):  # hands out words computed before
        def generate_state(self, n_words: int, dtype: Any = np.uint32) -> np.ndarray:
            return words

    given = Given()
    batch = node.child_generators(range(BATCH))

    def each(fn: Callable[[int], Any]) -> Callable[[], None]:
        return lambda: [fn(i) for i in range(n)]

    floors = {
        "seedtree (tree / e / i).numpy(), node made here": each(lambda i: (node / i).numpy()),
        "NumPy canonical Generator(PCG64(SeedSequence(e, spawn_key)))": each(
            lambda i: np.random.Generator(np.random.PCG64(seq))
        ),
        "SeedSequence.generate_state(4, uint64) alone": each(lambda i: seq.generate_state(4, np.uint64)),
        "PCG64 bit_generator.state = dict alone": each(lambda i: setattr(bits, "state", image)),
        "Generator(existing bit generator) alone": each(lambda i: np.random.Generator(bits)),
        "NumPy Generator(PCG64(seed with its words ready)): NumPy's floor": each(
            lambda i: np.random.Generator(np.random.PCG64(given))
        ),
        "seedtree child_generators(64 keys).make(j), words derived before": each(lambda i: batch.make(i % BATCH)),
    }
    # Without the cyclic collector: a full collection (torch loaded: tens of milliseconds)
    # lands in whichever row allocates past its threshold, which says nothing of that row.
    gc.disable()
    try:
        return measure(floors, rounds, n, None)["rows"]
    finally:
        gc.enable()


# -- c: records that draw 8 floats ------------------------------------------------------------


class Rand8(Nothing):
    def __getitem__(self, i: int) -> np.ndarray:  # type: ignore[override]
        return np.random.rand(8)


class Rng8(Nothing):
    def __getitem__(self, i: int) -> np.ndarray:  # type: ignore[override]
        return st.rng().random(8)


class Naive8(Nothing):
    """What users write for a per-sample stream: a fresh Generator keyed by (seed, epoch, i)."""

    epoch = 0

    def __getitem__(self, i: int) -> np.ndarray:  # type: ignore[override]
        return np.random.default_rng([SEED, self.epoch, i]).random(8)


def draw8(record: int, rng: np.random.Generator) -> np.ndarray:
    return rng.random(8)


def grain_variants(grain: Any, n: int) -> dict[str, Callable[[], Any]]:
    """Grain's ways of producing shuffled batches of 64 records, each drawing 8 floats
    from the Generator Grain hands its ``random_map``."""
    source = list(range(n))  # an in-memory random-access source
    ds = grain.MapDataset.source(source).shuffle(seed=SEED).random_map(draw8, seed=SEED).batch(BATCH)

    def map_by_index() -> None:
        for j in range(len(ds)):
            ds[j]

    class Draw8(grain.transforms.RandomMap):
        def random_map(self, element: int, rng: np.random.Generator) -> np.ndarray:
            return rng.random(8)

    def data_loader(threads: int, buffer: int) -> Callable[[], None]:
        def run() -> None:
            dl = grain.DataLoader(
                data_source=source,
                sampler=grain.samplers.IndexSampler(n, shuffle=True, num_epochs=1, seed=SEED),
                operations=[Draw8(), grain.transforms.Batch(BATCH)],
                worker_count=0,
                read_options=grain.ReadOptions(num_threads=threads, prefetch_buffer_size=buffer),
            )
            for _ in dl:
                pass

        return run

    def iter_dataset(threads: int, buffer: int) -> Callable[[], None]:
        def run() -> None:
            for _ in ds.to_iter_dataset(grain.ReadOptions(num_threads=threads, prefetch_buffer_size=buffer)):
                pass

        return run

    return {
        "Grain MapDataset.shuffle.random_map.batch, ds[j]": map_by_index,
        "Grain MapDataset...to_iter_dataset(ReadOptions(0 threads))": iter_dataset(0, 0),
        "Grain MapDataset...to_iter_dataset(default ReadOptions: 16 threads, 500)": iter_dataset(16, 500),
        "Grain DataLoader, ReadOptions(0 threads, buffer 0)": data_loader(0, 0),
        "Grain DataLoader, ReadOptions(1 thread, buffer 128)": data_loader(1, 128),
        "Grain DataLoader, default ReadOptions (16 threads, 500)": data_loader(16, 500),
    }


def section_c(n: int, rounds: int, skipped: dict[str, str]) -> dict[str, Any]:
    tree = st.SeedTree(SEED)
    kw: dict[str, Any] = {"batch_size": BATCH, "shuffle": True}
    variants: dict[str, Callable[[], Any]] = {
        "plain DataLoader, np.random.rand(8)": epoch_of(DataLoader(Rand8(n), **kw)),
        "seedtree loader, globals bound, np.random.rand(8)": epoch_of(loader(Rand8(n), tree, **kw)),
        "seedtree loader, ambient only, st.rng().random(8)": epoch_of(loader(Rng8(n), tree, bind_globals=False, **kw)),
        "naive default_rng([seed, epoch, i]).random(8)": epoch_of(DataLoader(Naive8(n), **kw)),
    }
    torchdata, why = optional("torchdata.stateful_dataloader")
    if torchdata is not None:
        variants["torchdata StatefulDataLoader, np.random.rand(8)"] = epoch_of(
            torchdata.StatefulDataLoader(Rand8(n), **kw)
        )
    else:
        skipped["torchdata"] = str(why)
    grain, why = optional("grain")
    grains: list[str] = []
    sweep: dict[str, Any] = {}
    if grain is not None:
        # Grain's configurations differ by up to 10x here: a short sweep of all of them first
        # (fewer samples), then the best one of each API side by side with the others.
        small = max(n // 4, 4 * BATCH)
        found = grain_variants(grain, small)
        sweep = measure(found, 2, small, None)
        sweep["samples"] = small
        cpu = {name: row["cpu_us"] for name, row in sweep["rows"].items()}
        best_map = min((g for g in cpu if "DataLoader" not in g), key=cpu.__getitem__)
        best_loader = min((g for g in cpu if "DataLoader" in g), key=cpu.__getitem__)
        found = grain_variants(grain, n)
        grains = [best_map, best_loader]
        variants.update((g, found[g]) for g in grains)
    else:
        skipped["grain"] = str(why)
    base = "plain DataLoader, np.random.rand(8)"
    out = measure(variants, rounds, n, base)
    rows = out["rows"]
    if grains:
        best = min(grains, key=lambda g: rows[g]["cpu_us"])
        out["grain_best"] = best
        globals_row = "seedtree loader, globals bound, np.random.rand(8)"
        out["grain_best_over_seedtree_globals_cpu"] = rows[best]["cpu_us"] / rows[globals_row]["cpu_us"]
    out["grain_sweep"] = sweep
    out["dataset"] = (
        f"{n} records, each a float64 array of 8 random floats, batches of {BATCH} (torch: default_collate to a "
        "(64, 8) tensor; Grain: its Batch to a (64, 8) array), shuffled, num_workers=0 / worker_count=0"
    )
    return out


# -- d: WebDataset tar shards --------------------------------------------------------------


def write_tars(wds: Any, folder: str, shards: int, per: int) -> list[str]:
    paths = []
    payload = np.arange(64, dtype=np.float32)
    for s in range(shards):
        path = os.path.join(folder, f"shard-{s:03d}.tar")
        with wds.TarWriter(path) as sink:
            for j in range(per):
                sink.write({"__key__": f"s{s:03d}_{j:06d}", "bin": (payload + j).tobytes(), "cls": str(j % 10)})
        paths.append(path)
    return paths


def tar_reader(path: str) -> Iterator[dict[str, Any]]:
    """One tar shard's samples, read by WebDataset's own tar reader."""
    from webdataset.tariterators import tarfile_samples

    return iter(tarfile_samples([{"url": path}]))


def work_global(sample: dict[str, Any]) -> np.ndarray:
    """The per-sample work of both pipelines: decode 64 float32, add 8 random floats' mean."""
    x = np.frombuffer(sample["bin"], dtype=np.float32)
    return x + np.random.rand(8).mean()


def work_ambient(sample: dict[str, Any]) -> np.ndarray:
    x = np.frombuffer(sample["bin"], dtype=np.float32)
    return x + st.rng().random(8).mean()


def section_d(shards: int, per: int, buffer: int, rounds: int, skipped: dict[str, str]) -> dict[str, Any] | None:
    wds, why = optional("webdataset")
    if wds is None:
        skipped["webdataset"] = str(why)
        return None
    tree = st.SeedTree(SEED)
    n = shards * per
    with tempfile.TemporaryDirectory() as folder:
        paths = write_tars(wds, folder, shards, per)
        size = sum(os.path.getsize(p) for p in paths)

        def stream_epoch(work: Callable[[dict[str, Any]], np.ndarray], bind: bool) -> Callable[[], None]:
            stream = ShardedStream(paths, tar_reader, transform=work, shuffle_buffer=buffer)
            return epoch_of(loader(stream, tree, batch_size=BATCH, shuffle=True, bind_globals=bind))

        pipeline = (
            wds.WebDataset(paths, shardshuffle=shards, seed=SEED, empty_check=False).shuffle(buffer).map(work_global)
        )
        variants = {
            "WebDataset(shardshuffle).shuffle(buffer).map(work)": epoch_of(DataLoader(pipeline, batch_size=BATCH)),
            "seedtree loader(ShardedStream), globals bound": stream_epoch(work_global, True),
            "seedtree loader(ShardedStream), ambient only (st.rng())": stream_epoch(work_ambient, False),
        }
        out = measure(variants, rounds, n, "WebDataset(shardshuffle).shuffle(buffer).map(work)")
    out["dataset"] = (
        f"{shards} tar shards x {per} samples ({size / 2**20:.1f} MiB; each sample a 256-byte float32 'bin' and a "
        f"'cls'), shuffle buffer {buffer} (WebDataset: one buffer; seedtree: one per lane), work: decode 64 float32 "
        f"+ mean of 8 random floats; DataLoader batch {BATCH}, num_workers=0"
    )
    return out


# -- e: the epoch's order -----------------------------------------------------------------

TABLE_PASSES = "reference: the table path's own passes alone (split, 4 gathers + xors, join), same chunks"


def section_e(n: int, rounds: int, grain_slice: int, corr_seeds: int, skipped: dict[str, str]) -> dict[str, Any]:
    from seedtree.core.shuffle import KeyedPermutation

    node = st.SeedTree(SEED) / "order" / 0
    perm = KeyedPermutation(node, n)
    chunk = np.arange(1 << 16, dtype=np.int64)

    def keyed() -> None:
        for lo in range(0, n, len(chunk)):
            perm[chunk[: min(len(chunk), n - lo)] + lo]

    # A reference for the keyed shuffle's speed (not a bound: other dtypes or layouts of
    # the same passes may run faster): the library's own table passes on every position
    # (split the halves, four int64 table gathers and xors, join), nothing else: no
    # argument check, no output array, no range test, no cycle-walking.
    passes = internal("seedtree.core.shuffle:KeyedPermutation._looked_up")
    scratch = np.empty((4, len(chunk)), dtype=np.int64)

    def table_passes(stop: int = n) -> np.ndarray:
        for lo in range(0, stop, len(chunk)):
            x = chunk[: min(len(chunk), stop - lo)] + lo
            out = passes(perm, x, scratch, scratch[3, : len(x)])
        return out

    # It must compute the permutation itself: every image already inside [0, n) is final.
    first = table_passes(len(chunk)).copy()
    inside = first < n
    if not np.array_equal(first[inside], np.asarray(perm[chunk])[inside]):
        raise SystemExit("per_sample.py: the table passes no longer match KeyedPermutation: update section e")

    sampler = loader(Nothing(n), st.SeedTree(SEED), batch_size=BATCH, shuffle=True).sampler
    variants: dict[str, Callable[[], Any]] = {
        "torch.randperm": lambda: torch.randperm(n),
        "seedtree KeyedPermutation, whole epoch in chunks of 65 536": keyed,
        TABLE_PASSES: table_passes,
        "seedtree loader's sampler, whole epoch of (epoch, i, 0) items": lambda: sum(1 for _ in sampler),
        "numpy default_rng(0).permutation": lambda: np.random.default_rng(0).permutation(n),
    }
    grain, why = optional("grain.experimental")
    if grain is not None:
        index_shuffle = grain.index_shuffle
        variants[f"Grain index_shuffle(i, n-1, seed, 4) per position (first {grain_slice})"] = lambda: [
            index_shuffle(i, n - 1, SEED, 4) for i in range(grain_slice)
        ]
    else:
        skipped["grain (index_shuffle)"] = str(why)
    for fn in variants.values():
        fn()
    wall, cpu = rounds_of(variants, rounds)
    rows: dict[str, Any] = {}
    for name in variants:
        positions = grain_slice if name.startswith("Grain") else n
        sec = statistics.median(cpu[name])
        rows[name] = {
            "cpu_seconds": sec,
            "wall_seconds": statistics.median(wall[name]),
            "positions": positions,
            "positions_per_s": positions / sec,
        }
    base = rows["torch.randperm"]["positions_per_s"]
    for row in rows.values():
        row["speed_vs_randperm"] = row["positions_per_s"] / base
    out: dict[str, Any] = {"n": n, "rounds": rounds, "rows": rows}
    if grain is not None:
        out["lag1_correlation"] = lag1_table(grain.index_shuffle, perm, n, corr_seeds)
    return out


def lag1(order: np.ndarray) -> float:
    """Pearson correlation of neighbouring positions (order[i], order[i + 1])."""
    x = order.astype(np.float64)
    return float(np.corrcoef(x[:-1], x[1:])[0, 1])


def lag1_table(index_shuffle: Any, perm: Any, n: int, seeds: int) -> dict[str, Any]:
    """The published fact: Grain's index_shuffle at its default 4 rounds (what
    ``MapDataset.shuffle`` uses) gives neighbouring positions a lag-1 correlation of about
    +0.4 at n = 10^6; more rounds, NumPy's permutation and seedtree's keyed shuffle ~0."""
    rows: dict[str, list[float]] = {}
    for rounds_ in (4, 8):
        rows[f"Grain index_shuffle, rounds={rounds_}"] = [
            lag1(np.fromiter((index_shuffle(i, n - 1, seed, rounds_) for i in range(n)), np.int64, n))
            for seed in range(seeds)
        ]
    rows["seedtree KeyedPermutation"] = [lag1(np.asarray(perm[np.arange(n, dtype=np.int64)]))]
    rows["numpy default_rng(seed).permutation"] = [lag1(np.random.default_rng(s).permutation(n)) for s in range(seeds)]
    return {"n": n, "seeds": list(range(seeds)), "rows": rows, "statistic": "np.corrcoef(order[:-1], order[1:])"}


# -- f: per-stage breakdown ---------------------------------------------------------------


WORDS = "node words derivation: epoch_node.states(keys, 4, WORDS_GLOBALS_KEY)"
EXPANSION = "globals state expansion: expand_globals(words, out=rows)"
REFRESH = "per-batch refresh: batch.refresh() (the controllers' per-batch work)"
WRITES = "state writes: each row's seeders (random, numpy's global, torch)"
WRITES_THEN_DRAWS = "a record's first draws: each row's seeders, then np.random.rand(8)"
RUNNING_DRAWS = "np.random.rand(8) from a running state (the plain record's draws)"


def section_f(batches: int, rounds: int) -> dict[str, Any]:
    """Each stage of seedtree's fetch of a batch of 64 (globals bound, num_workers=0),
    timed alone with the library's own functions on the same shapes, interleaved."""
    run_keyed_batch = internal("seedtree.runtime.tasks:run_keyed_batch")
    registry = internal("seedtree.runtime.controllers:REGISTRY")
    isolate = internal("seedtree.runtime.capture:isolate")
    node_batch = internal("seedtree.runtime.state:NodeBatch")
    expand_globals = internal("seedtree.core.layout:expand_globals")
    words_key = internal("seedtree.core.layout:WORDS_GLOBALS_KEY")
    for method in ("plan", "loaded_modules"):
        internal(f"seedtree.runtime.controllers:{type(registry).__name__}.{method}")
    for method in ("batch", "release"):
        internal(f"seedtree.runtime.plan:Plan.{method}")
    for attr in ("seeders", "refresh", "rows"):
        if attr not in internal("seedtree.runtime.plan:Batch").__slots__ and not hasattr(
            internal("seedtree.runtime.plan:Batch"), attr
        ):
            raise SystemExit(f"per_sample.py: seedtree.runtime.plan.Batch has no {attr!r} any more: update section f")

    importhook = internal("seedtree.runtime.importhook:arm").__module__
    importhook = sys.modules[importhook]
    for name in ("retarget", "disarm"):
        internal(f"seedtree.runtime.importhook:{name}")
    n = batches * BATCH
    tree = st.SeedTree(SEED)
    dl = loader(Nothing(n), tree, batch_size=BATCH, shuffle=True)
    bound = dl.dataset  # the per-sample view the loader fetches through (its __class__ reads as yours)
    epoch_node_of = getattr(type(bound), "_seedtree_epoch_node", None)
    if not callable(getattr(type(bound), "__getitems__", None)) or epoch_node_of is None:
        raise SystemExit(
            f"per_sample.py: loader(...).dataset is a {type(bound).__name__} without __getitems__/_seedtree_epoch_node "
            "(seedtree's per-sample fetch view moved): update section f"
        )
    sampler = dl.sampler
    items = [b for b in sampler.batches()]  # this epoch's batches of (epoch, i, 0)
    keys = [[i for _, i, _ in b] for b in items]
    epoch_node = epoch_node_of(bound, 0)
    modules = registry.loaded_modules()
    plan = registry.plan(modules)
    ident = Nothing(n).__getitem__
    plain_sampler = DataLoader(Nothing(n), batch_size=BATCH, shuffle=True).batch_sampler
    ints = [list(range(BATCH)) for _ in range(batches)]
    floats = [[np.random.rand(8) for _ in range(BATCH)] for _ in range(batches)]
    plain_ds = Nothing(n)

    def states() -> None:
        for k in keys:
            epoch_node.states(k, 4, words_key)

    words = [epoch_node.states(k, 4, words_key) for k in keys]
    rows_buf = plan.batch(epoch_node, keys[0])

    def expand() -> None:
        out = rows_buf.rows[:BATCH]
        for w in words:
            expand_globals(w, out=out)

    def refresh() -> None:
        for _ in range(batches):
            rows_buf.refresh()

    def writes() -> None:
        seeders = rows_buf.seeders
        for _ in range(batches):
            for j in range(BATCH):
                for seed in seeders[j]:
                    seed()

    def acquire() -> None:
        for k in keys:
            plan.release(plan.batch(epoch_node, k))

    def isolation() -> None:
        for _ in range(batches):
            with isolate(ambient=False):
                pass

    def unpack() -> None:
        for b in items:
            epochs, indices, occurrences = zip(*b, strict=True)
            epochs.count(epochs[0]) == len(epochs) and not any(occurrences)  # noqa: B015  # the fetch's test
            list(indices)

    def context() -> None:
        for k in keys:
            run_keyed_batch(epoch_node, k, ident, k, ())

    def node_batches() -> None:
        for k in keys:
            node_batch(epoch_node, k)

    def lookup() -> None:
        for _ in range(batches):
            registry.plan(registry.loaded_modules())

    def hook() -> None:
        for _ in range(batches):
            importhook.arm((None, 0))
            for j in range(1, BATCH):
                importhook.retarget((None, j))
            importhook.disarm()

    def writes_then_draws() -> None:
        seeders, rand = rows_buf.seeders, np.random.rand
        for _ in range(batches):
            for j in range(BATCH):
                for seed in seeders[j]:
                    seed()
                rand(8)

    def running_draws() -> None:
        rand = np.random.rand
        for _ in range(batches):
            for _ in range(BATCH):
                rand(8)

    words_per_row = rows_buf.rows.shape[1] // 2  # the expansion's 64-bit outputs per sample
    scratch = np.empty((BATCH, words_per_row), dtype=np.uint64)

    def one_pass() -> None:
        for _ in range(batches):
            np.bitwise_xor(scratch, scratch, out=scratch)

    def seeded() -> None:
        for k in keys:
            run_keyed_batch(epoch_node, k, ident, k, modules)

    stages: dict[str, Callable[[], Any]] = {
        "plain: dataset[i] loop (the floor of any fetch)": lambda: [[plain_ds[i] for i in k] for k in keys],
        "plain: torch RandomSampler + BatchSampler": lambda: sum(1 for _ in plain_sampler),
        "sampler: SeedTreeSampler.batches() (keyed shuffle + items)": lambda: sum(1 for _ in sampler.batches()),
        "index unpacking: zip(*items), the common-case test": unpack,
        "context set: run_keyed_batch without globals (NodeBatch + a ContextVar.set per sample)": context,
        "  of which NodeBatch(tree, keys)": node_batches,
        WORDS: states,
        EXPANSION: expand,
        REFRESH: refresh,
        "plan.batch + release (states + expansion + refresh + buffer reuse)": acquire,
        WRITES: writes,
        WRITES_THEN_DRAWS: writes_then_draws,
        RUNNING_DRAWS: running_draws,
        "isolation: isolate(ambient=False) per batch": isolation,
        "plan lookup per batch: REGISTRY.loaded_modules() + REGISTRY.plan(...)": lookup,
        "import hook: arm + retarget per sample + disarm per batch": hook,
        f"floor: one ufunc pass over a batch's expansion ({BATCH} x {words_per_row} uint64)": one_pass,
        "run_keyed_batch with globals (the whole fetch less isolation and unpacking)": seeded,
        "collation: default_collate(64 ints)": lambda: [default_collate(b) for b in ints],
        "collation: default_collate(64 float64 arrays of 8)": lambda: [default_collate(b) for b in floats],
        "whole fetch: loader.dataset.__getitems__(batch), globals bound": lambda: [
            bound.__getitems__(b) for b in items
        ],
    }
    with isolate():
        out = measure(stages, rounds, n, None)
    plan.release(rows_buf)
    rows = out["rows"]
    parts = [
        "sampler: SeedTreeSampler.batches() (keyed shuffle + items)",
        "index unpacking: zip(*items), the common-case test",
        "context set: run_keyed_batch without globals (NodeBatch + a ContextVar.set per sample)",
        "plan.batch + release (states + expansion + refresh + buffer reuse)",
        WRITES,
        "isolation: isolate(ambient=False) per batch",
        "plan lookup per batch: REGISTRY.loaded_modules() + REGISTRY.plan(...)",
        "import hook: arm + retarget per sample + disarm per batch",
    ]
    out["sum_of_seedtree_stages_us"] = sum(rows[p]["cpu_us"] for p in parts)
    out["sum_note"] = (
        "sampler + unpacking + context set + plan.batch/release + seeders + isolation + plan lookup + import "
        "hook (not collation: a plain "
        "loader pays it too); compare with the loader's added µs of section a plus the plain sampler's cost"
    )
    out["modules_bound"] = list(modules)
    out["dataset"] = f"{batches} batches of {BATCH} consecutive-position items of one shuffled epoch, dataset[i] == i"
    return out


# -- output --------------------------------------------------------------------------------


TARGETS = {
    "loader, globals bound, added µs/sample over plain": ("≤ 4", "a", "seedtree loader, globals bound", "cpu_added_us"),
    "loader, ambient only, sample that never asks for a stream": (
        "≤ 0.4",
        "a",
        "seedtree loader, ambient only",
        "cpu_added_us",
    ),
    "st.rng() first use in a sample (µs)": ("≤ 1.5", "b", "ambient only, st.rng() once per sample", "cpu_added_us"),
}


FLOOR_OF = {
    "loader, globals bound, added µs/sample over plain": "globals_bound_us",
    "st.rng() first use in a sample (µs)": "rng_first_use_us",
}
MAKE_FLOOR = "seedtree child_generators(64 keys).make(j), words derived before"


def floors(result: dict[str, Any]) -> dict[str, float]:
    """What the streams' definitions cost whatever the code around them, from this run's
    own stages (µs per sample, or the ratio they allow): a target beyond its floor cannot
    be met by cutting pure-NumPy code that keeps every stream and a generator's
    ``seed_seq`` (the node's). Plus the keyed shuffle's table passes alone, a reference."""
    f = result["f"]["rows"]
    us = {name: row["cpu_us"] for name, row in f.items()}
    globals_bound = us[WORDS] + us[EXPANSION] + us[REFRESH] + us[WRITES]
    # A record drawing from NumPy's global right after its state is written pays a whole
    # Mersenne Twister twist (624 words) that a running state spreads over many records.
    fresh_draws = max(0.0, us[WRITES_THEN_DRAWS] - us[WRITES] - us[RUNNING_DRAWS])
    out = {
        "globals_bound_us": globals_bound,
        "fresh_state_first_draws_us": fresh_draws,
        # NumPy's own construction from ready words, the node's seed object around it
        # (gen.bit_generator.seed_seq is the node's) and the seed words' derivation.
        "rng_first_use_us": result["b"]["floors"][MAKE_FLOOR]["cpu_us"] + us[WORDS],
    }
    c = result.get("c", {})
    if "grain_best_over_seedtree_globals_cpu" in c:
        plain = c["rows"][c["baseline"]]["cpu_us"]
        grain = c["rows"][c["grain_best"]]["cpu_us"]
        out["grain_ratio_ceiling"] = grain / (plain + globals_bound + fresh_draws)
    d = result.get("d")
    if d:
        webdataset = d["rows"][d["baseline"]]["cpu_us"]
        out["sharded_ratio_floor"] = (webdataset + globals_bound + fresh_draws) / webdataset
    e = result["e"]["rows"]
    out["keyed_shuffle_table_passes_vs_randperm"] = e[TABLE_PASSES]["speed_vs_randperm"]
    return out


def target_table(result: dict[str, Any]) -> list[dict[str, Any]]:
    floor = result["floors"] = floors(result)
    rows: list[dict[str, Any]] = []
    for what, (target, sec, row, key) in TARGETS.items():
        value = result[sec]["rows"][row][key]
        limit = float(target.split()[1])
        rows.append({"what": what, "measured": value, "target": target, "met": value <= limit})
    for row in rows:
        if row["what"] in FLOOR_OF:
            row["floor"] = floor[FLOOR_OF[row["what"]]]
    c = result.get("c", {})
    if "grain_best_over_seedtree_globals_cpu" in c:
        v = c["grain_best_over_seedtree_globals_cpu"]
        rows.append(
            {
                "what": f"8-draw records, globals bound, vs Grain's best ({c['grain_best']}): less CPU",
                "measured": v,
                "target": "≥ 3",
                "met": v >= 3,
                "floor": floor["grain_ratio_ceiling"],
            }
        )
    d = result.get("d")
    if d:
        v = d["rows"]["seedtree loader(ShardedStream), globals bound"]["cpu_ratio"]
        rows.append({"what": "ShardedStream vs WebDataset shuffled pipeline (×)", "measured": v, "target": "≤ 1.05"})
        rows[-1].update(met=v <= 1.05, floor=floor["sharded_ratio_floor"])
    e = result["e"]["rows"]
    v = e["seedtree KeyedPermutation, whole epoch in chunks of 65 536"]["speed_vs_randperm"]
    rows.append({"what": "keyed shuffle, whole epoch n=1e6, speed ÷ torch.randperm", "measured": v, "target": "≥ 1"})
    rows[-1].update(met=v >= 1, reference=floor["keyed_shuffle_table_passes_vs_randperm"])
    for row in rows:
        if "floor" in row:
            bound = float(row["target"].split()[1])
            # The floor is a best case: a lower bound on µs and ×, an upper bound on "less CPU" and speed.
            row["floor_allows_target"] = row["floor"] <= bound if row["target"][0] == "≤" else row["floor"] >= bound
    return rows


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        (k, t) for k, t in (("a", "draws nothing"), ("b", "st.rng() once"), ("c", "8-float records")) if k in result
    ]
    if result.get("d"):
        panels.append(("d", "WebDataset tar shards"))
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.2 + 0.42 * sum(len(result[k]["rows"]) for k, _ in panels)))
    for ax, (key, title) in zip(np.atleast_1d(axes), panels, strict=True):
        rows = result[key]["rows"]
        names = list(rows)
        values = [rows[n]["cpu_us"] for n in names]
        ax.barh(
            range(len(names)), values, color=["tab:gray" if n == result[key]["baseline"] else "tab:blue" for n in names]
        )
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("CPU µs per sample (median of interleaved rounds)")
        ax.set_title(f"{key}. {title}", fontsize=9, loc="left")
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.2f}", va="center", fontsize=7)
    m = result["machine"]
    fig.suptitle(
        f"per-sample cost, num_workers=0, batch {BATCH}; {m['cpu_count']} CPUs, load "
        f"{m['load_average_start'][0]:.1f} → {m['load_average_end'][0]:.1f}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(result: dict[str, Any]) -> None:
    for key in ("a", "b", "c", "d"):
        sec = result.get(key)
        if not sec:
            continue
        print(f"\n{key}. {sec['dataset']} (median of {sec['rounds']} rounds)")
        for name, row in sec["rows"].items():
            extra = (
                f"  +{row['cpu_added_us']:6.2f} µs  {row['cpu_ratio']:5.2f}x"
                if "cpu_added_us" in row
                else "  (baseline)"
            )
            print(f"  {name:72s} {row['cpu_us']:8.2f} µs CPU {row['wall_us']:8.2f} µs wall{extra}")
    print("  floors of a fresh Generator, µs per call:")
    for name, row in result["b"]["floors"].items():
        print(f"    {name:70s} {row['cpu_us']:8.2f} µs CPU")
    sweep = result.get("c", {}).get("grain_sweep")
    if sweep:
        print(f"  Grain sweep first ({sweep['samples']} records, 2 rounds); best: {result['c']['grain_best']}")
        for name, row in sweep["rows"].items():
            print(f"    {name:70s} {row['cpu_us']:8.2f} µs CPU {row['wall_us']:8.2f} µs wall")
    e = result["e"]
    print(f"\ne. epoch order, n = {e['n']} (median of {e['rounds']} rounds)")
    for name, row in e["rows"].items():
        print(f"  {name:72s} {row['positions_per_s'] / 1e6:8.2f} M/s  {row['speed_vs_randperm']:6.3f}x randperm")
    for name, values in e.get("lag1_correlation", {}).get("rows", {}).items():
        print(f"  lag-1 correlation, {name:52s} {', '.join(f'{v:+.4f}' for v in values)}")
    f = result["f"]
    print(f"\nf. per-stage breakdown, globals bound, batch {BATCH} (median of {f['rounds']} rounds), µs per sample")
    for name, row in f["rows"].items():
        print(f"  {name:90s} {row['cpu_us']:7.3f}")
    print("\ntargets")
    for row in result["targets"]:
        floor = (
            f"  floor {row['floor']:.3f}" + ("" if row["floor_allows_target"] else ": beyond the target")
            if "floor" in row
            else f"  table passes alone {row['reference']:.3f}"
            if "reference" in row
            else ""
        )
        print(
            f"  {row['what']:80s} {row['measured']:8.3f}  {row['target']:6s} {'met' if row['met'] else 'MISSED'}{floor}"
        )
    m = result["machine"]
    print(f"\nload average {m['load_average_start']} -> {m['load_average_end']} on {m['cpu_count']} CPUs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and samples (~20 s)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 7, quick 3)")
    parser.add_argument("--samples", type=int, default=None, help="samples per loader epoch (default 12 800)")
    parser.add_argument("--out", type=Path, default=RESULTS / "per_sample.json")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 7)
    n = args.samples or (3_200 if args.quick else 12_800)
    started, load_start = time.perf_counter(), load_average()
    torch.set_num_threads(1)
    skipped: dict[str, str] = {}
    result: dict[str, Any] = {"benchmark": "per_sample", "batch_size": BATCH, "quick": args.quick}
    with contextlib.redirect_stderr(io.StringIO()):  # warnings of the peers (WebDataset's, Grain's logging)
        result["a"] = section_a(n, rounds)
        result["b"] = section_b(n, rounds)
        result["c"] = section_c(n, rounds, skipped)
        result["d"] = section_d(16, n // 16, 1000, rounds, skipped)
        result["e"] = section_e(10**6, rounds, 20_000 if args.quick else 100_000, 1 if args.quick else 3, skipped)
        result["f"] = section_f(n // BATCH, rounds)
    result["targets"] = target_table(result)
    result["skipped"] = skipped
    result["machine"] = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "load_average_start": load_start,
        "load_average_end": load_average(),
        "versions": versions(),
        "torch_threads": torch.get_num_threads(),
        "argv": sys.argv[1:],
    }
    result["seconds"] = time.perf_counter() - started
    report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')} in {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
