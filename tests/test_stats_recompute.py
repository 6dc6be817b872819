"""The statistics recomputed independently: plain SQL over the raw tables (events, not the
derived message_status) on a generated world with the edge cases, against ``ws.stats``:
every rate, the funnel, hours in the account's zone, time to read, the A/B p-value and
the lift's arms (issue 16, item 3: the bar to keep).

Edge cases drawn in: zero delivered (a broadcast whose every message failed), read
without delivered, duplicate receipts, receipts out of order and in several deliveries,
failed after read, late receipts (days after the send), skipped recipients without a
variant, a control group, replies and opt-outs inside and outside their windows.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

import bizchat
from bizchat.ingest import webhooks
from bizchat.messaging import chats
from bizchat.people.consent import record_events

T = datetime(2026, 3, 2, 7, 30, tzinfo=UTC)      # Monday 08:30 in Berlin
STATUS = ["sent", "delivered", "read", "failed"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    rng = np.random.default_rng(16)
    ws = bizchat.open(tmp_path_factory.mktemp("recompute") / "ws.duckdb")
    acc = ws.accounts.add("+49 30 901820", "Buchladen", timezone="Europe/Berlin")
    n = 240
    ids = [int(i) for i in ws.contacts.ensure(acc["account_id"], pd.DataFrame({
        "wa_id": [f"4917{i:08d}" for i in range(n)], "name": "Kundin"}))]
    plans = [  # broadcast_id, offset of the send, variants, control share, dead (all fail)
        (1, timedelta(0), ["A", "B"], 0.2, False),
        (2, timedelta(days=3, hours=5), ["A"], 0.0, True),
        (3, timedelta(days=6, hours=13), ["A", "B"], 0.25, False),
        (4, timedelta(days=9, hours=22), ["A"], 0.3, False)]
    recipients, messages, events, inbound, opt_outs = [], [], [], [], []
    for bid, offset, variants, control, dead in plans:
        at = T + offset
        with ws.transaction() as con:
            con.execute("""INSERT INTO broadcasts (broadcast_id, account_id, name, template,
                               category, status, scheduled_for, created_at, control_fraction)
                           VALUES (?, ?, ?, 't', 'marketing', 'done', ?, ?, ?)""",
                        [bid, acc["account_id"], f"B{bid}", at, at, control])
        for c in rng.choice(ids, size=120, replace=False):
            c = int(c)
            key = f"k{bid}.{c}"
            roll = rng.random()
            if roll < 0.12:       # excluded before assignment: no variant
                recipients.append((bid, c, None, "skipped", "no_consent", key, None, None))
                continue
            variant = "control" if roll < 0.12 + control * 0.88 else str(rng.choice(variants))
            if variant == "control":
                recipients.append((bid, c, "control", "skipped", "control", key, None, None))
            elif rng.random() < 0.05:     # failed before the platform accepted it
                recipients.append((bid, c, variant, "failed", None, key, None, None))
                continue
            else:
                sent_at = at + timedelta(seconds=int(rng.integers(0, 7200)))
                mid = f"wamid.{bid}.{c}"
                recipients.append((bid, c, variant, "sent", None, key, mid, sent_at))
                messages.append((mid, c, bid, variant, sent_at))
                fate = rng.random()
                chain = []
                if dead or fate < 0.08:
                    chain = [("sent", 1), ("failed", 30)]
                elif fate < 0.12:
                    chain = [("sent", 1), ("read", 600)]                  # read, no delivered
                elif fate < 0.16:
                    chain = [("sent", 1), ("delivered", 5), ("read", 90), ("failed", 400)]
                elif fate < 0.20:
                    chain = [("sent", 1)]                                 # no receipt yet
                else:
                    chain = [("sent", 1), ("delivered", int(rng.integers(2, 600)))]
                    if rng.random() < 0.55:
                        late = rng.random() < 0.15
                        chain.append(("read", int(rng.integers(3 * 86400, 5 * 86400)) if late
                                      else int(rng.integers(700, 20000))))
                for status, seconds in chain:
                    events.append((mid, status, sent_at + timedelta(seconds=seconds)))
                    if rng.random() < 0.3:     # a duplicate, sometimes with a later time
                        events.append((mid, status, sent_at + timedelta(
                            seconds=seconds + int(rng.integers(0, 3)) * 60)))
            if rng.random() < 0.25:            # a reply, inside or outside 72 h / 7 days
                inbound.append((c, at + timedelta(hours=float(rng.choice([1, 30, 71, 80, 150, 200])))))
            if rng.random() < 0.06:
                opt_outs.append((c, at + timedelta(days=float(rng.choice([0.5, 3, 6.9, 8])))))
    with ws.transaction() as con:
        con.register("_r", pd.DataFrame(recipients, columns=[
            "broadcast_id", "contact_id", "variant", "state", "skip_reason",
            "idempotency_key", "message_id", "sent_at"]))
        con.execute("""INSERT INTO broadcast_recipients (broadcast_id, contact_id, variant,
                           state, skip_reason, idempotency_key, message_id, sent_at, updated_at)
                       SELECT broadcast_id, contact_id, variant, state, skip_reason,
                              idempotency_key, message_id, sent_at, now() FROM _r""")
        chats.store_messages(con, pd.DataFrame({
            "message_id": [m[0] for m in messages], "account_id": acc["account_id"],
            "contact_id": [m[1] for m in messages], "direction": "out", "kind": "template",
            "body": "Hallo", "template_name": "t", "broadcast_id": [m[2] for m in messages],
            "variant": [m[3] for m in messages], "source": "transport",
            "created_at": [m[4] for m in messages]}))
        chats.store_messages(con, pd.DataFrame({
            "message_id": [f"wamid.in.{i}" for i in range(len(inbound))],
            "account_id": acc["account_id"], "contact_id": [c for c, _ in inbound],
            "direction": "in", "kind": "text", "body": "Danke", "source": "webhook",
            "created_at": [t for _, t in inbound]}))
        record_events(con, pd.DataFrame({
            "contact_id": [c for c, _ in opt_outs], "purpose": "marketing",
            "action": "opt_out", "source": "chat", "recorded_at": [t for _, t in opt_outs]}))
    # Receipts out of order, in several deliveries.
    frame = pd.DataFrame(events, columns=["message_id", "status", "at"])
    frame = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    frame["error_code"] = pd.array([131026 if s == "failed" else None for s in frame.status],
                                   "Int32")
    for part in np.array_split(np.arange(len(frame)), 5):
        with ws.transaction() as con:
            webhooks.record_receipts(con, frame.iloc[part])
    return ws


# The truth, from the raw tables only (message_events, not message_status).
TRUTH = """
WITH ev AS (
    SELECT message_id,
           min("at") FILTER (WHERE status = 'sent') AS sent_ev,
           min("at") FILTER (WHERE status = 'delivered') AS delivered_ev,
           min("at") FILTER (WHERE status IN ('read', 'played')) AS read_ev,
           bool_or(status = 'failed') AS failed_ev
    FROM message_events GROUP BY message_id),
