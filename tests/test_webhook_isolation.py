"""One bad body never blocks the others (issue 13, items 1 and 2).

Each body below used to make its whole batch fail, so the receiver's ingester retried the
same batch forever while later bodies piled up. Now a bad body is stored as rejected with
its reason, the rest of its batch is stored, and a failure that is not the body's (the
disk full, the workspace busy) is retried instead of rejected.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from webhook_samples import PNID, dumps, envelope, status, text_message

from bizchat.cli import main
from bizchat.ingest.batches import ingest_isolated, is_transient
from bizchat.ingest.payloads import payload_id
from bizchat.ingest.spool import Spool
from bizchat.ingest.webhooks import ingest_bodies

NOW = datetime(2026, 11, 1, tzinfo=UTC)
T0 = 1_790_000_000
WA = "491701234567"


@pytest.fixture
def account(ws):
    return ws.accounts.add("+49 30 901820", name="Lindenblatt Verlag", phone_number_id=PNID)


def item(doc, received=NOW):
    text = doc if isinstance(doc, str) else dumps(doc).decode()
    return payload_id(text), received, text


def message_with(**changes) -> dict:
    """An inbound text whose message (or its parts) has ``changes``; None deletes a key."""
    doc = text_message(WA, "wamid.BAD", "Hallo", T0)
    message = doc["entry"][0]["changes"][0]["value"]["messages"][0]
    for key, value in changes.items():
        target, _, leaf = key.rpartition(".")
        holder = message[target] if target else message
        if value is None:
            holder.pop(leaf, None)
        else:
            holder[leaf] = value
    return doc


LONE = dumps(text_message(WA, "wamid.LONE", "SURROGATE", T0)).decode().replace(
    "SURROGATE", "broken \\ud800 emoji")
LONE_STATUS = dumps(status("wamid.LS", "sent", T0)).decode().replace("wamid.LS", "wamid.\\udfff")
PREFERENCE_NO_TIME = envelope({"contacts": [{"wa_id": WA}], "user_preferences": [
    {"wa_id": WA, "category": "marketing_messages", "value": "stop", "timestamp": ""}]},
    field="user_preferences")
DISPLAY_TRUE = text_message(WA, "wamid.DT", "hi", T0, pnid="unknown-id")
DISPLAY_TRUE["entry"][0]["changes"][0]["value"]["metadata"]["display_phone_number"] = True

# body -> the words its rejection must give
CRASHED_A_BATCH = {
    "timestamp of 21 digits": (message_with(timestamp="100000000000000000000"), "message timestamp"),
    "timestamp Infinity": (dumps(message_with(timestamp="TS")).decode().replace('"TS"', "Infinity"),
                           "message timestamp inf"),
    "timestamp 1e400": (dumps(message_with(timestamp="TS")).decode().replace('"TS"', "1e400"),
                        "message timestamp inf"),
    "no message id": (message_with(id=None), "a message has no id"),
    "no timestamp": (message_with(timestamp=None), "message timestamp None"),
    "from is a number": (message_with(**{"from": 491701234567}), "from is int"),
    "id is a number": (message_with(id=4711), "id is int"),
    "type is a number": (message_with(type=7), "type is int"),
    "text.body is a number": (message_with(**{"text.body": 42}), "body is int"),
    "reaction emoji is a number": (
        message_with(type="reaction", text=None, reaction={"message_id": "wamid.X", "emoji": 1}),
        "emoji is int"),
    "lone surrogate in a text": (LONE, "lone UTF-16 surrogate"),
    "lone surrogate in a status id": (LONE_STATUS, "lone UTF-16 surrogate"),
    "display_phone_number true": (DISPLAY_TRUE, "display_phone_number is bool"),
    "preference timestamp empty": (PREFERENCE_NO_TIME, "preference timestamp ''"),
}


@pytest.mark.parametrize("name", list(CRASHED_A_BATCH))
def test_a_body_that_crashed_its_batch_is_rejected_with_a_reason(ws, account, name):
    bad, words = CRASHED_A_BATCH[name]
    before = status("wamid.B4", "sent", T0)
    after = text_message("491709876543", "wamid.AFTER", "gültig", T0)
    with ws.transaction() as con:   # one transaction, as the ingester's batch: it must not fail
        report = ingest_bodies(con, [item(before), item(bad), item(after)])
    bad_id = item(bad)[0]
    assert list(report.rejected) == [bad_id] and words in report.rejected[bad_id]
    rows = ws.sql("SELECT payload_id, state, note FROM raw_payloads ORDER BY state")
    assert rows["state"].tolist() == ["ingested", "ingested", "rejected"]
    assert rows["payload_id"].iloc[2] == bad_id and words in rows["note"].iloc[2]
    assert ws.sql("SELECT message_id FROM messages")["message_id"].tolist() == ["wamid.AFTER"]
    assert ws.sql("SELECT message_id FROM message_events")["message_id"].tolist() == ["wamid.B4"]


def test_a_body_nested_too_deep_for_the_parser_is_rejected(ws, account):
    deep = '{"object":"whatsapp_business_account","entry":' + "[" * 100_000 + "]" * 100_000 + "}"
    with ws.transaction() as con:
        report = ingest_bodies(con, [item(deep), item(status("wamid.OK", "sent", T0))])
    assert report.statuses == 1 and "not JSON" in report.rejected[payload_id(deep)]


def test_consent_dated_after_it_arrived_is_recorded_at_the_receive_time(ws, account):
    """Meta's clock runs a few minutes ahead of ours: the STOP and the preference must not
    become consent events in the future (which the ledger refuses, failing the batch)."""
    received = datetime.now(UTC)
    ahead = int((received + timedelta(minutes=4)).timestamp())
    hello = text_message(WA, "wamid.HI", "Hallo", int(received.timestamp()) - 60)
    stop = text_message(WA, "wamid.STOP", "STOP", ahead)
    other = "491702222222"
    prefs = envelope({"contacts": [{"wa_id": other}], "user_preferences": [
        {"wa_id": other, "category": "marketing_messages", "value": "stop",
         "detail": "User requested to stop marketing messages", "timestamp": ahead}]},
        field="user_preferences")
    with ws.transaction() as con:
        ingest_bodies(con, [item(hello, received)])
        ingest_bodies(con, [item(text_message(other, "wamid.O", "hi", T0), received)])
    with ws.transaction() as con:
        report = ingest_bodies(con, [item(stop, received), item(prefs, received)])
    assert report.consent_changes == 2 and not report.rejected
    events = ws.sql("SELECT source, recorded_at, evidence FROM consent_events ORDER BY source")
    assert events["source"].tolist() == ["keyword", "user_preferences"]
    assert (events["recorded_at"] == received).all()
    assert "dated" in events["evidence"][1] and "after it reached us" in events["evidence"][1]
    # The message keeps Meta's own time: the original is the evidence.
    created = ws.sql("SELECT created_at FROM messages WHERE message_id = 'wamid.STOP'")["created_at"][0]
    assert created == datetime.fromtimestamp(ahead, UTC)
    # A replay records nothing new (the time does not depend on when it is ingested).
    with ws.transaction() as con:
        ingest_bodies(con, [item(json.dumps(stop), received)])
    assert len(ws.sql("SELECT * FROM consent_events")) == 2


# --- a failure nobody foresaw: the batch is split, the body kept --------------------------------

BROKEN_AWAY = """INSERT INTO automations (automation_id, account_id, kind, text, schedule, schedule_spec)
                 VALUES (1, ?, 'away', 'Wir sind gerade nicht da', 'custom', '{"mon": ["18:00-20:00"]}')"""


def test_an_unforeseen_failure_rejects_only_its_body_which_reprocess_stores_once_fixed(ws, account):
    """A custom away schedule edited by hand ("18:00-20:00" instead of a pair) makes every
    inbound message of the account fail deep inside ingestion, where no parser check can
    see it. The batch is split until the bad bodies stand alone; they are kept as rejected
    with the error; the statuses around them are stored. After the schedule is mended,
    ``webhook reprocess --rejected`` stores them."""
    with ws.transaction() as con:
        con.execute(BROKEN_AWAY, [account["account_id"]])
    statuses = [item(status(f"wamid.S{i}", "sent", T0 + i)) for i in range(6)]
    inbound = [item(text_message(WA, "wamid.IN1", "Hallo", T0)),
               item(text_message("491703333333", "wamid.IN2", "Moin", T0))]
    batch = statuses[:3] + inbound[:1] + statuses[3:] + inbound[1:]
    with pytest.raises(ValueError), ws.transaction() as con:   # the batch as one: it fails
        ingest_bodies(con, batch)
    with ws.connect() as con:
        report = ingest_isolated(con, batch)
    assert report.statuses == 6 and len(report.rejected) == 2
    notes = ws.sql("SELECT note FROM raw_payloads WHERE state = 'rejected'")["note"]
    assert all("ValueError" in n and "too many values to unpack" in n for n in notes)
    assert ws.sql("SELECT count(*) AS n FROM messages")["n"][0] == 0
    # A replay of the same batch changes nothing (all bodies are known now).
    with ws.connect() as con:
        assert ingest_isolated(con, batch).duplicates == len(batch)

    with ws.transaction() as con:
        con.execute("""UPDATE automations SET schedule_spec = '{"mon": [["18:00", "20:00"]]}'""")
    plain = CliRunner().invoke(main, ["-w", str(ws.path), "webhook", "reprocess"])
    assert plain.exit_code == 0 and ws.sql("SELECT count(*) AS n FROM messages")["n"][0] == 0
    again = CliRunner().invoke(main, ["-w", str(ws.path), "webhook", "reprocess", "--rejected"])
    assert again.exit_code == 0, again.output
    assert "2 new messages" in again.output
    assert sorted(ws.sql("SELECT message_id FROM messages WHERE direction = 'in'")["message_id"]) == [
        "wamid.IN1", "wamid.IN2"]
    states = ws.sql("SELECT state, count(*) AS n FROM raw_payloads GROUP BY state")
    assert dict(states.values.tolist()) == {"ingested": 8}


def test_cli_ingest_keeps_the_bad_body_and_stores_the_rest(ws, account, tmp_path):
    good = dumps(text_message(WA, "wamid.F1", "eins", T0)).decode()
    bad = dumps(message_with(timestamp="100000000000000000000")).decode()
    later = dumps(status("wamid.F1", "read", T0 + 9)).decode()
    path = tmp_path / "saved.jsonl"
    path.write_text("\n".join([good, bad, later]) + "\n")
    result = CliRunner().invoke(main, ["-w", str(ws.path), "webhook", "ingest", str(path)])
    assert result.exit_code == 0, result.output
    assert "1 new messages, 1 new receipts" in result.output and "1 rejected" in result.output
    kept = ws.sql("SELECT state, note, body FROM raw_payloads WHERE state = 'rejected'")
    assert kept["body"].tolist() == [bad] and "lies outside 1970-2099" in kept["note"][0]


# --- transient failures are retried, never rejected ------------------------------------------------

DISK_FULL = textwrap.dedent("""
    import json, resource, signal, sys
    from pathlib import Path
    from bizchat.receiver.ingester import Ingester
    from bizchat.ingest.spool import Spool

    path = Path(sys.argv[1])
    ingester = Ingester(path, Spool(path, repair=False))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails (EFBIG)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16_000, resource.RLIM_INFINITY))
    print(json.dumps({"done": ingester.run_round(), **ingester.status()}))
