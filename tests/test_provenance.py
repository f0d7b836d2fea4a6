"""Provenance: dataset checksums and their cache, replay data checks, the full environment,
`seedtree diff` ranking, `seedtree verify --junit`, and the CI recipe in examples/ci."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import seedtree as st
from seedtree.cli import verify
from seedtree.cli.show import diff
from seedtree.runtime import manifest
from seedtree.runtime.datasets import RULE, DatasetError, cache_dir, hash_dataset
from seedtree.runtime.manifest import Manifest, ManifestError
from seedtree.runtime.seeding import ENV_ENTROPY

REPO = Path(__file__).resolve().parents[1]
OLD = time.time() - 3600  # data on disk is normally older than the cache's 2 s racy margin


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test hashes with its own cache folder, never the user's."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("SEEDTREE_CACHE_DIR", str(folder))
    yield folder


def write(path: Path, data: bytes, mtime: float | None = OLD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def make_dataset(folder: Path, files: dict[str, bytes], mtime: float | None = OLD) -> Path:
    for name, data in files.items():
        write(folder / name, data, mtime)
    return folder


def seedtree_cli(*args: str, cwd: Path, **kw: object) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHASHSEED", ENV_ENTROPY)}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "seedtree", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, **kw
    )


def one_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


# -- the hash ---------------------------------------------------------------------------

FILES = {"b.txt": b"beta\n", "a/x.bin": bytes(range(256)) * 3, "a.txt": b"alpha", "\u00e9t\u00e9/z": b""}


def test_folder_hash_follows_the_documented_rule(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", FILES)
    os.symlink("../b.txt", data / "a" / "link")
    digest = hash_dataset(data, name="train")
    # Recomputed here from the rule: names as bytes, sorted by bytes, files by content, links by target text.
    entries = {os.fsencode(n): b"F" + os.fsencode(n) + b"\0" + hashlib.sha256(d).digest() for n, d in FILES.items()}
    entries[b"a/link"] = b"La/link\0../b.txt\0"
    expected = hashlib.sha256(b"".join(entries[k] for k in sorted(entries))).hexdigest()
    assert digest.sha256 == expected
    assert (digest.kind, digest.files, digest.links, digest.bytes) == (
        "folder",
        4,
        1,
        sum(map(len, FILES.values())),
    )
    assert digest.to_json()["rule"] == RULE


def test_same_content_same_hash_whatever_the_order_or_place(tmp_path: Path) -> None:
    one = make_dataset(tmp_path / "one", FILES)
    two = make_dataset(tmp_path / "two", dict(reversed(list(FILES.items()))), mtime=OLD - 100)
    (two / "empty-folder").mkdir()  # folders are not data
    assert hash_dataset(one).sha256 == hash_dataset(two).sha256
    write(two / "b.txt", b"beta!\n")
    assert hash_dataset(one).sha256 != hash_dataset(two).sha256
    os.rename(two / "b.txt", two / "c.txt")  # a renamed file is different data
    write(two / "c.txt", b"beta\n")
    assert hash_dataset(one).sha256 != hash_dataset(two).sha256


def test_a_file_dataset_hashes_like_sha256sum(tmp_path: Path) -> None:
    path = write(tmp_path / "train.csv", b"x,y\n1,2\n")
    digest = hash_dataset(path)
    assert digest.sha256 == hashlib.sha256(b"x,y\n1,2\n").hexdigest()
    assert (digest.kind, digest.files, digest.bytes) == ("file", 1, 8)
    os.symlink(path, tmp_path / "alias")  # a dataset given as a link is followed: you named it
    assert hash_dataset(tmp_path / "alias").sha256 == digest.sha256


def test_links_are_hashed_by_their_text_never_followed(tmp_path: Path) -> None:
    outside = write(tmp_path / "outside.bin", b"one")
    data = make_dataset(tmp_path / "data", {"f": b"1"})
    os.symlink(outside, data / "l")
    before = hash_dataset(data)
    write(outside, b"two")  # the target changed, the link did not
    assert hash_dataset(data).sha256 == before.sha256
    os.unlink(data / "l")
    os.symlink(tmp_path / "elsewhere", data / "l")  # a dangling link is fine: its text is the data
    assert hash_dataset(data).sha256 != before.sha256


# -- the cache --------------------------------------------------------------------------


def test_unchanged_files_are_not_read_again(tmp_path: Path, private_cache: Path) -> None:
    data = make_dataset(tmp_path / "data", {f"s/{i}.bin": bytes([i]) * 1000 for i in range(20)})
    first = hash_dataset(data)
    assert first.read == 20
    assert cache_dir() == private_cache and list(private_cache.glob("datasets/*.json"))
    again = hash_dataset(data)
    assert again.read == 0 and again == first
    # Rewritten in place, same size, mtime put back: ctime moved, so the file is read again.
    path = data / "s" / "3.bin"
    write(path, b"\xff" * 1000)
    changed = hash_dataset(data)
    assert changed.read == 1 and changed.sha256 != first.sha256
    write(path, bytes([3]) * 1000)
    assert hash_dataset(data).sha256 == first.sha256


def test_files_modified_within_the_racy_margin_are_never_trusted(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", {"new.bin": b"a" * 100, "old.bin": b"b" * 100}, mtime=None)
    os.utime(data / "old.bin", (OLD, OLD))
    assert hash_dataset(data).read == 2
    # new.bin was written less than 2 s before it was read: its entry is not kept.
    assert hash_dataset(data).read == 1
    # Rewritten within the same mtime tick (mtime forged back as well): still read, still right.
    st_before = os.stat(data / "new.bin")
    write(data / "new.bin", b"c" * 100, mtime=None)
    os.utime(data / "new.bin", ns=(st_before.st_atime_ns, st_before.st_mtime_ns))
    result = hash_dataset(data)
    assert result.sha256 == hash_dataset(data, cache=False).sha256
    assert result.sha256 != hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize("garbage", [b"{not json", b"\xff\xfe", b'{"schema": "other"}', b"[1, 2]"])
def test_a_corrupt_cache_is_ignored_and_rebuilt(tmp_path: Path, private_cache: Path, garbage: bytes) -> None:
    data = make_dataset(tmp_path / "data", {"a": b"1", "b": b"2"})
    truth = hash_dataset(data, cache=False)
    hash_dataset(data)
    (cache_file,) = private_cache.glob("datasets/*.json")
    cache_file.write_bytes(garbage)
    again = hash_dataset(data)
    assert again.read == 2 and again.sha256 == truth.sha256
    assert json.loads(cache_file.read_text())["schema"] == "seedtree.dataset-cache"  # rebuilt


def test_malformed_cache_entries_are_not_trusted(tmp_path: Path, private_cache: Path) -> None:
    data = make_dataset(tmp_path / "data", {"a": b"1", "b": b"2"})
    truth = hash_dataset(data)
    (cache_file,) = private_cache.glob("datasets/*.json")
    cache = json.loads(cache_file.read_text())
    cache["files"]["a"][5] = "not a digest"
    cache["files"]["b"] = {"size": 1}
    cache_file.write_text(json.dumps(cache))
    again = hash_dataset(data)
    assert again.read == 2 and again.sha256 == truth.sha256


# -- bad input --------------------------------------------------------------------------


def test_missing_path_special_file_and_bad_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"^dataset 'train': .*/nope does not exist$"):
        hash_dataset(tmp_path / "nope", name="train")
    with pytest.raises(ValueError, match=r"dataset 'train': .*/nope does not exist"):
        st.manifest(st.SeedTree(1), datasets={"train": str(tmp_path / "nope")})
    data = make_dataset(tmp_path / "data", {"a": b"1"})
    os.mkfifo(data / "pipe")
    with pytest.raises(DatasetError, match=r"data/pipe is a FIFO; only regular files and symbolic links"):
        hash_dataset(data, name="d")
    with pytest.raises(ValueError, match="must be a mapping"):
        st.manifest(st.SeedTree(1), datasets=[("train", str(data))])  # type: ignore[arg-type]


UNREADABLE = r"""
import os, sys
from seedtree.runtime.datasets import DatasetError, hash_dataset
if os.geteuid() == 0:  # root reads anything: become "nobody" (imports done), as a user would be
    os.setgroups([]); os.setgid(65534); os.setuid(65534)
