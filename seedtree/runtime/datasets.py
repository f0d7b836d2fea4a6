"""Dataset checksums for the manifest: a content hash of a file or folder, the same on every
machine, with a cache so that unchanged files are not read again.

The hash (rule ``seedtree-dataset-1``):

- A dataset that is a **file** hashes to the plain SHA-256 of its bytes (what ``sha256sum``
  prints). A dataset given as a symbolic link is followed (you named it); nothing inside a
  folder is ever followed.
- A **folder** is walked completely. Each entry is named by its path relative to the folder,
  with ``/`` between parts, as the bytes the file system holds (``os.fsencode``). The entries
  are sorted by those bytes, so neither the file system's listing order nor the machine's
  locale changes the result. The hash is the SHA-256 of, for each entry in that order:
  a regular file ``b"F" + name + b"\\0" + sha256(contents)`` (32 raw bytes); a symbolic link
  ``b"L" + name + b"\\0" + target + b"\\0"``: the link's target text is hashed and the link
  is never followed, so a link into a folder outside the dataset counts as the same data
  while its text is unchanged. Folders themselves add nothing (an empty folder is not data).
- Any other kind of entry (a FIFO, a socket, a device) is refused with a ``DatasetError``
  naming it: reading one could block forever or return different bytes each time.

The cache: per dataset (file or folder), one JSON file in ``cache_dir()``
(``$SEEDTREE_CACHE_DIR``, else ``$XDG_CACHE_HOME/seedtree``, else ``~/.cache/seedtree``)
holding, for each file, its size,
``mtime_ns``, ``ctime_ns``, inode, the time it was hashed and its SHA-256. A file whose four
stat values still match is not read again. An entry is only trusted when the file's mtime was
at least ``RACY_MARGIN_NS`` (2 s) older than the moment the file was read (git's "racy git"
rule): a file rewritten within the same mtime tick as the hash was taken keeps its mtime, so
such an entry is never used, and the file is read again. (Rewriting a file in place also
moves its ``ctime``, which nobody can set back, so a later rewrite is caught even when the
mtime is forged.) A cache that cannot be read or parsed, or has entries of the wrong shape, is
ignored and rebuilt, never trusted; one that cannot be written costs speed, not correctness.

Files are read in parallel threads (``hashlib`` releases the GIL while it hashes). A file that
changes while it is read is refused, naming it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TextIO

__all__ = [
    "DatasetDigest",
    "DatasetError",
    "RACY_MARGIN_NS",
    "RULE",
    "cache_dir",
    "hash_dataset",
    "hash_datasets",
]

RULE = "seedtree-dataset-1"
RACY_MARGIN_NS = 2_000_000_000
ENV_CACHE_DIR = "SEEDTREE_CACHE_DIR"
CACHE_SCHEMA = "seedtree.dataset-cache"
# Progress is shown by default (stderr a terminal) only when this much must be read.
PROGRESS_MIN_BYTES = 64 << 20


class DatasetError(ValueError):
    """A dataset that cannot be hashed: the message names the dataset and the file."""


@dataclass(frozen=True)
class DatasetDigest:
    """A dataset's content hash and size. ``previous`` is the hash a replayed manifest
    recorded when the data had changed and the run went ahead anyway (else None).
    ``read`` (files read rather than taken from the cache) is not part of the record."""

    path: str
    kind: str
    sha256: str
    files: int
    links: int
    bytes: int
    previous: str | None = None
    read: int = field(default=0, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The manifest entry (JSON values only)."""
        entry: dict[str, Any] = {
            "path": self.path,
            "kind": self.kind,
            "sha256": self.sha256,
            "files": self.files,
            "links": self.links,
            "bytes": self.bytes,
            "rule": RULE,
        }
        if self.previous is not None:
            entry["previous_sha256"] = self.previous
        return entry

    @classmethod
    def from_json(cls, entry: Any) -> DatasetDigest:
        """Rebuild a manifest entry; ValueError saying what is wrong with it."""
        if not isinstance(entry, dict):
            raise ValueError(f"must be an object with path, kind, sha256, files, links, bytes; got {entry!r}")
        if entry.get("rule") != RULE:
            raise ValueError(f"was hashed by rule {entry.get('rule')!r}, which this seedtree does not know ({RULE})")
        for key in ("path", "kind", "sha256"):
            if not isinstance(entry.get(key), str):
                raise ValueError(f"needs a string {key!r}, got {entry.get(key)!r}")
        for key in ("files", "links", "bytes"):
            value = entry.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"needs a count {key!r} (int >= 0), got {value!r}")
        previous = entry.get("previous_sha256")
        for key, value in (("sha256", entry["sha256"]), ("previous_sha256", previous)):
            if value is not None and not _is_hex_digest(value):
                raise ValueError(f"{key} {value!r} is not a hex SHA-256")
        if entry["kind"] not in ("file", "folder"):
            raise ValueError(f"kind must be 'file' or 'folder', got {entry['kind']!r}")
        return cls(
            entry["path"], entry["kind"], entry["sha256"], entry["files"], entry["links"], entry["bytes"], previous
        )


