"""The layering rule, read from the source: nothing imports upward, and there are no cycles.

Layers, lowest first: core → runtime → integrations → cli; stats builds on core alone (the
command line uses it). The package's facade (``seedtree/__init__.py``) and the short public
aliases (``seedtree/torch.py`` ...) sit above everything. Every import counts, also one
inside a function or under ``TYPE_CHECKING``, and there is no exception.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "seedtree"
RANK = {"core": 0, "runtime": 1, "stats": 1, "integrations": 2, "cli": 3}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every seedtree module ``path`` imports (absolute names), at any depth of the code."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("seedtree"):
                # `from . import x` imports the submodule x when x is one.
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    found.add(sub if _exists(sub) else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("seedtree"))
    return found


def _exists(module: str) -> bool:
    rel = Path(*module.split("."))
    return (PACKAGE.parent / rel).with_suffix(".py").exists() or (PACKAGE.parent / rel / "__init__.py").exists()


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in RANK:
        return RANK[parts[1]]
    return 99  # the facade and the public aliases


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


def test_every_module_is_in_a_layer_folder_or_is_the_facade() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    aliases = {
        "torch.py",
        "joblib.py",
        "pool.py",
        "threads.py",
        "dask.py",
        "ranks.py",
        "audit.py",
        "ray.py",
        "lightning.py",
        "streaming.py",
        "testing.py",
    }
    assert set(top) - aliases <= {"__init__.py", "__main__.py", "distributed.py"}, top
    for alias in set(top) & aliases:  # an alias holds no code of its own
        assert "sys.modules[__name__] = _module" in (PACKAGE / alias).read_text()


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_nothing_imports_upward(path: Path) -> None:
    name = _module_name(path)
    mine = _layer(name)
    for target in _imports(path):
        theirs = _layer(target)
        same_layer = target.split(".")[:2] == name.split(".")[:2]
        assert same_layer or theirs < mine or mine == 99, f"{name} imports {target}, a layer above it"
        if name.split(".")[1:2] == ["stats"]:
            assert target.split(".")[1] in ("stats", "core"), f"stats must build on core alone: {name} -> {target}"


def test_no_import_cycles() -> None:
    graph = {_module_name(p): {t for t in _imports(p) if t != _module_name(p)} for p in MODULES}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):  # a package's __init__ is an edge like any other
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail, node, nxt]))
            if state.get(nxt) is None:
                visit(nxt, [*trail, node])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [])
