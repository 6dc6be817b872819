"""Recording a batch's outcome, settling late answers, and the sender's trail.

``record`` writes what the transport answered for one batch (sent, failed, back to the
queue, unknown), stores the sent messages and handles 131050 opt-outs. Answers that come
later as status webhooks are settled by ``settle_async_failures`` (131049 / 131050 on a
message already sent) and ``backfill_messages`` (a crash-hidden send that a status with
its key resolved gets its message row). ``log`` appends to ``outbox_log`` (no numbers),
``audit`` to ``audit_log``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from ...messaging import chats
from ...people import consent
from .messages import variant_templates

log = logging.getLogger("bizchat.campaigns.outbox")

MARKETING_LIMIT_DEFERRAL = timedelta(hours=24)
RETRY_LATER = {130429, 131056, 4, 80007, 131016, 133004}
THROTTLED = {130429, 4, 80007}


def record(con, run, outbound: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    """Write the transport's answers for one batch; returns key, state per recipient."""
    bid = run.broadcast["broadcast_id"]
    res = results.rename(columns={"idempotency_key": "key"}).drop_duplicates("key")
    x = outbound.rename(columns={"idempotency_key": "key"}).merge(
        res, on="key", how="left", suffixes=("", "_result"))
    ok = x["ok"].fillna(False).astype(bool).to_numpy()
    unknown = ~ok & x["unknown"].fillna(False).astype(bool).to_numpy()
    # A result missing from the answer is an outcome we cannot know.
    unknown |= x["ok"].isna().to_numpy()
    code = pd.to_numeric(x["error_code"], errors="coerce").astype("Int64")
    failed = ~ok & ~unknown
    retry = failed & code.isin(RETRY_LATER).fillna(False).to_numpy()
    defer = failed & (code == 131049).fillna(False).to_numpy()
    stopped = failed & (code == 131050).fillna(False).to_numpy()
    exhausted = x["attempt"].to_numpy() >= run.max_attempts
    state = np.select([ok, unknown, (retry | defer) & ~exhausted], ["sent", "unknown", "queued"],
                      "failed")
    send_at = pd.to_datetime(x["send_at"], utc=True)
    backoff = pd.to_timedelta(np.where(
        x["retry_after"].notna(), x["retry_after"].astype(float),
        2.0 ** x["attempt"].astype(float)), unit="s")
    not_before = pd.Series(pd.NaT, index=x.index, dtype="datetime64[us, UTC]")
    not_before[retry] = (send_at + backoff)[retry]
    not_before[defer] = (send_at + MARKETING_LIMIT_DEFERRAL)[defer]
    send_at = send_at.astype("datetime64[us, UTC]")
    sent_at = pd.to_datetime(x["sent_at"], utc=True).astype("datetime64[us, UTC]")
    sent_at = sent_at.fillna(send_at).where(ok, pd.NaT)
    out = pd.DataFrame({
        "key": x["key"], "state": state,
        "message_id": x["message_id"].where(ok, None),
        "sent_at": sent_at.astype("datetime64[us, UTC]"),
        "not_before": not_before.where(state == "queued", pd.NaT),
        "error_code": code.where(~ok, pd.NA),
        "error_title": x["error_title"].where(~ok, None),
    })
    write(con, """
        UPDATE broadcast_recipients SET state = x.state,
               message_id = coalesce(x.message_id, broadcast_recipients.message_id),
               sent_at = coalesce(x.sent_at, broadcast_recipients.sent_at),
               not_before = x.not_before, error_code = x.error_code,
               error_title = x.error_title, updated_at = ?
        FROM _x AS x
        WHERE broadcast_id = ? AND idempotency_key = x.key
          AND broadcast_recipients.state IN ('sending', 'unknown')""",
           out, [datetime.now(UTC), bid])

    throttled = retry & code.isin(THROTTLED).fillna(False).to_numpy()
    if throttled.any():
        # The number's throughput was hit: slow down and let the platform breathe.
        run.rate = max(1.0, run.rate / 2)
        pause = backoff[throttled].max().total_seconds()
        run.next_slot = max(run.next_slot, send_at[throttled].max().to_pydatetime()
                            + timedelta(seconds=pause))
        log.warning("broadcast %s: throughput limit hit; pacing at %.0f msg/s", bid, run.rate)

    if ok.any():
        sent = x[ok]
        keys = sent["key"].astype(str)
        simple = keys.str.fullmatch(r"[A-Za-z0-9._:/+=-]*").all()
        details = ('{"idempotency_key":"' + keys + '"}') if simple else keys.map(
            lambda k: json.dumps({"idempotency_key": k}))
        chats.store_messages(con, pd.DataFrame({
            "message_id": sent["message_id"].astype(str), "account_id": run.account["account_id"],
            "contact_id": sent["contact_id"], "direction": "out", "kind": sent["kind"],
            "body": sent["body"], "template_name": sent["template_name"], "broadcast_id": bid,
            "variant": sent["variant"], "source": "transport", "details": details,
            "created_at": sent_at[ok]}))
    if stopped.any():
        now = pd.Timestamp.now(tz="UTC")
        consent.record_events(con, pd.DataFrame({
            "contact_id": x["contact_id"][stopped], "account_id": run.account["account_id"],
            "purpose": "marketing", "action": "opt_out", "source": "delivery_failure",
            "evidence": f"error 131050 (user stopped marketing messages) on broadcast {bid}",
            "recorded_at": send_at[stopped].where(send_at[stopped] < now, now)}), actor=run.actor)
    # The trail keeps what departs from the plan; a plain 'sent' is in the recipient row.
    events = np.select([ok, unknown, defer & (state == "queued"), state == "queued"],
                       ["sent", "unknown", "deferred", "retry"], "failed")
    notable = events != "sent"
    trail(con, bid, pd.DataFrame({
        "key": x["key"], "event": events, "at": send_at, "attempt": x["attempt"],
        "code": code, "message_id": out["message_id"]})[notable])
    return out


