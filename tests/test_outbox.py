"""The outbox: paced, crash-safe sending of frozen broadcasts.

Broadcasts are composed and frozen through the real API (``Broadcasts.create`` and
``schedule``); contacts and consent are made in bulk. ``Scripted`` is a transport with
hand-picked answers per recipient and attempt (on a simulated clock), for the error
handling; everything else runs on the SimulatedTransport or the Cloud API transport
against the fake Graph API.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from fake_graph import FakeGraph
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from outbox_helpers import (
    CALM,
    T0,
    Scripted,
    campaign,
    recipients,
    sent_per_contact,
    service,
    status_webhook,
    wa,
)

from bizchat.campaigns import outbox
from bizchat.campaigns.transports import (
    SimulatedTransport,
)
from bizchat.campaigns.transports.cloud_api import CloudApiTransport
from bizchat.errors import NotFound
from bizchat.ingest import webhooks
from bizchat.messaging import chats
from bizchat.people.consent import record_events

# --- sending -------------------------------------------------------------------------------

@pytest.mark.slow
def test_send_sends_every_recipient_exactly_once(ws):
    bid = campaign(ws, 60)
    result = outbox.send(ws, bid, seed=3, batch_size=25)
    rows = recipients(ws, bid)
    assert result["queued"] == result["sending"] == result["unknown"] == 0
    assert result["sent"] == (rows.state == "sent").sum() > 50
    assert result["status"] == "done" and result["batches"] >= 3
    sent = rows[rows.state == "sent"]
    assert sent.message_id.is_unique and sent.message_id.str.startswith("wamid.SIM").all()
    assert (sent.attempts >= 1).all() and sent.sent_at.notna().all()
    per_contact = sent_per_contact(ws, bid)
    assert (per_contact == 1).all() and set(per_contact.index) == set(sent.contact_id)
    msgs = ws.sql("SELECT * FROM messages WHERE broadcast_id = ?", [bid])
    assert set(msgs.kind) == {"template"} and set(msgs.source) == {"transport"}
    assert set(msgs.variant) == {"A"} and msgs.body.str.startswith("Hallo Kundin").all()
    assert json.loads(msgs.details[0])["idempotency_key"] in set(rows.idempotency_key)
    # Receipts arrived through the webhook path and join up by message id.
    assert ws.sql("SELECT count(*) AS n FROM raw_payloads").n[0] > 0
    stats = ws.sql("SELECT * FROM campaign_stats WHERE broadcast_id = ?", [bid]).iloc[0]
    assert stats.sent == len(sent) and stats.delivered > 0
    # The trails name no phone numbers.
    audit = ws.sql("SELECT details FROM audit_log WHERE action = 'broadcast.send'")
    trail = ws.sql("SELECT detail FROM outbox_log")
    assert len(audit) == result["batches"]
    assert not any(wa(i) in text for text in list(audit.details) + list(trail.detail)
                   for i in range(60))
    # Sending again changes nothing.
    again = outbox.send(ws, bid, seed=3)
    per_contact = sent_per_contact(ws, bid)
    assert again["sent"] == result["sent"] > 0 and len(per_contact) == result["sent"]
    assert (per_contact == 1).all()


@pytest.mark.slow
def test_seeded_send_is_deterministic(tmp_path):
    import bizchat

    outcomes = []
    for name in ("a", "b"):
        ws = bizchat.open(tmp_path / f"{name}.duckdb")
        bid = campaign(ws, 80, seed=5)
        outbox.send(ws, bid, batch_size=30)
        outcomes.append(ws.sql("SELECT r.contact_id, r.state, r.error_code, r.sent_at, s.status "
                               "FROM broadcast_recipients r LEFT JOIN message_status s "
                               "USING (message_id) ORDER BY contact_id"))
    pd.testing.assert_frame_equal(*outcomes)


def test_consent_is_checked_again_at_send_time(ws):
    bid = campaign(ws, 10)
    rows = recipients(ws, bid)
    gone = int(rows.contact_id[2])
    ws.consent.opt_out(gone, "marketing", source="chat")
    outbox.send(ws, bid, transport=SimulatedTransport(1, rates=CALM))
    rows = recipients(ws, bid).set_index("contact_id")
    assert rows.loc[gone, "state"] == "skipped" and rows.loc[gone, "skip_reason"] == "opted_out"
    assert gone not in sent_per_contact(ws, bid).index
    assert (rows.drop(gone).state == "sent").all()


def test_utility_respects_service_opt_outs_only(ws):
    bid = campaign(ws, 6, category="utility", body="Ihre Bestellung ist da.", opt_in=False)
    ids = list(recipients(ws, bid).contact_id)
    ws.consent.opt_out(ids[0], "marketing", source="keyword")
    ws.consent.opt_out(ids[1], "service", source="chat")
    outbox.send(ws, bid, transport=SimulatedTransport(1))
    rows = recipients(ws, bid).set_index("contact_id")
    assert rows.loc[ids[0], "state"] == "sent"
    assert rows.loc[ids[1], ["state", "skip_reason"]].tolist() == ["skipped", "opted_out"]


@pytest.mark.slow
def test_pacing_shapes_simulated_time_not_wall_time(ws):
    bid = campaign(ws, 120)
    acc = ws.sql("SELECT account_id FROM broadcasts WHERE broadcast_id = ?", [bid]).account_id[0]
    service(ws).set_limits(int(acc), send_rate=10)
    started = time.monotonic()
    outbox.send(ws, bid, transport=SimulatedTransport(2, rates=CALM), batch_size=50)
    assert time.monotonic() - started < 30
    times = recipients(ws, bid).sent_at.sort_values()
    assert times.min() >= T0
    assert times.diff().dropna().min() >= timedelta(milliseconds=100)
    assert times.max() - times.min() >= timedelta(seconds=11.9)
    assert ws.sql("SELECT count(*) AS n FROM outbox_log WHERE event = 'simulated.reject'").n[0] == 0


def test_at_least_six_seconds_between_messages_to_one_user(ws):
    bid = campaign(ws, 5, category="utility", body="Info", opt_in=False)
    first = recipients(ws, bid).iloc[0]
    with ws.transaction() as con:
        chats.store_messages(con, pd.DataFrame([{
            "message_id": "wamid.earlier", "account_id": 1, "contact_id": int(first.contact_id),
            "direction": "out", "kind": "text", "body": "vorhin", "source": "transport",
            "created_at": T0 - timedelta(seconds=2)}]))
    outbox.send(ws, bid, transport=SimulatedTransport(1))
    rows = recipients(ws, bid).set_index("contact_id")
    assert rows.loc[first.contact_id, "sent_at"] >= T0 + timedelta(seconds=4)
    assert (rows.state == "sent").all()


def test_messaging_tier_limits_unique_users_per_24_hours(ws):
    bid = campaign(ws, 300, category="utility", body="Info", opt_in=False)
    service(ws).set_limits(1, messaging_tier=250)
    result = outbox.send(ws, bid, transport=SimulatedTransport(4), batch_size=100)
    assert result["sent"] == 300
    times = recipients(ws, bid).sent_at.sort_values().reset_index(drop=True)
    assert (times < times[0] + timedelta(hours=24)).sum() == 250
    assert times[250] >= times[0] + timedelta(hours=24)


def test_tier_wait_beyond_max_wait_leaves_the_rest_queued(ws):
    bid = campaign(ws, 260, category="utility", body="Info", opt_in=False)
    service(ws).set_limits(1, messaging_tier=250)
    result = outbox.send(ws, bid, transport=SimulatedTransport(4), batch_size=100, max_wait=3600)
    assert result["sent"] == 250 and result["queued"] == 10 and result["status"] == "sending"


# --- platform errors -------------------------------------------------------------------------

def test_131049_defers_the_recipient_by_24_hours(ws):
    bid = campaign(ws, 4)
    transport = Scripted({wa(1): [131049]})
    result = outbox.send(ws, bid, transport=transport, max_wait=60)
    assert result["sent"] == 3 and result["queued"] == 1 and result["deferred"] == 1
    row = recipients(ws, bid).iloc[1]
    assert row.state == "queued" and row.error_code == 131049 and row.attempts == 1
    first_try = [m for m in transport.calls if m.to == wa(1)][0].send_at
    assert row.not_before == first_try + timedelta(hours=24)
    # A day later (on the simulated clock) the recipient goes out.
    result = outbox.send(ws, bid, transport=transport)
    row = recipients(ws, bid).iloc[1]
    assert result["sent"] == 4 and row.state == "sent" and row.attempts == 2
    assert row.sent_at >= first_try + timedelta(hours=24)
    assert result["status"] == "done"


def test_131050_stops_marketing_to_the_recipient(ws):
    bid = campaign(ws, 3)
    outbox.send(ws, bid, transport=Scripted({wa(0): [131050]}))
    row = recipients(ws, bid).iloc[0]
    assert row.state == "failed" and row.error_code == 131050
    history = ws.consent.history(int(row.contact_id))
    assert history.iloc[-1][["action", "source"]].tolist() == ["opt_out", "delivery_failure"]
    assert not ws.consent.may_send(1, int(row.contact_id), "marketing")


@pytest.mark.parametrize("code", [130429, 131056])
def test_throttling_backs_off_then_sends(ws, code):
    bid = campaign(ws, 6)
    transport = Scripted({wa(0): [code], wa(3): [code, code]}, retry_after={130429: 2.0})
    result = outbox.send(ws, bid, transport=transport)
    rows = recipients(ws, bid)
    assert result["sent"] == 6 and (sent_per_contact(ws, bid) == 1).all()
    assert rows.attempts.tolist() == [2, 1, 1, 3, 1, 1]
    tries = [m.send_at for m in transport.calls if m.to == wa(3)]
    assert tries[1] - tries[0] >= timedelta(seconds=2)
    assert ws.sql("SELECT count(*) AS n FROM outbox_log WHERE event = 'retry'").n[0] == 3


def test_attempts_are_bounded(ws):
    bid = campaign(ws, 2)
    outbox.send(ws, bid, transport=Scripted({wa(0): [131056] * 9}), max_attempts=3)
    row = recipients(ws, bid).iloc[0]
    assert row.state == "failed" and row.error_code == 131056 and row.attempts == 3


def test_other_errors_fail_with_code_and_message(ws):
    bid = campaign(ws, 2)
    outbox.send(ws, bid, transport=Scripted({wa(1): [132000]}))
    row = recipients(ws, bid).iloc[1]
    assert (row.state, row.error_code, row.error_title) == ("failed", 132000, "error 132000")


# --- the consent rule at send time (property) ----------------------------------------------------

ACTIONS = st.sampled_from(["opt_in", "opt_out", "none"])


@pytest.mark.slow
@given(before=st.lists(ACTIONS, min_size=6, max_size=6),
       after=st.lists(st.sampled_from(["opt_in", "opt_out", "keep"]), min_size=6, max_size=6),
       category=st.sampled_from(["marketing", "utility"]))
@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_message_without_current_consent_at_send_time(tmp_path_factory, before, after,
                                                         category):
    """Consent given or withdrawn before freezing and changed again before sending: only
    contacts whose consent at send time allows the category get a message."""
    import bizchat

    ws = bizchat.open(tmp_path_factory.mktemp("prop") / "ws.duckdb")
    bid = campaign(ws, 6, opt_in=False, category=category, body="Hallo {first_name}")
    ids = sorted(ws.sql("SELECT contact_id FROM contacts").contact_id)
    # Re-freeze with the random history in place (campaign froze with no consent at all).
    with ws.transaction() as con:
        con.execute("DELETE FROM broadcast_recipients WHERE broadcast_id = ?", [bid])
        con.execute("UPDATE broadcasts SET status = 'draft' WHERE broadcast_id = ?", [bid])
        record_events(con, pd.DataFrame([
            {"contact_id": c, "purpose": "marketing" if category == "marketing" else "service",
             "action": a, "source": "form", "recorded_at": T0 - timedelta(days=10)}
            for c, a in zip(ids, before, strict=True) if a != "none"]))
    service(ws).schedule(bid, T0)
    rows = recipients(ws, bid)
    queued = set(rows.contact_id[rows.state == "queued"])
    with ws.transaction() as con:
        record_events(con, pd.DataFrame([
            {"contact_id": c, "purpose": "marketing" if category == "marketing" else "service",
             "action": a, "source": "chat", "recorded_at": T0 - timedelta(days=1)}
            for c, a in zip(ids, after, strict=True) if a != "keep"]))
    outbox.send(ws, bid, transport=Scripted())
    purpose = "marketing" if category == "marketing" else "service"
    state = ws.sql("SELECT contact_id, state FROM current_consent WHERE purpose = ?",
                   [purpose]).set_index("contact_id").state
    got = set(sent_per_contact(ws, bid).index)
    for contact in ids:
        current = state.get(contact)
        allowed = current == "opt_in" if category == "marketing" else current != "opt_out"
        if contact in got:
            assert allowed, (contact, current)
    if category == "marketing":   # and everyone frozen who still may gets it
        assert got == {c for c in queued if state.get(c) == "opt_in"}


# --- crashes and unknown outcomes ----------------------------------------------------------------

def test_unknown_outcomes_are_never_resent_and_a_status_settles_them(ws):
    bid = campaign(ws, 3)
    transport = Scripted({wa(2): ["unknown"]})
    result = outbox.send(ws, bid, transport=transport)
    assert result["unknown"] == 1 and result["status"] == "sending"
    outbox.resume(ws, bid, transport=transport)
    outbox.send(ws, bid, transport=transport)
    assert len([m for m in transport.calls if m.to == wa(2)]) == 1
    row = recipients(ws, bid).iloc[2]
    with ws.transaction() as con:
        webhooks.ingest_bodies(con, [status_webhook("wamid.LATE", row.idempotency_key, wa(2))])
    result = outbox.resume(ws, bid, transport=transport)
    row = recipients(ws, bid).iloc[2]
    assert (row.state, row.message_id) == ("sent", "wamid.LATE")
    assert result["status"] == "done" and (sent_per_contact(ws, bid) == 1).all()
    late = ws.sql("SELECT * FROM messages WHERE message_id = 'wamid.LATE'").iloc[0]
    assert late.broadcast_id == bid and late.direction == "out" and late.body.startswith("Hallo")


@pytest.mark.slow
def test_resume_turns_sending_into_unknown_and_an_operator_decides(ws):
    bid = campaign(ws, 4)
    with ws.transaction() as con:   # what a crash after the 'sending' write leaves
        con.execute("UPDATE broadcast_recipients SET state = 'sending', attempts = 1 "
                    "WHERE broadcast_id = ? AND contact_id IN (SELECT contact_id FROM "
                    "broadcast_recipients WHERE broadcast_id = ? ORDER BY contact_id LIMIT 2)",
                    [bid, bid])
    transport = Scripted()
    result = outbox.resume(ws, bid, transport=transport)
    assert result["unknown"] == 2 and result["sent"] == 2 and len(transport.calls) == 2
    keys = list(recipients(ws, bid).idempotency_key[:2])
    outbox.resolve_unknown(ws, bid, "give_up", keys=keys[:1])
    after = outbox.resolve_unknown(ws, bid, "resend")
    assert after["failed"] == 1 and after["queued"] == 1
    result = outbox.send(ws, bid, transport=transport)
    rows = recipients(ws, bid)
    assert result["sent"] == 3 and result["status"] == "done"
    assert rows.idempotency_key[1] == keys[1]          # resent under the same key
    with pytest.raises(ValueError, match="resend"):
        outbox.resolve_unknown(ws, bid, "maybe")


def test_a_later_131049_receipt_requeues_under_a_new_key(ws):
    bid = campaign(ws, 2)
    transport = Scripted()
    outbox.send(ws, bid, transport=transport)
    row = recipients(ws, bid).iloc[0]
    failed = status_webhook(row.message_id, row.idempotency_key, wa(0),
                            failure=(131049, "healthy ecosystem"))
    with ws.transaction() as con:
        webhooks.ingest_bodies(con, [failed])
    outbox.send(ws, bid, transport=transport, max_wait=0)
    again = recipients(ws, bid).iloc[0]
    assert again.state == "queued" and again.idempotency_key == row.idempotency_key + "~r1"
    assert again.not_before == datetime.fromtimestamp(1772614800, UTC) + timedelta(hours=24)


def test_refusals(ws):
    bid = campaign(ws, 2)
    with pytest.raises(NotFound):
        outbox.send(ws, 999)
    draft = service(ws).create(1, "Entwurf", body="Hallo", category="marketing")
    with pytest.raises(outbox.SendRefused, match="schedule it first"):
        outbox.send(ws, draft["broadcast_id"])
    service(ws).cancel(bid)
    with pytest.raises(outbox.SendRefused, match="cancelled"):
        outbox.send(ws, bid)
    assert outbox.counts(ws, bid)["skipped"] == 2


def test_variants_and_control_group(ws):
    bid = campaign(ws, 60, variants=["Hallo {first_name}, Variante B!"], control=0.2, seed=9)
    outbox.send(ws, bid, transport=SimulatedTransport(1, rates=CALM))
    rows = recipients(ws, bid)
    control = rows[rows.variant == "control"]
    assert len(control) == 12 and (control.state == "skipped").all()
    msgs = ws.sql("SELECT variant, template_name, body FROM messages WHERE broadcast_id = ?", [bid])
    assert set(msgs.variant) == {"A", "B"} and msgs.template_name.nunique() == 2
    assert msgs[msgs.variant == "B"].body.str.contains("Variante B").all()


def test_progress_bar_and_log_lines(ws, capsys, caplog):
    caplog.set_level("INFO", logger="bizchat.campaigns.outbox")
    bid = campaign(ws, 5)
    outbox.send(ws, bid, transport=SimulatedTransport(1, rates=CALM), progress=True)
    assert f"broadcast {bid}" in capsys.readouterr().err
    assert any("batch 1" in r.getMessage() for r in caplog.records)


def test_cloud_transport_through_the_outbox(ws):
    token = "cloud-test-token-xyz"
    bid = campaign(ws, 5)
    with FakeGraph(token=token) as graph:
        graph.script(FakeGraph.error(130429, status=429, retry_after="0.05"), FakeGraph.ok(),
                     to=wa(1))
        graph.script(FakeGraph.error(131050), to=wa(2))
        graph.script(FakeGraph.error(131026), to=wa(3))
        transport = CloudApiTransport(base_url=graph.url, token=token, backoff=0.01)
        started = time.monotonic()
        result = outbox.send(ws, bid, transport=transport)
    assert time.monotonic() - started < 10
    rows = recipients(ws, bid).set_index(recipients(ws, bid).wa_id)
    assert result["sent"] == 3 and result["failed"] == 2
    assert rows.loc[wa(2), "error_code"] == 131050 and rows.loc[wa(3), "error_code"] == 131026
    assert rows.loc[wa(1), "message_id"].startswith("wamid.FAKE")
    first = graph.sent_to(wa(0))[0]["json"]
    assert first["biz_opaque_callback_data"] == rows.loc[wa(0), "idempotency_key"]
    assert first["template"]["components"][0]["parameters"] == [
        {"type": "text", "parameter_name": "first_name", "text": "Kundin0"}]
    assert not ws.consent.may_send(1, int(rows.loc[wa(2), "contact_id"]), "marketing")


def test_cloud_configuration_is_checked_before_anything_is_marked(ws, monkeypatch):
    monkeypatch.delenv("BIZCHAT_ACCESS_TOKEN", raising=False)
    bid = campaign(ws, 3)
    with pytest.raises(Exception, match="BIZCHAT_ACCESS_TOKEN"):
        outbox.send(ws, bid, transport="cloud")
    assert set(recipients(ws, bid).state) == {"queued"}


# --- kill and resume ---------------------------------------------------------------------------

CHILD = r"""
import os, signal, sys
import bizchat
from bizchat.campaigns import outbox
from bizchat.campaigns.transports import SimRates, SimulatedTransport

