"""Every CLI command is one Workspace call plus printing: no SQL, no connection, no
business rule of its own (the same rules hold from a notebook or a widget).

The check reads each command's function: it must call a method reached from ``ws`` (or
from a name bound to ``ws.<service>``), and must not connect, open a transaction, run
SQL or import domain code. The few commands that have no workspace to call are listed
with the one thing they may call instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CLI = Path(__file__).resolve().parents[1] / "bizchat" / "cli"

# Commands without a Workspace method to call, and what they call instead.
NO_WORKSPACE = {
    "init": "state.open (bizchat.open with the asked-for mode)",
    "demo": "bizchat.demo.build (makes a new workspace file)",
    "list_": "Reports.available (report notebooks exist without a workspace)",
    "serve": "the receiver surface (bizchat.receiver.server.serve)",
    "web": "the web surface (bizchat.web.server.serve)",
    "lake_show": "Lake.show (a lake folder is read without a workspace)",
    "lake_verify": "Lake.verify (a lake folder is checked without a workspace)",
}
FORBIDDEN_CALLS = {"execute", "connect", "transaction", "register", "fetchall", "fetchone",
                   "df", "arrow"}
# Domain imports allowed in cli/: what a command prints or offers as choices.
ALLOWED_IMPORTS = {"bizchat.errors", "bizchat.privacy.safe_export", "bizchat.messaging.automations",
                   "bizchat.demo", "bizchat.reports", "bizchat.lake", "bizchat.receiver.server", "bizchat.web.server"}


def commands() -> list[tuple[str, ast.FunctionDef]]:
    found = []
    for path in sorted(CLI.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and any(
                    isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute)
                    and d.func.attr == "command" for d in node.decorator_list):
                found.append((path.name, node))
    return found


def root(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def problems(func: ast.FunctionDef) -> list[str]:
    """What makes a command more than one Workspace call plus printing."""
    aliases = {"ws"}
    for node in ast.walk(func):   # service = ws.broadcasts
        if isinstance(node, ast.Assign) and root(node.value) in aliases:
            aliases |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    wrong, calls_ws = [], False
    for node in ast.walk(func):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in FORBIDDEN_CALLS:
                wrong.append(f"line {node.lineno}: calls .{node.func.attr}()")
            elif root(node.func) in aliases:
                calls_ws = True
        if isinstance(node, ast.ImportFrom) and node.level:   # from ..x import y (in cli/)
            names = [f"bizchat.{node.module}"] if node.module else [
                f"bizchat.{a.name}" for a in node.names]
            if node.level == 1:   # a sibling cli module
                continue
            wrong += [f"line {node.lineno}: imports {m}" for m in names
                      if not any(m == a or m.startswith(a + ".") for a in ALLOWED_IMPORTS)]
    if not calls_ws and func.name not in NO_WORKSPACE:
        wrong.append("calls no Workspace method")
    return wrong


@pytest.mark.parametrize("where,func", commands(), ids=lambda x: x if isinstance(x, str) else x.name)
def test_each_command_is_a_workspace_call(where, func):
    assert problems(func) == []


def test_every_command_is_checked():
    found = commands()
    assert len(found) > 60 and set(NO_WORKSPACE) <= {f.name for _, f in found}


def test_the_check_fails_for_a_command_that_does_its_own_work():
    source = '''
@group.command()
@pass_workspace
def reprocess(ws, rejected):
    with ws.connect() as con:
        rows = con.execute("SELECT * FROM raw_payloads").fetchall()
    from ..ingest.batches import ingest_isolated
    click.echo(len(rows))
'''
    func = ast.parse(source).body[0]
    found = problems(func)
    assert any("connect" in p for p in found) and any("execute" in p for p in found)
    assert any("imports bizchat.ingest.batches" in p for p in found)
    thin = ast.parse("@g.command()\ndef show(ws, n):\n    service = ws.broadcasts\n"
                     "    click.echo(service.show(n))\n").body[0]
    assert problems(thin) == []
