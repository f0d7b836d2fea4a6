"""Manifest.log_to_mlflow against a real local file-store tracking directory (no mocks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import seedtree as st

mlflow = pytest.importorskip("mlflow")


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # MLflow 3 keeps the file store in maintenance mode behind this opt-in.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    try:
        yield mlflow.MlflowClient()
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(previous)


def _manifest(streams: dict[str, st.SeedTree], root: st.SeedTree) -> st.Manifest:
    base = st.manifest(root, experiment="mlflow-test")
    return st.Manifest(root, streams, base.environment, base.created, base.fields)


def test_root_streams_versions_and_artifact_are_logged(tracking, tmp_path: Path) -> None:
    root = st.SeedTree(2**70 + 3)
    manifest = _manifest(
        {"model/init": root / "model" / "init", "data": root / "data" / 7, "other": st.SeedTree(5) / b"\x01"}, root
    )
    with mlflow.start_run() as run:
        assert manifest.log_to_mlflow() == run.info.run_id
    params = tracking.get_run(run.info.run_id).data.params
    assert params["seedtree.root"] == str(2**70 + 3)
    assert params["seedtree.stream.model/init"] == '["model", "init"]'
    assert params["seedtree.stream.data"] == '["data", 7]'
    assert params["seedtree.stream.other"] == '5:[{"bytes": "01"}]'  # another root is named
    assert params["seedtree.numpy"] == manifest.environment["numpy"]
    assert params["seedtree.python"] == manifest.environment["python"]

    artifacts = [a.path for a in tracking.list_artifacts(run.info.run_id)]
    assert artifacts == ["seedtree-manifest.json"]
    local = tracking.download_artifacts(run.info.run_id, "seedtree-manifest.json", str(tmp_path))
    back = st.Manifest.from_dict(json.loads(Path(local).read_text()))
    assert back.root == manifest.root and back.streams == manifest.streams


def test_awkward_names_and_many_streams_are_all_logged(tracking) -> None:
    root = st.SeedTree(9)
    streams = {f"worker {i}": root / "worker" / i for i in range(150)}  # over MLflow's 100-per-batch limit
    streams.update(
        {"a:b#c": root / "x", "a_b_c": root / "y", "a:b?c": root / "z", "../up": root / "u", "trail/": root / "t"}
    )
    manifest = _manifest(streams, root)
    run_id = manifest.log_to_mlflow()  # no active run: one is started
    params = tracking.get_run(run_id).data.params
    assert params["seedtree.stream.worker 149"] == '["worker", 149]'
    assert {params["seedtree.stream.a_b_c"], params["seedtree.stream.a_b_c-2"], params["seedtree.stream.a_b_c-3"]} == {
        '["x"]',
        '["y"]',
        '["z"]',
    }
    assert params["seedtree.stream.__/up"] == '["u"]'
    assert params["seedtree.stream.trail/_"] == '["t"]'
    assert sum(k.startswith("seedtree.stream.") for k in params) == len(streams)


def test_a_value_over_mlflows_limit_is_refused_before_logging(tracking) -> None:
    manifest = _manifest({"deep": st.SeedTree(1).child(*(["segment"] * 700))}, st.SeedTree(1))
    with mlflow.start_run() as run, pytest.raises(ValueError, match="over MLflow's limits"):
        manifest.log_to_mlflow()
    assert tracking.get_run(run.info.run_id).data.params == {}
