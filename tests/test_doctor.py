"""`seedtree doctor`: the documented JSON schema, the verdicts, and the duplicated-stream probe."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seedtree.cli import commands as cli_main
from seedtree.cli import doctor

CHECK_KEYS = {"name", "value", "status", "advice"}
AUDIT_KEYS = {"target", "seedtree", "ok", "workers", "draws", "duplicates", "error"}


def seedtree(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seedtree", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def _check_schema(report: dict) -> dict[str, dict]:
    assert set(report) == {"schema", "version", "seedtree", "checks", "warnings", "versions", "probe"}
    assert report["schema"] == "seedtree.doctor" and report["version"] == 1
    assert isinstance(report["seedtree"], str)
    checks = {}
    for check in report["checks"]:
        assert set(check) == CHECK_KEYS
        assert isinstance(check["name"], str) and check["name"] not in checks
        assert check["status"] in ("ok", "warn", "info")
        assert isinstance(check["advice"], str)
        assert check["status"] != "warn" or check["advice"]  # every warning says what to do
        checks[check["name"]] = check
    assert report["warnings"] == sum(c["status"] == "warn" for c in report["checks"])
    assert report["versions"]["python"] == sys.version.split()[0]
    assert all(v is None or isinstance(v, str) for v in report["versions"].values())
    json.dumps(report)
    return checks


def test_doctor_json_schema_verdicts_and_probe_from_a_subprocess(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHASHSEED", "OMP_NUM_THREADS", "SEEDTREE_ENTROPY")}
    proc = seedtree("doctor", "--probe", "--json", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    checks = _check_schema(report)
    assert checks["PYTHONHASHSEED"]["status"] == "warn" and checks["PYTHONHASHSEED"]["value"] is None
    assert "seedtree run" in checks["PYTHONHASHSEED"]["advice"]
    assert checks["thread counts"]["status"] == "warn"
    assert checks["multiprocessing start method"]["value"] == multiprocessing.get_start_method()

    probe = report["probe"]
    assert set(probe) == {"ok", "audits"} and probe["ok"] is True
    audits = {a["target"]: a for a in probe["audits"]}
    for audit in audits.values():
        assert set(audit) == AUDIT_KEYS and audit["error"] is None
        if audit["seedtree"]:
            assert audit["ok"] and audit["workers"] >= 2 and not audit["duplicates"]
    assert any(a["seedtree"] for a in audits.values()) and any(not a["seedtree"] for a in audits.values())
    if multiprocessing.get_start_method() == "fork":
        # Forked plain pool workers inherit numpy's global state: the classic duplicated stream.
        plain = audits["multiprocessing.Pool(2)"]
        assert plain["duplicates"] and "numpy" in {d["library"] for d in plain["duplicates"]}
        assert checks["probe: multiprocessing.Pool(2)"]["status"] == "warn"


def test_doctor_verdicts_follow_the_environment(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("PYTHONHASHSEED", "123")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("SEEDTREE_ENTROPY", "99")
    report = doctor.diagnose()
    checks = _check_schema(report)
    assert report["probe"] is None
    assert checks["PYTHONHASHSEED"] == {"name": "PYTHONHASHSEED", "value": "123", "status": "ok", "advice": ""}
    assert checks["thread counts"]["status"] == "ok" and checks["thread counts"]["value"]["OMP_NUM_THREADS"] == "1"
    assert "root 99" in checks["SEEDTREE_ENTROPY"]["advice"]

    monkeypatch.setenv("PYTHONHASHSEED", "banana")
    monkeypatch.setenv("SEEDTREE_ENTROPY", "not-a-number")
    checks = _check_schema(doctor.diagnose())
    assert checks["PYTHONHASHSEED"]["status"] == "warn" and "[0, 4294967295]" in checks["PYTHONHASHSEED"]["advice"]
    assert checks["SEEDTREE_ENTROPY"]["status"] == "warn"
    if "torch.backends.cudnn.benchmark" in checks:
        import torch

        monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)  # a real flag flip, put back after
        flipped = {c["name"]: c for c in doctor.diagnose()["checks"]}
        assert flipped["torch.backends.cudnn.benchmark"]["status"] == "warn"

    # The command: a table by default, JSON with --json, exit 1 with --strict when warned.
    assert cli_main.main(["doctor"]) == 0
    text = capsys.readouterr().out
    assert "WARN  PYTHONHASHSEED" in text and "warning(s)" in text
    assert cli_main.main(["doctor", "--strict"]) == 1
    capsys.readouterr()
    assert cli_main.main(["doctor", "--json"]) == 0
    _check_schema(json.loads(capsys.readouterr().out))
