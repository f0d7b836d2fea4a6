"""The per-sample loader inside real Lightning training: epochs follow the Trainer,
resumes (end-of-epoch and mid-epoch) equal the uninterrupted run, limit_train_batches and
reloaded loaders give each epoch its own batches, and 2-process DDP shards the epoch."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn

import seedtree as st
from seedtree.lightning import SeedTreeCallback
from seedtree.torch import loader as _loader

# These tests exercise the shuffled order (loader() shuffles only when asked, as DataLoader).
loader = functools.partial(_loader, shuffle=True)

pytestmark = pytest.mark.usefixtures("clean_seedtree")  # the runs seed everything: leave nothing behind

TREE = st.SeedTree(2026) / "data"
N, BATCH = 24, 4  # 6 batches an epoch


class Noisy(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return N

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor([float(i), float(np.random.rand()), torch.rand(1).item(), st.rng().random()])


class Model(L.LightningModule):
    def __init__(self, workers: int = 0, persistent: bool = False, reload: bool = False) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 1))
        self.workers, self.persistent, self.reload = workers, persistent, reload
        self.seen: list[list[float]] = []
        self.losses: list[float] = []
        self._loader = None

    def train_dataloader(self):  # noqa: ANN201
        if self._loader is None or self.reload:
            self._loader = loader(
                Noisy(), TREE, batch_size=BATCH, num_workers=self.workers, persistent_workers=self.persistent
            )
        return self._loader

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        self.seen.append(batch[:, 0].tolist() + batch[:, 1].tolist())
        loss = self.net(batch[:, 1:]).pow(2).mean()
        self.losses.append(loss.item())
        return loss

    def configure_optimizers(self):  # noqa: ANN201
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _trainer(tmp: Path, epochs: int, **kwargs) -> L.Trainer:
    kwargs.setdefault("callbacks", [SeedTreeCallback(TREE.root)])
    return L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp),
        **kwargs,
    )


def _fit(tmp: Path, epochs: int = 3, ckpt_path: str | None = None, make=Model, **kwargs):
    st.seed_everything(7)  # before the model is built: its initial weights are part of the run
    model = make()
    _trainer(tmp, epochs, **kwargs).fit(model, ckpt_path=ckpt_path)
    return model


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, clean_seedtree_module: None) -> Model:
    return _fit(tmp_path_factory.mktemp("ref"))


def _weights(model: Model) -> list[float]:
    return [float(v) for p in model.parameters() for v in p.detach().flatten()]


@pytest.mark.slow
@pytest.mark.parametrize(("workers", "persistent"), [(2, False), (2, True)])
def test_batches_losses_and_weights_do_not_depend_on_workers(tmp_path, reference, workers, persistent):
    model = _fit(tmp_path, make=lambda: Model(workers, persistent))
    assert model.seen == reference.seen
    assert model.losses == reference.losses  # dropout follows the training loop, not the data
    assert _weights(model) == _weights(reference)


def test_epochs_differ(reference):
    epochs = [sorted(map(tuple, reference.seen[e * 6 : (e + 1) * 6])) for e in range(3)]
    assert epochs[0] != epochs[1] != epochs[2]


def test_resume_from_an_end_of_epoch_checkpoint_equals_the_uninterrupted_run(tmp_path, reference):
    first = _fit(tmp_path, epochs=1)
    ckpt = next((tmp_path / "checkpoints").glob("epoch=0*.ckpt"))
    resumed = _fit(tmp_path, epochs=3, ckpt_path=str(ckpt))
    assert first.seen + resumed.seen == reference.seen
    assert _weights(resumed) == _weights(reference)


def test_resume_from_a_mid_epoch_checkpoint_equals_the_uninterrupted_run(tmp_path, reference):
    every = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "mid", every_n_train_steps=9, save_top_k=-1)
    _fit(tmp_path, epochs=2, callbacks=[SeedTreeCallback(TREE.root), every])
    ckpt = next((tmp_path / "mid").glob("*step=9.ckpt"))  # epoch 1, after its 3rd batch
    resumed = _fit(tmp_path, epochs=3, ckpt_path=str(ckpt))
    assert resumed.seen == reference.seen[9:]
    assert resumed.losses == reference.losses[9:]
    assert _weights(resumed) == _weights(reference)


def test_limit_train_batches_gives_each_epoch_its_own_batches(tmp_path, reference):
    model = _fit(tmp_path, limit_train_batches=3)
    assert model.seen == reference.seen[0:3] + reference.seen[6:9] + reference.seen[12:15]


def test_reloaded_loaders_follow_the_epoch(tmp_path, reference):
    model = _fit(tmp_path, make=lambda: Model(reload=True), reload_dataloaders_every_n_epochs=1)
    assert model.seen == reference.seen


def test_validate_sees_the_loaders_own_batches(tmp_path):
    class Validator(Model):
        def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
            self.seen.append(batch[:, 0].tolist())

    model = Validator()
    _trainer(tmp_path, 1).validate(model, dataloaders=loader(Noisy(), TREE, batch_size=BATCH, shuffle=False))
    assert [v for batch in model.seen for v in batch] == [float(i) for i in range(N)]


def test_predict_keeps_the_per_sample_streams(tmp_path):
    class Predictor(Model):
        def predict_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
            return batch

    dl = loader(Noisy(), TREE, batch_size=BATCH, shuffle=False)
    out = torch.cat(_trainer(tmp_path, 1).predict(Predictor(), dataloaders=dl))
    expected = torch.cat(list(loader(Noisy(), TREE, batch_size=BATCH, shuffle=False)))
    assert torch.equal(out, expected)


DDP_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import lightning as L, numpy as np, torch
    import seedtree as st
    from seedtree.torch import loader
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from model import BATCH, Model, Noisy, TREE

    out = sys.argv[1]
    st.seed_everything(7)
    model = Model()
    # Made before the Trainer: under Lightning's launcher this process sees WORLD_SIZE=2 and
    # no RANK yet; the loader reads its rank when the epoch starts.
    model._loader = loader(Noisy(), TREE, batch_size=BATCH)
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", devices=2, strategy="ddp", logger=False,
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(model)
    with open(f"{out}.{trainer.global_rank}", "w") as fh:
        json.dump(model.seen, fh)
    # Tear the gloo group down before exit: left to interpreter shutdown, its threads can
    # abort the process ("terminate called without an active exception") after a good run.
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
""")


@pytest.mark.slow
def test_ddp_two_processes_shard_the_epoch(tmp_path, reference):
    source = Path(__file__).read_text().split("DDP_SCRIPT")[0]
    (tmp_path / "model.py").write_text(source)
    (tmp_path / "train.py").write_text(DDP_SCRIPT)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent.parent), os.environ.get("PYTHONPATH", "")]),
    }
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    run = subprocess.run(
        [sys.executable, str(tmp_path / "train.py"), str(tmp_path / "seen")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"seen.{r}").read_text()) for r in range(2)]
    for epoch in range(2):
        ref = sorted(v for batch in reference.seen[epoch * 6 : (epoch + 1) * 6] for v in batch[:4])
        mine = [sorted(v for batch in ranks[r][epoch * 3 : (epoch + 1) * 3] for v in batch[:4]) for r in range(2)]
        assert not set(mine[0]) & set(mine[1])  # disjoint shards
        assert sorted(mine[0] + mine[1]) == ref  # whose union is the single-process epoch
