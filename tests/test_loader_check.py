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

            def good(**layout):
                return loader(Bad(), st.SeedTree(1), batch_size=3, **layout) if False else loader(
                    list(range(12)), st.SeedTree(1), batch_size=3, **layout)

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
