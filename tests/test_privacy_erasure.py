"""Erasure (Art. 17): the person is gone from every table, the spool, report outputs and the
raw bytes of the file; the statistics of the past are exactly what they were."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from privacy_fill import (
    OTHER_NAME,
    OTHER_PHONE,
    SUBJECT_NAME,
    SUBJECT_PHONE,
    SUBJECT_WA,
    fill,
    text_cells,
)

import bizchat
from bizchat.cli import main
from bizchat.cli import privacy as cli_privacy
from bizchat.errors import NotFound
from bizchat.ingest.spool import Spool
from bizchat.people.contact_import import import_contacts
from bizchat.privacy import Privacy

STATS = {
    "campaign_stats": "SELECT * FROM campaign_stats ORDER BY broadcast_id",
    "status_counts": "SELECT status, count(*) AS n FROM message_status GROUP BY status ORDER BY status",
    "latest_status": "SELECT status, count(*) AS n FROM latest_status GROUP BY status ORDER BY status",
    "events": "SELECT status, count(*) AS n FROM message_events GROUP BY status ORDER BY status",
    "consent": """SELECT account_id, purpose, state, count(*) AS n FROM current_consent
                  GROUP BY ALL ORDER BY ALL""",
    "messages": """SELECT account_id, direction, kind, broadcast_id, count(*) AS n FROM messages
                   GROUP BY ALL ORDER BY ALL""",
    "recipients": """SELECT broadcast_id, variant, state, count(*) AS n FROM broadcast_recipients
                     GROUP BY ALL ORDER BY ALL""",
}


def _stats(ws) -> dict:
    return {name: ws.sql(sql) for name, sql in STATS.items()}


def _everywhere(filled, needles) -> dict:
    """Where each needle still is: tables (table.column), files, raw bytes."""
    cells = text_cells(filled.ws)
    found = {}
    folder = filled.path.parent
    files = [p for p in folder.rglob("*") if p.is_file() and p.name != "kontakte.csv"]
    for needle in needles:
        hits = cells[cells["v"].str.contains(needle, regex=False)]
        places = sorted({f"{t}.{c}" for t, c in zip(hits["table"], hits["column"], strict=True)})
        places += [str(p.relative_to(folder)) for p in files if needle.encode() in p.read_bytes()]
        if places:
            found[needle] = places
    return found


@pytest.mark.slow
def test_erasure_leaves_nothing_and_keeps_the_statistics(tmp_path):
    filled = fill(tmp_path)
    ws = filled.ws
    before = _stats(ws)
    needles = filled.needles + filled.message_ids
    # The search finds them before: in tables, the spool, reports, exports and the file bytes.
    seen = _everywhere(filled, needles)
    assert {SUBJECT_PHONE, SUBJECT_WA, SUBJECT_NAME} <= set(seen)
    assert "ws.duckdb" in seen[SUBJECT_WA] and "ws.duckdb.spool" in seen[SUBJECT_WA]
    assert any(p.startswith("reports/") for p in seen[SUBJECT_NAME])
    assert any(p.startswith("exports/") for p in seen[SUBJECT_NAME])
    assert any(p.startswith("elsewhere/") for p in seen[SUBJECT_PHONE])

    result = ws.privacy.erase(SUBJECT_PHONE, actor="test")

    assert result.contacts == 2 and result.accounts == [1, 2] and result.compacted
    assert result.spool["changed_lines"] == 1
    assert _everywhere(filled, needles) == {}
    assert not list(tmp_path.glob("ws.duckdb.wal")) and not list(tmp_path.glob("*.compact"))
    after = _stats(ws)
    for name in STATS:
        assert after[name].equals(before[name]), name
    # Gone for the API too; the other customer is untouched.
    for account in (1, 2):
        with pytest.raises(NotFound):
            ws.contacts.get(account, SUBJECT_PHONE)
    other = ws.contacts.get(1, OTHER_PHONE)
    assert other["name"] == OTHER_NAME
    assert ws.sql("SELECT count(*) AS n FROM messages WHERE contact_id = ? AND body IS NOT NULL",
                  [other["contact_id"]])["n"][0] >= 1
    # Recorded with the pseudonymous keys, no number.
    audit = ws.sql("SELECT * FROM audit_log WHERE action = 'privacy.erase'")
    assert sorted(audit["subject_key"]) == sorted(result.subject_keys)
    assert ws.sql("SELECT value FROM settings WHERE key = 'privacy.compaction_pending'").empty


@pytest.mark.slow
def test_spool_keeps_other_customers_and_replays(tmp_path):
    filled = fill(tmp_path)
    Privacy(filled.ws).erase(SUBJECT_PHONE, actor="test")
    spool = Spool(filled.path)
    records = spool.read().records
    bodies = [json.loads(body) for _, _, body in records]
    texts = [m["text"]["body"] for b in bodies for e in b["entry"] for c in e["changes"]
             for m in c["value"].get("messages", [])]
    assert texts == ["Danke!", "Guten Tag"]     # the subject's pending message is gone
    for pid, _, body in records:
        assert pid == hashlib.sha256(body.encode()).hexdigest()
    # Ingesting the rewritten spool brings nobody back.
    from bizchat.ingest.webhooks import ingest_bodies

    with filled.ws.transaction() as con:
        ingest_bodies(con, records)
    assert filled.ws.sql("SELECT count(*) AS n FROM contacts WHERE wa_id = ?", [SUBJECT_WA])["n"][0] == 0


@pytest.mark.slow
def test_erasure_in_one_account_keeps_the_other(tmp_path):
    filled = fill(tmp_path)
    ws = filled.ws
    before = _stats(ws)["campaign_stats"]
    result = ws.privacy.erase(SUBJECT_PHONE, account=1, actor="test")
    assert result.accounts == [1]
    kept = ws.contacts.get(2, SUBJECT_PHONE)
    assert kept["name"] == SUBJECT_NAME
    assert ws.consent.current(kept["contact_id"]) == "opt_in"
    assert ws.sql("SELECT count(*) AS n FROM contacts WHERE account_id = 1 AND wa_id = ?",
                  [SUBJECT_WA])["n"][0] == 0
    assert _stats(ws)["campaign_stats"].equals(before)


@pytest.mark.slow
def test_tombstone_holds_back_an_old_import_until_new_consent(tmp_path):
    filled = fill(tmp_path)
    ws = filled.ws
    ws.privacy.erase(SUBJECT_PHONE, account=1, actor="test")
    again = import_contacts(ws, filled.csv, 1, actor="test")
    held = [b for b in again.bad if "erased" in b["reason"]]
    assert [b["line"] for b in held] == [2]
    with pytest.raises(NotFound):
        ws.contacts.get(1, SUBJECT_PHONE)
    assert ws.contacts.get(1, OTHER_PHONE)["name"] == OTHER_NAME   # others import as before
    # New consent, given after the erasure, brings them back.
    fresh = tmp_path / "neu.csv"
    given = datetime.now(UTC).isoformat()     # after the erasure, not in the future
    fresh.write_text("phone,name,consent,consent_at,evidence\n"
                     f"{SUBJECT_PHONE},Zofia,ja,{given},neues Formular\n", encoding="utf-8")
    back = import_contacts(ws, fresh, 1, actor="test")
    assert back.imported == 1 and not back.bad
    assert ws.consent.current(ws.contacts.get(1, SUBJECT_PHONE)["contact_id"]) == "opt_in"


def test_queued_recipients_of_an_erased_person_are_never_sent(ws):

    acc = ws.accounts.add("+49 30 901820", "Buchladen")
    contact = ws.contacts.add(acc["account_id"], "+49 170 1234567", name="Rita Ruf")
    ws.consent.opt_in(contact["contact_id"], source="double_opt_in_form", evidence="form")
    broadcasts = ws.broadcasts
    found = broadcasts.create(acc["account_id"], "Herbst", body="Hallo {first_name}!", seed=1)
    broadcasts.schedule(found["broadcast_id"])   # due now: frozen at once
    ws.privacy.erase("+49 170 1234567", actor="test")
    row = ws.sql("SELECT * FROM broadcast_recipients").iloc[0]
    assert row["state"] == "skipped" and row["skip_reason"] == "erased"
    assert row["contact_id"] < 0 and row["wa_id"] is None and row["body"] is None


def test_unknown_person_is_a_clear_error(ws):
    ws.accounts.add("+49 30 901820", "Buchladen")
    with pytest.raises(NotFound, match="No contact"):
        ws.privacy.erase("+49 170 7654321")


@pytest.mark.slow
def test_cli_erase_needs_yes_off_a_terminal(tmp_path):
    path = tmp_path / "ws.duckdb"
    ws = bizchat.open(path)
    acc = ws.accounts.add("+49 30 901820", "Buchladen")
    ws.contacts.add(acc["account_id"], "+49 170 1234567", name="Rita Ruf")
    runner = CliRunner()
    refused = runner.invoke(main, ["-w", str(path), "privacy", "erase", "+49 170 1234567"])
    assert refused.exit_code == 1 and "--yes" in refused.output
    assert ws.contacts.get(1, "+49 170 1234567")
    done = runner.invoke(main, ["-w", str(path), "privacy", "erase", "+49 170 1234567", "--yes"])
    assert done.exit_code == 0, done.output
    assert "Erased 1 contact" in done.output and "compacted" in done.output
    with pytest.raises(NotFound):
        ws.contacts.get(1, "+49 170 1234567")


def test_cli_erase_asks_on_a_terminal(tmp_path, monkeypatch):
    path = tmp_path / "ws.duckdb"
    ws = bizchat.open(path)
    acc = ws.accounts.add("+49 30 901820", "Buchladen")
    ws.contacts.add(acc["account_id"], "+49 170 1234567", name="Rita Ruf")
    monkeypatch.setattr(cli_privacy, "_interactive", lambda: True)
    runner = CliRunner()
    no = runner.invoke(main, ["-w", str(path), "privacy", "erase", "+49 170 1234567"], input="n\n")
    assert no.exit_code == 1 and ws.contacts.get(1, "+49 170 1234567")
    yes = runner.invoke(main, ["-w", str(path), "privacy", "erase", "+49 170 1234567"], input="y\n")
    assert yes.exit_code == 0, yes.output
    with pytest.raises(NotFound):
        ws.contacts.get(1, "+49 170 1234567")


def test_import_refuses_to_guess_when_the_key_changed(ws, tmp_path, monkeypatch):
    from bizchat.people import pseudonym
    from bizchat.people.tombstones import TombstoneKeyMismatch

    monkeypatch.setenv(pseudonym.ENV, "first-key")
    acc = ws.accounts.add("+49 30 901820", "Buchladen")
    ws.contacts.add(acc["account_id"], "+49 170 1234567", name="Rita Ruf")
    ws.privacy.erase("+49 170 1234567", actor="test")
    csv = tmp_path / "alt.csv"
    csv.write_text("phone,name\n+49 170 1234567,Rita Ruf\n", encoding="utf-8")
    held = import_contacts(ws, csv, acc["account_id"])
    assert held.imported == 0 and "erased on" in held.bad[0]["reason"]
    monkeypatch.setenv(pseudonym.ENV, "another-key")
    with pytest.raises(TombstoneKeyMismatch, match="BIZCHAT_PSEUDONYM_KEY"):
        import_contacts(ws, csv, acc["account_id"])
    with pytest.raises(NotFound):
        ws.contacts.get(acc["account_id"], "+49 170 1234567")
