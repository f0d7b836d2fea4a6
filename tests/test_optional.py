"""``import seedtree`` works with numpy alone; each integration names what to install."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter in which the optional libraries cannot be imported.
BLOCKER = """
import sys
# A None entry is what an uninstalled package looks like to find_spec, and makes its
# import fail with ImportError.
for name in ("torch", "joblib", "dask", "distributed", "scipy", "matplotlib", "mlflow"):
    sys.modules[name] = None
"""


def run(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=120
    )


def test_core_works_with_numpy_alone():
    proc = run("""
        import seedtree as st, numpy as np, json, random
        root = st.seed_everything(3)
        assert sys.modules["torch"] is None  # still not imported
        node = root / "a" / 1
        node.numpy().random(); node.random().random(); st.rng().random()
        list(root.generators(range(3))); root.states(np.arange(5))
        state = st.capture()
        assert set(state) == {"format", "random", "numpy", "ambient"}, set(state)
        json.dumps(state)                      # plain types only without torch
        with st.isolate():
            np.random.rand()
        st.manifest(root).to_dict()
        print("ok")
    """)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_integrations_say_what_to_install():
    for module, hint in [("seedtree.torch", "seedtree[torch]"), ("seedtree.joblib", "seedtree[joblib]")]:
        proc = run(f"""
            try:
                import {module}
            except ImportError as err:
                print(err)
            else:
                raise SystemExit("imported without its library")
        """)
        assert proc.returncode == 0, proc.stderr
        assert hint in proc.stdout and "pip install" in proc.stdout, proc.stdout
    proc = run("""
        import seedtree as st
        try:
            st.SeedTree(1).torch()
        except ImportError as err:
            print(err)
    """)
    assert "seedtree[torch]" in proc.stdout, proc.stdout + proc.stderr
