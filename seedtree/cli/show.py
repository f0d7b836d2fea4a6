"""``seedtree show`` and ``seedtree diff``: a manifest as readable text, and what differs
between two runs' manifests, the most likely causes of a different result first."""

from __future__ import annotations

import json
from typing import Any

from ..core.codec import path_to_json
from ..runtime.manifest import Manifest

__all__ = ["VOLATILE", "diff", "flatten", "show"]

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


def _wrapped(items: list[str], indent: str = "  ", width: int = 100) -> list[str]:
    lines, line = [], indent
    for item in items:
        if len(line) + len(item) + 2 > width and line.strip():
            lines.append(line.rstrip().rstrip(","))
            line = indent
        line += item + ", "
    if line.strip():
        lines.append(line.rstrip().rstrip(","))
    return lines


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
    if manifest.datasets:
        lines.append(f"datasets ({len(manifest.datasets)})")
        for name, d in sorted(manifest.datasets.items()):
            lines.append(f"  {name}  {d.path}  sha256 {d.sha256}  ({d.files} files, {d.links} links, {d.bytes} bytes)")
            if d.previous is not None:
                lines.append(f"  {' ' * len(name)}  changed: the replayed manifest recorded sha256 {d.previous}")
    environment = dict(manifest.environment)
    packages = environment.pop("packages", None)
    lines.append("environment")
    lines.extend(_table(_rows("", environment)) or ["  (none)"])
    if isinstance(packages, dict):
        lines.append(f"packages ({len(packages)})")
        lines.extend(_wrapped([f"{k} {v}" for k, v in packages.items()]))
    return "\n".join(lines)


def flatten(manifest: Manifest) -> dict[str, str]:
    """Every leaf of the manifest as ``dotted.key -> text`` (streams and datasets by name)."""
    flat = {"root": str(manifest.root.entropy), "created": manifest.created}
    for name, node in manifest.streams.items():
        flat[f"streams.{name}"] = _node_text(node, manifest.root.entropy)
    for name, d in manifest.datasets.items():
        flat.update({f"datasets.{name}.{k}": _value(v) for k, v in d.to_json().items()})
    flat.update(dict(_rows("environment.", manifest.environment)))
    flat.update(dict(_rows("fields.", manifest.fields)))
    return flat


# How likely a difference is to explain a different result, most likely first: the seeds, the
# data, the code and the command, the numerical libraries and determinism settings, then
# other packages, the interpreter, the hardware, and last the rest (user fields, host...).
_RANKS: tuple[tuple[str, int], ...] = (
    ("root", 0),
    ("streams.", 0),
    ("datasets.", 1),
    ("environment.git.", 2),
    ("fields.run.command", 2),
    ("environment.PYTHONHASHSEED", 4),
    ("fields.run.PYTHONHASHSEED", 4),
    ("fields.run.hash_seed_from", 4),
    ("environment.CUBLAS_WORKSPACE_CONFIG", 4),
    ("environment.deterministic_algorithms", 4),
    ("environment.cudnn", 4),
    ("environment.cudnn_deterministic", 4),
    ("environment.cudnn_benchmark", 4),
    ("environment.cuda", 4),
    ("environment.python", 6),
    ("environment.implementation", 6),
    ("environment.platform", 7),
    ("environment.hardware.", 7),
    ("environment.host", 7),
)
# Libraries whose version most often changes numbers for the same seed, listed first.
_NUMERIC = (
    "numpy",
    "torch",
    "scipy",
    "scikit-learn",
    "jax",
    "jaxlib",
    "tensorflow",
    "pandas",
    "albumentations",
    "torchvision",
    "opencv-python",
    "opencv-python-headless",
    "pillow",
    "lightning",
    "accelerate",
    "transformers",
    "nvidia-cudnn-cu12",
    "nvidia-cublas-cu12",
    "triton",
)


def _rank(key: str) -> int:
    for prefix, rank in _RANKS:
        if key == prefix or key.startswith(prefix if prefix.endswith(".") else prefix + "."):
            return rank
    return 8


def _dataset_lines(a: Manifest, b: Manifest) -> list[str]:
    lines = []
    for name in sorted(set(a.datasets) | set(b.datasets)):
        da, db = a.datasets.get(name), b.datasets.get(name)
        if da is None or db is None:
            which, d = ("added", db) if da is None else ("removed", da)
            assert d is not None
            lines.append(f"  data: dataset {name!r} {which} ({d.path}, sha256 {d.sha256})")
        elif da.sha256 != db.sha256:
            lines.append(
                f"  data: dataset {name!r} changed: sha256 {da.sha256}  ->  {db.sha256} "
                f"({da.files} -> {db.files} files, {da.bytes} -> {db.bytes} bytes)"
            )
        elif da.path != db.path:
            lines.append(f"  data: dataset {name!r} moved (same content): {da.path}  ->  {db.path}")
    return lines


