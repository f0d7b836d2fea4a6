"""Provenance: what a run seeded, with what, where; saved as JSON, never pickle.

A manifest holds the full root entropy (as a decimal string: JSON numbers lose bits past
2**53 in many readers), the named streams the run derived, library versions, determinism
flags, host, git commit and free-form user fields. Loading checks the schema and every
field, so a corrupt, truncated or foreign file raises ``ManifestError`` with the reason,
never a half-built tree.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .keys import path_from_json, path_to_json
from .tree import SeedTree

SCHEMA = "seedtree.manifest"
VERSION = 1

_ledger: dict[str, SeedTree] = {}
_ledger_lock = threading.Lock()


class ManifestError(ValueError):
    """A manifest file that cannot be read back: the message says why and what to do."""


def record(name: str, node: SeedTree) -> None:
    """Note that the run derived the stream ``node`` under ``name`` (kept for the manifest).
    Recording the same name again with another node keeps the newest."""
    with _ledger_lock:
        _ledger[name] = node


def recorded() -> dict[str, SeedTree]:
    """The streams recorded so far in this process."""
    with _ledger_lock:
        return dict(_ledger)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_commit(cwd: str | None = None) -> dict[str, Any] | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=False
        )
        if head.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, timeout=5, check=False,
        )
        return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict[str, Any]:
    """Facts about this process that bear on reproducibility."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "numpy": _version("numpy"),
        "torch": _version("torch"),
        "seedtree": _version("seedtree"),
        "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED"),
        "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "git": _git_commit(),
    }
    torch = sys.modules.get("torch")  # never import torch just to describe it
    if torch is not None:
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        env["deterministic_algorithms"] = torch.are_deterministic_algorithms_enabled()
        env["cudnn_deterministic"] = torch.backends.cudnn.deterministic
        env["cudnn_benchmark"] = torch.backends.cudnn.benchmark
    return env


@dataclass(frozen=True)
class Manifest:
    """A provenance record. ``root`` rebuilds the run's tree; ``streams`` maps names to
    the nodes the run recorded; ``fields`` holds the user's own entries."""

    root: SeedTree
    streams: dict[str, SeedTree] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    fields: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def collect(cls, root: SeedTree, **fields: Any) -> Manifest:
        """A manifest of this process now: ``root``, the recorded streams, the environment."""
        json.dumps(fields)  # user fields must be JSON values; fail here, not at save time
        created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        return cls(root.root if root.path else root, recorded(), environment(), created, dict(fields))

    def to_dict(self) -> dict[str, Any]:
        def node(n: SeedTree) -> dict[str, Any]:
            return {"entropy": str(n.entropy), "path": path_to_json(n.path)}

        return {
            "schema": SCHEMA,
            "version": VERSION,
            "root": {"entropy": str(self.root.entropy), "entropy_hex": hex(self.root.entropy)},
            "streams": {name: node(n) for name, n in self.streams.items()},
            "environment": self.environment,
            "created": self.created,
            "fields": self.fields,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the manifest as JSON (atomically: a crash never leaves half a file)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def from_dict(cls, data: Any, source: str = "manifest") -> Manifest:
        """Validate and rebuild; raises ManifestError naming the first problem."""
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ManifestError(f"{source} is not a seedtree manifest (no \"schema\": \"{SCHEMA}\")")
        version = data.get("version")
        if not isinstance(version, int) or version < 1:
            raise ManifestError(f"{source} has an invalid version {version!r}")
        if version > VERSION:
            raise ManifestError(
                f"{source} has version {version}, newer than this seedtree reads ({VERSION}); upgrade seedtree"
            )
        try:
            root = SeedTree(_entropy(data["root"]["entropy"]))
            streams = {
                str(name): SeedTree(_entropy(entry["entropy"]), path_from_json(entry["path"]))
                for name, entry in data.get("streams", {}).items()
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{source} has a malformed root or stream entry: {exc}") from None
        environment = data.get("environment", {})
        fields = data.get("fields", {})
        if not isinstance(environment, dict) or not isinstance(fields, dict):
            raise ManifestError(f"{source}: 'environment' and 'fields' must be JSON objects")
        return cls(root, streams, environment, str(data.get("created", "")), fields)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Manifest:
        """Read a manifest file; ManifestError if it is missing, not JSON or not valid."""
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ManifestError(f"cannot read manifest {path}: {exc.strerror or exc}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(
                f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                "the file is truncated or corrupt: restore it or record a new run"
            ) from None
        return cls.from_dict(data, source=str(path))

    def log_to_mlflow(self, artifact_file: str = "seedtree-manifest.json") -> None:
        """Log the root, the named streams and the versions as params of the active MLflow
        run (starting one if none is active) and the manifest as an artifact."""
        from ._optional import require

        mlflow = require("mlflow", "Manifest.log_to_mlflow()")
        params = {"seedtree.root": str(self.root.entropy)}
        for name, node in self.streams.items():
            params[f"seedtree.stream.{name}"] = f"{node.entropy}:{node.name}"
        for key in ("python", "numpy", "torch", "cuda", "cudnn"):
            if self.environment.get(key) is not None:
                params[f"seedtree.{key}"] = str(self.environment[key])
        mlflow.log_params(params)
        mlflow.log_dict(self.to_dict(), artifact_file)


def _entropy(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"entropy must be a decimal string, got {value!r}")
    entropy = int(value)
    if entropy < 0:
        raise ValueError(f"entropy must be non-negative, got {entropy}")
    return entropy
