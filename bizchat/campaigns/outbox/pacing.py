"""Pacing: when each message of a batch may go out, by the platform's rules.

* throughput: at most ``rate`` messages per second per business number;
* pair rate: at least 6 s between two messages to the same user (from any broadcast);
* messaging-limit tier: at most ``tier`` unique users per rolling 24 h for
  business-initiated (template) messages;
* never before a recipient's ``not_before`` (back-offs and deferrals).

The times are on the transport's clock: simulated send times for the simulated
transport, wall-clock times the Cloud API transport waits for.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

PAIR_GAP = timedelta(seconds=6)


def tier_budget(con, run, go: pd.DataFrame, now: datetime):
    """Trim the batch to the messaging-limit tier (unique users per rolling 24 h); also
    return when enough of the window frees up if it is exhausted."""
    tier = run.account.get("messaging_tier")
    if not tier or go.empty:
        return go, None
    window = con.execute("""
        SELECT contact_id, min(created_at) AS first_at FROM messages
        WHERE account_id = ? AND direction = 'out' AND kind = 'template'
          AND created_at > ?::TIMESTAMPTZ - INTERVAL 24 HOURS AND created_at <= ?
        GROUP BY contact_id ORDER BY first_at""",
        [run.account["account_id"], now, now]).df()
    fresh = ~go["contact_id"].isin(window["contact_id"])
    budget = int(tier) - len(window)
    if fresh.sum() <= budget:
        return go, None
    keep = (~fresh) | (fresh.cumsum() <= max(budget, 0))
    # When enough earlier users age out of the window for one more batch.
    need = min(int(fresh.sum()), run.batch_size, int(tier)) - max(budget, 0)
    free_at = None
    if need > 0 and len(window) >= need:
        free_at = (pd.Timestamp(window["first_at"].iloc[need - 1]) + timedelta(hours=24)).to_pydatetime()
    return go[keep.to_numpy()], free_at


def pace(con, run, go: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """Send times: at most ``rate`` per second from the next free slot, never before a
    recipient's ``not_before``, and 6 s after the last message to the same user (from any
    broadcast). Vectorised: with earliest times e_i and offsets o_i = i / rate, send_i =
    o_i + max(start, max_{j<=i}(e_j - o_j)) keeps every gap at least 1 / rate."""
    if go.empty:
        return go.assign(send_at=pd.Series(dtype="datetime64[us, UTC]"))
    # Whole microseconds, rounded up: the platform counts a second as a second.
    offsets = np.ceil(np.arange(len(go)) * 1e6 / run.rate).astype("int64")
    start = us(pd.Series([max(now, run.next_slot)]))[0]
    earliest = us(go["not_before"])
    con.register("_pace_ids", go[["contact_id"]])
    try:
        # Only messages up to the batch's start: a message stamped later (a rehearsal on
        # the simulated clock in a workspace whose data runs further) has not happened
        # yet, and letting it push the whole batch would carry it into the night.
        last = con.execute("""
            SELECT m.contact_id, max(m.created_at) AS last_at FROM messages m
            WHERE m.account_id = ? AND m.direction = 'out' AND m.created_at <= ?
              AND m.contact_id IN (SELECT contact_id FROM _pace_ids) GROUP BY m.contact_id""",
            [run.account["account_id"], max(now, run.next_slot)]).df()
    finally:
        con.unregister("_pace_ids")
    if len(last):
        after = go["contact_id"].map(dict(zip(last["contact_id"], us(last["last_at"]), strict=True)))
        after = after.fillna(np.iinfo("int64").min).astype("int64").to_numpy()
        earliest = np.maximum(earliest, after + int(PAIR_GAP.total_seconds() * 1e6))
    send = offsets + np.maximum(start, np.maximum.accumulate(earliest - offsets))
    return go.assign(send_at=pd.to_datetime(send, unit="us", utc=True).astype("datetime64[us, UTC]"))


def us(stamps: pd.Series) -> np.ndarray:
    """UTC timestamps as int64 microseconds; missing ones as the smallest int64."""
    values = pd.to_datetime(pd.Series(stamps).reset_index(drop=True), utc=True)
    micro = values.astype("datetime64[us, UTC]").astype("int64").to_numpy()
    return np.where(values.isna().to_numpy(), np.iinfo("int64").min // 2, micro)


def interval(rate: float) -> timedelta:
    return timedelta(microseconds=math.ceil(1e6 / rate))
