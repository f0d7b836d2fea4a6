"""Dataset checksums, pinned exactly: the rule's bytes for every kind of entry (including
names that are not valid UTF-8 and folders past one hashing batch), the cache file's place,
name and content, which cache records are trusted, the progress line, and every refusal's
words. test_provenance.py covers the same functions through the manifest and the CLI."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from seedtree.runtime import datasets
from seedtree.runtime.datasets import (
    CACHE_SCHEMA,
    DatasetDigest,
    DatasetError,
    cache_dir,
    hash_dataset,
    hash_datasets,
)

OLD = 1_600_000_000  # a fixed mtime well before any cache entry is taken (outside the racy margin)


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "cache"
    monkeypatch.setenv("SEEDTREE_CACHE_DIR", str(folder))
    yield folder


def put(path: Path | bytes, data: bytes) -> None:
    """Write ``data`` to ``path`` (a str path or raw file-system bytes) with an old mtime."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
    os.utime(path, (OLD, OLD))


def rule_digest(parts: list[bytes]) -> str:
    """The folder rule written out independently: SHA-256 over the entries' records in the
    order of their names' bytes (a record is its kind letter, then the name, then NUL)."""
    return hashlib.sha256(b"".join(sorted(parts, key=lambda part: part[1:].split(b"\0")[0]))).hexdigest()


def file_part(name: bytes, data: bytes) -> bytes:
    return b"F" + name + b"\0" + hashlib.sha256(data).digest()


def link_part(name: bytes, target: bytes) -> bytes:
    return b"L" + name + b"\0" + target + b"\0"


# -- the rule ---------------------------------------------------------------------------


def test_a_folder_with_files_links_nested_folders_and_a_name_that_is_not_utf8(tmp_path: Path) -> None:
    data = tmp_path / "data"
    put(data / "a.txt", b"alpha")
    put(data / "sub" / "deep" / "b.bin", bytes(range(256)))
    put(os.fsencode(data / "sub") + b"/\xff raw.bin", b"raw")  # not valid UTF-8: kept as its bytes
    os.symlink("../a.txt", data / "sub" / "up")
    os.symlink("/nowhere/at/all", data / "dangling")
    os.symlink(b"a.txt", os.fsencode(data) + b"/\xfe link")  # a link whose name is not UTF-8 either
    (data / "empty").mkdir()  # an empty folder is not data
    digest = hash_dataset(data, name="train")
    expected = rule_digest(
        [
            file_part(b"a.txt", b"alpha"),
            file_part(b"sub/deep/b.bin", bytes(range(256))),
            file_part(b"sub/\xff raw.bin", b"raw"),
            link_part(b"sub/up", b"../a.txt"),
            link_part(b"dangling", b"/nowhere/at/all"),
            link_part(b"\xfe link", b"a.txt"),
        ]
    )
    assert digest == DatasetDigest(data.as_posix(), "folder", expected, 3, 3, 5 + 256 + 3)
    assert digest.read == 3
    # the second time every file comes from the cache, and the answer is the same
    again = hash_dataset(data, name="train")
    assert again == digest and again.read == 0


def test_a_folder_larger_than_one_hashing_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "_BATCH", 3)  # 4 096 records a batch: 3 makes a small folder cross it
    data = tmp_path / "many"
    data.mkdir()
    parts = []
    for i in range(10):
        os.symlink(f"t{i}", data / f"{i:02d}")
        parts.append(link_part(f"{i:02d}".encode(), f"t{i}".encode()))
    put(data / "zz", b"last")
    parts.append(file_part(b"zz", b"last"))
    digest = hash_dataset(data, cache=False)
    assert (digest.sha256, digest.files, digest.links, digest.bytes) == (rule_digest(parts), 1, 10, 4)


