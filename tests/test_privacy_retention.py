"""Retention policies and the purge that applies them, counted by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from click.testing import CliRunner
from privacy_fill import envelope

import bizchat
from bizchat.cli import main
from bizchat.errors import BizchatError, NotFound
from bizchat.ingest.payloads import payload_id
from bizchat.ingest.webhooks import ingest_bodies
from bizchat.messaging import chats
from bizchat.people.accounts import InvalidValue

NOW = datetime.now(UTC)
OLD_TEXT = "Alte-Nachricht-von-2019"


def _shop(ws):
    acc = ws.accounts.add("+49 30 901820", "Buchladen", phone_number_id="555")
    old = ws.contacts.add(acc["account_id"], "+49 170 1000001", name="Olga Alt")
    fresh = ws.contacts.add(acc["account_id"], "+49 170 1000002", name="Frida Frisch")
    with ws.transaction() as con:
        con.execute("UPDATE contacts SET created_at = ? WHERE contact_id = ?",
                    [NOW - timedelta(days=5 * 365), old["contact_id"]])
        con.execute("UPDATE contacts SET created_at = ? WHERE contact_id = ?",
                    [NOW - timedelta(days=5 * 365), fresh["contact_id"]])
        chats.store_messages(con, pd.DataFrame([
            {"message_id": "m-old", "account_id": 1, "contact_id": old["contact_id"], "direction": "in",
             "kind": "text", "body": OLD_TEXT, "source": "webhook",
             "created_at": NOW - timedelta(days=4 * 365)},
            {"message_id": "m-fresh-old", "account_id": 1, "contact_id": fresh["contact_id"],
             "direction": "in", "kind": "text", "body": "vor zwei Jahren", "source": "webhook",
             "created_at": NOW - timedelta(days=400)},
            {"message_id": "m-fresh-new", "account_id": 1, "contact_id": fresh["contact_id"],
             "direction": "in", "kind": "text", "body": "letzte Woche", "source": "webhook",
             "created_at": NOW - timedelta(days=7)},
        ]))
        bodies = [envelope("555", "4930901820", {"contacts": [], "messages": [], "statuses": [
            {"id": f"m-{i}", "status": "delivered", "timestamp": "1767250000", "recipient_id": "491701000002"}]})
            for i in range(3)]
        ingest_bodies(con, [(payload_id(b), NOW - timedelta(days=d), b.decode())
                            for b, d in zip(bodies, (200, 60, 1), strict=True)])
    return acc, old, fresh


def test_policies_default_per_account_and_forever(ws):
    acc, _, _ = _shop(ws)
    privacy = ws.privacy
    shown = privacy.retention().set_index(["account_id", "kind"])
    assert shown.loc[(acc["account_id"], "message_bodies"), "days"] == 365
    assert shown.loc[(acc["account_id"], "inactive_contacts"), "source"] == "built-in default"
    privacy.set_retention("message_bodies", 30, actor="dpo")
    privacy.set_retention("message_bodies", None, account=acc["account_id"], actor="dpo")
    shown = privacy.retention()
    mine = shown[(shown["account_id"] == acc["account_id"]) & (shown["kind"] == "message_bodies")].iloc[0]
    assert pd.isna(mine["days"]) and mine["source"] == "account"
    unassigned = shown[shown["account_id"].isna() & (shown["kind"] == "message_bodies")].iloc[0]
    assert unassigned["days"] == 30 and unassigned["source"] == "workspace default"
    assert ws.sql("SELECT count(*) AS n FROM audit_log WHERE action = 'privacy.retention'")["n"][0] == 2
    with pytest.raises(InvalidValue, match="not a retention policy"):
        privacy.set_retention("photos", 30)
    with pytest.raises(InvalidValue, match="positive"):
        privacy.set_retention("raw_payloads", 0)


def test_dry_run_lists_what_would_go_and_changes_nothing(ws):
    _shop(ws)
    before = ws.sql("SELECT * FROM messages ORDER BY message_id")
    result = ws.privacy.purge(dry_run=True)
    plan = result.plan.set_index("what")
    assert plan.loc["message texts", "rows"] == 2            # the 4-year and the 400-day message
    assert plan.loc["inactive contacts (erased)", "rows"] == 1
    raw = result.plan[result.plan["what"] == "raw webhook bodies"]
    assert raw[raw["account_id"].notna()]["rows"].tolist() == [1]     # older than 90 days
    assert result.contacts["last_activity"].notna().all() and len(result.contacts["subject_key"][0]) == 64
    assert ws.sql("SELECT * FROM messages ORDER BY message_id").equals(before)
    assert "Would remove" in result.summary()
    later = ws.privacy.purge(dry_run=True, as_of=NOW + timedelta(days=400))
    assert later.plan.set_index("what").loc["message texts", "rows"] == 3
    with pytest.raises(BizchatError, match="future"):
        ws.privacy.purge(as_of=NOW + timedelta(days=400))


@pytest.mark.slow
def test_purge_removes_what_is_due_and_compacts(ws):
    acc, old, fresh = _shop(ws)
    result = ws.privacy.purge(actor="cron")
    assert result.done["message texts"] == 2 and result.compacted
    bodies = ws.sql("SELECT message_id, body, contact_id FROM messages ORDER BY message_id")
    kept = dict(zip(bodies["message_id"], bodies["body"], strict=True))
    assert kept["m-fresh-new"] == "letzte Woche" and pd.isna(kept["m-fresh-old"])
    assert ws.sql("SELECT count(*) AS n FROM raw_payloads")["n"][0] == 2
    # Olga was inactive for four years: erased, with a tombstone; her message row stays, anonymous.
    with pytest.raises(NotFound):
        ws.contacts.get(acc["account_id"], "+49 170 1000001")
    assert ws.contacts.get(acc["account_id"], "+49 170 1000002")["name"] == "Frida Frisch"
    assert bodies[bodies["message_id"].str.startswith("erased.")]["contact_id"].lt(0).all()
    assert ws.sql("SELECT reason FROM privacy_tombstones")["reason"].unique().tolist() == ["retention"]
    actions = ws.sql("SELECT action FROM audit_log ORDER BY \"at\"")["action"].tolist()
    assert {"privacy.erase", "privacy.purge", "privacy.compact"} <= set(actions)
    data = ws.path.read_bytes()
    assert OLD_TEXT.encode() not in data and b"Olga Alt" not in data
    again = ws.privacy.purge()
    assert not again.done["changed"] and not again.compacted


def test_cli_retention_and_purge(tmp_path):
    path = tmp_path / "ws.duckdb"
    _shop(bizchat.open(path))
    runner = CliRunner()
    res = runner.invoke(main, ["-w", str(path), "privacy", "retention", "set", "raw_payloads", "30",
                               "--account", "+49 30 901820"])
    assert res.exit_code == 0, res.output
    assert "30" in res.output and "account" in res.output
    forever = runner.invoke(main, ["-w", str(path), "privacy", "retention", "set", "message_bodies", "forever"])
    assert forever.exit_code == 0 and "forever" in forever.output
    shown = runner.invoke(main, ["-w", str(path), "privacy", "retention", "show"])
    assert "workspace default" in shown.output
    dry = runner.invoke(main, ["-w", str(path), "privacy", "purge", "--dry-run", "--as-of", "2030-01-01"])
    assert dry.exit_code == 0, dry.output
    assert "Would remove" in dry.output and "inactive contacts that would be erased" in dry.output
    bad = runner.invoke(main, ["-w", str(path), "privacy", "purge", "--as-of", "2030-01-01"])
    assert bad.exit_code != 0 and "--dry-run" in bad.output
    done = runner.invoke(main, ["-w", str(path), "privacy", "purge"])
    assert done.exit_code == 0 and "Removed" in done.output


@pytest.mark.slow
def test_purging_many_inactive_contacts_keeps_the_statistics(tmp_path):
    from bizchat import demo

    path = tmp_path / "ws.duckdb"
    demo.build(path, contacts=300, seed=4)
    ws = bizchat.open(path)
    stats = "SELECT * FROM campaign_stats ORDER BY broadcast_id"
    before = ws.sql(stats)
    contacts = ws.sql("SELECT count(*) AS n FROM contacts")["n"][0]
    privacy = ws.privacy
    privacy.set_retention("inactive_contacts", 60)
    result = privacy.purge(actor="cron")
    erased = result.erasure.contacts
    assert erased > 100 and result.compacted
    assert ws.sql("SELECT count(*) AS n FROM contacts")["n"][0] == contacts - erased
    assert ws.sql(stats).equals(before)
    assert ws.sql("SELECT count(*) AS n FROM privacy_tombstones")["n"][0] >= erased
    gone = result.contacts["contact_id"].tolist()
    assert ws.sql("SELECT count(*) AS n FROM broadcast_recipients WHERE list_contains(?, contact_id)",
                  [gone])["n"][0] == 0


def test_identifier_patterns_come_in_chunks():
    from bizchat.privacy.subjects import CHUNK, Identifiers

    ids = Identifiers(phones={f"+49170{i:07d}" for i in range(2 * CHUNK + 5)}, names={"Olga Alt"})
    assert len(ids.prefilters()) == 3 and len(ids.pattern().compiled) == 3
    text = "Olga Alt: +49 170 0000003, 0170 0000204 und 01700000999"
    assert ids.pattern().sub("[x]", text) == "[x]: [x], [x] und 01700000999"


def test_purge_covers_the_spool_quarantine_by_the_age_of_its_lines(ws):
    """Damaged spool lines are raw bodies too: the raw-body retention removes them by the
    time they were received, and an undated line by the file's last change."""
    import os

    from bizchat.ingest.spool import Spool, encode_line

    _shop(ws)
    body = envelope("555", "4930901820", {"contacts": [], "messages": [], "statuses": [
        {"id": "m-q", "status": "read", "timestamp": "1767250000", "recipient_id": "491709999999"}]})

    def torn(days: int) -> bytes:   # a line cut short: its date can still be read
        at = (NOW - timedelta(days=days)).isoformat()
        return encode_line(payload_id(body) + str(days), at, body.decode())[:-8]

    spool = Spool(ws.path)
    spool.quarantine([(0, torn(200), "torn"), (0, torn(10), "torn"),
                      (0, b'{"undated": "491709999999"', "edited by hand")])
    spool.close()
    path = spool.quarantine_path
    month_ago = (NOW - timedelta(days=30)).timestamp()
    os.utime(path, (month_ago, month_ago))

    plan = ws.privacy.purge(dry_run=True).plan.set_index("what")
    assert plan.loc["damaged spool lines (quarantine)", "rows"] == 1      # received 200 days ago
    assert plan.loc["damaged spool lines (quarantine)", "days"] == 90
    assert len(path.read_bytes().splitlines()) == 3                      # a dry run keeps them
    result = ws.privacy.purge()
    assert result.done["damaged spool lines (quarantine)"] == 1
    lines = path.read_bytes().splitlines()
    assert len(lines) == 2 and all(b"491709999999" in line for line in lines)
    assert abs(path.stat().st_mtime - month_ago) < 1    # undated lines still count from then
    assert "damaged spool lines" in result.summary()

    ws.privacy.set_retention("raw_payloads", 7)   # the 10-day line and the month-old file
    assert ws.privacy.purge().done["damaged spool lines (quarantine)"] == 2
    assert path.read_bytes() == b""
    ws.privacy.set_retention("raw_payloads", None)
    ws.privacy.set_retention("message_bodies", None)
    assert ws.privacy.purge(dry_run=True).plan.set_index("what").loc[
        "damaged spool lines (quarantine)", "rows"] == 0