_HEX64 = re.compile(r"[0-9a-f]{64}")


def _is_hex_digest(value: Any) -> bool:
    return type(value) is str and _HEX64.fullmatch(value) is not None


def cache_dir() -> Path:
    """Where the hash caches live: ``$SEEDTREE_CACHE_DIR``, else ``$XDG_CACHE_HOME/seedtree``,
    else ``~/.cache/seedtree``."""
    if os.environ.get(ENV_CACHE_DIR):
        return Path(os.environ[ENV_CACHE_DIR])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "seedtree"


def hash_datasets(
    datasets: Mapping[str, str | os.PathLike[str]], progress: bool | None = None, cache: bool = True
) -> dict[str, DatasetDigest]:
    """``hash_dataset`` for each ``name: path``; raises DatasetError (a ValueError) naming the
    first dataset that cannot be hashed."""
    if not isinstance(datasets, Mapping):
        raise DatasetError(
            f"datasets must be a mapping of names to paths, e.g. {{'train': 'data/train'}}; "
            f"got {type(datasets).__name__}"
        )
    for name in datasets:
        if not isinstance(name, str) or not name:
            raise DatasetError(f"a dataset name must be a non-empty str, got {name!r}")
    return {name: hash_dataset(path, name=name, progress=progress, cache=cache) for name, path in datasets.items()}


def hash_dataset(
    path: str | os.PathLike[str],
    name: str = "",
    progress: bool | None = None,
    cache: bool = True,
    workers: int | None = None,
) -> DatasetDigest:
    """The content hash of the file or folder ``path`` (rule in the module docstring).

    ``progress``: a bar on stderr; None (default) shows one when stderr is a terminal and
    more than 64 MiB must be read. ``cache``: reuse and update the stat cache. ``workers``:
    threads reading files (default: the usable CPUs, at most 8). Raises DatasetError naming
    the problem: a path that does not exist, an unreadable file, a special file, a file that
    changed while it was read."""
    label = f"dataset {name!r}" if name else "dataset"
    if name is not None and not isinstance(name, str):
        raise DatasetError(f"a dataset name must be a str, got {name!r}")
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise DatasetError(f"{label}: the path must be a non-empty str or path, got {path!r}")
    shown = Path(path).as_posix()
    try:
        os.stat(path)
    except FileNotFoundError:
        problem = "is a broken symbolic link" if os.path.islink(path) else "does not exist"
        raise DatasetError(f"{label}: {shown} {problem}") from None
    except OSError as exc:  # e.g. a folder above it that may not be entered
        raise DatasetError(f"{label}: cannot read {shown}: {exc.strerror or exc}") from None
    real = os.path.realpath(path)
    is_file = os.path.isfile(real)
    if is_file:
        entries = [_file_entry("", real, os.stat(real))]  # a file dataset: one entry, named ""
    elif os.path.isdir(real):
        entries = _walk(real, shown, label)
    else:
        raise DatasetError(f"{label}: {shown} is {_kind(os.stat(real).st_mode)}, not a file or folder")
    store = _Cache(real, {})  # pragma: no mutate - without the cache, its root is never read
    if cache:
        store = _Cache.load(real)
    todo = [e for e in entries if e.kind == "F" and not store.lookup(e)]
    total = sum(e.key[0] for e in todo)
    bar = _Progress(label, len(todo), total, progress)
    try:
        _read_all(todo, store, shown, label, workers, bar.advance)
    finally:
        bar.close()
    if cache:
        store.save({e.rel for e in entries if e.kind == "F"})
    if is_file:
        return DatasetDigest(shown, "file", store.need(entries[0]), 1, 0, entries[0].key[0], read=len(todo))
    return _folder_digest(shown, entries, store, len(todo))