def _package_lines(a: dict[str, Any], b: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(changed, added/removed) package lines, the numerical libraries first."""
    lower_a = {k.lower(): (k, v) for k, v in a.items()}
    lower_b = {k.lower(): (k, v) for k, v in b.items()}

    def order(name: str) -> tuple[int, str]:
        return (_NUMERIC.index(name) if name in _NUMERIC else len(_NUMERIC), name)

    changed = [
        f"{lower_b[n][0]} {lower_a[n][1]} -> {lower_b[n][1]}"
        for n in sorted(set(lower_a) & set(lower_b), key=order)
        if lower_a[n][1] != lower_b[n][1]
    ]
    added = [f"{lower_b[n][0]} {lower_b[n][1]}" for n in sorted(set(lower_b) - set(lower_a), key=order)]
    removed = [f"{lower_a[n][0]} {lower_a[n][1]}" for n in sorted(set(lower_a) - set(lower_b), key=order)]
    first = [f"  packages: {len(changed)} changed: {', '.join(changed)}"] if changed else []
    rest = [f"  packages: {len(added)} added: {', '.join(added)}"] if added else []
    rest += [f"  packages: {len(removed)} removed: {', '.join(removed)}"] if removed else []
    return first, rest


def diff(a: Manifest, b: Manifest) -> tuple[list[str], list[str]]:
    """The differences between two manifests, as ``(significant, volatile)`` text lines;
    volatile ones (timestamps, durations) differ between any two runs.

    Significant lines come most likely cause first: seeds (root, streams), data (datasets
    added, removed or changed), code (git commit, dirty diff, the command), changed packages
    (numerical libraries first), determinism settings, added and removed packages, the
    interpreter, the hardware (CPU, GPUs, driver, host), then the rest."""
    fa, fb = flatten(a), flatten(b)
    packages_a, packages_b = a.environment.get("packages"), b.environment.get("packages")
    both_packages = isinstance(packages_a, dict) and isinstance(packages_b, dict)
    ranked: list[tuple[int, str]] = [(1, line) for line in _dataset_lines(a, b)]
    if both_packages:
        assert isinstance(packages_a, dict) and isinstance(packages_b, dict)
        changed, rest = _package_lines(packages_a, packages_b)
        ranked += [(3, line) for line in changed] + [(5, line) for line in rest]
    volatile = []
    for key in sorted(set(fa) | set(fb)):
        va, vb = fa.get(key), fb.get(key)
        if va == vb or key.startswith("datasets."):
            continue
        if both_packages and (key.startswith("environment.packages.") or key in _DUPLICATED_BY_PACKAGES):
            continue
        line = f"  {key}: {'(absent)' if va is None else va}  ->  {'(absent)' if vb is None else vb}"
        if len(line) > FOLD_AT:
            line = _folded(key, va, vb)
        if key in VOLATILE:
            volatile.append(line)
        else:
            ranked.append((_rank(key), line))
    ranked.sort(key=lambda item: item[0])  # stable: within a rank, the order above
    return [line for _, line in ranked], volatile


FOLD_AT = 160
"""A difference line longer than this (a long list, a long text) is folded: sizes and the
first element that differs, each side cut to a readable length."""


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else f"{text[: width - 15]}...({len(text)} chars)"


def _folded(key: str, va: str | None, vb: str | None) -> str:
    """One short line for a long difference: for two lists, their lengths and the first
    index where they differ; else both values cut to a readable length."""
    try:
        la, lb = (json.loads(v) if v is not None else None for v in (va, vb))
    except json.JSONDecodeError:
        la = lb = None
    if isinstance(la, list) and isinstance(lb, list):
        first = next((i for i, (x, y) in enumerate(zip(la, lb, strict=False)) if x != y), min(len(la), len(lb)))
        x = json.dumps(la[first]) if first < len(la) else "(end)"
        y = json.dumps(lb[first]) if first < len(lb) else "(end)"
        return (
            f"  {key}: list of {len(la)} -> list of {len(lb)}; first difference at [{first}]: "
            f"{_clip(x)}  ->  {_clip(y)}"
        )
    return f"  {key}: {_clip(va or '(absent)')}  ->  {_clip(vb or '(absent)')}"


# The top-level version entries repeat what the full package list says.
_DUPLICATED_BY_PACKAGES = ("environment.numpy", "environment.torch", "environment.seedtree")
