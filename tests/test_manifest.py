"""The provenance manifest: JSON round trips with every field, and clear errors (never a
half-built tree) for corrupt, truncated, foreign and newer files."""

from __future__ import annotations

import importlib.metadata
import json
import pickle
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import seedtree as st
from seedtree.core.tree import SeedTree
from seedtree.runtime import manifest
from seedtree.runtime.manifest import Manifest, ManifestError

pytestmark = pytest.mark.usefixtures("clean_seedtree")
REPO = Path(__file__).resolve().parents[1]


def _saved(tmp_path: Path) -> tuple[SeedTree, Path]:
    root = SeedTree(2**130 + 99)  # beyond 2**64 and 2**128: JSON numbers would lose it
    st.record("model/init", root / "model" / "init")
    st.record("data", root / "data" / b"\x00\xff" / 7)
    st.record("other-root", SeedTree(5) / "x")
    path = st.manifest(root, experiment="exp-1", dataset_sha="abc123", nested={"lr": 0.1, "tags": ["a", "b"]}).save(
        tmp_path / "seeds.json"
    )
    return root, path


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    root, path = _saved(tmp_path)
    assert path == tmp_path / "seeds.json" and not (tmp_path / "seeds.json.tmp").exists()
    loaded = Manifest.load(path)
    assert loaded.root == root and Manifest.load(path).root == root
    assert loaded.streams == {
        "model/init": root / "model" / "init",
        "data": root / "data" / b"\x00\xff" / 7,
        "other-root": SeedTree(5) / "x",
    }
    assert loaded.fields == {"experiment": "exp-1", "dataset_sha": "abc123", "nested": {"lr": 0.1, "tags": ["a", "b"]}}
    original = st.manifest(root, experiment="exp-1", dataset_sha="abc123", nested={"lr": 0.1, "tags": ["a", "b"]})
    assert loaded.environment.keys() == original.environment.keys()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", loaded.created)
    # The rebuilt streams draw what the recorded ones drew.
    assert loaded.streams["data"].numpy().random() == (root / "data" / b"\x00\xff" / 7).numpy().random()
    # Saving what was loaded gives the same file content.
    again = loaded.save(tmp_path / "again.json")
    assert json.loads(again.read_text()) == json.loads(path.read_text())


def test_file_is_plain_json_with_entropy_as_text(tmp_path: Path) -> None:
    root, path = _saved(tmp_path)
    data = json.loads(path.read_text())  # JSON, not pickle
    assert data["schema"] == "seedtree.manifest" and data["version"] == manifest.VERSION
    assert data["root"] == {"entropy": str(root.entropy), "entropy_hex": hex(root.entropy)}
    assert data["streams"]["data"] == {"entropy": str(root.entropy), "path": ["data", {"bytes": "00ff"}, 7]}
    env = data["environment"]
    for key in ("python", "platform", "host", "numpy", "torch", "PYTHONHASHSEED", "git"):
        assert key in env
    assert env["numpy"] == np.__version__ and env["torch"] == torch.__version__
    assert env["cuda"] == torch.version.cuda  # None on a CPU build, still recorded
    assert env["deterministic_algorithms"] == torch.are_deterministic_algorithms_enabled()
    assert {"cudnn", "cudnn_deterministic", "cudnn_benchmark"} <= env.keys()


def test_git_commit_of_the_working_directory(tmp_path: Path) -> None:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    env = manifest.environment()
    if head.returncode != 0:
        pytest.skip("the tests are not running inside a git checkout")
    assert env["git"]["commit"] == head.stdout.strip() and isinstance(env["git"]["dirty"], bool)
    assert manifest._git_commit(cwd=str(tmp_path)) is None  # not a repository: nothing recorded


def test_manifest_of_a_node_records_its_root() -> None:
    node = SeedTree(7) / "a" / 1
    assert st.manifest(node).root == SeedTree(7)


def test_user_fields_must_be_json() -> None:
    with pytest.raises(TypeError, match=r"manifest field 'arr' is not a JSON value .*convert it first"):
        st.manifest(SeedTree(1), arr=np.arange(3))


def test_record_keeps_the_newest_node_per_name() -> None:
    st.record("x", SeedTree(1))
    st.record("x", SeedTree(2))
    assert manifest.recorded()["x"] == SeedTree(2)
    manifest.recorded()["y"] = SeedTree(3)  # a copy: the ledger is not exposed
    assert "y" not in manifest.recorded()