r AS (
    SELECT r.broadcast_id, r.contact_id, r.variant, r.state, b.scheduled_for,
           r.message_id IS NOT NULL AS sent,
           coalesce(ev.failed_ev, false) OR (r.state = 'failed' AND r.message_id IS NULL)
               AS failed,
           r.message_id IS NOT NULL AND NOT coalesce(ev.failed_ev, false)
               AND (ev.delivered_ev IS NOT NULL OR ev.read_ev IS NOT NULL) AS delivered,
           r.message_id IS NOT NULL AND NOT coalesce(ev.failed_ev, false)
               AND ev.read_ev IS NOT NULL AS "read",
           coalesce(ev.sent_ev, r.sent_at, b.scheduled_for) AS send_at, ev.read_ev
    FROM broadcast_recipients r JOIN broadcasts b USING (broadcast_id)
    LEFT JOIN ev USING (message_id)),
resp AS (
    SELECT r.*,
           EXISTS (SELECT 1 FROM messages m WHERE m.direction = 'in'
                   AND m.contact_id = r.contact_id AND m.created_at > r.send_at
                   AND m.created_at <= r.send_at + INTERVAL 72 HOURS) AS replied,
           EXISTS (SELECT 1 FROM consent_events c WHERE c.purpose = 'marketing'
                   AND c.action = 'opt_out' AND c.contact_id = r.contact_id
                   AND c.recorded_at > r.send_at
                   AND c.recorded_at <= r.send_at + INTERVAL 7 DAYS) AS opted_out
    FROM r)
