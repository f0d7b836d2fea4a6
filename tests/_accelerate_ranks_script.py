"""One rank of tests/test_accelerate_ranks.py, launched by ``torchrun --nproc_per_node N``:
``python _accelerate_ranks_script.py SCENARIO OUT``. Every rank writes what it trained to
``OUT/SCENARIO.rank{r}.json``; the test compares that with the single-process epoch.

Scenarios: ``run`` (accelerate ``prepare`` over two epochs for num_workers 0/2 and
even_batches True/False; a mid-epoch ``save_state`` of the registered seedtree loader;
``skip_first_batches``; with ``--trainer``, a transformers ``Trainer`` that checkpoints
mid-epoch 1) and ``resume`` (a fresh process group: ``load_state`` and the Trainer's
``resume_from_checkpoint``). Imported by the test for the dataset, the tree and the rows."""

from __future__ import annotations

import ast
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

import seedtree as st
from seedtree.torch import loader

TREE = st.SeedTree(2024) / "data"
N, BATCH, EPOCHS = 37, 4, 3
CKPT_STEP = 2  # accelerate: save_state after this many batches of epoch 1
SKIP = 2  # skip_first_batches(prepared, SKIP)
DOC = Path(__file__).resolve().parents[1] / "docs" / "integrations" / "lightning-accelerate.md"


class Rows(torch.utils.data.Dataset):
    """Each sample is its index and one draw from every RNG augmentation code calls."""

    def __len__(self) -> int:
        return N

    def __getitem__(self, i: int) -> list[Any]:
        return [i, np.random.rand(), torch.rand(1), random.random(), st.rng().random()]


def rows(batch: list[torch.Tensor]) -> list[list[float]]:
    """A collated batch of ``Rows`` as plain rows ``[index, draw, draw, draw, draw]``."""
    index, np_draw, torch_draw, py_draw, st_draw = batch
    return [
        [int(i), float(a), float(b), float(c), float(d)]
        for i, a, b, c, d in zip(index, np_draw, torch_draw.reshape(-1), py_draw, st_draw, strict=True)
    ]


def reference() -> list[list[list[float]]]:
    """The single-process epochs: seedtree's loader iterated directly, no wrapper."""
    dl = loader(Rows(), TREE, batch_size=BATCH, shuffle=True)
    return [[r for batch in dl for r in rows(batch)] for _ in range(EPOCHS)]


def trainer_recipe() -> dict[str, Any]:
    """The docs' Trainer recipe (the block defining ``SeedTreeTrainer``): its imports,
    constants and classes, run as the page shows them, with the test's tree."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _blocks import python_blocks

    code = next(code for _, code in python_blocks(DOC) if "class SeedTreeTrainer" in code)
    keep = (ast.Import, ast.ImportFrom, ast.ClassDef, ast.FunctionDef)
    tree = ast.parse(code)
    tree.body = [
        node
        for node in tree.body
        if isinstance(node, keep)
        or (isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets))
    ]
    namespace: dict[str, Any] = {"__name__": "seedtree_docs_recipe"}
    exec(compile(tree, str(DOC), "exec"), namespace)
    namespace["TREE"] = TREE  # the recipe reads its module's TREE when it builds the loader
    return namespace


# -- accelerate -------------------------------------------------------------------------


def _accelerator(even_batches: bool = True, dispatch_batches: bool | None = None) -> Any:
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration

    config = DataLoaderConfiguration(even_batches=even_batches, dispatch_batches=dispatch_batches)
    return Accelerator(cpu=True, dataloader_config=config)


def _cursor(dl: Any) -> list[Any]:
    """``[epoch, consumed]`` of seedtree's loader, or the first line of its refusal."""
    try:
        state = dl.state_dict()
    except ValueError as refused:
        return [str(refused).splitlines()[0]]
    return [state["epoch"], state["consumed"]]


def prepare_epochs(out: dict[str, Any]) -> None:
    """(a) two epochs of the prepared loader, per num_workers and even_batches, and with
    dispatch_batches; with the seedtree loader's cursor read after every batch."""
    configs = [(workers, even, None) for workers in (0, 2) for even in (True, False)] + [(0, True, True)]
    first = None
    for workers, even, dispatch in configs:
        accelerator = _accelerator(even, dispatch)
        dl = loader(Rows(), TREE, batch_size=BATCH, shuffle=True, num_workers=workers)
        prepared = accelerator.prepare(dl)
        epochs, cursors = [], []
        for _ in range(2):
            seen = []
            for batch in prepared:
                seen.append(rows(batch))
                cursors.append(_cursor(dl))
            epochs.append(seen)
        key = "prepare-dispatch" if dispatch else f"prepare-w{workers}-even{int(even)}"
        out[key] = {"epochs": epochs, "len": len(prepared), "cursors": cursors}
        first = dl if first is None else first
    # seedtree's own loader, iterated directly after prepare() (BatchSamplerShard): it
    # shards by rank again
    first.set_epoch(1)
    out["direct-after-prepare"] = [r for batch in first for r in rows(batch)]


