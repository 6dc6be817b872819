"""Cloud API webhook bodies into the store: every message type, receipts in any order,
consent changes, unknown accounts, and replays that change nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from webhook_samples import (
    DISPLAY,
    PNID,
    SAMPLE_PNID,
    dumps,
    envelope,
    scenarios,
    status,
    statuses,
    text_message,
)

from bizchat.cli import main
from bizchat.ingest.payloads import payload_id
from bizchat.ingest.webhooks import ingest_bodies

NOW = datetime(2026, 11, 1, tzinfo=UTC)
T0 = 1_790_000_000  # 2026-09-21


@pytest.fixture
def account(ws):
    return ws.accounts.add("+49 30 901820", name="Lindenblatt Verlag", phone_number_id=PNID)


def ingest(ws, *docs):
    items = [(payload_id(dumps(d)), NOW, dumps(d).decode()) for d in docs]
    with ws.transaction() as con:
        return ingest_bodies(con, items)


def test_inbound_text_creates_contact_chat_and_message(ws, account):
    report = ingest(ws, text_message("491701234567", "wamid.A1", "Hallo, ist das Buch da?", T0,
                                     name="Erika Muster"))
    assert report.messages == 1 and report.payloads == 1
    contact = ws.sql("SELECT * FROM contacts").iloc[0]
    assert (contact["phone_e164"], contact["wa_id"], contact["name"]) == (
        "+491701234567", "491701234567", "Erika Muster")
    msg = ws.sql("SELECT * FROM messages").iloc[0]
    assert (msg["direction"], msg["kind"], msg["body"], msg["source"]) == (
        "in", "text", "Hallo, ist das Buch da?", "webhook")
    chat = ws.sql("SELECT * FROM chats").iloc[0]
    assert chat["contact_id"] == contact["contact_id"] == msg["contact_id"]
    assert chat["last_inbound_at"] == datetime.fromtimestamp(T0, UTC)
    assert ws.sql("SELECT state FROM raw_payloads")["state"].tolist() == ["ingested"]


def test_the_same_payload_twice_counts_once(ws, account):
    doc = text_message("491701234567", "wamid.A1", "Hallo", T0)
    ingest(ws, doc, status("wamid.OUT1", "read", T0))
    again = ingest(ws, doc, status("wamid.OUT1", "read", T0))
    assert again.duplicates == 2 and again.messages == 0 and again.statuses == 0
    # Re-encoded (different bytes, same content): still nothing new.
    pretty = json.dumps(doc, indent=2)
    with ws.transaction() as con:
        report = ingest_bodies(con, [(payload_id(pretty), NOW, pretty)])
    assert report.duplicates == 0 and report.messages == 0
    counts = ws.sql("SELECT (SELECT count(*) FROM messages) m, (SELECT count(*) FROM message_events) e")
    assert counts.values.tolist() == [[1, 1]]


def test_receipts_in_any_order_give_the_monotonic_status(ws, account):
    ingest(ws, status("wamid.X", "read", T0 + 60))
    assert ws.sql("SELECT status FROM message_status")["status"].tolist() == ["read"]
    ingest(ws, status("wamid.X", "delivered", T0 + 30), status("wamid.X", "sent", T0))
    row = ws.sql("SELECT * FROM message_status").iloc[0]
    assert row["status"] == "read"
    assert row["sent_at"] == datetime.fromtimestamp(T0, UTC)
    assert row["delivered_at"] == datetime.fromtimestamp(T0 + 30, UTC)
    # failed is final, even after read
    ingest(ws, status("wamid.Y", "sent", T0), status("wamid.Y", "failed", T0 + 5, error_code=131026))
    ingest(ws, status("wamid.Y", "delivered", T0 + 9))
    failed = ws.sql("SELECT status, error_code FROM message_status WHERE message_id = 'wamid.Y'")
    assert failed.values.tolist() == [["failed", 131026]]
    same = ws.sql("""SELECT count(*) AS n FROM message_status s JOIN latest_status l USING (message_id)
                     WHERE s.status = l.status""")
    assert same["n"][0] == 2


def test_receipts_for_an_unknown_message_join_up_when_it_arrives(ws, account):
    ingest(ws, status("wamid.LATE", "delivered", T0 + 10))
    assert ws.sql("SELECT count(*) AS n FROM messages")["n"][0] == 0
    ingest(ws, text_message("491701234567", "wamid.LATE", "hi", T0))
    joined = ws.sql("""SELECT m.body, s.status FROM messages m JOIN message_status s USING (message_id)""")
    assert joined.values.tolist() == [["hi", "delivered"]]


def test_failed_status_keeps_the_whole_errors_array(ws):
    ws.accounts.add("+49 30 901831", name="Docs", phone_number_id=SAMPLE_PNID["statuses"])
    ingest(ws, scenarios("statuses")["failed_131049"])
    ev = ws.sql("SELECT status, error_code, error_title, errors FROM message_events").iloc[0]
    assert ev["status"] == "failed" and ev["error_code"] == 131049
    errors = json.loads(ev["errors"])
    assert errors[0]["error_data"]["details"].startswith("Meta limits how many")


def test_every_inbound_type_of_the_samples(ws):
    ws.accounts.add("+49 30 901830", name="Laden", phone_number_id=SAMPLE_PNID["messages"])
    docs = list(scenarios("messages").values())
    report = ingest(ws, *docs)
    kinds = set(ws.sql("SELECT DISTINCT kind FROM messages")["kind"])
    assert {"text", "image", "video", "document", "audio", "sticker", "reaction", "location",
            "contacts", "order", "unsupported", "interactive", "button", "system"} <= kinds
    assert report.messages == len(docs) and not report.rejected
    media = ws.sql("SELECT body, media_mime FROM messages WHERE kind = 'video'").iloc[0]
    assert (media["body"], media["media_mime"]) == ("Lesung gestern", "video/mp4")
    loc = ws.sql("SELECT body, details FROM messages WHERE kind = 'location' AND body LIKE 'Buch%'")
    assert loc["body"][0] == "Buchhandlung am Alex, Alexanderplatz 1, 10178 Berlin"
    assert json.loads(loc["details"][0])["latitude"] == pytest.approx(52.5219814)
    reaction = ws.sql("SELECT body, reply_to FROM messages WHERE kind = 'reaction' ORDER BY body NULLS LAST")
    assert reaction["body"].tolist()[0] == "\U0001F44D" and reaction["body"].isna().tolist()[1]
    assert reaction["reply_to"][0] == "wamid.HBgNNDkxNzYxMjM0NTAwMRUCABEYEjAwQUJDRDEyMzQ1Njc4OQA="
    replies = ws.sql("SELECT kind, body FROM messages WHERE kind IN ('interactive', 'button') ORDER BY body")
    assert replies.values.tolist() == [["interactive", "Ja, bitte"], ["button", "Keine Werbung mehr"],
                                       ["interactive", "Krimis"]]
    forwarded = ws.sql("SELECT details FROM messages WHERE body = 'Kettenbrief'")["details"][0]
    assert json.loads(forwarded) == {"frequently_forwarded": True}


def test_current_shape_payloads_with_business_scoped_user_ids(ws):
    ws.accounts.add("+1 650 555 0144", name="US", phone_number_id=SAMPLE_PNID["current_shape"])
    report = ingest(ws, *scenarios("current_shape").values())
    assert report.messages == 1 and report.statuses == 3
    contact = ws.sql("SELECT wa_id, user_id, name FROM contacts")
    assert contact.values.tolist() == [["16505550199", "US.13491208655302741918", "Sam Rivera"]]
    assert ws.sql("SELECT status FROM message_status")["status"].tolist() == ["read"]
    pricing = ws.sql("SELECT pricing_model, pricing_category FROM message_events WHERE status = 'sent'")
    assert pricing.values.tolist() == [["PMP", "marketing"]]


def test_a_user_known_only_by_user_id_is_one_contact(ws, account):
    doc = text_message("491701234567", "wamid.U1", "erste", T0, user_id="DE.123")
    ingest(ws, doc)
    no_phone = envelope({"contacts": [{"profile": {"name": "K"}, "user_id": "DE.123"}],
                         "messages": [{"from_user_id": "DE.123", "id": "wamid.U2",
                                       "timestamp": str(T0 + 5), "type": "text",
                                       "text": {"body": "zweite"}}]})
    ingest(ws, no_phone)
    assert ws.sql("SELECT count(*) AS n FROM contacts")["n"][0] == 1
    assert ws.sql("SELECT count(DISTINCT contact_id) AS n FROM messages")["n"][0] == 1


def test_unknown_business_number_is_kept_for_review_then_reprocessed(ws, tmp_path):
    doc = text_message("491701234567", "wamid.Q", "Hallo?", T0, pnid="999", display="15550000000")
    report = ingest(ws, doc)
    assert len(report.unknown_account) == 1 and report.messages == 0
    assert ws.sql("SELECT state FROM raw_payloads")["state"].tolist() == ["unknown_account"]
    ws.accounts.add("+49 30 901821", name="Zweitnummer", phone_number_id="999")
    result = CliRunner().invoke(main, ["-w", str(ws.path), "webhook", "reprocess"])
    assert result.exit_code == 0, result.output
    assert "1 new messages" in result.output
    assert ws.sql("SELECT state FROM raw_payloads")["state"].tolist() == ["ingested"]


def test_account_is_selected_by_display_number_when_the_id_is_unknown(ws, account):
    ingest(ws, text_message("491701234567", "wamid.D", "hi", T0, pnid="not-known", display=DISPLAY))
    assert ws.sql("SELECT account_id FROM messages")["account_id"].tolist() == [account["account_id"]]


def test_consent_from_preferences_keywords_and_131050(ws, account):
    wa = "491701234567"
    ingest(ws, text_message(wa, "wamid.1", "Hallo", T0))
    contact_id = int(ws.sql("SELECT contact_id FROM contacts")["contact_id"][0])
    ws.consent.opt_in(contact_id, source="double_opt_in_form",
                      evidence="confirmed", at=datetime.fromtimestamp(T0 + 1, UTC))

    def state():
        return ws.sql("SELECT state FROM current_consent WHERE purpose = 'marketing'")["state"][0]

    assert state() == "opt_in"
    ingest(ws, text_message(wa, "wamid.2", "  Stopp! ", T0 + 10))
    assert state() == "opt_out"
    resume = envelope({"contacts": [{"wa_id": wa}], "user_preferences": [
        {"wa_id": wa, "detail": "User requested to resume marketing messages",
         "category": "marketing_messages", "value": "resume", "timestamp": T0 + 20}]},
        field="user_preferences")
    ingest(ws, resume)
    assert state() == "opt_in"
    empty = ingest(ws, envelope({}))  # a change with nothing in it changes nothing
    assert (empty.messages, empty.statuses, empty.consent_changes) == (0, 0, 0)
    ingest(ws, {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {
        "metadata": {"phone_number_id": PNID},
        "statuses": [{"id": "wamid.2", "status": "failed", "timestamp": str(T0 + 30),
                      "recipient_id": wa, "errors": [{"code": 131050, "title": "stopped"}]}]}}]}]})
    assert state() == "opt_out"
    sources = ws.sql("SELECT source FROM consent_events ORDER BY event_id")["source"].tolist()
    assert sources == ["double_opt_in_form", "keyword", "user_preferences", "delivery_failure"]
    # A replay of the keyword message records nothing new.
    ingest(ws, text_message(wa, "wamid.2", "  Stopp! ", T0 + 10))
    assert len(ws.sql("SELECT * FROM consent_events")) == 4


def test_a_status_with_an_idempotency_key_settles_an_unknown_send(ws, account):
    with ws.transaction() as con:
        con.execute("""INSERT INTO broadcast_recipients (broadcast_id, contact_id, state,
                       idempotency_key, updated_at) VALUES (1, 1, 'unknown', 'key-1', now())""")
    ingest(ws, status("wamid.S", "sent", T0, callback="key-1"))
    row = ws.sql("SELECT state, message_id FROM broadcast_recipients").iloc[0]
    assert (row["state"], row["message_id"]) == ("sent", "wamid.S")


def test_non_webhook_json_is_rejected_and_kept(ws, account):
    report = ingest(ws, {"hello": "world"}, {"object": "whatsapp_business_account", "entry": 3})
    assert len(report.rejected) == 2
    assert ws.sql("SELECT state FROM raw_payloads")["state"].tolist() == ["rejected", "rejected"]


def test_cli_ingest_json_and_json_lines(ws, account, tmp_path):
    one = tmp_path / "one.json"
    one.write_bytes(dumps(text_message("491701234567", "wamid.F1", "eins", T0)))
    lines = tmp_path / "many.jsonl"
    lines.write_text("\n".join(dumps(statuses([("wamid.F1", s, T0 + i)])).decode()
                               for i, s in enumerate(["sent", "delivered", "read"])) + "\n")
    result = CliRunner().invoke(main, ["-w", str(ws.path), "webhook", "ingest", str(one), str(lines)])
    assert result.exit_code == 0, result.output
    assert "1 new messages, 3 new receipts" in result.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text(lines.read_text() + "{not json\n")
    result = CliRunner().invoke(main, ["-w", str(ws.path), "webhook", "ingest", str(bad)])
    assert result.exit_code == 1 and "line 4" in result.output


def test_received_at_is_when_the_body_was_accepted(ws, account):
    accepted = datetime(2026, 10, 30, 12, 0, tzinfo=UTC)
    body = dumps(status("wamid.R", "delivered", T0)).decode()
    with ws.transaction() as con:
        ingest_bodies(con, [(payload_id(body), accepted, body)])
    assert ws.sql("SELECT received_at FROM message_events")["received_at"][0] == accepted
    assert ws.sql("SELECT received_at FROM raw_payloads")["received_at"][0] == accepted


def test_131050_opt_outs_are_dated_per_customer(ws, account):
    """Two customers stop marketing at different times: each opt-out carries its own time."""
    ingest(ws, text_message("491701111111", "wamid.in1", "Hallo", T0),
           text_message("491702222222", "wamid.in2", "Hallo", T0))
    ingest(ws, status("wamid.in1", "failed", T0 + 100, error_code=131050),
           status("wamid.in2", "failed", T0 + 900, error_code=131050))
    got = ws.sql("""SELECT c.wa_id, e.recorded_at FROM consent_events e JOIN contacts c USING (contact_id)
                    WHERE e.source = 'delivery_failure' ORDER BY c.wa_id""")
    assert got["recorded_at"].tolist() == [datetime.fromtimestamp(T0 + 100, UTC),
                                           datetime.fromtimestamp(T0 + 900, UTC)]


def test_a_status_the_store_cannot_hold_rejects_its_body_not_the_batch(ws, account):
    """These used to fail the whole batch (and so stall the receiver's ingest)."""
    good = status("wamid.OK", "sent", T0)
    bad = [envelope({"statuses": [s]}) for s in (
        {"id": "wamid.B1", "status": "sent"},                                  # no timestamp
        {"status": "sent", "timestamp": str(T0)},                              # no message id
        {"id": "wamid.B2", "status": "failed", "timestamp": str(T0),
         "errors": [{"code": 2**40}]},                                         # code too big
        {"id": "wamid.B3", "status": "failed", "timestamp": str(T0),
         "errors": [{"code": "x"}]},                                           # code no number
        {"id": "wamid.B4", "status": "failed", "timestamp": str(T0),
         "errors": {"code": 1}},                                               # errors no list
    )]
    report = ingest(ws, good, *bad)
    assert report.statuses == 1 and len(report.rejected) == 5
    reasons = ws.sql("SELECT note FROM raw_payloads WHERE state = 'rejected'")["note"]
    assert sorted(r.split(": ", 1)[1] for r in reasons) == sorted([
        "status timestamp None is not Unix seconds", "a status has no message id",
        "error code 1099511627776 is not a 32-bit integer", "error code 'x' is not a number",
        "errors is dict, expected a list"])