_BATCH = 4096  # records hashed at a time: fast, and memory stays flat for huge folders


def _folder_digest(shown: str, entries: list[_Entry], store: _Cache, read: int) -> DatasetDigest:
    digest = hashlib.sha256()
    parts: list[bytes] = []
    files = links = size = 0
    for e in entries:
        # Where a batch ends cannot change the digest (SHA-256 of the concatenation): any bound
        # mutmut puts here is equivalent.
        if len(parts) >= _BATCH:  # pragma: no mutate
            digest.update(b"".join(parts))
            parts.clear()
        if e.kind == "F":
            files, size = files + 1, size + e.key[0]
            parts.append(b"F" + e.name + b"\0" + bytes.fromhex(store.need(e)))
        else:
            links += 1
            parts.append(b"L" + e.name + b"\0" + e.target + b"\0")
    digest.update(b"".join(parts))
    return DatasetDigest(shown, "folder", digest.hexdigest(), files, links, size, read=read)


class _Entry(NamedTuple):
    """A file or link found by the walk. Sorting a list of them sorts by ``name`` (unique)."""

    name: bytes  # relative POSIX name, file-system bytes
    rel: str  # the same name as str: the cache's key
    path: str
    kind: str  # "F" regular file, "L" symbolic link
    key: list[int]  # [size, mtime_ns, ctime_ns, inode] of a file, as the cache keeps them
    target: bytes  # a link's target


# A NamedTuple's own constructor is Python code; the walk makes one per file, so it builds them
# with tuple.__new__ (C), which is most of what keeps a warm re-check fast.
_new_entry = tuple.__new__


def _file_entry(rel: str, path: str, st: os.stat_result) -> _Entry:
    # surrogateescape keeps a name that is not valid in the file-system encoding as its bytes
    name = rel.encode(_FS_ENCODING, _FS_ERRORS)
    key = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
    target = b""  # pragma: no mutate - a file's target is never read
    return _new_entry(_Entry, (name, rel, path, "F", key, target))


_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


def _kind(mode: int) -> str:
    for test, text in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDOOR, "a door"),  # Solaris only
    ):
        if test(mode):
            return text
    return f"a special file (mode {oct(mode)})"


def _walk(root: str, shown: str, label: str) -> list[_Entry]:
    """Every file and link under ``root``, sorted by relative name bytes; folders are entered,
    links never followed, anything else refused."""
    entries: list[_Entry] = []
    stack: list[tuple[str, str]] = [(root, "")]  # (folder, its relative name + "/", or "" for the root)
    while stack:
        folder, prefix = stack.pop()
        try:
            listing = _list(folder)
        except OSError as exc:
            where = f"{shown}/{prefix[:-1]}" if prefix else shown
            raise DatasetError(f"{label}: cannot read the folder {where}: {exc.strerror or exc}") from None
        base = os.path.join(folder, "")
        for entry in listing:
            rel = prefix + entry.name
            try:
                st = entry.stat(follow_symlinks=False)
                mode = st.st_mode
                if stat.S_ISREG(mode):
                    entries.append(_file_entry(rel, base + entry.name, st))
                elif stat.S_ISDIR(mode):
                    stack.append((base + entry.name, rel + "/"))
                elif stat.S_ISLNK(mode):
                    target = os.fsencode(os.readlink(base + entry.name))
                    name = rel.encode(_FS_ENCODING, _FS_ERRORS)  # as for a file (see _file_entry)
                    # a link's path is never read, and every entry that is not "F" hashes as a link
                    link: tuple[Any, ...] = (name, rel, "", "L", [], target)  # pragma: no mutate
                    entries.append(_new_entry(_Entry, link))
                else:
                    raise DatasetError(
                        f"{label}: {shown}/{rel} is {_kind(st.st_mode)}; only regular files and "
                        "symbolic links can be hashed: move it out of the dataset"
                    )
            except OSError as exc:
                raise DatasetError(f"{label}: cannot read {shown}/{rel}: {exc.strerror or exc}") from None
    entries.sort()
    return entries


