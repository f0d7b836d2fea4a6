"""The ```python blocks of a Markdown file, and running one: shared by the README and the
documentation tests, so both pick and run blocks the same way."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """``(line, code)`` of every ```python block of ``path``, in file order (line 1-based)."""
    text = path.read_text()
    return [(text[: m.start()].count("\n") + 1, m.group(1)) for m in BLOCK.finditer(text)]


def run_block(code: str, where: str, tmp_path: Path) -> None:
    """Run ``code`` in a fresh interpreter in ``tmp_path`` (this checkout first on the
    path); fail with its output, naming ``where``, unless it exits with status 0."""
    script = tmp_path / "block.py"
    script.write_text(code)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"{where} failed:\n{proc.stdout}\n{proc.stderr}"