def _write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "m.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def _valid(tmp_path: Path) -> dict:
    return json.loads(_saved(tmp_path)[1].read_text())


def test_truncated_file(tmp_path: Path) -> None:
    text = json.dumps(_valid(tmp_path))
    for cut in (1, len(text) // 3, len(text) - 1):
        with pytest.raises(ManifestError, match=r"is not valid JSON \(line \d+, column \d+: .*truncated or corrupt"):
            Manifest.load(_write(tmp_path, text[:cut]))
    with pytest.raises(ManifestError, match="is not valid JSON"):
        Manifest.load(_write(tmp_path, ""))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (pickle.dumps({"schema": "seedtree.manifest"}), r"is not a seedtree manifest: it is not UTF-8 text"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", r"not UTF-8 text"),
        ("[1, 2, 3]", r'is not a seedtree manifest \(no "schema": "seedtree.manifest"\)'),
        ('{"name": "package.json", "version": "1.0"}', r"is not a seedtree manifest"),
        ('"seedtree.manifest"', r"is not a seedtree manifest"),
        ("null", r"is not a seedtree manifest"),
    ],
    ids=["pickle", "png", "json-list", "other-json", "json-string", "null"],
)
def test_foreign_files(tmp_path: Path, content: str | bytes, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        Manifest.load(_write(tmp_path, content))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"cannot read manifest .*nope.json: No such file"):
        Manifest.load(tmp_path / "nope.json")
    with pytest.raises(ManifestError, match=r"cannot read manifest"):
        Manifest.load(tmp_path)


def _set(data: dict, dotted: str, value: object) -> dict:
    target = data
    *parents, last = dotted.split(".")
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("version", 2, r"has version 2, newer than this seedtree reads \(1\); upgrade seedtree"),
        ("version", 0, r"invalid version 0"),
        ("version", "1", r"invalid version '1'"),
        ("version", True, r"invalid version True"),
        ("version", _DELETE, r"invalid version None"),
        ("schema", "seedtree.manifest/2", r"is not a seedtree manifest"),
        ("root", _DELETE, r'has no valid "root" entry'),
        ("root", [1], r'has no valid "root" entry'),
        ("root.entropy", "-5", r"the root entropy must be a non-negative decimal string, got '-5'"),
        ("root.entropy", "12abc", r"got '12abc'"),
        ("root.entropy", 1.5, r"got 1\.5"),
        ("root.entropy", None, r"got None"),
        ("root.entropy", "1" * 3, r"root entropy '111' and entropy_hex '0x4.*' disagree; the file is corrupt"),
        ("streams", [], r"'streams' must be a JSON object"),
        ("streams.data", "x", r"stream 'data' must be an object with 'entropy' and 'path'"),
        ("streams.data.path", "data/7", r"stream 'data' is malformed: a path must be a JSON list, got str"),
        ("streams.data.path", [2**32], r"stream 'data' is malformed: path key #0 \(4294967296\) is outside"),
        ("streams.data.path", [True], r"stream 'data' is malformed: path key #0 is the bool True"),
        ("streams.data.path", [{"hex": "00"}], r"stream 'data' is malformed: path key #0 .* is not a key"),
        ("streams.data.path", [{"bytes": "zz"}], r"stream 'data' is malformed: .*hex"),
        ("streams.data.entropy", "-1", r"stream 'data' is malformed: entropy must be a non-negative"),
        ("fields", [1], r"'environment' and 'fields' must be JSON objects"),
        ("environment", "x", r"'environment' and 'fields' must be JSON objects"),
        ("created", 5, r"'created' must be a timestamp string, got 5"),
    ],
)
def test_invalid_content_names_the_problem(tmp_path: Path, field: str, value: object, message: str) -> None:
    data = _set(_valid(tmp_path), field, value)
    path = _write(tmp_path, json.dumps(data))
    with pytest.raises(ManifestError, match=message):
        Manifest.load(path)


def test_a_plain_json_int_entropy_is_read(tmp_path: Path) -> None:
    data = _set(_set(_valid(tmp_path), "root.entropy", 123), "root.entropy_hex", _DELETE)
    assert Manifest.from_dict(data).root == SeedTree(123)


