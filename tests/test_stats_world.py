"""A small hand-built workspace for the stats tests, and checks that it is what it says.

Rows go in with plain SQL (receipts through ``record_status_events``, the ingestion path
that keeps message_status current), so every number the stats tests expect can be
counted by hand from the table below.

Broadcast 1 (account 1, marketing, scheduled 2025-01-31 23:30 UTC = 2025-02-01 00:30 in
Berlin, a Friday in UTC and a Saturday in Berlin), eight recipients:

    contact  label        fate                                           reply / opt-out
    101      VIP          sent, delivered, read (30 min after the send)  replies after 2 h
    102      VIP, Krimi   sent, delivered                                replies after 80 h; opts out after 3 days
    103      Krimi        sent, read without a delivered receipt (10 min) -
    104      -            sent, then failed 131026                      -
    105      -            sent, delivered and read, every receipt twice  replies after 71 h
                          (read 2 h after the send)
    106      -            skipped (opted_out)                            -
    107      -            sent, no receipt yet                           -
    108      Krimi        sent, delivered, played (a voice note, 5 min)  opts out after 8 days

    recipients 8, skipped 1, sent 7, delivered 5 (101 102 103 105 108), read 4 (101 103
    105 108), failed 1, replied within 72 h among delivered 2 (101 105), opted out within
    7 days 1 (102). Delivery rate 5/7, open rate 4/5, reply rate 2/5, opt-out rate 1/5.

Broadcast 2 (account 1, utility, 2025-03-10 09:00 UTC): 201 and 202 sent and failed
(131049, 131026): sent 2, delivered 0 -> delivery rate 0, open rate NaN.
Broadcast 3 (account 2, marketing, 2025-03-12 10:00 UTC): 301 skipped (no_consent):
sent 0 -> delivery rate and open rate NaN.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from bizchat.ingest.webhooks import record_receipts as record_status_events

T1 = datetime(2025, 1, 31, 23, 30, tzinfo=UTC)
T2 = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
T3 = datetime(2025, 3, 12, 10, 0, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)


# --- builders -----------------------------------------------------------------------------

def add_account(con, account_id: int, tz: str = "Europe/Berlin") -> None:
    con.execute("INSERT INTO accounts (account_id, phone_e164, number_type, display_name, timezone) "
                "VALUES (?, ?, 'mobile', ?, ?)",
                [account_id, f"+4917000000{account_id:02d}", f"Shop {account_id}", tz])


def add_contact(con, contact_id: int, account_id: int, created=T1 - timedelta(days=400)) -> None:
    con.execute("INSERT INTO contacts (contact_id, account_id, phone_e164, name, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                [contact_id, account_id, f"+49151{contact_id:07d}", f"Person {contact_id}", created])
    con.execute("INSERT INTO chats (chat_id, account_id, contact_id, started_at) VALUES (?, ?, ?, ?)",
                [contact_id, account_id, contact_id, created])


def add_label(con, label_id: int, account_id: int, name: str, contacts) -> None:
    con.execute("INSERT INTO labels (label_id, account_id, name, color) VALUES (?, ?, ?, 1)",
                [label_id, account_id, name])
    for c in contacts:
        con.execute("INSERT INTO contact_labels (contact_id, label_id) VALUES (?, ?)", [c, label_id])


def add_broadcast(con, broadcast_id: int, account_id: int, scheduled_for, *, category="marketing",
                  template="tpl", variants=None, control_fraction=0.0, name=None) -> None:
    con.execute(
        "INSERT INTO broadcasts (broadcast_id, account_id, name, template, category, variants, "
        "control_fraction, status, scheduled_for, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'done', ?, ?)",
        [broadcast_id, account_id, name or f"Broadcast {broadcast_id}", template, category,
         json.dumps(variants) if variants is not None else None, control_fraction,
         scheduled_for, scheduled_for - timedelta(days=1)])


_event_cols = ["message_id", "status", "at", "error_code"]


def add_recipient(con, broadcast_id: int, account_id: int, contact_id: int, *, sent_at=None,
                  events=(), state=None, skip_reason=None, variant=None, template="tpl") -> str | None:
    """One recipient; with ``sent_at`` a message (id m<broadcast>-<contact>) and its receipts:
    ``events`` are (status, at[, error_code]) tuples; a 'sent' receipt at sent_at is added."""
    message_id = None if sent_at is None else f"m{broadcast_id}-{contact_id}"
    failed = any(e[0] == "failed" for e in events)
    state = state or ("skipped" if sent_at is None else "failed" if failed else "sent")
    # The audience is frozen before anything is sent, so the recipient row comes first.
    con.execute(
        "INSERT INTO broadcast_recipients (broadcast_id, contact_id, variant, state, skip_reason, "
        "idempotency_key, message_id, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [broadcast_id, contact_id, variant, state, skip_reason, f"k{broadcast_id}-{contact_id}",
         message_id, sent_at or T1])
    if sent_at is not None:
        con.execute(
            "INSERT INTO messages (message_id, chat_id, account_id, contact_id, direction, kind, "
            "template_name, broadcast_id, variant, source, created_at) "
            "VALUES (?, ?, ?, ?, 'out', 'template', ?, ?, ?, 'test', ?)",
            [message_id, contact_id, account_id, contact_id, template, broadcast_id, variant, sent_at])
        rows = [(message_id, "sent", sent_at, None)]
        rows += [(message_id, e[0], e[1], e[2] if len(e) > 2 else None) for e in events]
        record_status_events(con, pd.DataFrame(rows, columns=_event_cols).astype({"error_code": "Int32"}))
    return message_id


def add_inbound(con, account_id: int, contact_id: int, at, *, message_id=None) -> None:
    con.execute(
        "INSERT INTO messages (message_id, chat_id, account_id, contact_id, direction, kind, body, "
        "source, created_at) VALUES (?, ?, ?, ?, 'in', 'text', 'hallo', 'test', ?)",
        [message_id or f"in-{contact_id}-{at:%Y%m%d%H%M%S}", contact_id, account_id, contact_id, at])


def add_outbound(con, account_id: int, contact_id: int, at, *, automatic=False, broadcast_id=None,
                 message_id=None) -> None:
    con.execute(
        "INSERT INTO messages (message_id, chat_id, account_id, contact_id, direction, kind, body, "
        "automatic, broadcast_id, source, created_at) VALUES (?, ?, ?, ?, 'out', 'text', 'ok', ?, ?, 'test', ?)",
        [message_id or f"out-{contact_id}-{at:%Y%m%d%H%M%S}", contact_id, account_id, contact_id,
         automatic, broadcast_id, at])


_consent_ids = iter(range(1, 10**6))


def add_consent(con, contact_id: int, account_id: int, action: str, at, purpose="marketing") -> None:
    con.execute(
        "INSERT INTO consent_events (event_id, contact_id, account_id, purpose, action, source, "
        "recorded_at) VALUES (?, ?, ?, ?, ?, 'test', ?)",
        [next(_consent_ids), contact_id, account_id, purpose, action, at])


def build_campaigns(ws) -> None:
    """The three broadcasts of the module docstring."""
    with ws.transaction() as con:
        add_account(con, 1)
        add_account(con, 2)
        for c in range(101, 109):
            add_contact(con, c, 1)
        for c in (201, 202):
            add_contact(con, c, 1)
        add_contact(con, 301, 2)
        add_label(con, 1, 1, "VIP", [101, 102])
        add_label(con, 2, 1, "Krimi", [102, 103, 108])
        add_label(con, 3, 2, "VIP", [301])
        add_broadcast(con, 1, 1, T1, name="Winter")
        s = T1 + timedelta(seconds=5)
        add_recipient(con, 1, 1, 101, sent_at=s, events=[("delivered", s + M), ("read", s + 30 * M)])
        add_recipient(con, 1, 1, 102, sent_at=s, events=[("delivered", s + 2 * M)])
        add_recipient(con, 1, 1, 103, sent_at=s, events=[("read", s + 10 * M)])
        add_recipient(con, 1, 1, 104, sent_at=s, events=[("failed", s + M, 131026)])
        add_recipient(con, 1, 1, 105, sent_at=s, events=[("delivered", s + M), ("read", s + 2 * H)])
        # The same receipts again (webhooks are retried): nothing may count twice.
        record_status_events(con, pd.DataFrame(
            [("m1-105", "delivered", s + M, None), ("m1-105", "read", s + 2 * H, None),
             ("m1-105", "read", s + 3 * H, None)], columns=_event_cols).astype({"error_code": "Int32"}))
        add_recipient(con, 1, 1, 106, skip_reason="opted_out")
        add_recipient(con, 1, 1, 107, sent_at=s)
        add_recipient(con, 1, 1, 108, sent_at=s, events=[("delivered", s + M), ("played", s + 5 * M)])
        add_inbound(con, 1, 101, s + 2 * H)
        add_inbound(con, 1, 102, s + 80 * H)
        add_inbound(con, 1, 105, s + 71 * H)
        add_consent(con, 102, 1, "opt_out", s + timedelta(days=3))
        add_consent(con, 108, 1, "opt_out", s + timedelta(days=8))

        add_broadcast(con, 2, 1, T2, category="utility", name="Rechnung")
        add_recipient(con, 2, 1, 201, sent_at=T2, events=[("failed", T2 + M, 131049)])
        add_recipient(con, 2, 1, 202, sent_at=T2, events=[("delivered", T2 + M),
                                                           ("failed", T2 + 2 * M, 131026)])
        add_broadcast(con, 3, 2, T3, name="Konto 2")
        add_recipient(con, 3, 2, 301, skip_reason="no_consent")


@pytest.fixture
def campaigns(ws):
    build_campaigns(ws)
    return ws


# --- the world is what the docstring says ---------------------------------------------------

def test_world_receipts_are_deduplicated_by_ingestion(campaigns):
    events = campaigns.sql("SELECT status, count(*) AS n FROM message_events "
                           "WHERE message_id = 'm1-105' GROUP BY status ORDER BY status")
    assert events.to_dict("list") == {"status": ["delivered", "read", "sent"], "n": [1, 1, 1]}
    status = campaigns.sql("SELECT status, delivered_at IS NULL AS no_delivery FROM message_status "
                           "WHERE message_id IN ('m1-103', 'm1-104', 'm1-107') ORDER BY message_id")
    assert status["status"].tolist() == ["read", "failed", "sent"]
    assert status["no_delivery"].tolist() == [True, True, True]