def save_mid_epoch(out: dict[str, Any], folder: Path) -> None:
    """(b) register seedtree's loader, ``save_state`` after CKPT_STEP batches of epoch 1,
    keep training: the uninterrupted epochs 1 and 2 of this rank."""
    for workers in (0, 2):
        accelerator = _accelerator()
        dl = loader(Rows(), TREE, batch_size=BATCH, shuffle=True, num_workers=workers)
        prepared = accelerator.prepare(dl)
        accelerator.register_for_checkpointing(dl)
        epochs, state = [], None
        for epoch in range(3):
            seen = []
            for step, batch in enumerate(prepared):
                seen.append(rows(batch))
                if epoch == 1 and step + 1 == CKPT_STEP:
                    accelerator.save_state(str(folder / f"ckpt-w{workers}"))
                    state = dl.state_dict()
            epochs.append(seen)
        out[f"save-w{workers}"] = {"epochs": epochs, "state": state}


def load_mid_epoch(out: dict[str, Any], folder: Path) -> None:
    """(b) a fresh process group: the same set-up, ``load_state``, ``set_epoch`` the loaded
    epoch on the prepared loader, then the rest of epoch 1 and all of epoch 2."""
    for workers in (0, 2):
        accelerator = _accelerator()
        dl = loader(Rows(), TREE, batch_size=BATCH, shuffle=True, num_workers=workers)
        prepared = accelerator.prepare(dl)
        accelerator.register_for_checkpointing(dl)
        accelerator.load_state(str(folder / f"ckpt-w{workers}"))
        state = dl.state_dict()
        prepared.set_epoch(state["epoch"])
        epochs = [[rows(batch) for batch in prepared] for _ in range(2)]
        out[f"load-w{workers}"] = {"epochs": epochs, "state": state}


def skip_batches(out: dict[str, Any]) -> None:
    """accelerate's own resume recipe: ``set_epoch(1)``, then ``skip_first_batches``."""
    accelerator = _accelerator()
    prepared = accelerator.prepare(loader(Rows(), TREE, batch_size=BATCH, shuffle=True))
    prepared.set_epoch(1)
    out["skip"] = {"rows": [rows(batch) for batch in accelerator.skip_first_batches(prepared, SKIP)]}


# -- transformers Trainer ------------------------------------------------------------------


def _collate(items: list[list[Any]]) -> dict[str, torch.Tensor]:
    batch = torch.utils.data.default_collate(items)
    table = torch.tensor(rows(batch), dtype=torch.float64)
    return {"x": table[:, 1:].float(), "rows": table}


def _trainer(folder: Path, world: int) -> Any:
    from torch import nn
    from transformers import TrainingArguments

    recipe = trainer_recipe()

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 1)

        def forward(self, x: torch.Tensor, rows: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"loss": self.lin(x).pow(2).mean()}

    class Recording(recipe["SeedTreeTrainer"]):  # type: ignore[misc, valid-type]
        """The docs' recipe, recording what each step trains and what it did with the loader."""

        seen: list[Any]
        loaders: list[Any]

        def get_train_dataloader(self) -> Any:
            prepared = super().get_train_dataloader()
            self.loaders.append({"type": type(prepared.batch_sampler).__name__, "len": len(prepared)})
            return prepared

        def compute_loss(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            self.seen.append({"step": self.state.global_step, "rows": inputs["rows"].tolist()})
            return super().compute_loss(model, inputs, *args, **kwargs)

    args = TrainingArguments(
        output_dir=str(folder / f"trainer-{world}"),
        use_cpu=True,
        per_device_train_batch_size=BATCH,
        num_train_epochs=2,
        save_steps=trainer_checkpoint(world),
        gradient_accumulation_steps=2,
        report_to=[],
        seed=11,
        dataloader_num_workers=0,
        logging_strategy="no",
        disable_tqdm=True,
    )
    trainer = Recording(Tiny(), args, train_dataset=Rows(), data_collator=_collate)
    trainer.seen, trainer.loaders = [], []
    return trainer


def trainer_checkpoint(world: int) -> int:
    """A checkpoint step inside epoch 1 (the second epoch): one optimizer step is
    ``2 * world`` batches of 4 and an epoch ``ceil(ceil(37 / 4) / world / 2)`` steps."""
    return {1: 7, 2: 4}[world]


def run_trainer(out: dict[str, Any], folder: Path, world: int, resume: bool) -> None:
    trainer = _trainer(folder, world)
    step = trainer_checkpoint(world)
    checkpoint = str(folder / f"trainer-{world}" / f"checkpoint-{step}") if resume else None
    trainer.train(resume_from_checkpoint=checkpoint)
    recipe = type(trainer).__mro__[1]
    out["trainer-resume" if resume else "trainer"] = {
        "seen": trainer.seen,
        "loaders": trainer.loaders,
        "recipe": f"{recipe.__module__}.{recipe.__qualname__}",
    }


def main() -> None:
    scenario, folder = sys.argv[1], Path(sys.argv[2])
    with_trainer = "--trainer" in sys.argv[3:]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    out: dict[str, Any] = {}
    if scenario == "run":
        prepare_epochs(out)
        if world == 2:
            save_mid_epoch(out, folder)
            skip_batches(out)
        if with_trainer:
            run_trainer(out, folder, world, resume=False)
    elif scenario == "resume":
        if world == 2:
            load_mid_epoch(out, folder)
        if with_trainer:
            run_trainer(out, folder, world, resume=True)
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    from accelerate import PartialState

    rank = PartialState().process_index
    (folder / f"{scenario}.rank{rank}.json").write_text(json.dumps(out))
    PartialState().wait_for_everyone()
    PartialState().destroy_process_group()


if __name__ == "__main__":
    main()
