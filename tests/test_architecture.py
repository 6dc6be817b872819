"""The folders show the architecture: imports point one way, down the layers.

surfaces (cli, web, receiver, widgets, demo) -> workspace -> scheduling -> reports, lake -> campaigns,
analytics, privacy -> ingest -> messaging -> people -> store -> errors. A module may import its own
subpackage and any layer below its own, never one above or a sibling of the same rank.
Imports under ``if TYPE_CHECKING:`` only name types and are not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bizchat"

# The rank of each top-level part of the package; higher ranks may import lower ones.
RANKS = {
    "errors": 0,
    "store": 1,
    "people": 2,
    "messaging": 3,
    "ingest": 4,
    "campaigns": 5, "analytics": 5, "privacy": 5,
    "reports": 6,      # runs report notebooks: a service (ws.reports); the notebooks are the surface
    "lake": 6,         # the Parquet lake (ws.lake): reads the store, people's keys, privacy's erasures
    "scheduling": 7,   # timed work: report slots and due broadcasts (ws.schedule)
    "workspace": 8,
    "demo": 9,
    "receiver": 10,
    "widgets": 10,  # the workbench: ipywidgets over Workspace methods
    "web": 11,   # `bizchat web`: Voilà pages that show the widgets
    "cli": 12,   # `bizchat webhook serve` starts the receiver, `bizchat web` the web app
    "__init__": 13,
}


def part_of(module: str) -> str:
    """'bizchat.people.contacts' -> 'people'; 'bizchat' -> '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                skip.update(id(n) for n in ast.walk(sub))
    return skip


def imports_of(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module) for every bizchat import in the source, lazy ones included."""
    package = module if is_package else module.rsplit(".", 1)[0]
    tree = ast.parse(source)
    skip = _type_checking_nodes(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("bizchat")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("bizchat"):
                continue
            if node.module is None or target.count(".") == 0:   # from . import a, b
                found += [(node.lineno, f"{target}.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, target))
    return found


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_part_has_a_rank():
    parts = {part_of(module_name(p)) for p in modules()}
    assert parts - set(RANKS) == set(), "a new subpackage needs its place in RANKS"


def upward_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    here = part_of(module)
    wrong = []
    for line, target in imports_of(source, module, is_package):
        there = part_of(target)
        if there != here and RANKS[there] >= RANKS[here]:
            wrong.append(f"line {line}: {here} (rank {RANKS[here]}) imports {target} "
                         f"(rank {RANKS[there]})")
    return wrong


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    source = path.read_text(encoding="utf-8")
    assert upward_imports(source, module_name(path), path.name == "__init__.py") == []


def test_the_rule_can_fail():
    """Upward and sideways imports are found, lazy ones too; type-only ones are not."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "from .. import store\n"
        "from .consent import may_send\n"
        "if TYPE_CHECKING:\n"
        "    from ..workspace import Workspace\n"
        "def f():\n"
        "    from ..campaigns import outbox\n"
        "    import bizchat.ingest.spool\n"
    )
    wrong = upward_imports(source, "bizchat.people.contacts")
    assert [w.split(" imports ")[1].split(" ")[0] for w in wrong] == [
        "bizchat.campaigns", "bizchat.ingest.spool"]
    assert upward_imports("from ..privacy import erasure\n", "bizchat.campaigns.outbox") != []
