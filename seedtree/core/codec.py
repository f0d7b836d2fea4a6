"""The one node ⇄ JSON codec: manifests, captured RNG states, loader states and the
``seedtree run`` hand-over all write nodes through it.

A node is written as ``{"entropy": "<decimal>", "path": [...]}``: the entropy as a decimal
string (JSON numbers lose bits past 2**53 in many readers), int and str keys as
themselves, bytes keys as ``{"bytes": "<hex>"}``. With ``check=True`` a ``"check"`` field
is added: 16 hex digits of BLAKE2b over the entropy and the path, so a flipped digit in
either is caught on reading (a file edited by hand may leave the field out).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .keys import Key, check_key
from .tree import SeedTree

__all__ = [
    "CodecError",
    "entropy_from_json",
    "node_check",
    "node_from_json",
    "node_to_json",
    "path_from_json",
    "path_to_json",
]


class CodecError(ValueError):
    """A JSON value that is not a well-formed node; the message names what is wrong."""


def path_to_json(path: tuple[Key, ...]) -> list[Any]:
    """A path as JSON values: ints and strs as themselves, bytes as ``{"bytes": hex}``."""
    return [{"bytes": k.hex()} if isinstance(k, bytes) else k for k in path]


def path_from_json(items: object) -> tuple[Key, ...]:
    """Inverse of ``path_to_json``; every key is validated like any other path key."""
    if not isinstance(items, list):
        raise CodecError(f"a path must be a JSON list, got {type(items).__name__}")
    keys = []
    for i, k in enumerate(items):
        if isinstance(k, dict):
            if set(k) != {"bytes"} or not isinstance(k["bytes"], str):
                raise CodecError(f"path key #{i} {k!r} is not a key (expected int, str or {{'bytes': hex}})")
            try:
                k = bytes.fromhex(k["bytes"])
            except ValueError:
                raise CodecError(f"path key #{i} has bytes that are not hex: {k['bytes']!r}") from None
        keys.append(check_key(k, i))  # TypeError/ValueError naming the key, as for any path
    return tuple(keys)


def entropy_from_json(value: object) -> int:
    """Entropy written as a decimal string (a plain non-negative JSON int is accepted too,
    for files written by hand)."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise CodecError(f"entropy must be a non-negative decimal string, got {value!r}")


def node_check(node: SeedTree) -> str:
    """16 hex digits of BLAKE2b over the node's entropy and JSON path: a check that a
    node read back is the node written."""
    # The text is ASCII (json's default ensure_ascii=True escapes every other character):
    # the check depends on it, and a test pins a non-ASCII key's check.
    text = json.dumps([str(node.entropy), path_to_json(node.path)], separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=8, person=b"seedtree:node").hexdigest()


def node_to_json(node: SeedTree, check: bool = False) -> dict[str, Any]:
    """``{"entropy": "<decimal>", "path": [...]}``, plus ``"check"`` with ``check=True``."""
    data: dict[str, Any] = {"entropy": str(node.entropy), "path": path_to_json(node.path)}
    if check:
        data["check"] = node_check(node)
    return data


def node_from_json(data: object, check: str | None = None) -> SeedTree:
    """Inverse of ``node_to_json``. ``check`` (or a ``"check"`` field in ``data``) must then
    match the node read. Raises ValueError (``CodecError``, or TypeError/ValueError from
    key validation) naming the problem: not an object, a missing or malformed field, or a
    check that does not match (a damaged entry)."""
    if not isinstance(data, dict) or "entropy" not in data or "path" not in data:
        raise CodecError(f"a node must be an object with 'entropy' and 'path', got {_short(data)}")
    node = SeedTree(entropy_from_json(data["entropy"]), path_from_json(data["path"]))
    expected = data.get("check", check)
    if expected is not None and expected != node_check(node):
        raise CodecError(f"its check {expected!r} does not match its entropy and path: the entry was damaged or edited")
    return node


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