def test_a_file_and_an_empty_folder(tmp_path: Path) -> None:
    put(tmp_path / "one.bin", b"payload")
    digest = hash_dataset(tmp_path / "one.bin")
    assert digest == DatasetDigest(
        (tmp_path / "one.bin").as_posix(), "file", hashlib.sha256(b"payload").hexdigest(), 1, 0, 7
    )
    (tmp_path / "none").mkdir()
    assert hash_dataset(tmp_path / "none") == DatasetDigest(
        (tmp_path / "none").as_posix(), "folder", hashlib.sha256(b"").hexdigest(), 0, 0, 0
    )


def test_hash_datasets_passes_its_options_to_each_dataset(
    tmp_path: Path, private_cache: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    put(tmp_path / "d" / "x", b"x")
    put(tmp_path / "f", b"f")
    first = hash_datasets({"train": tmp_path / "d", "labels": str(tmp_path / "f")})
    assert list(first) == ["train", "labels"] and [d.read for d in first.values()] == [1, 1]
    assert len(list(private_cache.glob("datasets/*.json"))) == 2  # cached by default
    assert [d.read for d in hash_datasets({"train": tmp_path / "d"}).values()] == [0]
    assert capfd.readouterr().err == ""
    uncached = hash_datasets({"train": tmp_path / "d"}, progress=True, cache=False)
    assert uncached["train"].read == 1 and uncached["train"] == first["train"]
    assert "seedtree: hashing 'train' [" in capfd.readouterr().err


@pytest.mark.parametrize(
    ("datasets_arg", "message"),
    [
        ([("train", "x")], "datasets must be a mapping of names to paths, e.g. {'train': 'data/train'}; got list"),
        ({"": "x"}, "a dataset name must be a non-empty str, got ''"),
        ({1: "x"}, "a dataset name must be a non-empty str, got 1"),
    ],
)
def test_hash_datasets_refuses_what_is_not_a_mapping_of_names(datasets_arg: Any, message: str) -> None:
    with pytest.raises(DatasetError) as info:
        hash_datasets(datasets_arg)
    assert str(info.value) == message


# -- where the cache lives, and what it holds -----------------------------------------------


def test_the_cache_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEEDTREE_CACHE_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.setenv("SEEDTREE_CACHE_DIR", "")  # empty counts as unset
    assert cache_dir() == tmp_path / "xdg" / "seedtree"
    monkeypatch.delenv("SEEDTREE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert cache_dir() == tmp_path / "home" / ".cache" / "seedtree"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == tmp_path / "home" / ".cache" / "seedtree"


def cache_file(root: Path) -> Path:
    tag = hashlib.sha256(os.fsencode(os.path.realpath(root))).hexdigest()[:32]
    return cache_dir() / "datasets" / f"{tag}.json"


def test_the_cache_file_is_named_by_the_dataset_and_holds_each_files_stat(tmp_path: Path) -> None:
    data = tmp_path / "data"
    put(data / "a", b"1")
    put(data / "b", b"22")
    hash_dataset(data)
    path = cache_file(data)
    assert sorted(os.listdir(path.parent)) == [path.name]  # no temporary file left beside it
    record = json.loads(path.read_bytes())
    assert set(record) == {"schema", "version", "root", "files"}
    assert (record["schema"], record["version"], record["root"]) == (CACHE_SCHEMA, 1, os.path.realpath(data))
    for name, data_bytes in (("a", b"1"), ("b", b"22")):
        st = os.stat(data / name)
        size, mtime, ctime, ino, hashed_at, digest = record["files"][name]
        assert [size, mtime, ctime, ino] == [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        assert hashed_at - mtime >= datasets.RACY_MARGIN_NS and digest == hashlib.sha256(data_bytes).hexdigest()
    # A file that leaves the dataset leaves the cache; an unchanged dataset rewrites nothing.
    os.remove(data / "b")
    hash_dataset(data)
    assert list(json.loads(path.read_bytes())["files"]) == ["a"]
    before = path.stat().st_mtime_ns
    os.utime(path, ns=(0, 0))
    hash_dataset(data)
    assert path.stat().st_mtime_ns == 0 != before


@pytest.mark.parametrize(
    "damage",
    [
        {"schema": "other"},
        {"version": 2},
        {"root": "/somewhere/else"},
        {"files": []},
    ],
)
def test_a_cache_record_for_another_schema_version_or_root_is_not_trusted(
    tmp_path: Path, damage: dict[str, Any]
) -> None:
    data = tmp_path / "data"
    put(data / "a", b"1")
    hash_dataset(data)
    path = cache_file(data)
    record = json.loads(path.read_bytes())
    record["files"]["a"][5] = "0" * 64  # a wrong digest: used only if the record were trusted
    path.write_text(json.dumps(record))
    trusted = hash_dataset(data)
    assert trusted.read == 0 and trusted.sha256 == rule_digest([b"Fa\0" + bytes(32)])  # the record is used
    record.update(damage)
    path.write_text(json.dumps(record))
    again = hash_dataset(data)
    assert again.read == 1 and again.sha256 == rule_digest([file_part(b"a", b"1")])


def test_a_cache_that_cannot_be_written_costs_a_warning_once_never_the_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("SEEDTREE_CACHE_DIR", str(blocker))
    monkeypatch.setattr(datasets, "_warned", set())
    put(tmp_path / "data" / "a", b"1")
    assert hash_dataset(tmp_path / "data").sha256 == rule_digest([file_part(b"a", b"1")])
    path = blocker / "datasets" / cache_file(tmp_path / "data").name
    expected = (
        f"seedtree: cannot write the dataset hash cache {path} (Not a directory); "
        "set SEEDTREE_CACHE_DIR to a writable folder to avoid re-reading unchanged files\n"
    )
    assert capfd.readouterr().err == expected
    assert hash_dataset(tmp_path / "data").read == 1
    assert capfd.readouterr().err == ""  # said once


# -- refusals, each with its words --------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        (stat.S_IFIFO, "a FIFO"),
        (stat.S_IFSOCK, "a socket"),
        (stat.S_IFCHR, "a character device"),
        (stat.S_IFBLK, "a block device"),
        (0o170000, "a special file (mode 0o170000)"),
    ],
)
def test_special_files_are_named_by_kind(mode: int, words: str) -> None:
    assert datasets._kind(mode) == words


def test_a_special_file_at_the_top_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(DatasetError) as info:
        hash_dataset(tmp_path / "pipe", name="p")
    assert str(info.value) == f"dataset 'p': {(tmp_path / 'pipe').as_posix()} is a FIFO, not a file or folder"


def fail_listing(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    real = datasets._list

    def listing(path: str) -> Any:
        if path == str(folder):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(datasets, "_list", listing)


def test_a_folder_that_cannot_be_listed_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    put(data / "x" / "y" / "f", b"1")
    fail_listing(monkeypatch, data / "x" / "y")
    with pytest.raises(DatasetError) as info:
        hash_dataset(data, name="t")
    assert str(info.value) == f"dataset 't': cannot read the folder {data.as_posix()}/x/y: Permission denied"
    monkeypatch.undo()
    fail_listing(monkeypatch, data)
    with pytest.raises(DatasetError) as info:
        hash_dataset(data)
    assert str(info.value) == f"dataset: cannot read the folder {data.as_posix()}: Permission denied"


def after_walk(monkeypatch: pytest.MonkeyPatch, act: Callable[[], None]) -> None:
    """Run ``act`` between the walk (which stats every file) and the reads."""
    real = datasets._walk

    def walk(*args: Any) -> Any:
        found = real(*args)
        act()
        return found

    monkeypatch.setattr(datasets, "_walk", walk)


def test_a_file_that_vanishes_before_it_is_read_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    put(data / "keep", b"1")
    put(data / "sub" / "gone", b"2")
    after_walk(monkeypatch, lambda: os.remove(data / "sub" / "gone"))
    with pytest.raises(DatasetError) as info:
        hash_dataset(data, name="t", workers=2, cache=False)
    assert str(info.value) == f"dataset 't': cannot read {data.as_posix()}/sub/gone: No such file or directory"


@pytest.mark.parametrize("workers", [1, 3])
def test_a_file_replaced_between_the_walk_and_the_read_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    data = tmp_path / "data"
    put(data / "a", b"1")
    put(data / "b", b"2")
    put(tmp_path / "new", b"3")  # same size, same old mtime: only the inode tells
    after_walk(monkeypatch, lambda: os.replace(tmp_path / "new", data / "b"))
    with pytest.raises(DatasetError) as info:
        hash_dataset(data, name="t", workers=workers)
    assert str(info.value) == (
        f"dataset 't': {data.as_posix()}/b changed while it was being hashed; "
        "stop whatever writes to the dataset and try again"
    )


def test_a_file_that_grows_while_it_is_read_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    put(tmp_path / "log", b"start")
    real = hashlib.file_digest

    def digest_while_written(fh: Any, name: str) -> Any:
        with open(tmp_path / "log", "ab") as other:
            other.write(b" and more")
        return real(fh, name)

    monkeypatch.setattr(hashlib, "file_digest", digest_while_written)
    with pytest.raises(DatasetError) as info:
        hash_dataset(tmp_path / "log")
    path = (tmp_path / "log").as_posix()
    assert (
        str(info.value)
        == f"dataset: {path} changed while it was being hashed; stop whatever writes to the dataset and try again"
    )


def test_the_default_reading_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert datasets._default_workers() == 3  # the CPUs this process may use, not the machine's
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(20)), raising=False)
    assert datasets._default_workers() == 8
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    assert datasets._default_workers() == 8
    monkeypatch.setattr(os, "cpu_count", lambda: 5)
    assert datasets._default_workers() == 5
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert datasets._default_workers() == 1