def _list(folder: str) -> list[os.DirEntry[str]]:
    """The entries of ``folder``. Listed through an open descriptor where the platform allows,
    so each entry's stat is ``fstatat`` on its bare name: the kernel does not walk the whole
    path again for every file, which is most of the time a warm re-check takes."""
    if os.scandir not in os.supports_fd:
        with os.scandir(folder) as it:
            return list(it)
    fd = os.open(folder, os.O_RDONLY)  # scandir(fd) refuses a descriptor that is not a folder
    try:
        with os.scandir(fd) as it:
            listing = list(it)
            for entry in listing:  # stat now, while the descriptor is open; DirEntry caches it
                entry.stat(follow_symlinks=False)
            return listing
    finally:
        os.close(fd)


def _sha256_file(path: str, display: str, label: str, expect: _Entry | None = None) -> tuple[str, os.stat_result, int]:
    """(hex digest, the file's stat when opened, when the read began); refuses a file that
    changes while it is read."""
    began = time.time_ns()
    try:
        with open(path, "rb") as fh:
            before = os.fstat(fh.fileno())
            digest = hashlib.file_digest(
                fh,
                "sha256",  # pragma: no mutate - hashlib reads the name case-blind
            ).hexdigest()
            after = os.fstat(fh.fileno())
    except OSError as exc:
        raise DatasetError(f"{label}: cannot read {display}: {exc.strerror or exc}") from None
    if (before.st_size, before.st_mtime_ns, before.st_ctime_ns) != (
        after.st_size,
        after.st_mtime_ns,
        after.st_ctime_ns,
    ) or (expect is not None and (before.st_size, before.st_ino) != (expect.key[0], expect.key[3])):
        raise DatasetError(
            f"{label}: {display} changed while it was being hashed; stop whatever writes to the dataset and try again"
        )
    return digest, before, began