"""


def test_open_rates_and_funnel_match_plain_sql(world):
    truth = world.sql(TRUTH + """
        SELECT broadcast_id, count(*) AS recipients,
               count(*) FILTER (WHERE state = 'skipped') AS skipped,
               count(*) FILTER (WHERE sent) AS sent,
               count(*) FILTER (WHERE delivered) AS delivered,
               count(*) FILTER (WHERE "read") AS "read",
               count(*) FILTER (WHERE failed) AS failed,
               count(*) FILTER (WHERE delivered AND replied) AS replied,
               count(*) FILTER (WHERE delivered AND opted_out) AS opted_out
        FROM resp GROUP BY broadcast_id ORDER BY broadcast_id""").set_index("broadcast_id")
    got = world.stats.funnel("broadcast").set_index("broadcast_id")
    columns = list(truth.columns)
    assert got[columns].astype(int).equals(truth[columns].astype(int))
    assert (truth.loc[2, "delivered"], truth.loc[2, "sent"]) == (0, truth.loc[2, "sent"])
    rates = world.stats.open_rates("broadcast").set_index("broadcast_id")
    for bid, row in truth.iterrows():
        delivery = row["delivered"] / row["sent"] if row["sent"] else math.nan
        opened = row["read"] / row["delivered"] if row["delivered"] else math.nan
        assert rates.loc[bid, "delivery_rate"] == pytest.approx(delivery, nan_ok=True)
        assert rates.loc[bid, "open_rate"] == pytest.approx(opened, nan_ok=True)
        assert got.loc[bid, "reply_rate"] == pytest.approx(
            row["replied"] / row["delivered"] if row["delivered"] else math.nan, nan_ok=True)


def test_hours_in_the_accounts_zone_count_attempted_sends_only(world):
    truth = world.sql(TRUTH + """
        SELECT hour(timezone('Europe/Berlin', send_at))::INT AS hour,
               count(*) AS recipients, count(*) FILTER (WHERE sent) AS sent,
               count(*) FILTER (WHERE delivered) AS delivered,
               count(*) FILTER (WHERE "read") AS "read"
        FROM r WHERE sent OR failed GROUP BY ALL ORDER BY hour""")
    got = world.stats.open_rates("hour")              # the account's zone by default
    columns = ["hour", "recipients", "sent", "delivered", "read"]
    assert got[columns].astype(int).values.tolist() == truth[columns].astype(int).values.tolist()


def test_time_to_read_matches_plain_sql(world):
    truth = world.sql(TRUTH + """
        SELECT broadcast_id, count(*) AS "read",
               quantile_cont(greatest(epoch(read_ev) - epoch(send_at), 0) / 60, 0.5) AS median_min
        FROM r WHERE "read" GROUP BY ALL ORDER BY broadcast_id""").set_index("broadcast_id")
    got = world.stats.time_to_read("broadcast").set_index("broadcast_id")
    assert got["read"].astype(int).to_dict() == truth["read"].astype(int).to_dict()
    for bid in truth.index:
        assert got.loc[bid, "median_min"] == pytest.approx(truth.loc[bid, "median_min"])


def _z_test(k1, n1, k2, n2) -> float:
    p = (k1 + k2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    return math.erfc(abs(k2 / n2 - k1 / n1) / se / math.sqrt(2))


def test_ab_p_value_matches_a_hand_computed_z_test(world):
    truth = world.sql(TRUTH + """
        SELECT variant, count(*) FILTER (WHERE delivered) AS delivered,
               count(*) FILTER (WHERE delivered AND read_ev <= send_at + INTERVAL 72 HOURS)
                   AS opened
        FROM r WHERE broadcast_id = 1 AND variant IN ('A', 'B')
        GROUP BY variant ORDER BY variant""").set_index("variant")
    result = world.stats.ab_test(1, "open")
    b = result.table.set_index("variant").loc["B"]
    expected = _z_test(truth.loc["A", "opened"], truth.loc["A", "delivered"],
                       truth.loc["B", "opened"], truth.loc["B", "delivered"])
    assert b["p_value"] == pytest.approx(expected)


def test_lift_arms_are_the_randomised_recipients_from_one_start(world):
    truth = world.sql(TRUTH + """
        , starts AS (SELECT broadcast_id, coalesce(min(m.created_at), any_value(b.scheduled_for))
                         AS start_at
                     FROM broadcasts b LEFT JOIN messages m USING (broadcast_id)
                     WHERE m.direction = 'out' OR m.direction IS NULL GROUP BY broadcast_id)
        SELECT CASE WHEN variant = 'control' THEN 'control' ELSE 'treated' END AS arm,
               count(*) AS n,
               count(*) FILTER (WHERE EXISTS (
                   SELECT 1 FROM messages m WHERE m.direction = 'in'
                   AND m.contact_id = r.contact_id AND m.created_at > s.start_at
                   AND m.created_at <= s.start_at + INTERVAL 72 HOURS)) AS replied
        FROM r JOIN starts s USING (broadcast_id)
        WHERE r.broadcast_id = 4 AND r.variant IS NOT NULL GROUP BY ALL""").set_index("arm")
    row = world.stats.control_lift(4).table.set_index("outcome").loc["reply_72h"]
    assert (row["treated_n"], row["treated_events"]) == (truth.loc["treated", "n"],
                                                         truth.loc["treated", "replied"])
    assert (row["control_n"], row["control_events"]) == (truth.loc["control", "n"],
                                                         truth.loc["control", "replied"])
    excluded = world.sql("SELECT count(*) AS n FROM broadcast_recipients WHERE broadcast_id = 4 "
                         "AND variant IS NULL").n[0]
    assert sum(world.stats.control_lift(4).excluded.values()) == excluded > 0