# -- the progress line ----------------------------------------------------------------------


def test_the_progress_line_counts_files_and_mebibytes() -> None:
    out = io.StringIO()
    bar = datasets._Progress("dataset 'train'", 2, 3 << 20, True, stream=out)
    bar.advance(1 << 20)
    bar.last = 0.0  # the redraw limit is time-based: let the second step draw too
    bar.advance(2 << 20)
    bar.close()
    lines = out.getvalue().split("\r")[1:]
    assert lines == [
        f"seedtree: hashing 'train' [{'#' * 10:<30}] 1/2 files, 1/3 MiB",
        f"seedtree: hashing 'train' [{'#' * 30}] 2/2 files, 3/3 MiB\n",
    ]
    empty = io.StringIO()  # files of zero bytes: the bar counts files
    bar = datasets._Progress("dataset", 4, 0, True, stream=empty)
    bar.advance(0)
    assert empty.getvalue() == f"\rseedtree: hashing dataset [{'#' * 7:<30}] 1/4 files, 0/0 MiB"
    quiet = io.StringIO()
    datasets._Progress("dataset", 0, 0, True, stream=quiet).close()
    assert quiet.getvalue() == ""  # nothing to read, no bar


def test_a_cache_file_that_cannot_be_replaced_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(datasets, "_warned", set())
    put(tmp_path / "data" / "a", b"1")
    cache_file(tmp_path / "data").mkdir(parents=True)  # a folder where the cache file goes
    assert hash_dataset(tmp_path / "data").read == 1
    assert "(Is a directory); set SEEDTREE_CACHE_DIR" in capfd.readouterr().err
    assert os.listdir(cache_file(tmp_path / "data").parent) == [cache_file(tmp_path / "data").name]