def settle_async_failures(con, broadcast_id: int, max_attempts: int = 5) -> None:
    """Failures that arrived later as status webhooks: 131049 defers the recipient by
    24 h under a new key (late receipts of the old message must not settle the new
    attempt), 131050 fails them (the webhook path recorded the opt-out)."""
    now = datetime.now(UTC)
    con.execute("""
        UPDATE broadcast_recipients AS r SET state = 'failed', error_code = 131050,
               error_title = 'user stopped marketing messages', updated_at = ?
        FROM message_status s
        WHERE r.broadcast_id = ? AND r.state = 'sent' AND s.message_id = r.message_id
          AND s.status = 'failed' AND s.error_code = 131050""", [now, broadcast_id])
    deferred = con.execute("""
        UPDATE broadcast_recipients AS r SET
               state = CASE WHEN r.attempts < ? THEN 'queued' ELSE 'failed' END,
               not_before = CASE WHEN r.attempts < ? THEN s.failed_at + INTERVAL 24 HOURS END,
               idempotency_key = CASE WHEN r.attempts < ?
                   THEN regexp_replace(r.idempotency_key, '~r[0-9]+$', '') || '~r' || r.attempts
                   ELSE r.idempotency_key END,
               message_id = CASE WHEN r.attempts < ? THEN NULL ELSE r.message_id END,
               error_code = 131049, error_title = 'per-user marketing limit (deferred 24 h)',
               updated_at = ?
        FROM message_status s
        WHERE r.broadcast_id = ? AND r.state = 'sent' AND s.message_id = r.message_id
          AND s.status = 'failed' AND s.error_code = 131049
        RETURNING r.idempotency_key AS key""",
        [max_attempts] * 4 + [now, broadcast_id]).df()
    trail(con, broadcast_id, deferred.assign(event="deferred", at=now, code=131049))


def backfill_messages(con, broadcast: dict, transport_name: str) -> None:
    """Recipients settled by a status webhook (their send's answer was lost) get their
    message row from the frozen recipient data, so messages has one row per send."""
    bid = broadcast["broadcast_id"]
    missing = con.execute("""
        SELECT r.message_id, r.contact_id, r.variant, r.body, r.idempotency_key,
               coalesce(r.sent_at, s.sent_at, s.delivered_at, s.read_at, s.failed_at,
                        r.updated_at) AS created_at
        FROM broadcast_recipients r LEFT JOIN message_status s USING (message_id)
        WHERE r.broadcast_id = ? AND r.message_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.message_id = r.message_id)""",
        [bid]).df()
    if missing.empty:
        return
    names, _ = variant_templates(broadcast)
    template = missing["variant"].map(names).where(missing["variant"].map(names).notna(),
                                                   broadcast.get("template"))
    chats.store_messages(con, pd.DataFrame({
        "message_id": missing["message_id"], "account_id": broadcast["account_id"],
        "contact_id": missing["contact_id"], "direction": "out",
        "kind": np.where(template.notna(), "template", "text"), "body": missing["body"],
        "template_name": template, "broadcast_id": bid, "variant": missing["variant"],
        "source": "transport",
        "details": missing["idempotency_key"].map(
            lambda k: json.dumps({"idempotency_key": k, "settled_by": "status"})),
        "created_at": pd.to_datetime(missing["created_at"], utc=True)}))
    con.execute("UPDATE broadcast_recipients AS r SET sent_at = m.created_at FROM messages m "
                "WHERE r.broadcast_id = ? AND r.sent_at IS NULL AND m.message_id = r.message_id",
                [bid])
    log.info("broadcast %s: %d sends settled by status webhooks (%s)", bid, len(missing),
             transport_name)


def write(con, sql: str, frame: pd.DataFrame, params: list) -> None:
    if frame.empty:
        return
    con.register("_x", frame)
    try:
        con.execute(sql, params)
    finally:
        con.unregister("_x")


def trail(con, broadcast_id: int, frame: pd.DataFrame) -> None:
    """The sender's trail in outbox_log: one row per recipient and event, no numbers."""
    if frame.empty:
        return
    frame = frame.reindex(columns=["key", "event", "at", "attempt", "code", "message_id"])
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    frame["attempt"] = pd.to_numeric(frame["attempt"]).astype("Int64")
    frame["code"] = pd.to_numeric(frame["code"]).astype("Int64")
    frame["message_id"] = frame["message_id"].astype(object)
    write(con, """
        INSERT INTO outbox_log (broadcast_id, idempotency_key, event, "at", detail)
        SELECT ?, key, event, "at",
               json_object('attempt', attempt, 'code', code, 'message_id', message_id)
        FROM _x""", frame, [broadcast_id])


def audit(con, actor: str, action: str, details: dict) -> None:
    con.execute('INSERT INTO audit_log ("at", actor, action, subject_key, details) '
                "VALUES (?, ?, ?, NULL, ?)", [datetime.now(UTC), actor, action, json.dumps(details)])
