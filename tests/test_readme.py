"""Every ```python block of README.md runs, so the README never rots.

Blocks run one per fresh interpreter, in a temporary folder, in README order (the block
picking and running are shared with the documentation's test: ``_blocks.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _blocks import ROOT, python_blocks, run_block

BLOCKS = python_blocks(ROOT / "README.md")


@pytest.mark.parametrize(("line", "code"), BLOCKS, ids=[f"README.md:{n}" for n, _ in BLOCKS])
def test_readme_block_runs(line: int, code: str, tmp_path: Path) -> None:
    run_block(code, f"README.md block at line {line}", tmp_path)