# -- the arguments of hash_dataset ---------------------------------------------------------


def test_bad_names_and_paths_are_refused_in_words(tmp_path: Path) -> None:
    put(tmp_path / "afile", b"1")
    os.symlink(tmp_path / "nothing", tmp_path / "broken")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"path": tmp_path / "afile", "name": 5}, "a dataset name must be a str, got 5"),
        ({"path": 5}, "dataset: the path must be a non-empty str or path, got 5"),
        ({"path": "", "name": "t"}, "dataset 't': the path must be a non-empty str or path, got ''"),
        (
            {"path": tmp_path / "broken", "name": "t"},
            f"dataset 't': {(tmp_path / 'broken').as_posix()} is a broken symbolic link",
        ),
        (
            {"path": tmp_path / "afile" / "x"},
            f"dataset: cannot read {(tmp_path / 'afile' / 'x').as_posix()}: Not a directory",
        ),
    ]
    for kwargs, message in cases:
        with pytest.raises(DatasetError) as info:
            hash_dataset(**kwargs)
        assert str(info.value) == message
    assert hash_dataset(tmp_path / "afile", name=None).files == 1  # None: no name, as the default


def test_a_file_dataset_is_cached_under_its_own_record(tmp_path: Path) -> None:
    put(tmp_path / "one.bin", b"payload")
    assert hash_dataset(tmp_path / "one.bin").read == 1
    record = json.loads(cache_file(tmp_path / "one.bin").read_bytes())
    assert list(record["files"]) == [""] and record["files"][""][5] == hashlib.sha256(b"payload").hexdigest()
    assert hash_dataset(tmp_path / "one.bin").read == 0
    assert hash_dataset(tmp_path / "one.bin", cache=False).read == 1  # cache=False reads, whatever is cached


