"""``seedtree show`` and ``seedtree diff``: a manifest as readable text, and what differs
between two runs' manifests."""

from __future__ import annotations

import json
from typing import Any

from ..core.codec import path_to_json
from ..runtime.manifest import Manifest

# Keys that differ between any two runs (when, how long, which process); `diff` lists them
# apart and they do not count as a difference.
VOLATILE = ("created", "fields.run.started", "fields.run.finished", "fields.run.duration_s")


def _node_text(node: Any, root_entropy: int) -> str:
    path = json.dumps(path_to_json(node.path))
    if node.entropy != root_entropy:
        return f"{path}  (root {node.entropy})"
    return path


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _rows(prefix: str, data: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows.extend(_rows(name + ".", value))
        else:
            rows.append((name, _value(value)))
    return rows


def _table(rows: list[tuple[str, str]], indent: str = "  ") -> list[str]:
    width = max((len(k) for k, _ in rows), default=0)
    return [f"{indent}{k.ljust(width)}  {v}" for k, v in rows]


def show(manifest: Manifest, source: str = "") -> str:
    """The manifest as text: root, recorded streams, the run, user fields, environment."""
    lines = [f"seedtree manifest {source}".rstrip()]
    lines.append(f"  root      {manifest.root.entropy}  ({hex(manifest.root.entropy)})")
    lines.append(f"  created   {manifest.created or '?'}")
    lines.append(f"  replay    seedtree run --seed {manifest.root.entropy} -- ...")
    lines.append(f"streams ({len(manifest.streams)})")
    rows = [(name, _node_text(node, manifest.root.entropy)) for name, node in sorted(manifest.streams.items())]
    lines.extend(_table(rows) or ["  (none recorded)"])
    fields = dict(manifest.fields)
    run = fields.pop("run", None)
    if isinstance(run, dict):
        lines.append("run")
        lines.extend(_table(_rows("", run)))
    if fields:
        lines.append("fields")
        lines.extend(_table(_rows("", fields)))
    lines.append("environment")
    lines.extend(_table(_rows("", manifest.environment)) or ["  (none)"])
    return "\n".join(lines)


def flatten(manifest: Manifest) -> dict[str, str]:
    """Every leaf of the manifest as ``dotted.key -> text`` (streams by name)."""
    flat = {"root": str(manifest.root.entropy), "created": manifest.created}
    for name, node in manifest.streams.items():
        flat[f"streams.{name}"] = _node_text(node, manifest.root.entropy)
    flat.update(dict(_rows("environment.", manifest.environment)))
    flat.update(dict(_rows("fields.", manifest.fields)))
    return flat


def diff(a: Manifest, b: Manifest) -> tuple[list[str], list[str]]:
    """The differences between two manifests, as ``(significant, volatile)`` text lines;
    volatile ones (timestamps, durations) differ between any two runs."""
    fa, fb = flatten(a), flatten(b)
    significant, volatile = [], []
    for key in sorted(set(fa) | set(fb)):
        va, vb = fa.get(key), fb.get(key)
        if va == vb:
            continue
        line = f"  {key}: {'(absent)' if va is None else va}  ->  {'(absent)' if vb is None else vb}"
        (volatile if key in VOLATILE else significant).append(line)
    return significant, volatile
