"""Compare two runs' outputs: files and folders by content hash, arrays element by element.

``compare(a, b)`` returns the differences between two files or folders, each naming the file
and the first thing that differs in it: for ``.npy`` / ``.npz`` files the first differing
element (by index, compared bit for bit, so ``-0.0`` differs from ``0.0`` and a NaN equals
the same NaN); for torch files (``.pt``, ``.pth``, ``.ckpt``: Lightning checkpoints) the
first differing entry by its key path, tensors element by element, e.g.
``['state_dict']['layer.weight'] element [0, 1]``; for text the first differing line, for
other files the first differing byte. Files whose bytes are identical are equal without
being parsed. Torch files are loaded with ``torch.load(weights_only=True)`` (no code from
the file runs) and are equal when their contents are, whatever their zip encoding; one
that only loads as a full pickle is compared byte by byte, and the message says why.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CHUNK",
    "Difference",
    "TORCH_SUFFIXES",
    "compare",
    "compare_files",
    "first_difference",
    "sha256",
    "tree_digest",
]

CHUNK = 1 << 20
TORCH_SUFFIXES = (".pt", ".pth", ".ckpt")


@dataclass(frozen=True)
class Difference:
    """One output that differs: ``name`` is its path relative to the output root."""

    name: str
    detail: str

    def __str__(self) -> str:
        return f"{self.name}: {self.detail}"


def sha256(path: str | os.PathLike[str]) -> str:
    """The hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_digest(path: str | os.PathLike[str]) -> str:
    """A SHA-256 over a file, or over a folder's relative file names and their contents."""
    path = Path(path)
    if path.is_file():
        return sha256(path)
    digest = hashlib.sha256()
    for name in _files(path):
        digest.update(name.encode("utf-8", "surrogateescape") + b"\0" + bytes.fromhex(sha256(path / name)))
    return digest.hexdigest()


def _files(folder: Path) -> list[str]:
    names: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames.sort()
        rel = Path(dirpath).relative_to(folder)
        names.extend((rel / f).as_posix() for f in filenames)
    return sorted(names)


def compare(a: str | os.PathLike[str], b: str | os.PathLike[str], name: str = "") -> list[Difference]:
    """Every file that differs between ``a`` and ``b`` (files or folders), in name order;
    empty when they hold the same content. ``name`` labels the output in the messages."""
    a, b = Path(a), Path(b)
    label = name or a.name
    if not a.exists() or not b.exists():
        missing = "first" if not a.exists() else "second"
        return [Difference(label, f"missing in the {missing} run")]
    if a.is_dir() != b.is_dir():
        kinds = ["a folder" if p.is_dir() else "a file" for p in (a, b)]
        return [Difference(label, f"{kinds[0]} in one run, {kinds[1]} in the other")]
    if not a.is_dir():
        detail = compare_files(a, b)
        return [] if detail is None else [Difference(label, detail)]
    fa, fb = _files(a), _files(b)
    out = []
    for rel in sorted(set(fa) | set(fb)):
        item = f"{label}/{rel}" if label else rel
        if rel not in fb:
            out.append(Difference(item, "only in the first run"))
        elif rel not in fa:
            out.append(Difference(item, "only in the second run"))
        else:
            detail = compare_files(a / rel, b / rel)
            if detail is not None:
                out.append(Difference(item, detail))
    return out


def compare_files(a: Path, b: Path) -> str | None:
    """None if the two files hold the same content, else what differs first."""
    if a.stat().st_size == b.stat().st_size and sha256(a) == sha256(b):
        return None
    suffix = a.suffix.lower()
    if suffix == ".npy":
        return _npy(a, b)
    if suffix == ".npz":
        return _npz(a, b)
    if suffix in TORCH_SUFFIXES:
        return _torch(a, b)
    return _bytes(a, b)


# -- arrays ------------------------------------------------------------------------------


def _index_text(index: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(i) for i in index) + "]"


def first_difference(a: np.ndarray, b: np.ndarray) -> str | None:
    """None if the arrays have the same dtype, shape and bits, else the first difference:
    ``'element [i, j] differs: x vs y (k of n elements differ)'``."""
    if a.dtype != b.dtype:
        return f"dtype {a.dtype} vs {b.dtype}"
    if a.shape != b.shape:
        return f"shape {a.shape} vs {b.shape}"
    if a.size == 0:
        return None
    if a.dtype.hasobject:
        flat_a, flat_b = a.reshape(-1), b.reshape(-1)
        diff = np.array([x != y for x, y in zip(flat_a, flat_b, strict=True)], dtype=bool)
    else:
        width = a.dtype.itemsize
        bytes_a = np.ascontiguousarray(a).reshape(-1).view(np.uint8).reshape(a.size, width)
        bytes_b = np.ascontiguousarray(b).reshape(-1).view(np.uint8).reshape(b.size, width)
        diff = (bytes_a != bytes_b).any(axis=1)
    count = int(diff.sum())
    if count == 0:
        return None
    first = int(np.argmax(diff))
    index = tuple(int(i) for i in np.unravel_index(first, a.shape)) if a.ndim else ()
    va, vb = a.reshape(-1)[first], b.reshape(-1)[first]
    va, vb = (v.item() if hasattr(v, "item") else v for v in (va, vb))
    return f"element {_index_text(index)} differs: {va!r} vs {vb!r} ({count} of {a.size} elements differ)"