def test_the_reading_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(4):
        put(tmp_path / "data" / f"{i}", bytes([i]))
    for i in range(2):
        put(tmp_path / "two" / f"{i}", bytes([i]))
    readers: list[tuple[int, bool]] = []
    real = hashlib.file_digest

    def digest(fh: Any, name: str) -> Any:
        readers.append((threading.get_ident(), threading.current_thread().daemon))
        return real(fh, name)

    monkeypatch.setattr(hashlib, "file_digest", digest)
    me = (threading.get_ident(), threading.current_thread().daemon)
    hash_dataset(tmp_path / "data", workers=1, cache=False)
    assert readers == [me] * 4  # one worker: the calling thread reads
    readers.clear()
    hash_dataset(tmp_path / "data" / "0", workers=3, cache=False)
    assert readers == [me]  # one file: no thread is started for it
    for folder, count in ((tmp_path / "two", 2), (tmp_path / "data", 4)):
        readers.clear()
        hash_dataset(folder, workers=3, cache=False)
        assert len(readers) == count and me not in readers
        # daemon threads: an interrupted hash does not keep the interpreter alive
        assert all(daemon for _, daemon in readers)


def test_listing_through_a_descriptor_or_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    put(tmp_path / "data" / "sub" / "a", b"1")
    os.symlink("a", tmp_path / "data" / "sub" / "l")
    expected = hash_dataset(tmp_path / "data", cache=False)
    listed: list[type] = []
    real = os.scandir

    def scandir(where: Any) -> Any:
        listed.append(type(where))
        return real(where)

    monkeypatch.setattr(os, "scandir", scandir)
    if real in os.supports_fd:  # Linux, macOS: the folder is listed through a descriptor
        monkeypatch.setattr(os, "supports_fd", os.supports_fd | {scandir})
        assert hash_dataset(tmp_path / "data", cache=False) == expected
        assert listed == [int, int]
    listed.clear()
    monkeypatch.setattr(os, "supports_fd", set())  # a platform that cannot list a descriptor
    assert hash_dataset(tmp_path / "data", cache=False) == expected
    assert listed == [str, str]


# -- which cache records are trusted --------------------------------------------------------


@pytest.mark.parametrize(
    ("hashed_at_after_mtime", "trusted"),
    [
        (datasets.RACY_MARGIN_NS, True),
        (datasets.RACY_MARGIN_NS - 1, False),  # taken within the margin: the file may have changed since
        (float(10**30), False),  # not an int
        ("9" * 30, False),
    ],
)
def test_a_record_is_trusted_only_outside_the_racy_margin(
    tmp_path: Path, hashed_at_after_mtime: Any, trusted: bool
) -> None:
    put(tmp_path / "data" / "a", b"1")
    hash_dataset(tmp_path / "data")
    path = cache_file(tmp_path / "data")
    record = json.loads(path.read_bytes())
    row = record["files"]["a"]
    row[4] = row[1] + hashed_at_after_mtime if isinstance(hashed_at_after_mtime, int) else hashed_at_after_mtime
    row[5] = "0" * 64
    path.write_bytes(json.dumps(record).encode())
    again = hash_dataset(tmp_path / "data")
    assert again.read == (0 if trusted else 1)
    assert again.sha256 == rule_digest([b"Fa\0" + bytes(32) if trusted else file_part(b"a", b"1")])


