"""Receipts in any order, any batching, any number of repeats give the same funnel."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stats_world import T1, add_account, add_broadcast, add_contact, assert_same_tables

import bizchat
from bizchat.ingest.webhooks import record_receipts as record_status_events

STATUSES = ("sent", "delivered", "read", "played", "failed")
_n = itertools.count()

fates = st.lists(st.sets(st.sampled_from(STATUSES)), min_size=1, max_size=8)


def model(messages: list[set]) -> dict:
    """The definitions, written out: a read implies delivered, failed is final."""
    ok = ["failed" not in s for s in messages]
    return {"sent": len(messages),
            "delivered": sum(o and bool(s & {"delivered", "read", "played"}) for o, s in zip(ok, messages, strict=True)),
            "read": sum(o and bool(s & {"read", "played"}) for o, s in zip(ok, messages, strict=True)),
            "failed": sum("failed" in s for s in messages)}


@pytest.mark.slow
@settings(max_examples=20, deadline=None)
@given(fates=fates, order=st.randoms(use_true_random=False), repeats=st.integers(1, 3),
       batches=st.integers(1, 4))
def test_funnel_is_order_and_repeat_free(tmp_path_factory, fates, order, repeats, batches):
    ws = bizchat.open(tmp_path_factory.mktemp("prop") / f"p{next(_n)}.duckdb")
    events = []
    with ws.transaction() as con:
        add_account(con, 1)
        add_broadcast(con, 1, 1, T1)
        for i, statuses in enumerate(fates, start=1):
            add_contact(con, i, 1)
            mid = f"m{i}"
            con.execute(
                "INSERT INTO messages (message_id, chat_id, account_id, contact_id, direction, kind, "
                "broadcast_id, source, created_at) VALUES (?, ?, 1, ?, 'out', 'template', 1, 'test', ?)",
                [mid, i, i, T1])
            con.execute(
                "INSERT INTO broadcast_recipients (broadcast_id, contact_id, state, idempotency_key, "
                "message_id, updated_at) VALUES (1, ?, 'sent', ?, ?, ?)", [i, f"k{i}", mid, T1])
            for k, status in enumerate(sorted(statuses)):
                events.append((mid, status, T1 + timedelta(minutes=k + 1)))
    events = events * repeats
    order.shuffle(events)
    size = max(1, -(-len(events) // batches))
    for start in range(0, len(events), size):
        chunk = pd.DataFrame(events[start:start + size], columns=["message_id", "status", "at"])
        with ws.transaction() as con:
            record_status_events(con, chunk)
    row = assert_same_tables(ws).iloc[0]
    expected = model(fates)
    assert {k: int(row[k]) for k in expected} == expected
    view = ws.sql("SELECT sent, delivered, read, failed FROM campaign_stats").iloc[0]
    assert {k: int(view[k]) for k in expected} == expected
