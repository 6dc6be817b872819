"""Totals never contradict the per-recipient tables: the platform's word wins over an
operator's guess, and of two copies of a receipt the earlier time is kept (issue 16,
item 5)."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from send_world import berlin, draft, shop

import bizchat
from bizchat.campaigns import outbox
from bizchat.campaigns.transports import SendResult, SimClock, Transport
from bizchat.ingest import webhooks

T0 = berlin(2026, 3, 4, 10, 0)
COUNTS = ["recipients", "skipped", "sent", "delivered", "read", "failed"]


class Answers(Transport):
    """Accepts everyone, except that some calls end without an answer (``unknown``)."""

    name = "answers"

    def __init__(self, unknown: set[int]):
        super().__init__()
        self.clock = SimClock(T0)
        self.unknown = unknown
        self.keys: dict[int, str] = {}

    def send_batch(self, messages):
        out = []
        for m in messages:
            contact = int(m.to[-4:])
            self.keys[contact] = m.idempotency_key
            if contact in self.unknown:
                out.append(SendResult(m.idempotency_key, False, unknown=True,
                                      error_title="timeout"))
            else:
                out.append(SendResult(m.idempotency_key, True, message_id=f"wamid.ok.{contact}",
                                      sent_at=m.send_at))
        return out


def receipts(ws, rows) -> None:
    frame = pd.DataFrame(rows, columns=["message_id", "status", "at", "callback_data"])
    frame["error_code"] = [131026 if s == "failed" else None for s in frame["status"]]
    frame["error_code"] = frame["error_code"].astype("Int32")
    with ws.transaction() as con:
        webhooks.record_receipts(con, frame)


def totals_agree(ws, bid) -> pd.Series:
    """Per-broadcast totals (message_status by broadcast) = the recipients' table, and
    every grouping sums to them; returns the totals."""
    fast = ws.stats.open_rates("broadcast", broadcasts=bid)[COUNTS].iloc[0]
    slow = ws.stats.funnel("broadcast", broadcasts=bid)[COUNTS].iloc[0]
    assert fast.tolist() == slow.tolist()
    per = ws.stats.recipients(broadcasts=bid)
    assert [int(per["sent"].sum()), int(per["delivered"].sum()), int(per["read"].sum()),
            int(per["failed"].sum())] == fast[["sent", "delivered", "read", "failed"]].tolist()
    for by in ("variant", "label", "day", "hour"):
        grouped = ws.stats.open_rates(by, broadcasts=bid, tz="Europe/Berlin")
        for column in ("sent", "delivered", "read", "failed"):
            assert int(grouped[column].sum()) == int(fast[column]), (by, column)
    campaign = ws.sql("SELECT sent, delivered, \"read\", failed FROM campaign_stats "
                      "WHERE broadcast_id = ?", [bid]).iloc[0]
    assert campaign.tolist() == fast[["sent", "delivered", "read", "failed"]].tolist()
    return fast


@pytest.mark.slow
def test_a_receipt_for_a_recipient_given_up_on_makes_them_sent(ws):
    acc, ids = shop(ws, 9)
    bid = draft(ws, acc)
    ws.broadcasts.schedule(bid, T0, now=T0)
    transport = Answers(unknown={0})            # contact i has the number ...000i
    outbox.send(ws, bid, transport=transport, now=T0 + timedelta(hours=1))
    ws.broadcasts.resolve(bid, "give_up")
    key = transport.keys[0]
    # Meta's retried webhooks bring the lost message's receipts, with its key.
    ok = [(f"wamid.ok.{n}", s, T0 + timedelta(minutes=1 + i), None)
          for n in range(1, 9) for i, s in enumerate(("sent", "delivered"))]
    late = [("wamid.lost", s, T0 + timedelta(minutes=2 + i), key)
            for i, s in enumerate(("sent", "delivered", "read"))]
    receipts(ws, ok + late)
    row = ws.sql("SELECT state, message_id FROM broadcast_recipients WHERE contact_id = ? "
                 "AND broadcast_id = ?", [ids[0], bid]).iloc[0]
    assert (row.state, row.message_id) == ("sent", "wamid.lost")
    totals = totals_agree(ws, bid)
    assert totals[["sent", "delivered", "read", "failed"]].tolist() == [9, 9, 1, 0]
    trail = ws.sql("SELECT event FROM outbox_log WHERE idempotency_key = ? ORDER BY \"at\"",
                   [key]).event.tolist()
    assert "resolved.give_up" in trail and "settled.by_receipt" in trail


def test_the_earlier_of_two_duplicate_receipts_is_kept_whatever_the_arrival_order(ws):
    late, early = T0 + timedelta(hours=5), T0 + timedelta(hours=1)
    receipts(ws, [("wamid.d", "sent", T0, None), ("wamid.d", "read", late, None)])
    receipts(ws, [("wamid.d", "read", early, None)])
    status = ws.sql("SELECT read_at FROM message_status WHERE message_id = 'wamid.d'")
    assert status.read_at[0] == pd.Timestamp(early)
    events = ws.sql("SELECT \"at\" FROM message_events WHERE message_id = 'wamid.d' "
                    "AND status = 'read'")
    assert events["at"].tolist() == [pd.Timestamp(early)]
    receipts(ws, [("wamid.d", "read", late, None)])      # a later copy changes nothing
    assert ws.sql("SELECT read_at FROM message_status").read_at[0] == pd.Timestamp(early)


FATES = st.sampled_from(["ok", "lost", "lost_accepted"])
STATUS = st.sampled_from(["sent", "delivered", "read", "failed"])


@pytest.mark.slow
@settings(max_examples=15, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(fates=st.lists(FATES, min_size=3, max_size=6),
       decisions=st.lists(st.sampled_from(["give_up", "wait"]), min_size=6, max_size=6),
       statuses=st.lists(st.lists(STATUS, min_size=1, max_size=5), min_size=6, max_size=6),
       order=st.randoms(use_true_random=False), batches=st.integers(1, 4))
def test_every_grouping_sums_to_the_totals(tmp_path_factory, fates, decisions, statuses,
                                           order, batches):
    ws = bizchat.open(tmp_path_factory.mktemp("truth") / "ws.duckdb")
    acc, ids = shop(ws, len(fates))
    bid = draft(ws, acc)
    ws.broadcasts.schedule(bid, T0, now=T0)
    numbers = list(range(len(ids)))             # contact i has the number ...000i
    lost = {n for n, fate in zip(numbers, fates, strict=True) if fate != "ok"}
    transport = Answers(unknown=lost)
    outbox.send(ws, bid, transport=transport, now=T0 + timedelta(hours=1))
    for n, fate, decision in zip(numbers, fates, decisions, strict=False):
        if fate != "ok" and decision == "give_up":
            ws.broadcasts.resolve(bid, "give_up", keys=[transport.keys[n]])
    rows = []
    for i, (n, fate) in enumerate(zip(numbers, fates, strict=True)):
        if fate == "lost":
            continue            # the platform never got it: no receipt will come
        message = f"wamid.ok.{n}" if fate == "ok" else f"wamid.lost.{n}"
        key = transport.keys[n] if fate == "lost_accepted" else None
        for j, status in enumerate(statuses[i]):
            rows.append((message, status, T0 + timedelta(minutes=5 + 7 * j), key))
    rows += rows[: len(rows) // 2]      # duplicates
    order.shuffle(rows)
    size = max(1, -(-len(rows) // batches))
    for start in range(0, len(rows), size):   # separate deliveries (a crash between them)
        receipts(ws, rows[start:start + size])
    totals_agree(ws, bid)
    # A recipient whose receipt came is sent, whatever the operator decided.
    state = ws.sql("SELECT contact_id, state FROM broadcast_recipients WHERE broadcast_id = ?",
                   [bid]).set_index("contact_id").state
    for contact, fate in zip(ids, fates, strict=True):
        if fate == "lost_accepted":
            assert state[contact] == "sent"