def _read_all(
    todo: list[_Entry], store: _Cache, shown: str, label: str, workers: int | None, advance: Callable[[int], None]
) -> None:
    """Hash the files in ``todo`` with a few threads; the first error stops the rest and is raised."""
    if workers is None:
        workers = _default_workers()
    lock = threading.Lock()
    position = iter(range(len(todo)))
    errors: list[BaseException] = []

    def work() -> None:
        while not errors:
            with lock:
                index = next(position, None)
            if index is None:
                return
            e = todo[index]
            display = f"{shown}/{e.rel}" if e.rel else shown
            try:
                digest, st, began = _sha256_file(e.path, display, label, e)
            except BaseException as exc:  # noqa: BLE001 - handed to the calling thread, raised there
                errors.append(exc)
                return
            store.put(e, [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino], digest, began)
            advance(st.st_size)

    if workers == 1 or len(todo) <= 1:
        work()
    else:
        threads = [threading.Thread(target=work, daemon=True) for _ in range(min(workers, len(todo)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if errors:
        raise errors[0]


def _default_workers() -> int:
    """Threads that read files: the CPUs this process may use, at least 1, at most 8."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, usable))


class _Cache:
    """The stat cache of one dataset folder (see the module docstring)."""

    def __init__(self, root: str, entries: dict[str, list[Any]]) -> None:
        self.root = root
        self.entries = entries  # relative name (fsdecoded) -> [size, mtime, ctime, ino, hashed_at, hex]
        self.fresh: dict[bytes, str] = {}
        self.changed = False
        self.lock = threading.Lock()

    @staticmethod
    def file_for(root: str) -> Path:
        tag = hashlib.sha256(os.fsencode(root)).hexdigest()[:32]
        return cache_dir() / "datasets" / f"{tag}.json"

    @classmethod
    def load(cls, root: str) -> _Cache:
        try:
            data = json.loads(cls.file_for(root).read_bytes())  # JSON is UTF-8 whatever the locale
        except (OSError, ValueError, RecursionError):
            return cls(root, {})  # absent or corrupt: rebuilt, never trusted
        if (
            not isinstance(data, dict)
            or data.get("schema") != CACHE_SCHEMA
            or data.get("version") != 1
            or data.get("root") != root
            or not isinstance(data.get("files"), dict)
        ):
            return cls(root, {})
        return cls(root, data["files"])

    def lookup(self, e: _Entry) -> bool:
        """Whether the cache has a digest for ``e`` (then kept for ``need``): its entry is well
        formed, matches the file's size, mtime, ctime and inode, and was not taken within the
        racy margin of the file's mtime."""
        row = self.entries.get(e.rel)
        if type(row) is not list or len(row) != 6 or row[:4] != e.key:
            return False
        hashed_at, digest = row[4], row[5]
        if type(hashed_at) is not int or hashed_at - e.key[1] < RACY_MARGIN_NS or not _is_hex_digest(digest):
            return False
        self.fresh[e.name] = digest
        return True

    def put(self, e: _Entry, key: list[int], digest: str, hashed_at: int) -> None:
        """Keep ``digest`` for this run, and in the cache under the file's stat ``key`` as it
        was read unless the file is racy (modified within the margin before ``hashed_at``)."""
        with self.lock:
            self.fresh[e.name] = digest
            if hashed_at - key[1] >= RACY_MARGIN_NS:  # a racy entry is never stored
                self.entries[e.rel] = [*key, hashed_at, digest]
                self.changed = True

    def need(self, e: _Entry) -> str:
        return self.fresh[e.name]  # every file was either found in the cache or just read

    def save(self, keep: set[str]) -> None:
        if set(self.entries) - keep:
            self.entries = {k: v for k, v in self.entries.items() if k in keep}
            self.changed = True
        if not self.changed:
            return
        path = self.file_for(self.root)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            record = {"schema": CACHE_SCHEMA, "version": 1, "root": self.root, "files": self.entries}
            tmp.write_bytes(json.dumps(record).encode())  # ASCII: json.dumps escapes the rest
            os.replace(tmp, path)
        except OSError as exc:  # the hash is right without the cache; say once why it is slow
            with contextlib.suppress(OSError):  # e.g. its folder is a file: there is nothing to remove
                tmp.unlink()
            _warn_once(
                f"seedtree: cannot write the dataset hash cache {path} ({exc.strerror or exc}); "
                f"set {ENV_CACHE_DIR} to a writable folder to avoid re-reading unchanged files"
            )


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        print(message, file=sys.stderr)


class _Progress:
    """A one-line progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self, label: str, files: int, total: int, enabled: bool | None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        if enabled is None:
            enabled = total >= PROGRESS_MIN_BYTES and _isatty(self.stream)
        self.enabled = enabled and files > 0
        self.label, self.files, self.total = label, files, total
        self.done_files = self.done_bytes = 0
        self.last = 0.0
        self.lock = threading.Lock()

    def advance(self, nbytes: int) -> None:
        if not self.enabled:
            return
        with self.lock:
            self.done_files += 1
            self.done_bytes += nbytes
            now = time.monotonic()
            if now - self.last >= 0.1 or self.done_files == self.files:
                self.last = now
                self._draw()

    def _draw(self) -> None:
        frac = self.done_bytes / self.total if self.total else self.done_files / self.files
        bar = "#" * int(frac * 30)
        self.stream.write(
            f"\rseedtree: hashing {self.label.removeprefix('dataset ')} [{bar:<30}] "
            f"{self.done_files}/{self.files} files, {self.done_bytes / 2**20:.0f}/"
            f"{self.total / 2**20:.0f} MiB"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.done_files:
            self.stream.write("\n")
            self.stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
