"""The widgets' shared pieces: errors as one sentence, busy actions, confirmation, pages;
and the rule that widgets are thin (no SQL, no connection: Workspace methods only)."""

from __future__ import annotations

import ast
import logging
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from widget_helpers import click

from bizchat.errors import Conflict, WorkspaceBusy
from bizchat.widgets import Confirm, Pager, StatusLine, Workbench, error_sentence, html_table
from bizchat.widgets.base import BUSY_RETRYING

WIDGETS = Path(__file__).resolve().parents[1] / "bizchat" / "widgets"


def test_service_errors_are_one_sentence_and_defects_never_a_traceback(caplog):
    assert error_sentence(Conflict("Account +49 has a label 'VIP'.\nmore")) == \
        "Account +49 has a label 'VIP'."
    busy = error_sentence(WorkspaceBusy("The workspace /d/x.duckdb is in use ... timeout=...).",
                                        path="/d/x.duckdb"))
    assert busy.startswith("The workspace is busy") and "x.duckdb" in busy
    assert "Nothing was changed" in busy and "timeout" not in busy
    with caplog.at_level(logging.ERROR, logger="bizchat.widgets"):
        text = error_sentence(KeyError("contact_id"))
    assert text.startswith("Unexpected error (KeyError") and "Traceback" not in text
    assert "\n" not in text and caplog.records   # the traceback went to the log


def test_status_line_escapes_what_it_shows():
    line = StatusLine()
    line.error(Conflict('A label "<b>VIP</b>" 🌻 exists'))
    assert line.kind == "error" and line.text == 'A label "<b>VIP</b>" 🌻 exists'
    assert "<b>VIP</b>" not in line.value and "&lt;b&gt;VIP&lt;/b&gt;" in line.value


def test_act_disables_controls_while_running_and_shows_errors_inline(ws):
    box = Workbench(ws)
    b = __import__("ipywidgets").Button(description="Go")
    box.children = [b, box.status]
    seen = []

    def action():
        seen.append((b.disabled, box.status.kind))
        return 3

    assert box.act(action, busy="Saving", done=lambda n: f"{n} saved") == 3
    assert seen == [(True, "busy")] and not b.disabled
    assert (box.status.kind, box.status.text) == ("ok", "3 saved")

    def failing():
        raise WorkspaceBusy("The workspace w.duckdb is busy.")

    assert box.act(failing) is None
    assert box.status.kind == "error" and "busy" in box.status.text and not b.disabled


HOLDER = textwrap.dedent("""
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
""")


def test_act_says_busy_retrying_while_another_process_writes_then_succeeds(ws):
    """A webhook ingest or a send holding the file: the widget says it is retrying (not
    frozen, no lock error) and the action lands once the other process lets go."""
    box = Workbench(ws)
    account = ws.accounts.add("+49 30 901820", name="Kinderbuch")
    shown = []
    box.status.observe(lambda change: shown.append((box.status.kind, box.status.text)), "value")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(ws.path), "1.5"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        holder.stdout.close()   # it prints nothing more
        made = box.act(lambda: ws.labels.create(account["account_id"], "Neu 'VIP' 📚"),
                       busy="Saving…", done=lambda label: "Label created.")
    finally:
        holder.wait(timeout=30)
    assert made is not None and box.status.kind == "ok"
    assert ("busy", BUSY_RETRYING) in shown               # said while it waited
    assert shown.index(("busy", BUSY_RETRYING)) > shown.index(("busy", "Saving…"))
    assert "Neu 'VIP' 📚" in ws.labels.list(account["account_id"])["name"].tolist()


def test_confirm_runs_the_action_only_on_yes():
    done = []
    c = Confirm()
    c.ask("Delete the label 'VIP'? It is on 2 contacts.", lambda: done.append(1), yes="Delete")
    assert c.pending and c.layout.display == "flex" and c.yes.description == "Delete"
    click(c.no)
    assert done == [] and not c.pending and c.layout.display == "none"
    c.ask("Again?", lambda: done.append(2))
    click(c.yes)
    click(c.yes)   # a second click does nothing: the question was answered
    assert done == [2]


def test_pager_moves_by_pages_and_stays_in_range():
    p = Pager(page_size=50)
    offsets = []
    p.on_change(offsets.append)
    p.set_total(20_000)
    assert p.label.value == "1–50 of 20,000" and p.prev.disabled and not p.next.disabled
    click(p.next)
    click(p.next)
    assert offsets == [50, 100] and p.label.value == "101–150 of 20,000"
    p.go(10**9)
    assert p.offset == 19_950 and p.next.disabled
    p.set_total(0)
    assert p.label.value == "none" and p.offset == 0


def test_html_table_escapes_cells():
    import pandas as pd

    out = html_table(pd.DataFrame({"name": ['<script>x</script> "Ben"'], "labels": [["VIP"]]}))
    assert "<script>" not in out and "&lt;script&gt;" in out and "VIP" in out


SQL = re.compile(r"\bSELECT\b[\s\S]+\bFROM\b|\bINSERT\s+INTO\b|\bUPDATE\s+\w+\s+SET\b|"
                 r"\bDELETE\s+FROM\b", re.I)
FORBIDDEN = {"execute", "connect", "transaction", "register", "sql", "fetchall", "fetchone"}


def thin_problems(source: str, name: str) -> list[str]:
    """Calls that connect or run SQL, and SQL text, in a widget module's source."""
    wrong = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in FORBIDDEN:
            wrong.append(f"{name}:{node.lineno} calls .{node.func.attr}()")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
            wrong.append(f"{name}:{node.lineno} holds SQL")
    return wrong


def test_widgets_are_thin():
    """Widgets call Workspace methods only: no SQL, no connections of their own."""
    wrong = []
    for path in sorted(WIDGETS.glob("*.py")):
        wrong += thin_problems(path.read_text(encoding="utf-8"), path.name)
    assert wrong == []


def test_the_thin_rule_can_fail():
    bad = "def f(ws):\n    with ws.connect() as con:\n        con.execute('DELETE FROM labels')\n"
    assert len(thin_problems(bad, "bad.py")) == 3
    assert thin_problems("def f(ws):\n    return ws.labels.list(1)\n", "ok.py") == []
    assert thin_problems("x = 'Select contacts first, or pick the label to update.'", "ok.py") == []
