"""examples/ddp_train.py under real torchrun: 1 and 2 gloo processes.

The commands are the ```bash block of docs/integrations/ranks.md's "torch.distributed" section, run verbatim in a
temporary folder; the runs' JSON reports are then checked here, claim by claim.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "ddp_train.py"


def doc_commands() -> list[str]:
    text = (ROOT / "docs" / "integrations" / "ranks.md").read_text()
    section = text[text.index("## torch.distributed") :]
    block = re.search(r"^```bash\n(.*?)^```", section, re.S | re.M).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, object]:
    work = tmp_path_factory.mktemp("ddp")
    (work / "examples").symlink_to(ROOT / "examples")
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""), OMP_NUM_THREADS="1")
    env.pop("SEEDTREE_ENTROPY", None)
    outputs = []
    for command in doc_commands():
        argv = shlex.split(command)
        assert argv[0] in ("torchrun", "python"), command
        proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"`{command}` failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
        outputs.append((command, proc.stdout))
    names = ("one", "two", "two-allreduce")
    load = {name: json.loads((work / "runs" / name / "run.json").read_text()) for name in names}
    return {"outputs": outputs, **load}


def test_doc_commands_run_and_report_every_claim_true(runs) -> None:
    compares = [out for command, out in runs["outputs"] if "--compare" in command]
    assert len(compares) == 2
    for out in compares:
        assert "NO " not in out
    assert "yes  final weights bit-identical  (max |diff| = 0)" in compares[0]
    assert "yes  final weights equal up to float32 rounding" in compares[1]


def test_two_ranks_are_two_processes_with_disjoint_shards(runs) -> None:
    one, two = runs["one"], runs["two"]
    assert one["world_size"] == 1 and two["world_size"] == 2
    per_step: dict[tuple[int, int], dict[int, set[int]]] = {}
    for epoch, step, index, rank, *_ in two["seen"]:
        per_step.setdefault((epoch, step), {}).setdefault(rank, set()).add(index)
    for shards in per_step.values():
        assert sorted(shards) == [0, 1]
        assert len(shards[0]) == len(shards[1]) == 8  # global batch 16 split in two
        assert not shards[0] & shards[1]
    # the union of the two ranks' shards is the single-process batch, step by step
    single = {}
    for epoch, step, index, *_ in one["seen"]:
        single.setdefault((epoch, step), set()).add(index)
    assert {key: shards[0] | shards[1] for key, shards in per_step.items()} == single
    # every sample once per epoch, and the epochs are shuffled differently
    orders = [[i for e, _, i, *_ in sorted(one["seen"]) if e == epoch] for epoch in range(3)]
    assert all(sorted(order) == list(range(64)) for order in orders)
    steps = [[sorted(single[(epoch, s)]) for s in range(4)] for epoch in range(3)]
    assert steps[0] != steps[1] != steps[2]


def test_init_data_and_dropout_are_bit_identical_and_distinct(runs) -> None:
    one, two, allreduce = runs["one"], runs["two"], runs["two-allreduce"]
    assert len(set(one["init"] + two["init"] + allreduce["init"])) == 1
    pooled = [sorted((e, s, i, x, m) for e, s, i, _, x, m in run["seen"]) for run in (one, two, allreduce)]
    assert pooled[0] == pooled[1] == pooled[2]
    augment = [x for *_, x, _ in one["seen"]]
    masks = [m for *_, m in one["seen"]]
    assert len(set(augment)) == len(augment) == 192
    assert len(set(masks)) == len(masks) == 192


def test_final_weights(runs) -> None:
    one, two, allreduce = runs["one"], runs["two"], runs["two-allreduce"]
    assert one["weights"] == two["weights"]  # exact reduction: bit for bit
    assert len(set(two["weights_digest"])) == 1  # every rank ends with the same weights
    diff = max(abs(a - b) for a, b in zip(one["weights"], allreduce["weights"], strict=True))
    assert 0 < diff < 1e-4 or one["weights"] == allreduce["weights"]
    assert one["weights"] != one["weights"][:1] * len(one["weights"])  # it trained something


def _example_module():
    spec = importlib.util.spec_from_file_location("ddp_train_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_catches_a_difference(runs) -> None:
    example = _example_module()
    one, two = runs["one"], json.loads(json.dumps(runs["two"]))
    assert all(holds for _, holds, _ in example.compare(one, two))
    two["seen"][5][4] = "0" * 16  # one augmented sample differs
    two["weights"][0] += 1e-7
    failed = {claim for claim, holds, _ in example.compare(one, two) if not holds}
    assert failed == {"pooled samples, augmentations and dropout masks equal", "final weights bit-identical"}


def test_uneven_global_batch_is_refused() -> None:
    example = _example_module()
    with pytest.raises(SystemExit, match="must be a multiple of the 1 ranks and divide --samples 64"):
        example.main(["--batch-size", "10"])
