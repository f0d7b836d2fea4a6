"""scripts/mutation_report.py: the score per module from mutmut's result files, and every
mutant left alive or unreached listed with its reason (or as UNEXPLAINED)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import mutation_report  # noqa: E402


def meta(root: Path, module: str, codes: dict[str, int | None]) -> None:
    path = root / f"{module}.py.meta"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"exit_code_by_key": codes}))


def test_scores_counts_and_reasons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mutants = tmp_path / "mutants"
    f = "seedtree.core.tree.xǁSeedTreeǁf__mutmut_"
    meta(mutants, "seedtree/core/tree", {f"{f}1": 1, f"{f}2": 1, f"{f}3": 36, f"{f}4": 0, f"{f}5": 33, f"{f}6": None})
    meta(
        mutants,
        "seedtree/runtime/rawmem",
        {
            "seedtree.runtime.rawmem.x_g__mutmut_1": 0,
            "seedtree.runtime.rawmem.x_g__mutmut_2": 255,
            "seedtree.runtime.rawmem.x_g__mutmut_3": -11,
            "seedtree.runtime.rawmem.x_g__mutmut_4": -9,
        },
    )
    reasons = tmp_path / "left.toml"
    reasons.write_text(
        '[survived]\n"seedtree.core.tree.xǁSeedTreeǁf" = "equivalent: why"\n'
        '["no tests"]\n"seedtree.core.tree.xǁSeedTreeǁf__mutmut_5" = "needs a GPU"\n'
        '[segfault]\n"seedtree.runtime.rawmem" = "writes outside the state"\n'
    )
    monkeypatch.setattr(mutation_report, "REASONS", reasons)
    out = tmp_path / "out"
    assert mutation_report.main(["--mutants", str(mutants), "--out", str(out), "--seconds", "90"]) == 0
    report = json.loads((out / "mutation.json").read_text())
    tree = report["modules"]["seedtree/core/tree"]
    assert tree["counts"] == {"killed": 2, "timeout": 1, "survived": 1, "no tests": 1, "not checked": 1}
    assert tree["score"] == 75.0  # (2 killed + 1 timeout) / (3 + 1 survived)
    assert tree["survived"] == {f"{f}4": "equivalent: why"} and tree["no tests"] == {f"{f}5": "needs a GPU"}
    raw = report["modules"]["seedtree/runtime/rawmem"]
    assert raw["score"] == 0.0 and raw["counts"]["error"] == 1  # a crashed worker is not a kill
    assert raw["counts"]["segfault"] == 1 and raw["segfault"] == {
        "seedtree.runtime.rawmem.x_g__mutmut_3": "writes outside the state"
    }
    assert raw["counts"]["sigkill"] == 1 and raw["sigkill"] == {"seedtree.runtime.rawmem.x_g__mutmut_4": "UNEXPLAINED"}
    assert raw["error"] == {"seedtree.runtime.rawmem.x_g__mutmut_2": "UNEXPLAINED"}
    text = (out / "mutation.md").read_text()
    assert text.startswith("# Mutation score (mutmut ") and ", 1.5 min)" in text
    assert "| seedtree/core/tree | 75.0 % | 6 | 2 | 1 | 1 | 1 | 0 | 0 | 0 | 0 | 1 |" in text
    assert "## survived: 2" in text and "- **UNEXPLAINED** (1): `runtime.rawmem.x_g__mutmut_1`" in text
    assert "- **equivalent: why** (1): `core.tree.xǁSeedTreeǁf__mutmut_4`" in text
    assert "## no tests: 1" in text and "- **needs a GPU** (1)" in text
    assert "## segfault: 1\n\n- **writes outside the state** (1): `runtime.rawmem.x_g__mutmut_3`" in text
    assert "## sigkill: 1\n\n- **UNEXPLAINED** (1): `runtime.rawmem.x_g__mutmut_4`" in text
    assert "## error: 1\n" in text
    clean = tmp_path / "clean"
    meta(clean, "seedtree/core/keys", {"seedtree.core.keys.x_k__mutmut_1": 1})
    assert mutation_report.main(["--mutants", str(clean), "--out", str(tmp_path / "o2")]) == 0
    text = (tmp_path / "o2" / "mutation.md").read_text()
    assert "## survived: 0" in text and "## no tests: 0" in text  # always said
    assert "## segfault" not in text and "## sigkill" not in text and "## error" not in text  # said when there are


def test_no_results_is_an_error_that_says_what_to_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert mutation_report.main(["--mutants", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 1
    assert capsys.readouterr().err == f"no mutmut results under {tmp_path / 'none'}/: run `make mutation` first\n"
