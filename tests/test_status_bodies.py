"""Status bodies parsed in SQL (status_bodies.py) store exactly what the Python path
stores; bodies it cannot vouch for, hostile ones included, take the Python path."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import pandas as pd
import pytest
from webhook_samples import (
    DISPLAY,
    PNID,
    SAMPLE_PNID,
    dumps,
    envelope,
    scenarios,
    status,
    text_message,
)

import bizchat
from bizchat.ingest import status_bodies
from bizchat.ingest.payloads import payload_id
from bizchat.ingest.spool import Spool
from bizchat.ingest.webhooks import ingest_bodies
from bizchat.receiver.ingester import Ingester

NOW = datetime(2026, 11, 1, tzinfo=UTC)
T0 = 1_790_000_000


def item(doc, received=NOW):
    text = doc if isinstance(doc, str) else dumps(doc).decode()
    return payload_id(text), received, text


def sample_statuses() -> list[dict]:
    """Every status-carrying sample body (tests/fixtures/webhooks), each status with a
    message id of its own (the samples reuse ids, whose order in a batch is arbitrary)."""
    docs = []
    for name in ("statuses", "current_shape"):
        for key, doc in scenarios(name).items():
            for entry in doc["entry"]:
                for change in entry["changes"]:
                    for k, s in enumerate(change["value"].get("statuses", [])):
                        s["id"] = f"wamid.{name}.{key}.{k}"
            if "statuses" in json.dumps(doc):
                docs.append(doc)
    return docs


def many(items, pnid=PNID, display=DISPLAY, **value) -> dict:
    return envelope({"statuses": items, **value}, pnid=pnid, display=display)


def st(mid, state, ts, **extra) -> dict:
    return {"id": mid, "status": state, "timestamp": str(ts), "recipient_id": "491701234567",
            **extra}


FAILED_131026 = [{"code": 131026, "title": "Message undeliverable – Empfänger",
                  "message": "Nachricht nicht zustellbar \u2028 \"quoted\"",
                  "error_data": {"details": "Zeile 1\nZeile 2", "n": [1, None, 2]},
                  "href": "/docs/errors"}]


def batches() -> list[list[tuple]]:
    """Three batches of varied bodies; see the comments for what each exercises."""
    inbound = text_message("491701111111", "wamid.in1", "Hallo", T0)
    consent_failure = many([st("wamid.in1", "failed", T0 + 60,
                               errors=[{"code": 131050, "title": "stopped marketing"}])])
    pricing = {"billable": True, "pricing_model": "PMP", "category": "marketing", "type": "regular"}
    conversation = {"id": "conv-1", "origin": {"type": "marketing"}, "expiration_timestamp": "1"}
    one = [
        item(inbound),            # Python path: a message, and its contact for the 131050
        item(consent_failure),    # SQL path: the customer stopped marketing
        # Outbox keys: the first status in body order names the message. key-1 first in a
        # SQL body, then in a Python one (it has contacts); key-2 the other way round.
        item(many([st("wamid.K1a", "sent", T0, biz_opaque_callback_data="key-1")])),
        item(many([st("wamid.K1b", "sent", T0, biz_opaque_callback_data="key-1")],
                  contacts=[{"wa_id": "491709999999", "profile": {"name": "X"}}])),
        item(many([st("wamid.K2a", "sent", T0, biz_opaque_callback_data="key-2")],
                  contacts=[{"wa_id": "491709999998", "profile": {"name": "Y"}}])),
        item(many([st("wamid.K2b", "sent", T0, biz_opaque_callback_data="key-2")])),
        # Every field: pricing, conversation, errors (non-ASCII, nested), user-id-only
        # recipients, an unknown status, several changes and entries in one body.
        item({"object": "whatsapp_business_account", "entry": [
            {"id": "W", "changes": [
                {"field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": DISPLAY, "phone_number_id": PNID},
                    "statuses": [
                        st("wamid.P1", "sent", T0, pricing=pricing, conversation=conversation),
                        st("wamid.P1", "delivered", T0 + 5, pricing=pricing),
                        st("wamid.F1", "failed", T0 + 7, errors=FAILED_131026),
                        st("wamid.E0", "sent", T0 + 8, errors=[]),
                        {"id": "wamid.U1", "status": "read", "timestamp": str(T0 + 9),
                         "recipient_user_id": "DE.4711"},
                        st("wamid.D1", "deleted", T0 + 9),
                    ]}},
                None,                                      # a null change
                {"field": "messages", "value": {           # a number that is no account
                    "metadata": {"display_phone_number": "15550000000", "phone_number_id": "999"},
                    "statuses": [st("wamid.X9", "sent", T0)]}}]},
            None,                                          # a null entry
            {"id": "W2", "changes": [{"field": "messages", "value": {
                # the id is unknown, the display number (with spaces) is ours
                "metadata": {"display_phone_number": "49 30 901820", "phone_number_id": "nope"},
                "statuses": [st("wamid.D2", "read", T0 + 11)]}}]}]}),
        item(many([st("wamid.Q1", "sent", T0)], pnid="999", display="15550000000")),  # unknown
        item(many([st("wamid.Q2", "sent", T0)], pnid=None, display=None)),             # no metadata
        item({"object": "whatsapp_business_account", "entry": []}),
        # The body's account comes from a change without statuses.
        item({"object": "whatsapp_business_account", "entry": [{"changes": [
            {"value": {"metadata": {"phone_number_id": "999"},
                       "statuses": [st("wamid.Z1", "sent", T0)]}},
            {"value": {"metadata": {"phone_number_id": PNID}, "statuses": []}}]}]}),
    ]
    # Out of order: read before sent, across batches; the same body again in the batch
    # and later; a re-encoded retry (other bytes, same content).
    read_first = many([st("wamid.O1", "read", T0 + 30), st("wamid.O2", "delivered", T0 + 20)])
    two = [item(read_first), item(read_first),
           item(json.dumps(read_first, indent=2)),
           *[item(d) for d in sample_statuses()],
           item(many([st(f"wamid.B{n}", ("sent", "delivered", "read")[n % 3], T0 + n)
                      for n in range(300)]))]
    three = [item(many([st("wamid.O1", "sent", T0), st("wamid.O2", "sent", T0 + 1),
                        st("wamid.O1", "delivered", T0 + 10)])),
             item(read_first), *one[:2]]
    return [one, two, three]


def workspace(path):
    ws = bizchat.open(path)
    ws.accounts.add("+49 30 901820", name="Lindenblatt", phone_number_id=PNID)
    ws.accounts.add("+49 30 901831", name="Samples", phone_number_id=SAMPLE_PNID["statuses"])
    ws.accounts.add("+1 650 555 0144", name="US", phone_number_id=SAMPLE_PNID["current_shape"])
    with ws.transaction() as con:
        con.execute("""INSERT INTO broadcast_recipients (broadcast_id, contact_id, state,
                           idempotency_key, updated_at)
                       VALUES (1, 1, 'unknown', 'key-1', now()), (1, 2, 'sending', 'key-2', now()),
                              (1, 3, 'sent', 'key-3', now())""")
    return ws


def run(ws, all_batches, sql: bool) -> list:
    reports = []
    for batch in all_batches:
        with ws.transaction() as con:
            reports.append(ingest_bodies(con, batch, sql_status_bodies=sql))
    return reports


TABLES = {
    "message_events": "SELECT * FROM message_events",
    "message_status": "SELECT * EXCLUDE (updated_at) FROM message_status",
    "raw_payloads": "SELECT * FROM raw_payloads",
    "consent_events": "SELECT * FROM consent_events",
    "broadcast_recipients": "SELECT * EXCLUDE (updated_at) FROM broadcast_recipients",
    "contacts": "SELECT * EXCLUDE (created_at) FROM contacts",
}


def table(ws, name) -> pd.DataFrame:
    return ws.sql(TABLES[name] + " ORDER BY ALL").reset_index(drop=True)


def same_result(tmp_path, all_batches):
    """Ingest through both paths into two workspaces; assert equal tables and reports."""
    sql_ws, py_ws = workspace(tmp_path / "sql.duckdb"), workspace(tmp_path / "py.duckdb")
    sql_reports, py_reports = run(sql_ws, all_batches, True), run(py_ws, all_batches, False)
    for name in TABLES:
        pd.testing.assert_frame_equal(table(sql_ws, name), table(py_ws, name), obj=name)
    for a, b in zip(sql_reports, py_reports, strict=True):
        assert a == b
    return sql_ws, sql_reports


def test_both_paths_store_the_same(tmp_path):
    all_batches = batches()
    ws, reports = same_result(tmp_path, all_batches)
    # ... and what they store is right, so equal cannot mean equally empty.
    assert reports[0].statuses == 11 and len(reports[0].unknown_account) == 3 and reports[0].consent_changes == 1
    assert reports[1].duplicates == 1 and reports[2].duplicates == 3
    keys = ws.sql("SELECT idempotency_key, state, coalesce(message_id, '-') AS m "
                  "FROM broadcast_recipients ORDER BY 1")
    assert keys.values.tolist() == [["key-1", "sent", "wamid.K1a"], ["key-2", "sent", "wamid.K2a"],
                                    ["key-3", "sent", "-"]]
    ev = ws.sql("SELECT * FROM message_events WHERE message_id = 'wamid.F1'").iloc[0]
    assert (ev["error_code"], ev["error_title"]) == (131026, FAILED_131026[0]["title"])
    assert ev["errors"] == json.dumps(FAILED_131026, ensure_ascii=False)
    p1 = ws.sql("""SELECT conversation_id, conversation_category, pricing_category, pricing_model,
                          billable FROM message_events WHERE message_id = 'wamid.P1' AND status = 'sent'""")
    assert p1.values.tolist() == [["conv-1", "marketing", "marketing", "PMP", True]]
    recipients = dict(ws.sql("SELECT message_id, recipient_id FROM message_events "
                             "WHERE message_id IN ('wamid.U1', 'wamid.D2')").values.tolist())
    assert recipients == {"wamid.U1": "DE.4711", "wamid.D2": "491701234567"}
    assert ws.sql("SELECT count(*) AS n FROM message_events WHERE message_id IN "
                  "('wamid.D1', 'wamid.X9', 'wamid.Q1', 'wamid.Q2', 'wamid.Z1')")["n"][0] == 0
    o1 = ws.sql("SELECT status, sent_at FROM message_status WHERE message_id = 'wamid.O1'").iloc[0]
    assert (o1["status"], o1["sent_at"]) == ("read", datetime.fromtimestamp(T0, UTC))
    states = ws.sql("SELECT state, count(*) AS n FROM raw_payloads GROUP BY state ORDER BY state")
    assert dict(states.values.tolist()) == {"ingested": 27, "unknown_account": 3}
    consent = ws.sql("SELECT source, recorded_at FROM consent_events").values.tolist()
    assert consent == [["delivery_failure", datetime.fromtimestamp(T0 + 60, UTC)]]


def test_the_sql_path_takes_status_bodies_and_leaves_the_rest(ws):
    ws.accounts.add("+49 30 901820", name="Lindenblatt", phone_number_id=PNID)
    status_only = [item(status("wamid.S1", "sent", T0)),
                   item(many([st("wamid.S2", "failed", T0, errors=FAILED_131026)])),
                   item(status("wamid.S3", "read", T0, pnid="999"))]
    others = [item(text_message("491701234567", "wamid.M", "hi", T0)),
              item(many([st("wamid.S4", "sent", T0)], contacts=[{"wa_id": "49"}])),
              item(many([st("wamid.S5", "sent", T0)], errors=[{"code": 1}])),
              item(envelope({"user_preferences": [], "statuses": [st("wamid.S6", "sent", T0)]})),
              item(envelope({"statuses": []})),
              *HOSTILE.values()]
    # Status-only samples are the SQL path's; one carries contacts beside its statuses
    # (the newer shape), which is the Python path's.
    samples = [item(d) for d in sample_statuses()]
    docs = [i for i in samples if '"contacts"' not in i[2]]
    assert len(docs) == 14 and len(samples) == 15
    bodies = [(i, pid, at, text)
              for i, (pid, at, text) in enumerate(status_only + others + samples)]
    with ws.transaction() as con:
        taken = status_bodies.take(con, bodies, lambda p, d: 1 if p == PNID else None, NOW)
    assert taken.accounts == {status_only[0][0]: 1, status_only[1][0]: 1, status_only[2][0]: None,
                              **{pid: None for pid, _, _ in docs}}
    assert sorted(taken.events.column("message_id").to_pylist()) == ["wamid.S1", "wamid.S2"]
    assert ws.sql("SELECT count(*) AS n FROM raw_payloads")["n"][0] == 3 + len(docs)


GOOD = status("wamid.OK", "sent", T0)
HOSTILE = {
    "timestamp not a number": item(many([st("wamid.H1", "sent", "abc")])),
    "timestamp missing": item(many([{"id": "wamid.H2", "status": "sent"}])),
    "timestamp after 2100": item(many([st("wamid.H3", "sent", 9_999_999_999)])),
    "statuses an object": item(many({"id": "wamid.H4", "status": "sent", "timestamp": str(T0)})),
    "statuses a string": item(many("sent")),
    "a null status": item(many([None, st("wamid.H5", "sent", T0)])),
    "no message id": item(many([{"status": "sent", "timestamp": str(T0)}])),
    "error code not a number": item(many([st("wamid.H6", "failed", T0, errors=[{"code": "x"}])])),
    "error code too big": item(many([st("wamid.H7", "failed", T0, errors=[{"code": 2**40}])])),
    "errors an object": item(many([st("wamid.H8", "failed", T0, errors={"code": 1})])),
    "recipient a number": item(many([st("wamid.H9", "sent", T0, recipient_id=491701234567)])),
    "billable a string": item(many([st("wamid.HA", "sent", T0, pricing={"billable": "yes"})])),
    "pricing a string": item(many([st("wamid.HB", "sent", T0, pricing="PMP")])),
    "trailing comma": item(dumps(many([st("wamid.HC", "sent", T0)])).decode()[:-2] + ",]}"),
    "inf literal": item(dumps(many([st("wamid.HD", "sent", T0)])).decode()
                        .replace('"sent"', '"sent","x":inf')),
    "not an object": item("[1, 2]"),
    "wrong object": item({**many([st("wamid.HE", "sent", T0)]), "object": "page"}),
}
# Odd but readable: stored by both paths (the SQL path leaves all but the unknown key
# "field_extra" to Python).
ODD = [
    item(dumps(many([st("wamid.N1", "sent", T0)])).decode().replace('"sent"', '"sent","x":NaN')),
    item(many([{"id": "wamid.N2", "status": "sent", "timestamp": T0}])),        # a number
    item(many([st("wamid.N3", "sent", T0, conversation="", pricing={})])),
    item(many([st("wamid.N4", "sent", T0)], field_extra=1)),
    item(" \n" + dumps(many([st("wamid.N5", "sent", T0)])).decode()),
    item(many([st("wamid.N6", "failed", T0, errors=[{"code": 1, "error_data": {"x": 2.5}}])])),
    item(many([st("wamid.N7", "failed", T0, errors=[{"code": 2, "error_data": {"x": [1, "a"]}}])])),
]


def test_hostile_bodies_are_rejected_and_spare_the_rest(tmp_path):
    all_batches = [[item(GOOD), *HOSTILE.values(), *ODD]]
    ws, (report,) = same_result(tmp_path, all_batches)
    assert set(report.rejected) == {pid for pid, _, _ in HOSTILE.values()}
    assert all(report.rejected.values())
    got = set(ws.sql("SELECT message_id FROM message_events")["message_id"])
    assert got == {"wamid.OK", *(f"wamid.N{n}" for n in range(1, 8))}
    notes = dict(ws.sql("SELECT payload_id, note FROM raw_payloads WHERE state = 'rejected'")
                 .values.tolist())
    by_case = {case: notes[pid] for case, (pid, _, _) in HOSTILE.items()}
    assert "abc" in by_case["timestamp not a number"]
    assert "not JSON" in by_case["trailing comma"] and "not JSON" in by_case["inf literal"]
    assert "recipient_id" in by_case["recipient a number"]
    assert "32-bit" in by_case["error code too big"]


@pytest.mark.parametrize("structure, fits", [
    ({"object": "VARCHAR", "entry": [{"changes": [{"value": {"statuses": [
        {"id": "VARCHAR", "timestamp": "VARCHAR"}]}}]}]}, True),
    ({"object": "VARCHAR", "entry": [{"changes": [{"value": {"statuses": [
        {"id": "VARCHAR", "timestamp": "UBIGINT"}]}}]}]}, False),
    ({"object": "VARCHAR", "entry": [{"changes": [{"value": {"statuses": [
        {"id": "VARCHAR", "timestamp": "VARCHAR"}], "messages": "NULL"}}]}]}, False),
    ({"object": "VARCHAR", "entry": [{"changes": [{"value": {"statuses": ["NULL"]}}]}]}, False),
    ({"object": "VARCHAR", "entry": [{"changes": [{"value": {"statuses": ["JSON"]}}]}]}, False),
    ({"object": "VARCHAR", "entry": "NULL"}, False),
    ({"object": "VARCHAR", "entry": ["NULL"]}, True),
])
def test_structure_fit(structure, fits):
    assert status_bodies.fits(structure, status_bodies.BODY) is fits


# --- the ingester: a backlog on one connection, released when drained ---------------------

def test_the_ingester_drains_a_backlog_then_lets_go_of_the_file(tmp_path):
    path = tmp_path / "ws.duckdb"
    ws = workspace(path)
    spool = Spool(path)
    lines = [Spool.record(dumps(status(f"wamid.I{n}", "sent", T0 + n))) for n in range(30)]
    spool.append(lines)
    ingester = Ingester(path, spool, batch_bytes=5 * len(lines[0]))
    assert ingester.run_once() == 30            # the whole backlog in one call ...
    assert ingester.batches > 1                 # ... still one transaction per batch
    assert spool.pending_bytes() == 0
    assert ws.sql("SELECT count(*) AS n FROM message_events")["n"][0] == 30
    # Released as soon as the spool is drained: another process may write at once.
    subprocess.run([sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1]).close()",
                    str(path)], check=True, timeout=60)
    # With no time to hold the file, each call takes one batch and lets go.
    spool.append([Spool.record(dumps(status(f"wamid.J{n}", "sent", T0 + n))) for n in range(30)])
    brief = Ingester(path, spool, batch_bytes=5 * len(lines[0]), hold=0)
    first = brief.run_once()
    assert 0 < first < 30 and brief.batches == 1 and spool.pending_bytes() > 0
    while brief.run_once():
        pass
    assert ws.sql("SELECT count(*) AS n FROM message_events")["n"][0] == 60
