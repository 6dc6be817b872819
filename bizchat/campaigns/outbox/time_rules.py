"""Send-time rules: quiet hours and the marketing frequency cap, decided at hand-off.

The one place these rules are decided is the outbox's batch selection, at the paced time
each message is handed to the transport, in the recipient's time zone (the contact's,
else the account's). A recipient inside their quiet hours is deferred to the end of them
(queued with ``not_before``) or, when the broadcast chose ``outside_hours='skip'``,
skipped with reason ``quiet_hours``; a deferral past the broadcast's ``expires_at``
skips with reason ``expired``. A marketing recipient who already had the cap's number of
marketing messages within the cap's days (either side of the hand-off, so two broadcasts
close together cannot both pass) is skipped with reason ``frequency_cap``: a cap is about
not messaging someone too often, so deferring it by days would only move the problem.

Time-zone arithmetic is zoneinfo's (through pandas): wall-clock ranges, ranges that wrap
midnight, and DST days (a quiet-hours end that does not exist that day is the first
instant after the gap; one that happens twice is the later one, so the second pass
through the hour is not inside quiet hours again).
"""

from __future__ import annotations

from datetime import time

import numpy as np
import pandas as pd

from ..clock import zone

_DAY = 86_400


def _seconds(t: time | None) -> float | None:
    return None if t is None else t.hour * 3600 + t.minute * 60 + t.second


def _tod(local: pd.Series) -> np.ndarray:
    """Wall-clock seconds since local midnight."""
    return (local.dt.hour * 3600 + local.dt.minute * 60 + local.dt.second
            + local.dt.microsecond / 1e6).to_numpy(dtype=float)


def _inside(tod: np.ndarray, s: float, e: float) -> np.ndarray:
    return (tod >= s) & (tod < e) if s < e else (tod >= s) | (tod < e)


def quiet_until(at: pd.Series, zones: pd.Series, start: time | None, end: time | None,
                fallback: str | None = None) -> pd.Series:
    """For each UTC instant in ``at`` and its time-zone name in ``zones``: the end of the
    quiet hours ``start``-``end`` (wall clock in that zone) if ``at`` falls inside them,
    else NaT. Equal or missing bounds mean no quiet hours."""
    at = pd.to_datetime(pd.Series(at).reset_index(drop=True), utc=True)
    out = pd.Series(pd.NaT, index=at.index, dtype="datetime64[us, UTC]")
    s, e = _seconds(start), _seconds(end)
    if s is None or e is None or s == e or at.empty:
        return out
    names = pd.Series(zones).reset_index(drop=True).astype(object)
    names = names.where(names.notna(), fallback or "UTC")
    for name in pd.unique(names):
        rows = (names == name).to_numpy()
        tz = zone(name, fallback)
        local = at[rows].dt.tz_convert(tz)
        tod = _tod(local)
        quiet = _inside(tod, s, e)
        if not quiet.any():
            continue
        # The end is today's end time, or tomorrow's when the range wraps midnight and
        # we are before midnight.
        day = local.dt.tz_localize(None).dt.normalize()
        later = (s > e) & (tod >= s)
        wall = day + pd.to_timedelta(np.where(later, 1, 0), unit="D") + pd.Timedelta(seconds=e)
        ends = wall.dt.tz_localize(tz, ambiguous=np.zeros(len(wall), dtype=bool),
                                   nonexistent="shift_forward").dt.tz_convert("UTC")
        ends = ends.astype("datetime64[us, UTC]")
        idx = np.flatnonzero(rows)
        out.iloc[idx[quiet]] = ends[quiet].to_numpy()
    return out


