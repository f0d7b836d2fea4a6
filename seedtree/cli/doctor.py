"""``seedtree doctor``: what in this environment will break reproducibility.

``diagnose()`` returns a JSON-ready report (schema ``seedtree.doctor``, version 1)::

    {
      "schema": "seedtree.doctor", "version": 1, "seedtree": "0.1.0",
      "checks": [                       # one entry per setting, in a fixed order
        {"name": "PYTHONHASHSEED",      # str, unique
         "value": null,                 # any JSON value: what this environment has
         "status": "warn",              # "ok" | "warn" | "info"
         "advice": "..."}               # str: what it means and what to do ("" when ok)
      ],
      "warnings": 1,                    # number of checks with status "warn"
      "versions": {"python": "3.11.7", "numpy": "2.4.6", "torch": null, ...},  # null: not installed
      "probe": null                     # or, with probe=True:
        # {"ok": bool,                  # every seedtree-managed layout drew distinct streams
        #  "audits": [{"target": str, "seedtree": bool, "ok": bool, "workers": int,
        #              "draws": int, "duplicates": [{"library", "value", "seen_by"}],
        #              "error": str | null}]}
    }

The probe runs ``seedtree.audit`` on a small process pool and a DataLoader with two workers,
each as plain code would set it up and as seedtree's integration does.
Duplicates in a plain layout are warnings about this environment's defaults; duplicates in
a seedtree layout are a bug and make ``probe.ok`` false.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import multiprocessing
import os
import platform
import sys
from typing import Any

from ..core.tree import SeedTree
from ..runtime.manifest import version as _version
from ..runtime.seeding import ENV_ENTROPY, root_from_env

__all__ = [
    "CUBLAS_OK",
    "DISTRIBUTIONS",
    "SCHEMA",
    "THREAD_VARS",
    "VERSION",
    "checks",
    "diagnose",
    "render",
    "run_probe",
]

SCHEMA = "seedtree.doctor"
VERSION = 1
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
DISTRIBUTIONS = (
    "numpy",
    "seedtree",
    "torch",
    "scipy",
    "joblib",
    "dask",
    "distributed",
    "matplotlib",
    "mlflow-skinny",
    "mlflow",
)
CUBLAS_OK = (":4096:8", ":16:8")


def _check(name: str, value: Any, status: str, advice: str = "") -> dict[str, Any]:
    return {"name": name, "value": value, "status": status, "advice": advice}


def _torch() -> Any:
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return torch


def checks() -> list[dict[str, Any]]:
    """The settings that bear on reproducibility, each with a verdict and advice."""
    out = []
    env = os.environ
    hashseed = env.get("PYTHONHASHSEED")
    if hashseed in (None, "", "random"):
        out.append(
            _check(
                "PYTHONHASHSEED",
                hashseed,
                "warn",
                "str/bytes hashes and set order change every run; it only works when set before "
                "Python starts: launch with `seedtree run -- python ...` (sets it from the root)",
            )
        )
    elif hashseed.isdigit() and int(hashseed) < 2**32:
        out.append(_check("PYTHONHASHSEED", hashseed, "ok", "hash randomisation off" if hashseed == "0" else ""))
    else:
        out.append(
            _check(
                "PYTHONHASHSEED",
                hashseed,
                "warn",
                "Python accepts 'random' or an integer in [0, 4294967295]; fix the value",
            )
        )

    entropy = env.get(ENV_ENTROPY)
    try:
        handed = root_from_env()
    except ValueError as exc:
        out.append(_check(ENV_ENTROPY, entropy, "warn", str(exc)))
    else:
        out.append(
            _check(
                ENV_ENTROPY,
                entropy,
                "info",
                f"seed_everything() will use root {handed.entropy}"
                if handed is not None
                else "not set: seed_everything() without a seed draws fresh entropy (kept in the manifest)",
            )
        )

    torch = _torch()
    cuda = bool(torch is not None and torch.cuda.is_available())
    if torch is None:
        out.append(_check("torch", None, "info", "torch not installed: no torch flags to check"))
    else:
        det = torch.are_deterministic_algorithms_enabled()
        out.append(
            _check(
                "torch.use_deterministic_algorithms",
                det,
                "ok" if det else "info",
                ""
                if det
                else "off by default: call seedtree.deterministic() in the program "
                "(some CUDA kernels are non-deterministic)",
            )
        )
        bench = bool(torch.backends.cudnn.benchmark)
        out.append(
            _check(
                "torch.backends.cudnn.benchmark",
                bench,
                "warn" if bench else "ok",
                "cuDNN picks kernels by timing: results can differ run to run; set it False" if bench else "",
            )
        )
        cudnn_det = bool(torch.backends.cudnn.deterministic)
        out.append(
            _check(
                "torch.backends.cudnn.deterministic",
                cudnn_det,
                "ok" if cudnn_det or not cuda else "info",
                ""
                if cudnn_det
                else ("no CUDA here" if not cuda else "off by default: seedtree.deterministic() turns it on"),
            )
        )
        devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else []
        out.append(
            _check(
                "CUDA devices",
                devices,
                "info",
                f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}" if cuda else "",
            )
        )

    cublas = env.get("CUBLAS_WORKSPACE_CONFIG")
    if cublas in CUBLAS_OK:
        out.append(_check("CUBLAS_WORKSPACE_CONFIG", cublas, "ok"))
    elif cuda:
        out.append(
            _check(
                "CUBLAS_WORKSPACE_CONFIG",
                cublas,
                "warn",
                "deterministic cuBLAS needs ':4096:8' or ':16:8' (seedtree.deterministic() sets it)",
            )
        )
    else:
        out.append(_check("CUBLAS_WORKSPACE_CONFIG", cublas, "info", "only matters on CUDA; none here"))

    threads = {name: env.get(name) for name in THREAD_VARS}
    if torch is not None:
        threads["torch.get_num_threads()"] = torch.get_num_threads()
    pinned = threads["OMP_NUM_THREADS"] is not None
    out.append(
        _check(
            "thread counts",
            threads,
            "ok" if pinned else "warn",
            ""
            if pinned
            else f"OMP_NUM_THREADS unset: BLAS/OpenMP use the core count ({os.cpu_count()} here), and "
            "float reductions can round differently on machines with other core counts; "
            "set OMP_NUM_THREADS (and MKL/OPENBLAS_NUM_THREADS) to pin it",
        )
    )

    method = multiprocessing.get_start_method(allow_none=True)
    default = multiprocessing.get_context().get_start_method()
    out.append(
        _check(
            "multiprocessing start method",
            method or default,
            "info",
            "forked workers start with the parent's RNG state: plain code draws the same numbers "
            "in every worker (doctor --probe shows it); seedtree.seed_everything() reseeds after "
            "fork and seedtree's pool/joblib/torch integrations bind each worker"
            if (method or default) == "fork"
            else "fresh interpreters per worker: each draws OS entropy unless seeded, so runs differ "
            "unless workers are seeded from the tree (seedtree.pool.initializer, keyed_map)",
        )
    )

    if importlib.util.find_spec("distributed") is not None:
        out.append(
            _check(
                "Dask global RNGs",
                "bound only on one-thread worker processes",
                "info",
                "seedtree.dask binds np.random, random and torch per task only where the task has its "
                "process to itself: a worker with one thread (LocalCluster(threads_per_worker=1), "
                "`dask worker --nthreads 1`) in its own process. On multi-threaded workers (Dask's "
                "default) and LocalCluster(processes=False) they cannot be bound: there only "
                "seedtree.rng() inside tasks is reproducible",
            )
        )

    out.append(
        _check("python", sys.version.split()[0], "info", f"{platform.python_implementation()} on {platform.platform()}")
    )
    return out


def run_probe() -> dict[str, Any]:
    """Audit small real worker layouts for duplicated streams (see the module docstring)."""
    from ..integrations import audit

    tree = SeedTree(0x5EED)
    runs: list[tuple[str, bool, Any]] = []

    def plain_pool() -> Any:
        with multiprocessing.Pool(2) as pool:
            return audit.audit_pool(pool)

    def seeded_pool() -> Any:
        from ..integrations.pool import initializer

        with multiprocessing.Pool(2, initializer=initializer(tree / "pool")) as pool:
            return audit.audit_pool(pool)

    runs += [
        ("multiprocessing.Pool(2)", False, plain_pool),
        ("multiprocessing.Pool(2, initializer=seedtree.pool.initializer(tree))", True, seeded_pool),
    ]
    if importlib.util.find_spec("torch") is not None:

        def plain_loader() -> Any:
            from torch.utils.data import DataLoader

            return audit.audit_loader(lambda ds: DataLoader(ds, batch_size=4, num_workers=2))  # type: ignore[arg-type]

        def seeded_loader() -> Any:
            from ..integrations.torch import loader

            return audit.audit_loader(lambda ds: loader(ds, tree / "loader", batch_size=4, num_workers=2))

        runs += [
            ("DataLoader(num_workers=2)", False, plain_loader),
            ("seedtree.torch.loader(num_workers=2)", True, seeded_loader),
        ]
    audits = []
    for target, managed, fn in runs:
        entry: dict[str, Any] = {
            "target": target,
            "seedtree": managed,
            "ok": False,
            "workers": 0,
            "draws": 0,
            "duplicates": [],
            "error": None,
        }
        try:
            result = fn()
        except Exception as exc:  # a layout that cannot run here is reported, not fatal
            entry["error"] = f"{type(exc).__name__}: {exc}"
        else:
            entry.update({k: v for k, v in result.to_dict().items() if k != "target"})
        audits.append(entry)
    ok = all(a["ok"] for a in audits if a["seedtree"])
    return {"ok": ok, "audits": audits}


def diagnose(probe: bool = False) -> dict[str, Any]:
    """The doctor's report (schema in the module docstring); ``probe`` adds the worker audit."""
    found = checks()
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "version": VERSION,
        "seedtree": _version("seedtree"),
        "checks": found,
        "warnings": 0,
        "versions": {"python": platform.python_version(), **{d: _version(d) for d in DISTRIBUTIONS}},
        "probe": None,
    }
    if probe:
        report["probe"] = run_probe()
        for entry in report["probe"]["audits"]:
            if not entry["seedtree"] and entry["duplicates"]:
                libs = sorted({d["library"] for d in entry["duplicates"]})
                found.append(
                    _check(
                        f"probe: {entry['target']}",
                        "duplicated streams",
                        "warn",
                        f"workers drew identical {', '.join(libs)} numbers; seed them from a tree "
                        "(seedtree.pool.initializer, seedtree.joblib, seedtree.torch)",
                    )
                )
    report["warnings"] = sum(1 for c in found if c["status"] == "warn")
    return report


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v if v is not None else 'unset'}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return "unset" if value is None else str(value)


