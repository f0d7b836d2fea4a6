"""The documentation site: its code blocks run, every page is in the navigation, and
everything the API reference renders has a docstring (``mkdocs build --strict``, run by
``make test`` and ``make docs``, fails on a broken reference)."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
from _blocks import ROOT, python_blocks, run_block

DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
# A guide block identical to a README block already runs in test_readme.
README_BLOCKS = {code.strip() for _, code in python_blocks(ROOT / "README.md")}
BLOCKS = [
    (page.relative_to(ROOT), line, code)
    for page in PAGES
    for line, code in python_blocks(page)
    if code.strip() not in README_BLOCKS
]


@pytest.mark.parametrize(("page", "line", "code"), BLOCKS, ids=[f"{p}:{n}" for p, n, _ in BLOCKS])
def test_guide_block_runs(page: Path, line: int, code: str, tmp_path: Path) -> None:
    run_block(code, f"{page} block at line {line}", tmp_path)


def test_every_page_is_in_the_navigation() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    listed = set(re.findall(r":\s*([\w/.-]+\.md)\s*$", config, re.M))
    assert listed == {str(p.relative_to(DOCS)) for p in PAGES}


def _reference_targets() -> list[str]:
    return [
        t for page in (DOCS / "reference").glob("*.md") for t in re.findall(r"^::: ([\w.]+)", page.read_text(), re.M)
    ]


def _resolve(dotted: str) -> Any:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def _documented(target: str) -> list[tuple[str, Any]]:
    """The objects the reference renders for ``target``: the object, a module's public
    names (its ``__all__``, else what it defines), and their public methods and properties."""
    obj = _resolve(target)
    objects = [(target, obj)]
    if inspect.ismodule(obj):
        names = getattr(obj, "__all__", None) or [
            n for n, v in vars(obj).items() if not n.startswith("_") and getattr(v, "__module__", None) == obj.__name__
        ]
        objects += [(f"{target}.{n}", getattr(obj, n)) for n in names]
    for name, value in list(objects):
        if inspect.isclass(value) and name != target or inspect.isclass(obj) and value is obj:
            for attr, member in vars(value).items():
                if not attr.startswith("_") and (inspect.isfunction(member) or isinstance(member, property)):
                    objects.append((f"{name}.{attr}", getattr(value, attr) if inspect.isfunction(member) else member))
    return [(n, v) for n, v in objects if inspect.isclass(v) or inspect.isroutine(v) or isinstance(v, property)]


def _markdown_extensions() -> tuple[list[str], dict[str, Any]]:
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    names, settings = [], {}
    for entry in config["markdown_extensions"]:
        name = entry if isinstance(entry, str) else next(iter(entry))
        names.append(name)
        if isinstance(entry, dict) and entry[name]:
            settings[name] = entry[name]
    return names, settings


def test_math_in_docstrings_is_not_rendered_bold() -> None:
    # n**2 / 2**128 must read as written, not as n<strong>2 / 2</strong>128.
    import markdown

    names, settings = _markdown_extensions()
    render = markdown.Markdown(extensions=names, extension_configs=settings)
    docs = {inspect.getdoc(v) or "" for t in _reference_targets() for _, v in _documented(t)}
    docs |= {inspect.getdoc(_resolve(t)) or "" for t in _reference_targets()}
    assert any("n**2 / 2**128" in d for d in docs)
    wrong = []
    for doc in docs:
        html = render.reset().convert(doc)
        for inner in re.findall(r"<strong>(.*?)</strong>", html, re.S):
            if "<" not in inner and "&" not in inner and not re.search(rf"(?<!\w)\*\*{re.escape(inner)}\*\*", doc):
                wrong.append(inner)
    assert not wrong, f"rendered bold but not written as **bold**: {wrong}"


def test_long_code_lines_wrap_instead_of_being_cut_off() -> None:
    css = "\n".join((DOCS / path).read_text() for path in yaml_list("extra_css"))
    assert re.search(r"pre > code\s*\{[^}]*white-space:\s*pre-wrap", css)


def yaml_list(key: str) -> list[str]:
    import yaml

    return list(yaml.safe_load((ROOT / "mkdocs.yml").read_text()).get(key) or [])


def test_everything_in_the_api_reference_has_a_docstring() -> None:
    targets = _reference_targets()
    assert "seedtree.integrations.ray" in targets and "seedtree.core.tree.SeedTree" in targets
    missing = sorted(
        name for t in targets for name, value in _documented(t) if not (inspect.getdoc(value) or "").strip()
    )
    assert not missing, f"public names without a docstring: {missing}"