try:
    hash_dataset(sys.argv[1], name="train", cache=False)
except DatasetError as exc:
    print(exc)
"""


def test_an_unreadable_file_is_named() -> None:
    # A real permission error, in a child that is not root (root reads anything).
    folder = Path(tempfile.mkdtemp(prefix="seedtree-unreadable-"))
    try:
        os.chmod(folder, 0o755)
        data = make_dataset(folder / "data", {"ok.bin": b"1", "secret.bin": b"2"})
        os.chmod(data, 0o755)
        os.chmod(data / "ok.bin", 0o644)
        os.chmod(data / "secret.bin", 0o000)
        env = dict(os.environ, PYTHONPATH=str(REPO))
        proc = subprocess.run(
            [sys.executable, "-c", UNREADABLE, str(data)], env=env, capture_output=True, text=True, timeout=60, cwd="/"
        )
        assert proc.stdout.strip() == f"dataset 'train': cannot read {data.as_posix()}/secret.bin: Permission denied", (
            proc.stdout + proc.stderr
        )
    finally:
        shutil.rmtree(folder)


def test_progress_bar_only_when_asked_or_on_a_terminal(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    data = make_dataset(tmp_path / "data", {f"{i}": b"x" * 10 for i in range(5)})
    hash_dataset(data, cache=False)
    assert capfd.readouterr().err == ""
    hash_dataset(data, name="train", cache=False, progress=True)
    err = capfd.readouterr().err
    assert "seedtree: hashing 'train'" in err and "5/5 files" in err and err.endswith("\n")


# -- the manifest -----------------------------------------------------------------------


def test_manifest_records_datasets_and_reads_them_back(tmp_path: Path, clean_seedtree: None) -> None:
    data = make_dataset(tmp_path / "data", FILES)
    m = st.manifest(st.SeedTree(7), datasets={"train": data, "labels": data / "b.txt"}, experiment="x")
    path = m.save(tmp_path / "m.json")
    raw = json.loads(path.read_text())
    assert raw["datasets"]["train"]["sha256"] == hash_dataset(data).sha256
    assert raw["datasets"]["labels"] == {
        "path": (data / "b.txt").as_posix(),
        "kind": "file",
        "sha256": hashlib.sha256(b"beta\n").hexdigest(),
        "files": 1,
        "links": 0,
        "bytes": 5,
        "rule": RULE,
    }
    assert raw["fields"] == {"experiment": "x"} and Manifest.load(path).datasets == m.datasets
    raw["datasets"]["train"]["sha256"] = "abc"
    path.write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match=r"dataset 'train' sha256 'abc' is not a hex SHA-256"):
        Manifest.load(path)


def test_environment_lists_every_distribution_the_hardware_and_git(tmp_path: Path) -> None:
    import torch  # imported, CUDA not initialised: describing the machine must not initialise it

    env = manifest.environment()
    dists = {d.metadata["Name"] for d in importlib.metadata.distributions()}
    assert set(env["packages"]) == dists and env["packages"]["numpy"] == np.__version__
    hw = env["hardware"]
    assert hw["cpu_count"] == os.cpu_count() and hw["machine"] and hw["cpu"]
    assert hw["cpu_usable"] == len(os.sched_getaffinity(0))
    assert not torch.cuda.is_initialized()
    if shutil.which("nvidia-smi") is None and not torch.cuda.is_initialized():
        assert hw["gpus"] is None
    else:
        assert hw["gpus"]["count"] == len(hw["gpus"]["names"]) >= 1 and hw["gpus"]["driver"]


def test_git_dirty_flag_and_diff_hash(tmp_path: Path) -> None:
    def git(*args: str) -> bytes:
        return subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True).stdout

    git("init", "-q")
    (tmp_path / "train.py").write_text("print(1)\n")
    git("add", "train.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    clean = manifest._git_commit(str(tmp_path))
    assert clean == {
        "commit": git("rev-parse", "HEAD").decode().strip(),
        "dirty": False,
        "diff_sha256": None,
        "untracked": 0,
    }
    (tmp_path / "train.py").write_text("print(2)\n")
    (tmp_path / "new.py").write_text("")
    dirty = manifest._git_commit(str(tmp_path))
    patch = git("diff", "HEAD", "--no-ext-diff", "--no-textconv", "--no-color", "--binary")
    assert dirty is not None and dirty["dirty"] is True and dirty["untracked"] == 1
    assert dirty["diff_sha256"] == hashlib.sha256(patch).hexdigest()
    (tmp_path / "train.py").write_text("print(3)\n")
    assert manifest._git_commit(str(tmp_path))["diff_sha256"] != dirty["diff_sha256"]


# -- seedtree diff ----------------------------------------------------------------------


def test_diff_names_data_packages_and_hardware_most_likely_first(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", {"a": b"1"})
    a = st.manifest(st.SeedTree(1), datasets={"train": data})
    write(data / "a", b"2")
    b = st.manifest(st.SeedTree(1), datasets={"train": data})
    env = json.loads(json.dumps(b.environment))
    env["packages"]["numpy"] = "0.0.1"
    env["packages"]["brand-new"] = "1.0"
    del env["packages"]["pytest"]
    env["hardware"]["cpu"] = "Other CPU"
    b = Manifest(b.root, b.streams, env, b.created, b.fields, b.datasets)
    significant, _ = diff(a, b)
    text = "\n".join(significant)
    assert (
        f"data: dataset 'train' changed: sha256 {a.datasets['train'].sha256}  ->  {b.datasets['train'].sha256}" in text
    )
    assert f"packages: 1 changed: numpy {np.__version__} -> 0.0.1" in text
    assert "packages: 1 added: brand-new 1.0" in text
    assert f"packages: 1 removed: pytest {importlib.metadata.version('pytest')}" in text
    assert "environment.hardware.cpu: " in text and "->  Other CPU" in text
    order = [
        next(i for i, line in enumerate(significant) if marker in line)
        for marker in ("data:", "changed: numpy", "added:", "hardware.cpu")
    ]
    assert order == sorted(order), significant
    assert "environment.numpy" not in text  # said once, in the package list


# -- seedtree verify --junit ------------------------------------------------------------

WRITER = r"""
import os, sys
os.makedirs("out", exist_ok=True)
open("out/same.txt", "w").write("same\n")
open("out/pid.txt", "w").write(f"{os.getpid()}\n" if sys.argv[1] == "pid" else "fixed\n")
open("log.txt", "w").write("\x1b[31mred\x1b[0m\n")
"""


def test_junit_report_one_case_per_output_failures_carry_the_first_difference(tmp_path: Path) -> None:
    (tmp_path / "w.py").write_text(WRITER)
    argv = [sys.executable, "w.py", "pid"]
    result = verify.verify(argv, outputs=["out", "log.txt"], root=st.SeedTree(3), other_root=False, cwd=tmp_path)
    report = verify.write_junit(result, tmp_path / "report.xml", argv, 1.5)
    suites = ET.parse(report).getroot()
    assert suites.tag == "testsuites" and suites.get("tests") == "2" and suites.get("failures") == "1"
    (suite,) = suites.findall("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "1" and suite.get("errors") == "0"
    assert suite.get("time") == "1.500" and suite[0].tag == "properties"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == {"out", "log.txt"}
    failure = cases["out"].find("failure")
    assert failure is not None and failure.get("message", "").startswith("out/pid.txt (try 1 vs try 2): line 1 differs")
    assert cases["log.txt"].find("failure") is None and cases["log.txt"].find("error") is None

    argv = [sys.executable, "w.py", "fixed"]
    good = verify.verify(argv, outputs=["out"], root=st.SeedTree(3), cwd=tmp_path)
    suites = ET.fromstring(verify.junit_xml(good, argv, strict=True))
    names = [c.get("name") for c in suites.iter("testcase")]
    assert names == ["out", "different root changes the outputs"]
    assert suites.get("failures") == "1"  # the seed does not reach this command: --strict fails it

    failed = verify.verify(
        [sys.executable, "-c", "import sys; print('\\x07boom', file=sys.stderr); sys.exit(3)"],
        root=st.SeedTree(3),
        other_root=False,
        cwd=tmp_path,
    )
    suites = ET.fromstring(verify.junit_xml(failed, ["x"]))  # control characters never make invalid XML
    (case,) = suites.iter("testcase")
    error = case.find("error")
    assert case.get("name") == "<stdout>" and error is not None and "exited with status 3" in error.get("message", "")


def test_cli_junit_flag_writes_the_report(tmp_path: Path) -> None:
    (tmp_path / "w.py").write_text(WRITER)
    proc = seedtree_cli(
        "verify",
        "--seed",
        "1",
        "--no-root-check",
        "--junit",
        "r.xml",
        "-o",
        "out",
        "--",
        sys.executable,
        "w.py",
        "fixed",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert ET.parse(tmp_path / "r.xml").getroot().get("tests") == "1"
    proc = seedtree_cli("verify", "--junit", str(tmp_path / "no" / "r.xml"), "--", "true", cwd=tmp_path)
    assert proc.returncode == 2 and "cannot write --junit" in one_line(proc)


# -- seedtree run --dataset and replay ---------------------------------------------------

MARK = "import sys; open(sys.argv[1], 'a').write('ran\\n')"


@pytest.mark.slow
def test_run_records_and_replay_checks_the_data(tmp_path: Path) -> None:
    make_dataset(tmp_path / "data", {"a.bin": b"1" * 100, "b.bin": b"2" * 100})
    cmd = ["--", sys.executable, "-c", MARK, "marks"]
    proc = seedtree_cli("run", "--seed", "5", "--dataset", "train=data", "--record", "m.json", *cmd, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    recorded = json.loads((tmp_path / "m.json").read_text())["datasets"]["train"]
    assert recorded["path"] == "data" and recorded["files"] == 2 and recorded["bytes"] == 200
    assert seedtree_cli("run", "--manifest", "m.json", *cmd, cwd=tmp_path).returncode == 0

    write(tmp_path / "data" / "b.bin", b"3" * 100)
    now = hash_dataset(tmp_path / "data").sha256
    proc = seedtree_cli("run", "--manifest", "m.json", *cmd, cwd=tmp_path)
    assert proc.returncode == 2
    assert one_line(proc) == (
        f"seedtree run: dataset 'train' at data changed since the manifest was recorded: sha256 "
        f"{recorded['sha256']} recorded, {now} now (2 -> 2 files, 200 -> 200 bytes); restore the data, or run "
        "anyway with --allow-data-change"
    )
    assert (tmp_path / "marks").read_text() == "ran\nran\n"  # the refused replay did not run

    proc = seedtree_cli("run", "--manifest", "m.json", "--allow-data-change", "--record", "r.json", *cmd, cwd=tmp_path)
    assert proc.returncode == 0 and "running anyway" in proc.stderr
    entry = json.loads((tmp_path / "r.json").read_text())["datasets"]["train"]
    assert entry["sha256"] == now and entry["previous_sha256"] == recorded["sha256"]
    assert (tmp_path / "marks").read_text() == "ran\nran\nran\n"

    # The data moved: give its new place; the content must still match.
    shutil.move(tmp_path / "data", tmp_path / "moved")
    proc = seedtree_cli("run", "--manifest", "r.json", *cmd, cwd=tmp_path)
    assert proc.returncode == 2 and "data does not exist (recorded by the manifest; give its place" in one_line(proc)
    proc = seedtree_cli("run", "--manifest", "r.json", "--dataset", "train=moved", *cmd, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_run_dataset_usage_errors(tmp_path: Path) -> None:
    make_dataset(tmp_path / "data", {"a": b"1"})
    cases = [
        (
            ["--dataset", "t=data", "--dataset", "t=other"],
            "seedtree run: --dataset t is given twice (data and other); give each dataset one name",
        ),
        (["--dataset", "t=missing"], "seedtree run: dataset 't': missing does not exist"),
        (["--dataset", "data"], "seedtree run: --dataset 'data' is not NAME=PATH, e.g. --dataset train=data/train"),
        (["--allow-data-change"], "seedtree run: --allow-data-change only applies when replaying (--manifest FILE)"),
        (
            ["--field", "datasets=v3"],
            "seedtree run: the field name 'datasets' is reserved: name the data with --dataset NAME=PATH",
        ),
    ]
    for args, message in cases:
        proc = seedtree_cli("run", "--seed", "1", *args, "--", sys.executable, "-c", MARK, "marks", cwd=tmp_path)
        assert proc.returncode == 2 and one_line(proc) == message
    assert not (tmp_path / "marks").exists()


# -- the CI recipe ----------------------------------------------------------------------


def _step(workflow: dict, name: str) -> str:
    steps = workflow["jobs"]["reproducible"]["steps"]
    return next(s["run"] for s in steps if s.get("name") == name)


@pytest.mark.slow
def test_the_ci_recipe_runs_as_written(tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load((REPO / "examples" / "ci" / "reproducibility.yml").read_text())
    shutil.copytree(REPO / "examples" / "ci", tmp_path / "examples" / "ci", ignore=shutil.ignore_patterns("out"))
    python = shlex.quote(sys.executable)
    for name in ("Data matches the recorded run", "Training is reproducible"):
        line = _step(workflow, name)
        line = line.replace("seedtree ", f"{python} -m seedtree ", 1).replace(" python ", f" {python} ")
        proc = subprocess.run(
            ["bash", "-c", line],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
        )
        assert proc.returncode == 0, f"{name}: {line}\n{proc.stdout}\n{proc.stderr}"
    suites = ET.parse(tmp_path / "report.xml").getroot()
    assert suites.get("failures") == "0" and suites.get("tests") == "2"
    replay = json.loads((tmp_path / "replay.json").read_text())
    assert (
        replay["datasets"]["train"]["sha256"] == Manifest.load(REPO / "examples/ci/run.json").datasets["train"].sha256
    )