def render(report: dict[str, Any]) -> str:
    """The report as a readable table."""
    lines = [f"seedtree doctor (seedtree {report['seedtree']}, python {report['versions']['python']})"]
    width = max(len(c["name"]) for c in report["checks"])
    for c in report["checks"]:
        lines.append(f"  {c['status'].upper():4}  {c['name'].ljust(width)}  {_text(c['value'])}")
        if c["advice"]:
            lines.append(f"        {'':{width}}  -> {c['advice']}")
    versions = ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v is not None)
    lines.append(f"versions: {versions}")
    if report["probe"] is not None:
        lines.append("probe (duplicated-stream audit):")
        for a in report["probe"]["audits"]:
            if a["error"]:
                verdict = f"could not run: {a['error']}"
            elif a["duplicates"]:
                verdict = f"DUPLICATED: {len(a['duplicates'])} repeated draws across {a['workers']} workers"
            elif a["ok"]:
                verdict = f"ok: {a['draws']} draws from {a['workers']} workers, no repeats"
            else:
                verdict = f"inconclusive: {a['workers']} worker(s) probed"
            lines.append(f"  {'seedtree' if a['seedtree'] else 'plain   '}  {a['target']}: {verdict}")
        lines.append(
            "probe: "
            + (
                "ok, seedtree's layouts drew distinct streams"
                if report["probe"]["ok"]
                else "FAILED, a seedtree layout duplicated streams or could not run"
            )
        )
    lines.append(f"{report['warnings']} warning(s)")
    return "\n".join(lines)