def _npy(a: Path, b: Path) -> str:
    try:
        xa, xb = np.load(a, allow_pickle=False), np.load(b, allow_pickle=False)
    except (ValueError, OSError) as exc:
        return f"{_bytes(a, b)} (not readable as .npy: {exc})"
    detail = first_difference(xa, xb)
    return detail or "same elements, different file encoding (e.g. memory order)"


def _npz(a: Path, b: Path) -> str:
    try:
        with np.load(a, allow_pickle=False) as za, np.load(b, allow_pickle=False) as zb:
            ka, kb = set(za.files), set(zb.files)
            if ka != kb:
                return f"arrays {sorted(ka - kb)} only in the first run, {sorted(kb - ka)} only in the second"
            for key in sorted(ka):
                detail = first_difference(za[key], zb[key])
                if detail is not None:
                    return f"array {key!r}: {detail}"
    except (ValueError, OSError) as exc:
        return f"{_bytes(a, b)} (not readable as .npz: {exc})"
    return "same arrays, different file encoding (e.g. compression or member order)"


def _torch(a: Path, b: Path) -> str | None:
    from ..core.optional import require

    torch = require("torch", "comparing .pt files")
    try:
        xa = torch.load(a, map_location="cpu", weights_only=True)
        xb = torch.load(b, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for files it refuses (pickles, zips)
        return f"{_bytes(a, b)} (not loadable with torch.load(weights_only=True): {type(exc).__name__})"
    return _walk(xa, xb, "", torch)  # equal contents in another zip encoding are equal


def _walk(a: Any, b: Any, where: str, torch: Any) -> str | None:
    at = f" at {where}" if where else ""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.layout != torch.strided or b.layout != torch.strided or a.is_quantized or b.is_quantized:
            return None if a.dtype == b.dtype and torch.equal(a, b) else f"tensor{at} differs"
        if a.dtype != b.dtype or a.shape != b.shape:
            return f"tensor{at}: " + (
                f"dtype {a.dtype} vs {b.dtype}" if a.dtype != b.dtype else f"shape {tuple(a.shape)} vs {tuple(b.shape)}"
            )
        flat_a, flat_b = a.detach().reshape(-1).contiguous(), b.detach().reshape(-1).contiguous()
        width = flat_a.element_size()
        bytes_a = flat_a.view(torch.uint8).numpy().reshape(flat_a.numel(), width)
        bytes_b = flat_b.view(torch.uint8).numpy().reshape(flat_b.numel(), width)
        diff = (bytes_a != bytes_b).any(axis=1)
        count = int(diff.sum())
        if count == 0:
            return None
        first = int(np.argmax(diff))
        index = tuple(int(i) for i in np.unravel_index(first, tuple(a.shape))) if a.dim() else ()
        return (
            f"tensor{at} element {_index_text(index)} differs: {flat_a[first].item()!r} vs "
            f"{flat_b[first].item()!r} ({count} of {a.numel()} elements differ)"
        )
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            only_a, only_b = sorted(map(str, set(a) - set(b))), sorted(map(str, set(b) - set(a)))
            parts = [f"{keys} only in the {run} run" for keys, run in ((only_a, "first"), (only_b, "second")) if keys]
            return f"keys{at}: " + ("; ".join(parts) or "the same keys in another order")
        for key in a:
            found = _walk(a[key], b[key], f"{where}[{key!r}]", torch)
            if found:
                return found
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f"length{at}: {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _walk(x, y, f"{where}[{i}]", torch)
            if found:
                return found
        return None
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        found = first_difference(a, b)
        return None if found is None else f"array{at}: {found}"
    if type(a) is not type(b):
        return f"value{at}: {a!r} vs {b!r} ({type(a).__name__} vs {type(b).__name__})"
    if isinstance(a, float) and a != a and b != b:  # the same NaN in both runs
        return None
    if a != b:
        return f"value{at}: {_clip(repr(a))} vs {_clip(repr(b))}"
    return None


# -- plain files -------------------------------------------------------------------------


def _bytes(a: Path, b: Path) -> str:
    """The first differing byte, as a line of text when the files are text there."""
    offset, lines = 0, 0
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(CHUNK), fb.read(CHUNK)
            if ca == cb:
                if not ca:
                    return "same bytes"  # unreachable for files whose hashes differ
                offset += len(ca)
                lines += ca.count(b"\n")
                continue
            n = min(len(ca), len(cb))
            i = next((k for k in range(n) if ca[k] != cb[k]), n)
            offset += i
            lines += ca[:i].count(b"\n")
            break
    size_a, size_b = a.stat().st_size, b.stat().st_size
    line_a, line_b = _line_at(a, offset), _line_at(b, offset)
    if line_a is not None and line_b is not None:
        return f"line {lines + 1} differs: {_clip(line_a)!r} vs {_clip(line_b)!r}"
    if offset >= min(size_a, size_b):
        return f"one run's file is longer: identical for {offset} bytes, then {size_a} vs {size_b} bytes in all"
    return f"byte {offset} differs (files of {size_a} and {size_b} bytes)"


def _line_at(path: Path, offset: int) -> str | None:
    """The text line holding byte ``offset`` (None if it is not UTF-8 text)."""
    with open(path, "rb") as fh:
        start = max(0, offset - 4096)
        fh.seek(start)
        block = fh.read(8192)
    rel = offset - start
    lo = block.rfind(b"\n", 0, rel) + 1
    hi = block.find(b"\n", rel)
    raw = block[lo : hi if hi >= 0 else len(block)]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(ord(c) < 32 and c not in "\t\r" for c in text):
        return None
    return text


def _clip(text: str, width: int = 100) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
