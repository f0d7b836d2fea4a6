"""``seedtree.testing.check_loader`` and ``seedtree check-loader``: a truthy report for an
invariant pipeline, the first diverging sample (and library) named for a broken one, and
clear refusals of bad input."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import seedtree as st
from seedtree.testing import check_loader
from seedtree.torch import loader

pytestmark = pytest.mark.usefixtures("clean_seedtree")


class Draws(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 18

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor([float(i), np.random.rand(), torch.rand(1).item(), st.rng().random()])


class WorkerNumpy(Draws):
    """Worker 1 takes one extra numpy draw: only numpy's stream differs."""

    def __getitem__(self, i: int) -> torch.Tensor:
        info = torch.utils.data.get_worker_info()
        if info is not None and info.id == 1:
            np.random.rand()
        return super().__getitem__(i)


def make(**layout):  # noqa: ANN201
    return loader(Draws(), st.SeedTree(5), batch_size=4, shuffle=True, **layout)


def test_an_invariant_pipeline_gives_a_truthy_report_over_layouts_and_resumes() -> None:
    report = check_loader(make, layouts=[{"num_workers": 2}, {"num_workers": 1, "persistent_workers": True}])
    assert report and report.ok and report.divergence is None
    assert len(report.configurations) == 1 + 2 + 3 * 2  # reference, layouts, 3 resume points x 2 epochs
    assert any("resumed after" in c for c in report.configurations)
    assert str(report).startswith("INVARIANT")


def test_a_seedtree_loader_may_be_passed_instead_of_a_factory() -> None:
    report = check_loader(make(), layouts=[{"num_workers": 2}], resume_points=[1, 3])
    assert report.ok, report


def test_a_worker_dependent_draw_is_named_with_its_library() -> None:
    report = check_loader(
        lambda **lay: loader(WorkerNumpy(), st.SeedTree(5), batch_size=4, **lay),
        layouts=[{"num_workers": 2}],
        resume_points=0,
    )
    assert not report
    d = report.divergence
    assert d is not None and d.what == "draws" and d.libraries == ("numpy",)
    assert (d.epoch, d.batch, d.index) == (0, 1, 4)  # worker 1's first batch, first sample (no shuffle)
    assert "numpy differ" in str(report) and "{num_workers=2}" in str(report)


def test_a_lost_resume_is_caught() -> None:
    """A factory whose loader forgets its state on load (a broken resume) diverges."""

    def forgetful(**layout):  # noqa: ANN202
        dl = make(**layout)
        dl.load_state_dict = lambda state: None  # type: ignore[method-assign]
        return dl

    report = check_loader(forgetful, layouts=[], resume_points=[2])
    assert not report and report.divergence is not None
    assert "resumed after 2 batches" in report.divergence.layout


def test_bad_input_is_refused() -> None:
    with pytest.raises(TypeError, match="make_loader"):
        check_loader(42)
    with pytest.raises(ValueError, match="epochs"):
        check_loader(make, epochs=0)
    with pytest.raises(TypeError, match="layout"):
        check_loader(make, layouts=["num_workers=2"])


def test_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "pipeline.py").write_text(
        textwrap.dedent(
            """
            import numpy as np, torch
            import seedtree as st
            from seedtree.torch import loader

            class Bad(torch.utils.data.Dataset):
                def __len__(self):
                    return 12
                def __getitem__(self, i):
                    info = torch.utils.data.get_worker_info()
                    return torch.tensor([i, np.random.rand() + (info.id if info else 0)])

            class Good(torch.utils.data.Dataset):
                def __len__(self):
                    return 12
                def __getitem__(self, i):
                    return torch.tensor([i, np.random.rand(), st.rng().random()])

            def good(**layout):
                return loader(Good(), st.SeedTree(1), batch_size=3, shuffle=True, **layout)

            def bad(**layout):
                return loader(Bad(), st.SeedTree(1), batch_size=3, **layout)
            """
        )
    )
    seedtree = [sys.executable, "-m", "seedtree"]
    common = ["--layout", '{"num_workers": 2}', "--resume-points", "1"]
    ok = subprocess.run(
        [*seedtree, "check-loader", "pipeline:good", *common], cwd=tmp_path, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("INVARIANT")
    bad = subprocess.run(
        [*seedtree, "check-loader", "pipeline:bad", *common], cwd=tmp_path, capture_output=True, text=True
    )
    assert bad.returncode == 1 and bad.stdout.startswith("DIVERGES"), bad.stdout + bad.stderr
    missing = subprocess.run([*seedtree, "check-loader", "pipeline"], cwd=tmp_path, capture_output=True, text=True)
    assert missing.returncode == 2 and "module:function" in missing.stderr


def test_a_collate_that_draws_is_compared_too() -> None:
    """Mixup-style: the samples agree, the collated batches do not."""

    def mixup(samples):  # noqa: ANN001, ANN202
        return torch.stack(samples) * torch.rand(())

    report = check_loader(
        lambda **lay: loader(Draws(), st.SeedTree(5), batch_size=4, collate_fn=mixup, **lay),
        layouts=[{"num_workers": 2}],
        resume_points=0,
    )
    assert not report and report.divergence is not None and report.divergence.index is None


def test_long_tensors_and_mappings_are_compared_by_value() -> None:
    """A UserDict batch (HF's BatchEncoding is one) whose 2001st element depends on the worker."""
    from collections import UserDict

    class Long(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int) -> torch.Tensor:
            x = torch.zeros(2001)
            info = torch.utils.data.get_worker_info()
            x[2000] = 0 if info is None else info.id + 1
            return x

    def collate(samples):  # noqa: ANN001, ANN202
        return UserDict({"x": torch.stack(samples)})

    plain = lambda **lay: torch.utils.data.DataLoader(Long(), batch_size=2, collate_fn=collate, **lay)  # noqa: E731
    report = check_loader(plain, layouts=[{"num_workers": 2}])
    assert not report
    assert report.not_checked == ["resumes (a DataLoader has no state_dict()/load_state_dict())"]


def test_a_batch_that_cannot_be_compared_by_value_is_refused() -> None:
    class Opaque:
        pass

    plain = lambda **lay: torch.utils.data.DataLoader([Opaque()] * 4, batch_size=2, collate_fn=list, **lay)  # noqa: E731
    with pytest.raises(TypeError, match="cannot compare a Opaque by value"):
        check_loader(plain, layouts=[], resume_points=0)


def test_a_stream_loader_may_be_passed_and_a_divergence_after_a_later_resume_is_found() -> None:
    from seedtree.streaming import ShardedStream

    stream = ShardedStream([(0, 5), (10, 7), (20, 3)], _read_pairs, lanes=2)
    dl = loader(stream, st.SeedTree(2), batch_size=2, shuffle=True)
    report = check_loader(dl, layouts=[{"num_workers": 2}], epochs=3, resume_points=1)
    assert report.ok, report
    assert any("of epoch 2" in c for c in report.configurations)  # resumes are tried in every epoch


def _read_pairs(shard: tuple[int, int]):  # noqa: ANN202
    base, n = shard
    for p in range(n):
        yield torch.tensor([float(base + p), np.random.rand()])