@pytest.mark.parametrize(
    ("read_after_mtime", "kept"), [(datasets.RACY_MARGIN_NS, True), (datasets.RACY_MARGIN_NS - 1, False)]
)
def test_a_file_read_within_the_racy_margin_of_its_mtime_is_not_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_after_mtime: int, kept: bool
) -> None:
    put(tmp_path / "data" / "a", b"1")
    mtime = os.stat(tmp_path / "data" / "a").st_mtime_ns
    monkeypatch.setattr(time, "time_ns", lambda: mtime + read_after_mtime)
    hash_dataset(tmp_path / "data")
    record = json.loads(cache_file(tmp_path / "data").read_bytes()) if kept else None
    assert cache_file(tmp_path / "data").exists() == kept
    if record is not None:
        assert record["files"]["a"][4] == mtime + read_after_mtime


# -- when the progress line shows by itself --------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Closed(io.StringIO):
    def isatty(self) -> bool:
        raise ValueError("I/O operation on closed file")


@pytest.mark.parametrize(
    ("stream", "files", "total", "shown"),
    [
        (Terminal(), 1, datasets.PROGRESS_MIN_BYTES, True),
        (Terminal(), 1, datasets.PROGRESS_MIN_BYTES - 1, False),  # little to read: no bar
        (io.StringIO(), 1, datasets.PROGRESS_MIN_BYTES, False),  # not a terminal
        (Closed(), 1, datasets.PROGRESS_MIN_BYTES, False),
        (Terminal(), 0, datasets.PROGRESS_MIN_BYTES, False),  # nothing to read
    ],
)
def test_the_progress_line_shows_by_default_only_on_a_terminal_with_much_to_read(
    stream: io.StringIO, files: int, total: int, shown: bool
) -> None:
    assert datasets._Progress("dataset", files, total, None, stream=stream).enabled is shown
    assert datasets._Progress("dataset", files, total, False, stream=stream).enabled is False
    assert datasets._Progress("dataset", files, total, True, stream=stream).enabled is (files > 0)


def test_hash_dataset_draws_the_progress_of_its_own_reads(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    put(tmp_path / "data" / "a", b"x" * (3 << 19))
    put(tmp_path / "data" / "b", b"y" * (1 << 19))
    hash_dataset(tmp_path / "data", name="d", progress=True, workers=1)
    err = capfd.readouterr().err
    assert err.endswith(f"\rseedtree: hashing 'd' [{'#' * 30}] 2/2 files, 2/2 MiB\n")


def test_the_progress_line_is_redrawn_at_most_ten_times_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([0.1, 0.15, 0.199, 0.2, 0.2])
    monkeypatch.setattr(time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    bar = datasets._Progress("dataset", 5, 0, True, stream=out)
    for _ in range(5):
        bar.advance(0)
    # drawn at 0.1 (0.1 s after the start), not at 0.15 or 0.199, at 0.2, and for the last file
    assert [line.split("] ")[1] for line in out.getvalue().split("\r")[1:]] == [
        "1/5 files, 0/0 MiB",
        "4/5 files, 0/0 MiB",
        "5/5 files, 0/0 MiB",
    ]
    closed = io.StringIO()
    datasets._Progress("dataset", 2, 0, True, stream=closed).close()
    assert closed.getvalue() == ""  # no line was drawn: none to end


def test_a_link_that_cannot_be_read_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    put(tmp_path / "data" / "a", b"1")
    os.symlink("a", tmp_path / "data" / "l")

    def readlink(path: Any, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(os, "readlink", readlink)
    with pytest.raises(DatasetError) as info:
        hash_dataset(tmp_path / "data", name="t")
    assert str(info.value) == f"dataset 't': cannot read {(tmp_path / 'data').as_posix()}/l: Permission denied"
