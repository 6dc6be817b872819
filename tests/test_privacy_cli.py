"""`bizchat privacy compact` and `bizchat privacy keys` on a real workspace file."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

import bizchat
from bizchat.cli import main

ACC = "+49 30 901820"


def run(path, *args):
    return CliRunner().invoke(main, ["-w", str(path), "privacy", *args])


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.delenv("BIZCHAT_PSEUDONYM_KEY", raising=False)
    ws = bizchat.open(tmp_path / "ws.duckdb")
    ws.accounts.add(ACC, name="Laden")
    for i in range(3):
        ws.contacts.add(ACC, f"+49 170 100000{i}", name=f"Kundin {i}")
    return ws


def test_compact_rewrites_the_file_without_deleted_values(ws):
    marker = "Zitronenfalter-Geheimnis"
    ws.contacts.add(ACC, "+49 170 9999999", name=marker)
    with ws.transaction() as con:   # a plain DELETE leaves the value in the file's blocks
        con.execute("DELETE FROM contacts WHERE name = ?", [marker])
    assert marker.encode() in ws.path.read_bytes()   # still there, only marked deleted
    result = run(ws.path, "compact")
    assert result.exit_code == 0, result.output
    found = re.fullmatch(r"Compacted (.+): ([\d,]+) -> ([\d,]+) bytes \((\d+) tables, ([\d,]+) rows "
                         r"verified\)\.\n", result.output)
    assert found and found.group(1) == str(ws.path)
    assert int(found.group(4)) > 10 and int(found.group(5).replace(",", "")) >= 4
    assert marker.encode() not in ws.path.read_bytes()
    assert len(ws.sql("SELECT * FROM contacts")) == 3   # the others are all there


def test_keys_fill_the_analyst_view_and_a_lost_key_is_replaced(ws):
    with ws.connect() as con:   # start from no stored keys
        con.execute("DELETE FROM subject_keys")
    result = run(ws.path, "keys")
    assert result.exit_code == 0, result.output
    assert result.output == "3 new pseudonymous key(s).\n"
    before = ws.sql("SELECT subject_key FROM analyst_contacts ORDER BY subject_key")
    assert len(before) == 3 and before["subject_key"].notna().all()
    assert run(ws.path, "keys").output == "0 new pseudonymous key(s).\n"

    refused = run(ws.path, "keys", "--new-key")   # the key file is still there
    assert refused.exit_code == 1 and refused.output.startswith("Error: The workspace has its key")
    key_file = ws.path.with_name(ws.path.name + ".key")
    key_file.unlink()
    renewed = run(ws.path, "keys", "--new-key")
    assert renewed.exit_code == 0, renewed.output
    assert renewed.output.startswith(f"Started a new pseudonymisation key in {ws.path}.key")
    after = ws.sql("SELECT subject_key FROM analyst_contacts ORDER BY subject_key")
    assert len(after) == 3 and set(after["subject_key"]).isdisjoint(before["subject_key"])
    assert key_file.exists()
