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


# --- checks shared by the stats tests ---------------------------------------------------------

def mislinked(ws) -> pd.DataFrame:
    """Status rows whose broadcast_id is not the broadcast of the recipient whose current
    message they are (NULL when no recipient points at them)."""
    return ws.sql("""
        SELECT s.message_id, s.broadcast_id, r.broadcast_id AS recipient_broadcast
        FROM message_status s LEFT JOIN broadcast_recipients r USING (message_id)
        WHERE s.broadcast_id IS DISTINCT FROM r.broadcast_id""")


def assert_same_tables(ws, **filters) -> pd.DataFrame:
    """open_rates (totals) against funnel (recipients joined with message_status), per
    broadcast, account, category and in total; returns the per-broadcast table."""
    assert mislinked(ws).empty, mislinked(ws)
    for by in ("broadcast", "account", "category", ()):
        fast = ws.stats.open_rates(by, **filters)
        slow = ws.stats.funnel(by, **filters)[fast.columns]
        pd.testing.assert_frame_equal(fast, slow, check_dtype=False)
    return ws.stats.open_rates(**filters)


# --- the A/B world --------------------------------------------------------------------------

AB_T = datetime(2025, 5, 6, 9, 0, tzinfo=UTC)   # broadcast 9's scheduled time


def build_ab_world(ws):
    """Broadcast 9 (AB_T): variants A and B (equal shares) and a 10 % control group.

    A: contacts 1-4, all delivered; 1 and 2 read within 72 h, 3 reads after 80 h.
       1 replies after 1 h, 3 after 100 h (outside 72 h, inside 7 days).
    B: contacts 5-8, all delivered, 5, 6, 7 read within 72 h; 6 opts out after 2 days.
    control: contacts 9, 10 (no message). 9 writes 5 h after the scheduled time, 10 wrote
       one day *before* it (does not count).
    """
    with ws.transaction() as con:
        add_account(con, 1)
        add_broadcast(con, 9, 1, AB_T, variants=[{"variant": "A", "share": 1},
                                              {"variant": "B", "share": 1}], control_fraction=0.1)
        plan_ = {1: ("A", 1), 2: ("A", 2), 3: ("A", 80), 4: ("A", None),
                 5: ("B", 3), 6: ("B", 4), 7: ("B", 5), 8: ("B", None)}
        for c, (variant, read_h) in plan_.items():
            add_contact(con, c, 1)
            sent = AB_T + timedelta(minutes=c)
            events = [("delivered", sent + timedelta(minutes=1))]
            if read_h is not None:
                events.append(("read", sent + timedelta(hours=read_h)))
            add_recipient(con, 9, 1, c, sent_at=sent, events=events, variant=variant)
        for c in (9, 10):
            add_contact(con, c, 1)
            add_recipient(con, 9, 1, c, variant="control", skip_reason="control")
        add_inbound(con, 1, 1, AB_T + timedelta(hours=1, minutes=1))
        add_inbound(con, 1, 3, AB_T + timedelta(hours=100))
        add_consent(con, 6, 1, "opt_out", AB_T + timedelta(days=2))
        add_inbound(con, 1, 9, AB_T + timedelta(hours=5))
        add_inbound(con, 1, 10, AB_T - timedelta(days=1))
    return ws