""")


def test_a_full_disk_keeps_the_bodies_pending_instead_of_rejecting_them(ws, account, tmp_path):
    """DuckDB cannot write its log (the file size limit stands in for a full disk): the
    batch fails as a whole, nothing is rejected, the offset stays, and once there is room
    every body is stored."""
    spool = Spool(ws.path)
    spool.append([Spool.record(dumps(text_message(WA, f"wamid.D{i}", "Hallo " * 80, T0 + i)))
                  for i in range(60)])
    pending = spool.pending_bytes()
    run = subprocess.run([sys.executable, "-c", DISK_FULL, str(ws.path)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    status_line = json.loads(run.stdout.strip().splitlines()[-1])
    assert status_line["done"] == 0 and status_line["rejected"] == 0
    assert "File too large" in status_line["last_error"]
    assert spool.pending_bytes() == pending
    assert ws.sql("SELECT count(*) AS n FROM raw_payloads")["n"][0] == 0
    from bizchat.receiver.ingester import Ingester

    assert Ingester(ws.path, spool).run_once() == 60
    assert ws.sql("SELECT count(*) AS n FROM messages")["n"][0] == 60
    assert ws.sql("SELECT count(*) AS n FROM raw_payloads WHERE state <> 'ingested'")["n"][0] == 0


def test_transient_and_body_errors_are_told_apart():
    import duckdb

    from bizchat.errors import InvalidValue, SchemaError, WorkspaceBusy

    assert is_transient(WorkspaceBusy("busy")) and is_transient(SchemaError("newer"))
    assert is_transient(OSError(28, "No space left on device"))
    assert is_transient(duckdb.IOException("Could not write file"))
    assert not is_transient(ValueError("bad timestamp"))
    assert not is_transient(InvalidValue("a consent event lies in the future"))
    assert not is_transient(duckdb.ConstraintException("NOT NULL"))
    # DuckDB's "transaction is aborted" after a body's error is the body's error ...
    aborted = duckdb.TransactionException("Current transaction is aborted (please ROLLBACK)")
    aborted.__context__ = duckdb.ConversionException("could not convert")
    assert not is_transient(aborted)
    # ... but a commit the disk refused is not.
    assert is_transient(duckdb.TransactionException("Failed to commit: Could not write file"))
