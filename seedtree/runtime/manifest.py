"""Provenance: what a run seeded, with what, where; saved as JSON, never pickle.

A manifest holds the full root entropy (as a decimal string: JSON numbers lose bits past
2**53 in many readers), the named streams the run derived, the content hashes of named
datasets (``seedtree.runtime.datasets``), the environment (every installed distribution and
its version, determinism flags, CPU and GPUs, host, git commit with a dirty flag and a hash of
the uncommitted diff) and free-form user fields. Loading checks the schema and every field,
so a corrupt, truncated or foreign file raises ``ManifestError`` with the reason, never a
half-built tree.

``datasets`` is an optional key added within version 1: a seedtree that predates it reads
such a file and ignores it (it never checked data).
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.codec import entropy_from_json, node_check, node_from_json, node_to_json, path_to_json
from ..core.tree import SeedTree
from .datasets import DatasetDigest, hash_datasets
from .state import STATE

__all__ = [
    "Manifest",
    "ManifestError",
    "environment",
    "hardware",
    "manifest",
    "packages",
    "record",
    "recorded",
    "version",
]

SCHEMA = "seedtree.manifest"
VERSION = 1


class ManifestError(ValueError):
    """A manifest file that cannot be read back: the message says why and what to do."""


def record(name: str, node: SeedTree) -> None:
    """Note that the run derived the stream ``node`` under ``name`` (kept for the manifest).
    Recording the same name again with another node keeps the newest."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"record() needs a non-empty str name first, got {name!r}")
    if not isinstance(node, SeedTree):
        raise TypeError(
            f"record({name!r}, ...) needs a SeedTree node, got {type(node).__name__} {node!r}; "
            "record the node itself, e.g. st.record(name, root / 'model')"
        )
    STATE.record(name, node)


def manifest(
    root: SeedTree, *, datasets: Mapping[str, str | os.PathLike[str]] | None = None, **fields: Any
) -> Manifest:
    """A provenance manifest of this process for a run rooted at ``root`` (the root of a
    node given): the same as ``Manifest.collect(root, datasets=..., **fields)``."""
    return Manifest.collect(root, datasets=datasets, **fields)


def recorded() -> dict[str, SeedTree]:
    """The streams recorded so far in this process."""
    return STATE.recorded()