def test_manifest_error_is_a_value_error() -> None:
    assert issubclass(ManifestError, ValueError)
    with pytest.raises(ManifestError, match=r"^manifest is not a seedtree manifest"):
        Manifest.from_dict({"schema": "other"})


def test_deeply_nested_json_is_a_manifest_error(tmp_path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ManifestError, match="nested too deeply"):
        Manifest.load(path)


class _Dist:
    def __init__(self, name: str | None, version: str) -> None:
        self.metadata = {"Name": name}
        self.version = version


def test_packages_are_sorted_by_name_and_the_first_of_a_name_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    dists = [_Dist("zeta", "0.1"), _Dist("Alpha", "9.0"), _Dist("beta", "10.0"), _Dist("alpha2", "1.0")]
    dists += [_Dist("beta", "0.0.1"), _Dist(None, "3.0"), _Dist("", "4.0")]  # a shadowed copy; broken metadata
    dists += [_Dist("Omega", "1.0"), _Dist("aa", "1.0"), _Dist("a_b", "1.0")]  # case and "_" tell the orders apart
    monkeypatch.setattr(importlib.metadata, "distributions", lambda: iter(dists))
    got = manifest.packages()
    # by name, case-insensitively (not by version, not by case); the first copy of "beta" is the one imported
    assert list(got.items()) == [
        ("a_b", "1.0"),
        ("aa", "1.0"),
        ("Alpha", "9.0"),
        ("alpha2", "1.0"),
        ("beta", "10.0"),
        ("Omega", "1.0"),
        ("zeta", "0.1"),
    ]


def test_version_of_an_absent_distribution_is_none() -> None:
    assert manifest.version("numpy") == np.__version__
    assert manifest.version("no-such-distribution-seedtree-test") is None


def test_optional_fields_default_when_a_manifest_leaves_them_out() -> None:
    data = {"schema": manifest.SCHEMA, "version": 1, "root": {"entropy": "12", "entropy_hex": "0xc"}}
    loaded = Manifest.from_dict(data)
    assert loaded.root == SeedTree(12)
    assert (loaded.streams, loaded.environment, loaded.created, loaded.fields, loaded.datasets) == ({}, {}, "", {}, {})
    written = loaded.to_dict()
    assert "datasets" not in written  # written only when the run hashed data
    assert written["streams"] == {} and written["checks"] == {"streams": {}}
    assert list(written) == ["schema", "version", "root", "streams", "checks", "environment", "created", "fields"]
    assert written["root"] == {"entropy": "12", "entropy_hex": "0xc"}
    assert Manifest.from_dict(written).to_dict() == written


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": True}, r"has an invalid version True \(expected an int >= 1\)$"),
        ({"version": 0}, r"has an invalid version 0 \(expected an int >= 1\)$"),
        ({"version": "1"}, r"has an invalid version '1' \(expected an int >= 1\)$"),
        ({"streams": []}, r"'streams' must be a JSON object mapping names to \{entropy, path\}$"),
        ({"created": None}, r"'created' must be a timestamp string, got None$"),
        ({"fields": []}, r"'environment' and 'fields' must be JSON objects$"),
    ],
)
def test_manifest_fields_are_checked_one_by_one(change: dict, message: str) -> None:
    data = {"schema": manifest.SCHEMA, "version": 1, "root": {"entropy": "12", "entropy_hex": "0xc"}, **change}
    with pytest.raises(ManifestError, match="^src") as caught:
        Manifest.from_dict(data, source="src")
    assert re.search(message, str(caught.value))


def test_a_manifest_refuses_a_root_or_streams_of_the_wrong_type() -> None:
    with pytest.raises(TypeError, match="^Manifest root must be a SeedTree, got int$"):
        Manifest(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="^Manifest streams must be a dict of name -> SeedTree, got list$"):
        Manifest(SeedTree(1), [])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^Manifest streams must map str names to SeedTree nodes; 3 maps to SeedTree$"):
        Manifest(SeedTree(1), {3: SeedTree(1)})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match=r"; 'a' maps to int$"):
        Manifest(SeedTree(1), {"a": 1})  # type: ignore[dict-item]
    parts: list[dict[str, Any]] = [{"environment": []}, {"fields": []}, {"datasets": []}]
    for part in parts:
        with pytest.raises(TypeError, match="^Manifest environment, fields and datasets must be dicts$"):
            Manifest(SeedTree(1), **part)
    with pytest.raises(TypeError, match=r"^Manifest.collect\(\) needs a SeedTree root, got str$"):
        Manifest.collect("root")  # type: ignore[arg-type]