path, bid, delay, kill_at = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
calls = 0

def after_send(results):
    # Runs when the platform has accepted the batch, before the outbox records it.
    global calls
    calls += 1
    if calls == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

transport = SimulatedTransport(5, rates=SimRates(stopped_marketing=0, marketing_limit=0),
                               batch_delay=delay, after_send=after_send)
print("started", flush=True)
outbox.resume(bizchat.open(path), bid, transport=transport, batch_size=20)
"""


def _child(path: Path, bid: int, *, delay=0.0, kill_at=0, kill_after=None) -> int:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(bid), str(delay),
                             str(kill_at)], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline().strip() == b"started"
        if kill_after is not None:
            time.sleep(kill_after)
            proc.send_signal(signal.SIGKILL)
        return proc.wait(timeout=120)
    finally:
        proc.stdout.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_killed_and_resumed_sends_each_recipient_exactly_once(ws):
    bid = campaign(ws, 300)
    path = ws.path
    # 1. Killed after the platform accepted batch 3 but before the outbox recorded it.
    assert _child(path, bid, kill_at=3) == -signal.SIGKILL
    caught = recipients(ws, bid)
    assert (caught.state == "sending").sum() == 20 and (caught.state == "sent").sum() == 40
    # 2.-4. Killed at arbitrary moments, mostly inside the pause between the 'sending'
    # write and the transport call.
    for after in (0.9, 1.7, 0.4):
        assert _child(path, bid, delay=0.3, kill_after=after) == -signal.SIGKILL
    states = recipients(ws, bid).state.value_counts()
    assert states.get("sent", 0) < 300
    # Resume: caught sends become unknown; those the platform accepted are settled by
    # their receipts (keyed by the idempotency key), the rest wait for a decision.
    result = outbox.resume(ws, bid, transport=SimulatedTransport(5, rates=CALM), batch_size=50)
    assert result["sending"] == 0 and result["queued"] == 0
    if result["unknown"]:
        outbox.resolve_unknown(ws, bid, "resend")
        result = outbox.send(ws, bid, transport=SimulatedTransport(5, rates=CALM))
    assert result["sent"] == 300 and result["status"] == "done"
    # Exactly one message per recipient: in the platform's ledger and in messages.
    rows = recipients(ws, bid)
    ledger = ws.sql("SELECT idempotency_key, count(*) AS n FROM outbox_log "
                    "WHERE broadcast_id = ? AND event = 'simulated.accept' GROUP BY ALL", [bid])
    assert len(ledger) == 300 and (ledger.n == 1).all()
    assert set(ledger.idempotency_key) == set(rows.idempotency_key)
    per_contact = sent_per_contact(ws, bid)
    assert len(per_contact) == 300 and (per_contact == 1).all()
    accepted = ws.sql("SELECT detail->>'message_id' AS m FROM outbox_log WHERE event = "
                      "'simulated.accept' AND broadcast_id = ?", [bid]).m
    assert set(accepted) == set(rows.message_id)
    assert ws.sql("SELECT count(DISTINCT message_id) AS n FROM message_status").n[0] == 300