def version(dist: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


_GIT_TIMEOUT_S = 5.0
"""How long one ``git`` call may take; past it the manifest records no git facts (a hung
credential helper or a huge repository must not stall the run)."""


def _git(args: list[str], cwd: str | None) -> subprocess.CompletedProcess[bytes] | None:
    # Not check=True: the callers read a failure from the return code.
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=_GIT_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None


def _git_commit(cwd: str | None = None) -> dict[str, Any] | None:
    """The commit checked out in ``cwd``, whether tracked files differ from it (``dirty``),
    the SHA-256 of ``git diff HEAD`` (binary changes included; None when clean) and how many
    untracked, not ignored files there are (new code that no commit holds)."""
    head = _git(["rev-parse", "HEAD"], cwd)
    if head is None or head.returncode != 0:
        return None
    diff = _git(["diff", "HEAD", "--no-ext-diff", "--no-textconv", "--no-color", "--binary"], cwd)
    untracked = _git(["ls-files", "--others", "--exclude-standard", "-z"], cwd)
    patch = diff.stdout if diff is not None and diff.returncode == 0 else None
    return {
        "commit": head.stdout.decode().strip(),
        "dirty": None if patch is None else bool(patch),
        "diff_sha256": hashlib.sha256(patch).hexdigest() if patch else None,
        "untracked": untracked.stdout.count(b"\0") if untracked is not None and untracked.returncode == 0 else None,
    }


def packages() -> dict[str, str]:
    """Every installed distribution visible to this interpreter and its version, sorted by
    name. Where one name is installed twice on ``sys.path``, the first (the one imported) wins."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and name not in found:
            found[name] = dist.version
    return dict(sorted(found.items(), key=lambda kv: kv[0].lower()))


@functools.lru_cache(maxsize=1)
def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=2, check=False
            )
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or None


@functools.lru_cache(maxsize=1)
def _gpus() -> dict[str, Any] | None:
    """GPU names, count and driver. torch's view when torch is imported and has already
    initialised CUDA (asking torch otherwise could initialise CUDA, which breaks a later
    fork); else ``nvidia-smi`` when it is installed (3 s timeout); else None."""
    cuda = getattr(sys.modules.get("torch"), "cuda", None)
    driver = _nvidia_driver()
    if cuda is not None and cuda.is_initialized():
        names = [cuda.get_device_name(i) for i in range(cuda.device_count())]
        return {"source": "torch", "count": len(names), "names": names, "driver": driver}
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=3,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    rows = [line.rsplit(",", 1) for line in out.stdout.splitlines() if "," in line]
    if out.returncode != 0 or not rows:
        return None
    names = [name.strip() for name, _ in rows]
    return {"source": "nvidia-smi", "count": len(names), "names": names, "driver": rows[0][1].strip() or driver}


def _nvidia_driver() -> str | None:
    try:
        with open("/proc/driver/nvidia/version", "rb") as fh:  # bytes: no locale or codec in play
            words = fh.readline().decode(errors="replace").split()
    except OSError:
        return None
    # "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar ..."
    return next((w for w in words if w[:1].isdigit() and "." in w), None)


def hardware() -> dict[str, Any]:
    """The machine: architecture, CPU model, logical CPUs and those this process may use,
    GPUs (see ``_gpus``) and ``CUDA_VISIBLE_DEVICES``. The CPU model and GPUs are read once
    per process."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    gpus = _gpus()
    return {
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "gpus": None if gpus is None else {**gpus, "names": list(gpus["names"])},
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def environment() -> dict[str, Any]:
    """Facts about this process that bear on reproducibility: interpreter, platform, host,
    key library versions, determinism variables and torch flags (torch only when already
    imported), ``git`` (``_git_commit``), ``hardware`` (``hardware()``) and ``packages``
    (``packages()``: every installed distribution)."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        **{dist: version(dist) for dist in ("numpy", "torch", "seedtree")},
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
    env["hardware"] = hardware()
    env["packages"] = packages()
    return env


@dataclass(frozen=True)
class Manifest:
    """A provenance record. ``root`` rebuilds the run's tree; ``streams`` maps names to
    the nodes the run recorded; ``fields`` holds the user's own entries; ``datasets`` maps
    names to the content hashes of the data the run read."""

    root: SeedTree
    streams: dict[str, SeedTree] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    datasets: dict[str, DatasetDigest] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Refused here, not when the manifest is saved (after a long run).
        if not isinstance(self.root, SeedTree):
            raise TypeError(f"Manifest root must be a SeedTree, got {type(self.root).__name__}")
        if not isinstance(self.streams, dict):
            raise TypeError(f"Manifest streams must be a dict of name -> SeedTree, got {type(self.streams).__name__}")
        for name, node in self.streams.items():
            if not isinstance(name, str) or not isinstance(node, SeedTree):
                raise TypeError(
                    f"Manifest streams must map str names to SeedTree nodes; {name!r} maps to {type(node).__name__}"
                )
        if not all(isinstance(part, dict) for part in (self.environment, self.fields, self.datasets)):
            raise TypeError("Manifest environment, fields and datasets must be dicts")

    @classmethod
    def collect(
        cls, root: SeedTree, *, datasets: Mapping[str, str | os.PathLike[str]] | None = None, **fields: Any
    ) -> Manifest:
        """A manifest of this process now: ``root``, the recorded streams, the environment,
        and the content hash of each ``datasets`` entry (``name: path`` of a file or folder;
        see ``seedtree.runtime.datasets.hash_dataset``). A dataset that cannot be hashed
        raises ValueError (``DatasetError``) naming it and the file."""
        if not isinstance(root, SeedTree):
            raise TypeError(f"Manifest.collect() needs a SeedTree root, got {type(root).__name__}")
        for name, value in fields.items():  # user fields must be JSON values; fail here, not at save time
            try:
                json.dumps(value)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"manifest field {name!r} is not a JSON value ({exc}); convert it first") from None
        digests = hash_datasets(datasets) if datasets is not None else {}
        created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        return cls(root.root, recorded(), environment(), created, dict(fields), digests)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document ``save`` writes. ``checks`` holds a check of every stream's
        entropy and path (the root's is its ``entropy_hex``), so a damaged entry is caught
        on loading."""
        data: dict[str, Any] = {
            "schema": SCHEMA,
            "version": VERSION,
            "root": {"entropy": str(self.root.entropy), "entropy_hex": hex(self.root.entropy)},
            "streams": {name: node_to_json(n) for name, n in self.streams.items()},
            "checks": {"streams": {name: node_check(n) for name, n in self.streams.items()}},
        }
        if self.datasets:
            data["datasets"] = {name: d.to_json() for name, d in self.datasets.items()}
        data.update({"environment": self.environment, "created": self.created, "fields": self.fields})
        return data

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the manifest as JSON (atomically: a crash never leaves half a file)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def from_dict(cls, data: Any, source: str = "manifest") -> Manifest:
        """Validate and rebuild; raises ManifestError naming the first problem."""
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ManifestError(f'{source} is not a seedtree manifest (no "schema": "{SCHEMA}")')
        version = data.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ManifestError(f"{source} has an invalid version {version!r} (expected an int >= 1)")
        if version > VERSION:
            raise ManifestError(
                f"{source} has version {version}, newer than this seedtree reads ({VERSION}); upgrade seedtree"
            )
        root = _root(data.get("root"), source)
        raw_streams = data.get("streams", {})
        if not isinstance(raw_streams, dict):
            raise ManifestError(f"{source}: 'streams' must be a JSON object mapping names to {{entropy, path}}")
        checks = _stream_checks(data.get("checks"), raw_streams, source)
        streams = {name: _stream(name, entry, checks.get(name), source) for name, entry in raw_streams.items()}
        environment = data.get("environment", {})
        fields = data.get("fields", {})
        if not isinstance(environment, dict) or not isinstance(fields, dict):
            raise ManifestError(f"{source}: 'environment' and 'fields' must be JSON objects")
        created = data.get("created", "")
        if not isinstance(created, str):
            raise ManifestError(f"{source}: 'created' must be a timestamp string, got {created!r}")
        return cls(root, streams, environment, created, fields, _datasets(data.get("datasets", {}), source))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Manifest:
        """Read a manifest file; ManifestError if it is missing, not JSON or not valid."""
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise ManifestError(f"cannot read manifest {path}: {exc.strerror or exc}") from None
        try:
            text = raw.decode()  # UTF-8
        except UnicodeDecodeError:
            raise ManifestError(
                f"{path} is not a seedtree manifest: it is not UTF-8 text (a binary or pickle file?)"
            ) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(
                f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                "the file is truncated or corrupt: restore it or record a new run"
            ) from None
        except RecursionError:
            raise ManifestError(f"{path} is not a seedtree manifest: its JSON is nested too deeply") from None
        except ValueError as exc:  # e.g. an integer past Python's 4300-digit conversion limit
            raise ManifestError(f"{path} is not a seedtree manifest: {exc}") from None
        return cls.from_dict(data, source=str(path))

    def log_to_mlflow(self, artifact_file: str = "seedtree-manifest.json") -> str:
        """Log the root, the named streams and the versions as params of the active MLflow
        run (starting one if none is active) and the manifest as an artifact; returns the
        run id.

        Params: ``seedtree.root`` (decimal entropy); ``seedtree.stream.<name>`` whose value is
        the stream's path as JSON (prefixed ``<entropy>:`` when its root differs), with the
        characters MLflow refuses in a key replaced by ``_`` (a clash gets ``-2``, ``-3``...;
        the artifact keeps every name as is); ``seedtree.<library>`` for the versions. Sent in
        batches of 100, MLflow's limit. A key or value over MLflow's length limits raises
        ValueError before anything is logged (never truncated). MLflow params cannot change
        within a run: logging a different manifest into the same run fails with its error.
        """
        import re

        from ..core.optional import require

        mlflow = require("mlflow", "Manifest.log_to_mlflow()")
        params = {"seedtree.root": str(self.root.entropy)}
        for name, node in self.streams.items():
            parts = [re.sub(r"[^\w.\- ]", "_", part) for part in name.split("/")]
            parts = [part if part.strip(".") else part.replace(".", "_") or "_" for part in parts]
            key = base = "seedtree.stream." + "/".join(parts)
            n = 1
            while key in params:
                n += 1
                key = f"{base}-{n}"
            value = json.dumps(path_to_json(node.path))
            params[key] = value if node.entropy == self.root.entropy else f"{node.entropy}:{value}"
        for lib in ("python", "numpy", "torch", "cuda", "cudnn", "seedtree"):
            if self.environment.get(lib) is not None:
                params[f"seedtree.{lib}"] = str(self.environment[lib])
        for key, value in params.items():
            if len(key) > 250 or len(value) > 6000:
                raise ValueError(
                    f"MLflow param {key[:60]!r}... is over MLflow's limits (key 250, value 6000 characters); "
                    "use a shorter stream name (the manifest artifact is not limited)"
                )
        items = list(params.items())
        for start in range(0, len(items), 100):
            mlflow.log_params(dict(items[start : start + 100]))
        mlflow.log_dict(self.to_dict(), artifact_file)
        run_id: str = mlflow.active_run().info.run_id
        return run_id


def _root(entry: Any, source: str) -> SeedTree:
    if not isinstance(entry, dict) or "entropy" not in entry:
        raise ManifestError(f'{source} has no valid "root" entry (expected {{"entropy": "<decimal string>"}})')
    try:
        root = SeedTree(entropy_from_json(entry["entropy"]))
    except ValueError as exc:
        raise ManifestError(f"{source}: the root {exc}") from None
    # Both spellings are written; if they disagree the file was damaged or edited by hand.
    entropy_hex = entry.get("entropy_hex")
    if entropy_hex is not None and entropy_hex != hex(root.entropy):
        raise ManifestError(
            f"{source}: root entropy {entry['entropy']!r} and entropy_hex {entropy_hex!r} disagree; "
            "the file is corrupt: restore it or record a new run"
        )
    return root


def _datasets(raw: Any, source: str) -> dict[str, DatasetDigest]:
    if not isinstance(raw, dict):
        raise ManifestError(f"{source}: 'datasets' must be a JSON object mapping names to dataset hashes")
    datasets = {}
    for name, entry in raw.items():
        try:
            datasets[name] = DatasetDigest.from_json(entry)
        except ValueError as exc:
            raise ManifestError(f"{source}: dataset {name!r} {exc}; the file is damaged or edited by hand") from None
    return datasets


def _stream_checks(raw: Any, streams: dict[str, Any], source: str) -> dict[str, str]:
    # Files written by hand may leave "checks" out; written by seedtree, it covers every stream.
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not isinstance(raw.get("streams", {}), dict):
        raise ManifestError(f"{source}: 'checks' must be an object {{\"streams\": {{name: check}}}}")
    checks = raw.get("streams", {})
    for name in streams:
        if name not in checks:
            raise ManifestError(f"{source}: stream {name!r} has no check; the file was damaged or edited by hand")
    for name, value in checks.items():
        if name not in streams:
            raise ManifestError(f"{source}: a check names the stream {name!r}, which is missing; the file is damaged")
        if not isinstance(value, str):
            raise ManifestError(f"{source}: the check of stream {name!r} must be a string")
    return dict(checks)


def _stream(name: str, entry: Any, check: str | None, source: str) -> SeedTree:
    if not isinstance(entry, dict) or "entropy" not in entry or "path" not in entry:
        raise ManifestError(f"{source}: stream {name!r} must be an object with 'entropy' and 'path', got {entry!r}")
    try:
        node = node_from_json({"entropy": entry["entropy"], "path": entry["path"]})
    except (TypeError, ValueError) as exc:
        raise ManifestError(f"{source}: stream {name!r} is malformed: {exc}") from None
    if check is not None and check != node_check(node):
        raise ManifestError(
            f"{source}: stream {name!r} is damaged: its entropy or path does not match its check "
            f"({check!r}); restore the file or record a new run"
        )
    return node