def test_the_deprecated_entry_points_say_exactly_what_replaces_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SEEDTREE_ENTROPY", raising=False)
    with pytest.warns(DeprecationWarning) as caught:
        assert SeedTree.from_env(7) == SeedTree(7)  # the default is passed on
        assert SeedTree.from_env() is None
        made = SeedTree(9).manifest(run="r")
        assert SeedTree.from_manifest(made.save(tmp_path / "m.json")) == SeedTree(9)
    assert [str(w.message) for w in caught] == [
        "SeedTree.from_env() is deprecated and goes in seedtree 1.0; use seedtree.root_from_env()",
        "SeedTree.from_env() is deprecated and goes in seedtree 1.0; use seedtree.root_from_env()",
        "SeedTree.manifest() is deprecated and goes in seedtree 1.0; use seedtree.manifest(node, ...)",
        "SeedTree.from_manifest(path) is deprecated and goes in seedtree 1.0; use seedtree.Manifest.load(path).root",
    ]


_DIGEST = {
    "path": "data/train",
    "kind": "folder",
    "sha256": "ab" * 32,
    "files": 3,
    "links": 0,
    "bytes": 12,
    "rule": "seedtree-dataset-1",
}


def test_a_dataset_entry_round_trips_with_and_without_a_previous_hash() -> None:
    from seedtree.runtime.datasets import DatasetDigest

    digest = DatasetDigest.from_json(_DIGEST)
    assert digest == DatasetDigest("data/train", "folder", "ab" * 32, 3, 0, 12, None)
    assert digest.to_json() == _DIGEST
    changed = DatasetDigest.from_json({**_DIGEST, "kind": "file", "previous_sha256": "cd" * 32})
    assert changed.previous == "cd" * 32 and changed.kind == "file"
    assert changed.to_json() == {**_DIGEST, "kind": "file", "previous_sha256": "cd" * 32}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (None, "must be an object with path, kind, sha256, files, links, bytes; got None"),
        ({"rule": "other-2"}, "was hashed by rule 'other-2', which this seedtree does not know (seedtree-dataset-1)"),
        ({"rule": None}, "was hashed by rule None, which this seedtree does not know (seedtree-dataset-1)"),
        ({"path": 5}, "needs a string 'path', got 5"),
        ({"kind": None}, "needs a string 'kind', got None"),
        ({"sha256": b"ab"}, "needs a string 'sha256', got b'ab'"),
        ({"files": -1}, "needs a count 'files' (int >= 0), got -1"),
        ({"links": True}, "needs a count 'links' (int >= 0), got True"),
        ({"bytes": 1.0}, "needs a count 'bytes' (int >= 0), got 1.0"),
        ({"sha256": "AB" * 32}, f"sha256 {'AB' * 32!r} is not a hex SHA-256"),
        ({"previous_sha256": "ab" * 31}, f"previous_sha256 {'ab' * 31!r} is not a hex SHA-256"),
        ({"kind": "link"}, "kind must be 'file' or 'folder', got 'link'"),
    ],
)
def test_each_damage_to_a_dataset_entry_is_named(change: dict[str, Any] | None, message: str) -> None:
    from seedtree.runtime.datasets import DatasetDigest

    entry = None if change is None else {**_DIGEST, **change}
    with pytest.raises(ValueError) as caught:
        DatasetDigest.from_json(entry)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("first_line", "expected"),
    [
        ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n", "550.54.15"),
        ("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  535.104.05  Release Build\n", "535.104.05"),
        ("NVRM version: NVIDIA UNIX Kernel Module 470 (no dotted version)\n", None),
        ("", None),
    ],
)
def test_the_nvidia_driver_version_is_read_from_the_kernel_module(
    first_line: str, expected: str | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import builtins

    version_file = tmp_path / "version"
    version_file.write_text(first_line + "GCC version: gcc 12.2.0\n" if first_line else "")
    real_open = builtins.open

    def fake_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if file == "/proc/driver/nvidia/version":
            return real_open(version_file, *args, **kwargs)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    assert manifest._nvidia_driver() == expected
    version_file.unlink()  # no driver: no file
    assert manifest._nvidia_driver() is None
