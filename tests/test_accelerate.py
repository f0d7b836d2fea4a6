"""The per-sample loader after ``accelerator.prepare``: epochs follow accelerate, in-process
loading leaves the training loop's RNG alone, and the ``skip_first_batches`` resume recipe
(as documented in the README) yields the right epoch's remaining batches."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from torch import nn

import seedtree as st
from seedtree.torch import loader as _loader

# These tests exercise the shuffled order (loader() shuffles only when asked, as DataLoader).
loader = functools.partial(_loader, shuffle=True)

pytestmark = pytest.mark.usefixtures("clean_seedtree")  # the runs seed everything: leave nothing behind

TREE = st.SeedTree(31) / "data"


class Noisy(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 20

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor([float(i), float(np.random.rand()), torch.rand(1).item(), st.rng().random()])


def _reference() -> list[torch.Tensor]:
    dl = loader(Noisy(), TREE, batch_size=4)
    return [torch.cat(list(dl)) for _ in range(3)]


def _train(workers: int, epochs: int = 2) -> tuple[list[torch.Tensor], list[float]]:
    st.seed_everything(5)
    accelerator = Accelerator(cpu=True)
    model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model, opt, dl = accelerator.prepare(model, opt, loader(Noisy(), TREE, batch_size=4, num_workers=workers))
    seen, losses = [], []
    for _ in range(epochs):
        batches = []
        for batch in dl:
            loss = model(batch[:, 1:]).pow(2).mean()
            accelerator.backward(loss)
            opt.step()
            opt.zero_grad()
            batches.append(batch)
            losses.append(loss.item())
        seen.append(torch.cat(batches))
    return seen, losses


@pytest.mark.slow
def test_prepared_loader_keeps_epochs_and_leaves_dropout_alone():
    ref = _reference()
    seen0, losses0 = _train(0)
    seen2, losses2 = _train(2)
    assert all(torch.equal(a, b) for a, b in zip(seen0, ref[:2], strict=True))
    assert all(torch.equal(a, b) for a, b in zip(seen2, ref[:2], strict=True))
    assert losses0 == losses2  # dropout draws from the loop's RNG, not the data's


def test_skip_first_batches_resume_recipe():
    ref = _reference()
    accelerator = Accelerator(cpu=True)
    train_dl = accelerator.prepare(loader(Noisy(), TREE, batch_size=4))
    start_epoch, resume_step = 1, 2  # as restored from a checkpoint (accelerator.load_state)
    seen = []
    for epoch in range(start_epoch, 3):
        train_dl.set_epoch(epoch)  # the recipe: tell the loader the epoch
        active = accelerator.skip_first_batches(train_dl, resume_step) if epoch == start_epoch else train_dl
        seen.append(torch.cat(list(active)))
    assert torch.equal(seen[0], ref[1][resume_step * 4 :])  # the rest of epoch 1, not of epoch 0
    assert torch.equal(seen[1], ref[2])