def handed_counts(con, account_id: int, contact_ids, at: pd.Series, days: float,
                  broadcast_id: int) -> np.ndarray:
    """Per recipient: marketing messages to that contact handed to the platform within
    ``days`` of their own hand-off time (either side), from other broadcasts (sending,
    sent, unknown; not failed) and outside broadcasts."""
    frame = pd.DataFrame({"contact_id": np.asarray(contact_ids, dtype="int64"),
                          "at": pd.to_datetime(pd.Series(at).reset_index(drop=True), utc=True),
                          "i": np.arange(len(contact_ids))})
    if frame.empty:
        return np.zeros(0, dtype="int64")
    span = int(days * 86_400_000_000)
    con.register("_cap_probe", frame)
    try:
        found = con.execute("""
            WITH handed AS (
                SELECT r.contact_id, coalesce(r.sent_at, s.sent_at, r.updated_at) AS t
                FROM broadcast_recipients r JOIN broadcasts b USING (broadcast_id)
                LEFT JOIN message_status s ON s.message_id = r.message_id
                WHERE b.account_id = ? AND b.category = 'marketing' AND b.broadcast_id <> ?
                  AND r.state IN ('sending', 'sent', 'unknown')
                  AND s.status IS DISTINCT FROM 'failed'
                  AND r.contact_id IN (SELECT contact_id FROM _cap_probe)
                UNION ALL
                SELECT m.contact_id, m.created_at AS t
                FROM messages m LEFT JOIN message_status s ON s.message_id = m.message_id
                WHERE m.account_id = ? AND m.direction = 'out' AND m.broadcast_id IS NULL
                  AND m.kind = 'template' AND s.status IS DISTINCT FROM 'failed'
                  AND m.contact_id IN (SELECT contact_id FROM _cap_probe)
                  AND EXISTS (SELECT 1 FROM templates t WHERE t.account_id = m.account_id
                              AND t.name = m.template_name AND t.category = 'marketing'))
            SELECT p.i, count(h.t) AS n FROM _cap_probe p
            JOIN handed h ON h.contact_id = p.contact_id
                         AND abs(epoch_us(h.t) - epoch_us(p."at")) < ?
            GROUP BY p.i""", [account_id, broadcast_id, account_id, span]).df()
    finally:
        con.unregister("_cap_probe")
    counts = np.zeros(len(frame), dtype="int64")
    counts[found["i"].to_numpy(dtype="int64")] = found["n"].to_numpy(dtype="int64")
    return counts


def decide(con, run, go: pd.DataFrame, limits) -> tuple[pd.DataFrame, pd.DataFrame,
                                                         pd.DataFrame]:
    """Split a paced batch (``send_at`` per recipient, ``zone``) into what goes now, what is
    deferred (``key``, ``not_before``) and what is skipped (``key``, ``reason``)."""
    empty_deferred = pd.DataFrame({"key": pd.Series(dtype=object),
                                   "not_before": pd.Series(dtype="datetime64[us, UTC]")})
    empty_skipped = pd.DataFrame({"key": pd.Series(dtype=object),
                                  "reason": pd.Series(dtype=object)})
    if go.empty:
        return go, empty_deferred, empty_skipped
    go = go.reset_index(drop=True)
    send_at = pd.to_datetime(go["send_at"], utc=True)
    reason = pd.Series([None] * len(go), dtype=object)
    expires = run.broadcast.get("expires_at")
    if expires is not None:
        reason[(send_at > pd.Timestamp(expires)).to_numpy()] = "expired"
    until = quiet_until(send_at, go["zone"], limits.quiet_hours_start, limits.quiet_hours_end,
                        limits.timezone)
    quiet = until.notna().to_numpy() & reason.isna().to_numpy()
    defer = np.zeros(len(go), dtype=bool)
    if run.broadcast.get("outside_hours") == "skip":
        reason[quiet] = "quiet_hours"
    else:
        late = quiet & (until > pd.Timestamp(expires)).to_numpy() if expires is not None \
            else np.zeros(len(go), dtype=bool)
        reason[late] = "expired"
        defer = quiet & ~late
    if (run.broadcast.get("category") == "marketing" and limits.marketing_cap_days > 0):
        check = (reason.isna().to_numpy() & ~defer)
        if check.any():
            counts = handed_counts(con, run.account["account_id"],
                                   go.loc[check, "contact_id"].to_numpy(), send_at[check],
                                   limits.marketing_cap_days, run.broadcast["broadcast_id"])
            over = np.zeros(len(go), dtype=bool)
            over[np.flatnonzero(check)] = counts >= limits.marketing_cap_count
            reason[over] = "frequency_cap"
    deferred = pd.DataFrame({"key": go.loc[defer, "key"].to_numpy(),
                             "not_before": until[defer].to_numpy()})
    skipped = pd.DataFrame({"key": go.loc[reason.notna().to_numpy(), "key"].to_numpy(),
                            "reason": reason[reason.notna()].to_numpy()})
    keep = reason.isna().to_numpy() & ~defer
    return go[keep], (deferred if len(deferred) else empty_deferred), (
        skipped if len(skipped) else empty_skipped)


__all__ = ["decide", "handed_counts", "quiet_until"]
