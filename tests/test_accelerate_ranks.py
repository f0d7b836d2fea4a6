"""seedtree's loader under accelerate and the transformers Trainer on 1, 2 and 3 real
processes (``torchrun``, gloo on CPU), through the frameworks' own entry points: the ranks
together train exactly the single-process epoch, each sample with the draws it has there,
and a mid-epoch resume (``save_state``/``load_state``, ``skip_first_batches``, the Trainer's
``resume_from_checkpoint``) trains exactly what the uninterrupted run had left.

Each (world size, scenario) is one ``torchrun`` launch of ``_accelerate_ranks_script.py``
that runs every check of that layout and writes, per rank, the rows it trained; the oracle
is seedtree's loader iterated directly in this process."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import _accelerate_ranks_script as script
import pytest

pytest.importorskip("accelerate")
pytest.importorskip("transformers")

Row = tuple[float, ...]
HERE = Path(__file__).resolve().parent
BATCHES = math.ceil(script.N / script.BATCH)  # global batches in an epoch (the last one short)


WORLDS = {1: "run,resume", 2: "run,resume", 3: "run"}  # the launches: a resume is a fresh process group


def _start(world: int, scenario: str, folder: Path) -> subprocess.Popen[str]:
    """One ``torchrun`` of the script on ``world`` processes (the Trainer on 1 and 2)."""
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        TRANSFORMERS_VERBOSITY="error",
        PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}"]
    command += [str(HERE / "_accelerate_ranks_script.py"), scenario, str(folder)]
    command += ["--trainer"] if world in (1, 2) else []
    return subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen[str], world: int, scenario: str, folder: Path) -> list[dict[str, Any]]:
    """Each rank's results of a launch, once it is done."""
    try:
        output, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
    assert proc.returncode == 0, f"torchrun on {world} processes, {scenario}, failed:\n{output[-12000:]}"
    return [json.loads((folder / f"{scenario}.rank{r}.json").read_text()) for r in range(world)]


@pytest.fixture(scope="module")
def launches(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, list[dict[str, Any]]]]:
    """Every launch, the independent ones side by side (the processes mostly wait on
    imports and on each other): the first runs, then the resumes from their checkpoints."""
    folders = {world: tmp_path_factory.mktemp(f"world{world}") for world in WORLDS}
    results: dict[int, dict[str, list[dict[str, Any]]]] = {world: {} for world in WORLDS}
    for scenario in ("run", "resume"):
        started = {w: _start(w, scenario, folders[w]) for w, scenarios in WORLDS.items() if scenario in scenarios}
        for world, proc in started.items():
            results[world][scenario] = _finish(proc, world, scenario, folders[world])
    return results


@pytest.fixture(scope="module")
def reference(clean_seedtree_module: None) -> list[list[Row]]:
    return [[tuple(r) for r in epoch] for epoch in script.reference()]


@pytest.fixture(scope="module")
def world2(launches: dict[int, dict[str, list[dict[str, Any]]]]) -> dict[str, list[dict[str, Any]]]:
    return launches[2]


def _rows(batches: list[list[list[float]]]) -> list[Row]:
    return [tuple(r) for batch in batches for r in batch]


def _check_union(per_rank: list[list[Row]], epoch: list[Row], world: int, even: bool) -> None:
    """The ranks' rows of one epoch against the single-process epoch, as multisets of full
    rows (index and every draw): nothing lost; with ``even_batches`` the extra rows are
    accelerate's padding, exact copies of the epoch's first rows; without, exactly the epoch."""
    union, expected = Counter(r for rows in per_rank for r in rows), Counter(epoch)
    lost = expected - union
    assert not lost, f"{sum(lost.values())} rows of the epoch lost on {world} processes (even_batches={even})"
    extra = union - expected
    padded = math.ceil(BATCHES / world) * world * script.BATCH - script.N if even and world > 1 else 0
    assert extra == Counter(epoch[:padded]), f"extra rows are not the epoch's first {padded} (accelerate's padding)"


