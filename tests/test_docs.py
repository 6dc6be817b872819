"""Docs that cannot drift: docs/api.md is what the docstrings say, the README's layout
lists every folder of the package, and every module says in its first line what it is."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bizchat"


def test_api_md_is_generated_from_the_docstrings():
    sys.path.insert(0, str(ROOT))
    try:
        from tools.api_docs import TARGET, render
    finally:
        sys.path.remove(str(ROOT))
    assert TARGET.read_text(encoding="utf-8") == render(), (
        "docs/api.md is stale: run `python -m tools.api_docs`")


def test_api_md_covers_every_service_and_surface_entry_point():
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    for method in ("ws.broadcasts.send(", "ws.broadcasts.resume(", "ws.broadcasts.resolve(",
                   "ws.webhooks.ingest(", "ws.webhooks.reprocess(", "ws.imports.contacts(",
                   "ws.imports.chat_export(", "ws.reports.run(", "ws.stats.open_rates("):
        assert f"`{method}" in text, method
    assert "(undocumented)" not in text


def _layout_block() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Layout", 1)[1]
    return section.split("```", 2)[1]


def test_readme_layout_lists_every_folder_of_the_package():
    listed = set(re.findall(r"^  ([\w/]+/)\s", _layout_block(), re.M))
    folders = {p.relative_to(PACKAGE).as_posix() + "/" for p in PACKAGE.rglob("*")
               if p.is_dir() and "__pycache__" not in p.parts}
    assert listed == folders


def test_readme_layout_lists_every_top_level_module():
    listed = set(re.findall(r"^  (\w+\.py)\s", _layout_block(), re.M))
    assert listed == {p.name for p in PACKAGE.glob("*.py")}


def test_every_module_states_its_concept_first():
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "__pycache__" in path.parts or path.name == "__main__.py":
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        first = (doc or "").strip().splitlines()[0] if doc else ""
        if len(first.split()) < 3:
            missing.append(str(path.relative_to(ROOT)))
    assert missing == []
