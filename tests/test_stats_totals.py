"""The open-rate table from per-broadcast totals equals the table from the recipients.

Grouped by broadcast, account or category, ``Stats.open_rates`` sums message_status by
its ``broadcast_id`` instead of joining every recipient to its status (funnel.py). That
is only right while message_status.broadcast_id marks exactly each recipient's current
message, so these tests drive the paths that move a recipient's message id (the outbox,
receipts before the send was recorded, a 131049 deferral that replaces the message, an
upgrade of an older file) and compare both tables and the links each time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import duckdb
import pandas as pd
import pytest
from outbox_helpers import Scripted, campaign, recipients, status_webhook, wa
from stats_world import T1, assert_same_tables, build_campaigns

import bizchat
from bizchat import store
from bizchat.campaigns import outbox
from bizchat.ingest import webhooks

COUNTS = ["recipients", "skipped", "sent", "delivered", "read", "failed"]


@pytest.mark.slow
def test_totals_equal_the_recipients_table_under_every_filter(ws):
    build_campaigns(ws)
    assert_same_tables(ws)
    for filters in (dict(account=2), dict(category="utility"), dict(start="2025-03-01"),
                    dict(end=date(2025, 3, 10)), dict(broadcasts=[2, 3]),
                    dict(start=datetime(2025, 3, 10, 9, tzinfo=UTC),
                         end=datetime(2025, 3, 12, 10, tzinfo=UTC))):
        assert_same_tables(ws, **filters)
    # Nothing in scope: the total row counts zero, as the recipients path does.
    none = ws.stats.open_rates((), start=T1 + timedelta(days=3650))
    assert none[COUNTS].iloc[0].tolist() == [0] * 6


@pytest.mark.slow
def test_a_deferred_message_no_longer_counts_once_its_replacement_is_sent(ws):
    bid = campaign(ws, 2)
    transport = Scripted()
    outbox.send(ws, bid, transport=transport)
    first = recipients(ws, bid).iloc[0]
    # A later 131049 for the first message: the recipient is deferred under a new key.
    failed = status_webhook(first.message_id, first.idempotency_key, wa(0),
                            failure=(131049, "healthy ecosystem"))
    with ws.transaction() as con:
        webhooks.ingest_bodies(con, [failed])
    assert ws.stats.open_rates()["failed"].tolist() == [1]     # until the outbox settles it
    outbox.send(ws, bid, transport=transport, max_wait=0)      # settles: queued under ~r1
    table = assert_same_tables(ws)
    assert table[["sent", "failed"]].values.tolist() == [[1, 0]]
    old = ws.sql("SELECT broadcast_id FROM message_status WHERE message_id = ?", [first.message_id])
    assert old["broadcast_id"].isna().all()
    # A day later the new attempt goes out and is delivered; a late receipt of the old
    # message changes nothing.
    outbox.send(ws, bid, transport=transport)
    again = recipients(ws, bid).iloc[0]
    assert again.message_id != first.message_id and again.state == "sent"
    with ws.transaction() as con:
        webhooks.ingest_bodies(con, [status_webhook(again.message_id, again.idempotency_key, wa(0)),
                                           status_webhook(first.message_id, first.idempotency_key, wa(0))])
    table = assert_same_tables(ws)
    assert table[["recipients", "sent", "delivered", "failed"]].values.tolist() == [[2, 2, 1, 0]]


@pytest.mark.slow
def test_a_receipt_before_the_send_was_recorded_joins_by_its_key(ws):
    bid = campaign(ws, 3)
    transport = Scripted({wa(2): ["unknown"]})
    outbox.send(ws, bid, transport=transport)
    row = recipients(ws, bid).iloc[2]
    assert row.state == "unknown" and pd.isna(row.message_id)
    with ws.transaction() as con:   # the platform's receipt names the key, not yet the id
        webhooks.ingest_bodies(con, [status_webhook("wamid.LATE", row.idempotency_key, wa(2))])
    linked = ws.sql("SELECT broadcast_id FROM message_status WHERE message_id = 'wamid.LATE'")
    assert linked["broadcast_id"].tolist() == [bid]
    table = assert_same_tables(ws)
    assert table[["recipients", "sent", "delivered"]].values.tolist() == [[3, 3, 1]]


@pytest.mark.slow
def test_a_receipt_while_the_recipient_is_sending_is_linked_before_the_id_is_recorded(ws):
    bid = campaign(ws, 2)
    with ws.transaction() as con:   # mid-send: the outbox wrote 'sending', the platform answered
        con.execute("UPDATE broadcast_recipients SET state = 'sending', attempts = 1 "
                    "WHERE broadcast_id = ?", [bid])
    key = recipients(ws, bid).idempotency_key[0]
    failed = status_webhook("wamid.EARLY", key, wa(0), failure=(131026, "undeliverable"))
    with ws.transaction() as con:
        webhooks.ingest_bodies(con, [failed])
    table = assert_same_tables(ws)
    assert table[["sent", "failed"]].values.tolist() == [[1, 1]]


@pytest.mark.slow
def test_statuses_without_a_broadcast_are_left_out(ws):
    build_campaigns(ws)
    before = ws.stats.open_rates()
    assert len(before) > 0 and before["delivered"].sum() > 0
    with ws.transaction() as con:   # a service reply's receipts belong to no broadcast
        con.execute("INSERT INTO message_status (message_id, status, delivered_at, updated_at) "
                    "VALUES ('wamid.service', 'delivered', now(), now())")
    pd.testing.assert_frame_equal(ws.stats.open_rates(), before)
    assert_same_tables(ws)


@pytest.mark.slow
def test_upgrading_an_older_file_links_its_statuses(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    store.migrate(con, upto=4)
    con.execute("INSERT INTO accounts (account_id, phone_e164, number_type, display_name) "
                "VALUES (1, '+4930123456', 'fixed_line', 'Alt')")
    con.execute("INSERT INTO broadcasts (broadcast_id, account_id, name, template, category, status, "
                "created_at) VALUES (7, 1, 'Herbst', 'tpl', 'marketing', 'done', now())")
    for contact, mid in ((1, "m1"), (2, "m2"), (3, None)):
        con.execute("INSERT INTO broadcast_recipients (broadcast_id, contact_id, state, idempotency_key, "
                    "message_id, updated_at) VALUES (7, ?, ?, ?, ?, now())",
                    [contact, "sent" if mid else "skipped", f"k{contact}", mid])
    con.execute("INSERT INTO message_status (message_id, status, sent_at, read_at, updated_at) VALUES "
                "('m1', 'read', now(), now(), now()), ('m2', 'sent', now(), NULL, now()), "
                "('other', 'sent', now(), NULL, now())")
    con.close()
    ws = bizchat.open(path)
    links = ws.sql("SELECT message_id, coalesce(broadcast_id, -1) AS b FROM message_status "
                   "ORDER BY message_id")
    assert links.values.tolist() == [["m1", 7], ["m2", 7], ["other", -1]]
    table = assert_same_tables(ws)
    assert table[COUNTS + ["open_rate"]].values.tolist() == [[3, 1, 2, 1, 1, 0, 1.0]]
    view = ws.sql("SELECT * FROM campaign_stats")
    assert view[COUNTS].values.tolist() == [[3, 1, 2, 1, 1, 0]]
