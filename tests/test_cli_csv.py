"""Every CSV the command line prints is safe to open in a spreadsheet: a cell that would
start a formula (= + - @, tab, CR) gets a leading apostrophe, in every --csv output."""

from __future__ import annotations

import csv
import io

import click
import pytest
from click.testing import CliRunner

from bizchat.cli import main
from bizchat.privacy.safe_export import DANGEROUS_START

FORMULA = "=cmd|' /C calc'!A0"
SHOP = "+49 30 1234567"

# The arguments each command with --csv needs; the test below fails when a new command
# with --csv is missing here.
CSV_COMMANDS = {
    "sql": ["SELECT name, display_name FROM contacts, accounts"],
    "accounts list": [],
    "contacts list": ["--account", SHOP],
    "labels list": ["--account", SHOP],
    "labels contacts": ["--account", SHOP],
    "replies list": ["--account", SHOP],
    "broadcast list": [],
    "privacy coverage": [],
    "stats open-rates": [],
    "stats funnel": [],
    "stats failures": [],
    "stats time-to-read": [],
    "stats send-time": [],
    "stats ab": ["{broadcast}"],
    "stats lift": ["{broadcast}"],
    "stats cohorts": [],
    "stats chats": [],
}


def _csv_commands(group: click.Group, prefix: str = ""):
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            yield from _csv_commands(command, path + " ")
        elif any("--csv" in p.opts for p in command.params):
            yield path


def number(cell: str) -> bool:
    """A plain number (-0.25) is no formula: spreadsheets read it as a value."""
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_every_command_with_csv_is_checked():
    assert sorted(_csv_commands(main)) == sorted(CSV_COMMANDS)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A workspace whose names, labels and texts are formulas."""
    import bizchat

    path = tmp_path_factory.mktemp("csv") / "csv.duckdb"
    ws = bizchat.open(path)
    ws.accounts.add(SHOP, name=FORMULA)
    contact = ws.contacts.add(SHOP, "0170 1234567", name=FORMULA)
    ws.consent.opt_in(contact["contact_id"], source="form", evidence=FORMULA)
    ws.labels.create(SHOP, "@SUM(1+1)")
    ws.labels.assign(SHOP, "@SUM(1+1)", [contact["contact_id"]])
    ws.replies.add(SHOP, "/formel", "+1+1 {first_name}")
    for n in range(12):
        other = ws.contacts.add(SHOP, f"0170 20000{n:02d}", name=f"Kunde {n}")
        ws.consent.opt_in(other["contact_id"], source="form", evidence="DOI")
    broadcast = ws.broadcasts.create(SHOP, "-2+3 Angebot", body="Hallo {first_name}!",
                                     variants=["Hi {first_name}!"], control=0.2, seed=3,
                                     category="marketing", missing="fallback",
                                     fallbacks={"first_name": "du"})
    from bizchat.campaigns import outbox

    ws.broadcasts.schedule(broadcast["broadcast_id"], at="2025-06-02T10:00:00+00:00")
    outbox.send(ws, broadcast["broadcast_id"], transport="simulated", seed=3)
    return path, broadcast["broadcast_id"]


@pytest.mark.parametrize("command", sorted(CSV_COMMANDS))
def test_csv_output_cannot_start_a_formula(hostile, command):
    path, broadcast = hostile
    args = [a.format(broadcast=broadcast) for a in CSV_COMMANDS[command]]
    result = CliRunner().invoke(main, ["-w", str(path), *command.split(), *args, "--csv"])
    assert result.exit_code == 0, result.output
    cells = [cell for row in csv.reader(io.StringIO(result.output)) for cell in row]
    assert cells, "no CSV printed"
    dangerous = [c for c in cells if c.startswith(DANGEROUS_START) and not number(c)]
    assert not dangerous, f"{command} --csv prints formula cells: {dangerous}"


@pytest.mark.parametrize(("command", "shown"), [
    ("contacts list", FORMULA), ("accounts list", FORMULA), ("sql", FORMULA),
    ("labels list", "@SUM(1+1)"), ("replies list", "+1+1 {first_name}"),
    ("broadcast list", "-2+3 Angebot"),
])
def test_the_formula_is_kept_as_text(hostile, command, shown):
    path, _ = hostile
    result = CliRunner().invoke(main, ["-w", str(path), *command.split(),
                                       *CSV_COMMANDS[command], "--csv"])
    cells = [cell for row in csv.reader(io.StringIO(result.output)) for cell in row]
    assert "'" + shown in cells
