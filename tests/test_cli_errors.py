"""Every command meets a bad value the same way: one line starting with ``Error:``, exit
status 1, no traceback, and the message names command-line options, not Python ones.
Usage errors (an unknown option, a value outside a fixed choice) keep click's form: the
usage line, one ``Error:`` line, exit status 2.
"""

from __future__ import annotations

import re
import shutil

import pytest
from click.testing import CliRunner

import bizchat
from bizchat.cli import main

ACC = "+49 30 901820"
CUSTOMER = "+49 170 1234567"

# A Python keyword argument or call in a message (``baseline_rate=``, ``labels=['VIP']``,
# ``update()``) is not something a command-line user can type.
PYTHONIC = re.compile(r"\b[a-z]+(?:_[a-z]+)*=|\b[a-z_]+\(\)")


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli_errors") / "ws.duckdb"
    ws = bizchat.open(path)
    ws.accounts.add(ACC, name="Laden")
    ws.contacts.add(ACC, CUSTOMER, name="Kundin")
    return path


@pytest.fixture
def workspace(template, tmp_path):
    path = tmp_path / "ws.duckdb"
    shutil.copy(template, path)
    for extra in template.parent.glob(template.name + ".*"):   # the key file
        shutil.copy(extra, tmp_path / extra.name)
    return path


CASES = [
    ("accounts", "add", "12", "--name", "X"),
    ("accounts", "show", "+49 1"),
    ("accounts", "set", ACC, "--hours", "mon=25:00-26:00"),
    ("accounts", "add", "+49 30 901821", "--name", "Y", "--timezone", "Mars/Base"),
    ("contacts", "add", "abc", "--account", ACC),
    ("contacts", "show", "+49 170 7654321", "--account", ACC),
    ("contacts", "list", "--account", "+1 202 555 0100"),
    ("import", "contacts", "{tmp}/missing.csv", "--account", ACC),
    ("import", "export", "{tmp}/not_an_export.txt", "--account", ACC),
    ("labels", "rename", "Nope", "Neu", "--account", ACC),
    ("labels", "contacts", "--account", ACC, "--any", "Nope"),
    ("labels", "assign", "Nope", "--account", ACC, "--from-csv", "{tmp}/missing.csv"),
    ("contacts", "set", "+49 170 7654321", "--account", ACC, "--name", "X"),
    ("contacts", "set", CUSTOMER, "--account", ACC, "--timezone", "Mars/Base"),
    ("consent", "record", "+49 170 7654321", "--account", ACC, "--action", "opt_in",
     "--source", "phone"),
    ("consent", "record", CUSTOMER, "--account", ACC, "--action", "opt_in", "--source", " "),
    ("replies", "add", "danke", "Hallo {", "--account", ACC),
    ("replies", "render", "nope", "--contact", CUSTOMER, "--account", ACC),
    ("automations", "set-greeting", "Hallo {kunde.name}", "--account", ACC),
    ("webhook", "ingest", "{tmp}/not_json.jsonl"),
    ("broadcast", "create", "--account", ACC, "--name", "N", "--category", "marketing",
     "--body", "Hallo {name"),
    ("broadcast", "create", "--account", ACC, "--name", "N", "--category", "marketing",
     "--body", "Hallo", "--labels-any", "Nope"),
    ("broadcast", "plan", "999"),
    ("broadcast", "preview", "999", "--contact", CUSTOMER),
    ("broadcast", "schedule", "999"),
    ("broadcast", "send", "999"),
    ("broadcast", "resume", "999"),
    ("broadcast", "resolve", "999", "--decision", "resend"),
    ("broadcast", "cancel", "999"),
    ("broadcast", "show", "999"),
    ("broadcast", "limits", "--account", ACC, "--quiet", "25:00-08:00"),
    ("stats", "open-rates", "--since", "last tuesday"),
    ("stats", "open-rates", "--tz", "Mars/Base"),
    ("stats", "open-rates", "--account", "+1 202 555 0100"),
    ("stats", "funnel", "--label", "Nope"),
    ("stats", "ab", "999"),
    ("stats", "lift", "999"),
    ("stats", "sample-size", "--mde", "0"),
    ("stats", "sample-size", "--mde", "0.05", "--baseline", "2"),
    ("stats", "cohorts", "--until", "2020-13-45"),
    ("privacy", "consent", "+49 170 7654321", "--account", ACC),
    ("privacy", "export", "+49 170 7654321"),
    ("privacy", "erase", "+49 170 7654321", "--yes"),
    ("privacy", "retention", "set", "message_bodies", "0"),
    ("report", "run", "nope"),
    ("report", "run", "consent_report", "-p", "nope", "1"),
    ("sql", "SELEC 1"),
]

USAGE = [
    ("automations", "set-away", "x", "--schedule", "weird", "--account", ACC),
    ("broadcast", "send", "1", "--transport", "pigeon"),
    ("stats", "open-rates", "--by", "planet"),
    ("labels", "list", "--acount", ACC),
    ("labels", "create", "VIP", "--account", ACC, "--color", "99"),
    ("broadcast", "create", "--account", ACC, "--name", "N", "--category", "marketing",
     "--body", "Hallo", "--control", "1.5"),
    ("privacy", "retention", "set", "messages", "30"),
    ("consent", "record", CUSTOMER, "--account", ACC, "--action", "maybe", "--source", "x"),
    ("labels", "assign", "VIP", "--account", ACC),
]


def _invoke(workspace, args):
    tmp = workspace.parent
    (tmp / "not_an_export.txt").write_text("just some text\nno chat here\n", encoding="utf-8")
    (tmp / "not_json.jsonl").write_text('{"object": "x"}\nnot json\n', encoding="utf-8")
    args = [a.replace("{tmp}", str(tmp)) for a in args]
    return CliRunner().invoke(main, ["-w", str(workspace), *args])


@pytest.mark.parametrize("args", CASES, ids=lambda a: " ".join(a[:3]))
def test_a_bad_value_is_one_error_line(workspace, args):
    result = _invoke(workspace, args)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    assert not PYTHONIC.search(lines[0]), lines[0]


@pytest.mark.parametrize("args", USAGE, ids=lambda a: " ".join(a[:3]))
def test_a_usage_error_keeps_clicks_form(workspace, args):
    result = _invoke(workspace, args)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert lines[0].startswith("Usage: ") and lines[-1].startswith("Error: ")
    assert sum(line.startswith("Error: ") for line in lines) == 1
    assert "Traceback" not in result.output


def test_every_group_is_exercised():
    groups = {a[0] for a in CASES}
    assert groups >= {"accounts", "contacts", "import", "labels", "replies", "automations",
                      "webhook", "broadcast", "stats", "privacy", "report", "sql"}