@pytest.mark.slow
@pytest.mark.parametrize("world", [1, 2, 3])
def test_prepare_on_ranks_trains_the_single_process_epoch(world, reference, launches):
    ranks = launches[world]["run"]
    for workers in (0, 2):
        for even in (True, False):
            key = f"prepare-w{workers}-even{int(even)}"
            for e in range(2):
                _check_union([_rows(out[key]["epochs"][e]) for out in ranks], reference[e], world, even)
            for rank, out in enumerate(ranks):
                mine = math.ceil(BATCHES / world) if even else len(range(rank, BATCHES, world))
                assert out[key]["len"] == mine == len(out[key]["epochs"][0]), f"{key} rank {rank}"
                # seedtree's cursor after each batch the prepared loader handed out: the
                # whole group's samples so far, the next epoch once this rank's last is out
                cursors = [
                    [e, k * world * script.BATCH] if k < mine and k * world * script.BATCH < script.N else [e + 1, 0]
                    for e in range(2)
                    for k in range(1, mine + 1)
                ]
                assert out[key]["cursors"] == cursors, f"{key} rank {rank}"
    # dispatch_batches=True: process 0 draws W global batches a step and splits them; it
    # pads the last step with the epoch's first rows. Mid-epoch the cursor refuses (it
    # cannot see what the dispatcher read ahead); at the end of the epoch it moves on.
    dispatched = [out["prepare-dispatch"] for out in ranks]
    last = script.N % (world * script.BATCH) or world * script.BATCH
    padded = world * (last // world + 1) - last if last % world else 0
    for e in range(2):
        union, expected = Counter(r for out in dispatched for r in _rows(out["epochs"][e])), Counter(reference[e])
        assert not expected - union and union - expected == Counter(reference[e][:padded])
    steps = math.ceil(BATCHES / world)
    for out in dispatched:
        assert out["len"] == steps == len(out["epochs"][0])
        assert [c for c in out["cursors"] if len(c) == 2] == [[1, 0], [2, 0]]
        assert all(c[0].startswith("this loader's batches are drawn through") for c in out["cursors"] if len(c) == 1)
    if world > 1:  # seedtree's own loader, iterated directly after prepare(), shards by rank again
        shards = [[tuple(r) for r in out["direct-after-prepare"]] for out in ranks]
        assert sorted(r for s in shards for r in s) == sorted(reference[1])


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_save_state_mid_epoch_then_load_state_on_two_ranks(workers, world2):
    key = f"w{workers}"
    for rank, (saved, loaded) in enumerate(zip(world2["run"], world2["resume"], strict=True)):
        saved, loaded = saved[f"save-{key}"], loaded[f"load-{key}"]
        assert saved["state"]["epoch"] == loaded["state"]["epoch"] == 1
        assert saved["state"]["consumed"] == script.CKPT_STEP * 2 * script.BATCH
        uninterrupted = saved["epochs"][1]
        assert uninterrupted[: script.CKPT_STEP] + loaded["epochs"][0] == uninterrupted, f"rank {rank}, epoch 1"
        assert loaded["epochs"][1] == saved["epochs"][2], f"rank {rank}, the epoch after the resumed one"


@pytest.mark.slow
def test_skip_first_batches_on_two_ranks(world2):
    for rank, out in enumerate(world2["run"]):
        assert out["skip"]["rows"] == out["save-w0"]["epochs"][1][script.SKIP :], f"rank {rank}"


@pytest.mark.slow
@pytest.mark.parametrize("world", [1, 2])
def test_trainer_on_ranks_and_its_mid_epoch_resume(world, reference, launches):
    """The docs' ``SeedTreeTrainer`` recipe: ``len`` is the rank's batches, each epoch the
    ranks train the single-process epoch, and ``resume_from_checkpoint`` at a checkpoint in
    the second epoch (the Trainer's ``skip_first_batches``) trains what was left."""
    runs = launches[world]
    per_epoch = math.ceil(BATCHES / world)
    for out in [out["trainer"] for out in runs["run"]] + [out["trainer-resume"] for out in runs["resume"]]:
        assert [dl["len"] for dl in out["loaders"]] == [per_epoch]
        assert out["recipe"] == "seedtree_docs_recipe.SeedTreeTrainer"  # the docs' block, as the page has it
    seen = [[record["rows"] for record in out["trainer"]["seen"]] for out in runs["run"]]
    for e in range(2):
        _check_union([_rows(s[e * per_epoch : (e + 1) * per_epoch]) for s in seen], reference[e], world, True)
    step = script.trainer_checkpoint(world)
    for rank, (run, resumed) in enumerate(zip(runs["run"], runs["resume"], strict=True)):
        before = [r["rows"] for r in run["trainer"]["seen"] if r["step"] < step]
        after = [r["rows"] for r in resumed["trainer-resume"]["seen"]]
        assert per_epoch < len(before) < 2 * per_epoch, "the checkpoint must be inside the second epoch"
        assert before + after == seen[rank], f"rank {rank}: resumed batches differ from the uninterrupted run"


def _layouts(split: bool) -> list[tuple[int, int, int, bool, bool]]:
    """(n, world, batch size, drop_last, even_batches); split batches need a multiple of the world."""
    sizes = {2: (2, 4), 3: (3, 6)} if split else {2: (1, 2, 4), 3: (1, 2, 4)}
    return [
        (n, world, size, drop_last, even)
        for n in (1, 3, 6, 9, 13, 37)
        for world in (2, 3)
        for size in sizes[world]
        for drop_last in (False, True)
        for even in (True, False)
    ]


@pytest.mark.parametrize("split", [False, True])
def test_accelerate_padding_is_the_epochs_own_after_a_resume(split):
    """In process, no launch: ``BatchSamplerShard`` (even_batches, split_batches or not) over
    seedtree's batch sampler hands each rank what it hands out over a plain batch sampler of
    the same epoch order, for every size, batch size and world; and resuming from any round
    (``load_state_dict`` at the global position) gives the rest of it, padding included,
    although accelerate then pads from the first batches of the resumed part."""
    from accelerate.data_loader import BatchSamplerShard
    from torch.utils.data import BatchSampler

    for n, world, size, drop_last, even in _layouts(split):
        dl = script.loader(list(range(n)), script.TREE, batch_size=size, shuffle=True, drop_last=drop_last)
        sampler = dl.seedtree_sampler
        plain = BatchSampler([(0, i, 0) for i in sampler.order(0)], size, drop_last)
        layout = f"n={n} batch={size} world={world} drop_last={drop_last} even={even}"
        for rank in range(world):
            options = {"num_processes": world, "process_index": rank, "split_batches": split, "even_batches": even}
            expected = [list(b) for b in BatchSamplerShard(plain, **options)]
            ours = BatchSamplerShard(dl.batch_sampler, **options)
            assert [list(b) for b in ours] == expected, layout
            assert len(ours) == len(BatchSamplerShard(plain, **options)), layout
            for k in range(1, len(expected)):
                consumed = k * size * (1 if split else world)
                if consumed >= n:
                    break
                state = {**sampler.state_dict(), "epoch": 0, "start": consumed, "consumed": consumed}
                sampler.load_state_dict({**state, "batches_done": 0})
                assert [list(b) for b in ours] == expected[k:], f"{layout} rank={rank}, resumed after {k}"
