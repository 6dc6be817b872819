"""The outbox: works through a scheduled broadcast's queue, paced and crash-safe.

Per batch there are two transactions around the transport call:

1. pick the queued recipients that are due, check consent again (``consent.may_send``:
   whoever opted out since scheduling is skipped), place each message on the pacing
   schedule, and write ``sending`` (attempts + 1) for the batch;
2. call the transport (no connection held);
3. write what came back: ``sent`` with message id and send time, ``failed`` with code
   and message, back to ``queued`` with ``not_before`` for back-offs and deferrals, or
   ``unknown`` when the transport cannot tell; store the sent messages, ingest the
   receipts the transport produced, append to ``outbox_log`` and ``audit_log``.

A crash between 1 and 3 leaves ``sending`` rows. ``resume`` turns them into ``unknown``
and never resends them: a status webhook echoing the idempotency key settles them
(``webhook_ingest._resolve_outbox``; the simulated transport re-delivers the receipts of
everything its ledger accepted), or an operator decides with ``resolve_unknown``.

Pacing (the platform's rules): at most ``accounts.send_rate`` messages per second per
number, at least 6 s between two messages to one user, and no more unique users per
rolling 24 h than ``accounts.messaging_tier``. The transport's clock does the waiting:
the simulated clock only moves time forward, so pacing shapes simulated send times; the
wall clock sleeps. Error handling: 130429 (throughput) halves the rate and retries the
recipient after ``retry_after``; 131056 (pair rate) retries that recipient after a
back-off; 131049 (per-user marketing limit) defers the recipient by 24 h; 131050 (user
stopped marketing) fails the recipient and records a marketing opt-out.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from . import consent, conversations, render
from .errors import Conflict, NotFound
from .transports import Transport, make
from .transports.base import MESSAGE_FIELDS

log = logging.getLogger("bizchat.outbox")

STATES = ("queued", "sending", "sent", "unknown", "failed", "skipped")
PAIR_GAP = timedelta(seconds=6)
MARKETING_LIMIT_DEFERRAL = timedelta(hours=24)
RETRY_LATER = {130429, 131056, 4, 80007, 131016, 133004}
THROTTLED = {130429, 4, 80007}


class SendRefused(Conflict):
    """A broadcast that cannot be sent (draft, cancelled)."""


@dataclass
class _Run:
    """The state of one send run."""

    broadcast: dict
    account: dict
    transport: Transport
    rate: float
    purpose: str
    batch_size: int
    max_wait: timedelta
    until: datetime | None
    max_attempts: int
    actor: str
    next_slot: datetime
    templates: dict
    batches: int = 0


def send(ws, broadcast_id: int, *, transport=None, seed: int | None = None,
         progress: bool = False, batch_size: int = 500, max_wait: float | None = None,
         horizon: float | None = None, max_attempts: int = 5, actor: str = "bizchat") -> dict:
    """Send the broadcast's queued recipients (and deferred ones now due); returns counts
    by state (plus ``deferred``: queued with a later ``not_before``).

    ``transport``: None or ``"simulated"`` (SimulatedTransport with ``seed``, default the
    broadcast's seed), ``"cloud"``, or a Transport. ``max_wait``: the longest single wait
    (seconds) for due recipients before returning with the rest still queued (simulated
    clock: 2 days, so deferrals play out; wall clock: 120 s). ``horizon``: the longest the
    whole run may span on the transport's clock (simulated: 14 days; wall: unlimited).
    Recipients left ``sending`` by a crash are not touched here: use ``resume``.
    """
    return _send(ws, broadcast_id, transport, seed, progress, batch_size, max_wait, horizon,
                 max_attempts, actor, resume=False)


def resume(ws, broadcast_id: int, **options) -> dict:
    """After a crash: recipients left ``sending`` become ``unknown`` (never resent; a
    status with their key or ``resolve_unknown`` settles them), then continue as ``send``."""
    return _send(ws, broadcast_id, options.pop("transport", None), options.pop("seed", None),
                 options.pop("progress", False), options.pop("batch_size", 500),
                 options.pop("max_wait", None), options.pop("horizon", None),
                 options.pop("max_attempts", 5), options.pop("actor", "bizchat"), resume=True,
                 **options)


def resolve_unknown(ws, broadcast_id: int, decision: str, *, keys: list[str] | None = None,
                    actor: str = "bizchat") -> dict:
    """An operator's decision for ``unknown`` recipients (all, or those with ``keys``):
    ``"resend"`` queues them again with the same idempotency key (safe with a transport
    that honours it; with the Cloud API the customer may get the message twice), or
    ``"give_up"`` fails them. Returns counts by state."""
    if decision not in ("resend", "give_up"):
        raise ValueError(f"decision={decision!r}: use 'resend' or 'give_up'.")
    now = datetime.now(UTC)
    with ws.transaction() as con:
        _broadcast(con, broadcast_id)
        where = "broadcast_id = ? AND state = 'unknown'"
        params: list = [broadcast_id]
        if keys is not None:
            where += " AND list_contains(?, idempotency_key)"
            params.append(list(keys))
        chosen = con.execute(f"SELECT idempotency_key FROM broadcast_recipients WHERE {where}",
                             params).df()
        if decision == "resend":
            con.execute(f"UPDATE broadcast_recipients SET state = 'queued', not_before = NULL, "
                        f"updated_at = ? WHERE {where}", [now, *params])
        else:
            con.execute(f"UPDATE broadcast_recipients SET state = 'failed', error_title = "
                        f"'outcome unknown after an interruption; given up by an operator', "
                        f"updated_at = ? WHERE {where}", [now, *params])
        _log(con, broadcast_id, chosen.assign(event=f"resolved.{decision}", at=now))
        _audit(con, actor, "broadcast.resolve_unknown",
               {"broadcast_id": broadcast_id, "decision": decision, "recipients": len(chosen)})
        if decision == "resend":
            con.execute("UPDATE broadcasts SET status = 'sending', finished_at = NULL "
                        "WHERE broadcast_id = ? AND status = 'done'", [broadcast_id])
        return _counts(con, broadcast_id, now)


def counts(ws, broadcast_id: int) -> dict:
    """Recipients of the broadcast by state."""
    with ws.connect() as con:
        _broadcast(con, broadcast_id)
        return _counts(con, broadcast_id, datetime.now(UTC))


# --- the run -----------------------------------------------------------------------------

def _send(ws, broadcast_id, transport, seed, progress, batch_size, max_wait, horizon,
          max_attempts, actor, *, resume: bool) -> dict:
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    with ws.connect() as con:
        broadcast = _broadcast(con, broadcast_id)
        account = _account(con, broadcast["account_id"])
    if broadcast["status"] in ("draft", "cancelled"):
        raise SendRefused(
            f"Broadcast {broadcast_id} is {broadcast['status']}: "
            + ("schedule it first (ws.broadcasts.schedule), which freezes its recipients."
               if broadcast["status"] == "draft" else "a cancelled broadcast is not sent."),
            broadcast_id=broadcast_id, status=broadcast["status"])
    seed = broadcast.get("seed") if seed is None else seed
    transport = make(transport, seed=seed)
    rate = float(account.get("send_rate") or 80)
    # Checks the transport's configuration before anything is marked as sending.
    transport.attach(ws, account=account, rate=rate)
    clock = transport.clock
    simulated = getattr(clock, "simulated", False)
    with ws.transaction() as con:
        if resume:
            lost = con.execute("""
                UPDATE broadcast_recipients SET state = 'unknown', updated_at = ?
                WHERE broadcast_id = ? AND state = 'sending' RETURNING idempotency_key""",
                [datetime.now(UTC), broadcast_id]).df()
            _log(con, broadcast_id, lost.assign(event="unknown", at=datetime.now(UTC)))
            if len(lost):
                log.warning("broadcast %s: %d recipients were mid-send when the sender stopped; "
                            "they are 'unknown' until a status webhook or an operator settles "
                            "them", broadcast_id, len(lost))
        transport.recover(con, broadcast_id)
        _settle_async_failures(con, broadcast_id, max_attempts)
        _backfill_messages(con, broadcast, transport.name)
        start = _start_time(con, broadcast, clock.now() if not simulated else None, rate)
        if simulated:
            clock.start_at(start)
        con.execute("UPDATE broadcasts SET status = 'sending' WHERE broadcast_id = ? "
                    "AND status IN ('scheduled', 'done') AND EXISTS (SELECT 1 FROM "
                    "broadcast_recipients WHERE broadcast_id = ? AND state = 'queued')",
                    [broadcast_id, broadcast_id])
        templates = _templates(con, broadcast) if transport.needs_params else {}
        total = con.execute("SELECT count(*) FROM broadcast_recipients WHERE broadcast_id = ? "
                            "AND state = 'queued'", [broadcast_id]).fetchall()[0][0]
    wait = timedelta(seconds=max_wait) if max_wait is not None else (
        timedelta(days=2) if simulated else timedelta(seconds=120))
    span = horizon if horizon is not None else (14 * 86400 if simulated else None)
    run = _Run(broadcast, account, transport, rate, consent.PURPOSE_OF[broadcast["category"]],
               batch_size, wait, start + timedelta(seconds=span) if span else None,
               max_attempts, actor, next_slot=start, templates=templates)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"broadcast {broadcast_id}", unit="msg")
    try:
        if not simulated and start > clock.now():
            if start - clock.now() > wait:
                log.info("broadcast %s is due at %s; not sending yet", broadcast_id, start)
                return counts(ws, broadcast_id)
            clock.sleep_until(start)
        while _batch(ws, run, bar):
            pass
    finally:
        if bar is not None:
            bar.close()
        transport.close()
    with ws.transaction() as con:
        _backfill_messages(con, broadcast, transport.name)
        result = _counts(con, broadcast_id, clock.now())
        if result["queued"] + result["sending"] + result["unknown"] == 0:
            con.execute("UPDATE broadcasts SET status = 'done', finished_at = ? "
                        "WHERE broadcast_id = ? AND status = 'sending'",
                        [clock.now(), broadcast_id])
            result["status"] = con.execute("SELECT status FROM broadcasts WHERE broadcast_id = ?",
                                           [broadcast_id]).fetchall()[0][0]
    result["batches"] = run.batches
    log.info("broadcast %s: %s", broadcast_id, _summary(result))
    return result


def _batch(ws, run: _Run, bar) -> bool:
    """One batch; False when nothing more is due within the run's limits."""
    bid = run.broadcast["broadcast_id"]
    clock = run.transport.clock
    now = max(clock.now(), run.next_slot) if clock.simulated else clock.now()
    if run.until is not None and now > run.until:
        return False
    with ws.transaction() as con:
        status = con.execute("SELECT status FROM broadcasts WHERE broadcast_id = ?",
                             [bid]).fetchall()[0][0]
        if status == "cancelled":
            return False
        picked = _pick(con, run, now)
        if picked.empty:
            due = con.execute("SELECT min(not_before) FROM broadcast_recipients WHERE "
                              "broadcast_id = ? AND state = 'queued'", [bid]).fetchall()[0][0]
            return _wait_for(run, now, due)
        allowed = consent.may_send(con, run.account["account_id"], picked["contact_id"].tolist(),
                                   run.purpose)
        reason = allowed["reason"].to_numpy(dtype=object)
        reason = np.where(picked["to"].isna().to_numpy() & pd.isna(reason), "invalid_number", reason)
        skip = picked[pd.notna(reason)].assign(reason=reason[pd.notna(reason)])
        go = picked[pd.isna(reason)]
        go, free_at = _tier_budget(con, run, go, now)
        go = _pace(con, run, go, now)
        go = go.assign(labels=_labels_of(con, run, go))
        _write(con, """
            UPDATE broadcast_recipients SET state = 'skipped', skip_reason = x.reason,
                   updated_at = ? FROM _x AS x
            WHERE broadcast_id = ? AND idempotency_key = x.key AND state = 'queued'""",
               skip[["key", "reason"]], [datetime.now(UTC), bid])
        _log(con, bid, skip.assign(event="skipped", at=now))
        _write(con, """
            UPDATE broadcast_recipients SET state = 'sending', attempts = attempts + 1,
                   updated_at = ? FROM _x AS x
            WHERE broadcast_id = ? AND idempotency_key = x.key AND state = 'queued'""",
               go[["key"]], [datetime.now(UTC), bid])
    if go.empty:
        if bar is not None:
            bar.update(len(skip))
        return bool(len(skip)) or _wait_for(run, now, free_at)

    outbound = _messages(run, go)
    results = run.transport.send_frame(outbound)

    with ws.transaction() as con:
        done = _record(con, run, outbound, results)
        run.transport.deliver_receipts(con)
        tally = done["state"].value_counts().to_dict()
        tally["skipped"] = tally.get("skipped", 0) + len(skip)
        _audit(con, run.actor, "broadcast.send", {
            "broadcast_id": bid, "batch": run.batches + 1, "transport": run.transport.name,
            **{k: int(v) for k, v in tally.items()}})
    run.batches += 1
    last = go["send_at"].max()
    run.next_slot = max(run.next_slot, last + _interval(run.rate))
    if clock.simulated:
        clock.sleep_until(run.next_slot)
    if bar is not None:
        bar.update(len(go) + len(skip))
    log.info("broadcast %s batch %d: %s (clock %s)", bid, run.batches,
             ", ".join(f"{v} {k}" for k, v in sorted(tally.items())), last.isoformat())
    return True


def _wait_for(run: _Run, now: datetime, due) -> bool:
    """Wait (on the transport's clock) for the next due recipient, within the limits."""
    if due is None or pd.isna(due):
        return False
    due = pd.Timestamp(due).to_pydatetime()
    if due - now > run.max_wait or (run.until is not None and due > run.until):
        return False
    run.transport.clock.sleep_until(due)
    run.next_slot = max(run.next_slot, due)
    return True


def _pick(con, run: _Run, now: datetime) -> pd.DataFrame:
    return con.execute("""
        SELECT p.idempotency_key AS key, p.contact_id, p.variant, p.attempts + 1 AS attempt,
               p.body, CAST(p.params AS VARCHAR) AS params,
               coalesce(p.wa_id, c.wa_id, ltrim(c.phone_e164, '+'), c.user_id) AS "to",
               p.not_before
        FROM (SELECT * FROM broadcast_recipients
              WHERE broadcast_id = ? AND state = 'queued'
                AND (not_before IS NULL OR not_before <= ?)
              ORDER BY not_before NULLS FIRST, contact_id LIMIT ?) AS p
        LEFT JOIN contacts c USING (contact_id)
        ORDER BY p.not_before NULLS FIRST, p.contact_id""",
        [run.broadcast["broadcast_id"], now, run.batch_size]).df()


def _tier_budget(con, run: _Run, go: pd.DataFrame, now: datetime):
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


def _pace(con, run: _Run, go: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """Send times: ``rate`` per second from the next free slot, and 6 s after the last
    message to the same user (from any broadcast)."""
    if go.empty:
        return go.assign(send_at=pd.Series(dtype="datetime64[us, UTC]"))
    first = pd.Timestamp(max(now, run.next_slot))
    # Whole microseconds, rounded up: the platform counts a second as a second.
    offsets = pd.to_timedelta(np.ceil(np.arange(len(go)) * 1e6 / run.rate).astype("int64"), unit="us")
    slots = pd.Series(first + offsets, index=go.index)
    con.register("_pace_ids", go[["contact_id"]])
    try:
        last = con.execute("""
            SELECT m.contact_id, max(m.created_at) AS last_at FROM messages m
            WHERE m.account_id = ? AND m.direction = 'out'
              AND m.contact_id IN (SELECT contact_id FROM _pace_ids) GROUP BY m.contact_id""",
            [run.account["account_id"]]).df()
    finally:
        con.unregister("_pace_ids")
    if len(last):
        after = go["contact_id"].map(dict(zip(last["contact_id"], pd.to_datetime(last["last_at"], utc=True),
                                              strict=True)))
        after = pd.to_datetime(after, utc=True) + PAIR_GAP
        slots = slots.where(after.isna() | (slots >= after), after)
    return go.assign(send_at=slots.dt.tz_convert("UTC").astype("datetime64[us, UTC]"))


def _messages(run: _Run, go: pd.DataFrame) -> pd.DataFrame:
    """The batch as the transport's columns (OutboundMessage fields)."""
    b, account = run.broadcast, run.account
    names, languages = _variant_templates(b)
    variant = go["variant"].astype(object)
    template = variant.map(names).where(variant.map(names).notna(), b.get("template"))
    frame = pd.DataFrame({
        "idempotency_key": go["key"].to_numpy(),
        "phone_number_id": account.get("phone_number_id"),
        "to": go["to"].to_numpy(),
        "kind": np.where(template.notna().to_numpy(), "template", "text"),
        "template_name": template.to_numpy(),
        "language": variant.map(languages).fillna(b.get("language") or "de").to_numpy(),
        "params": (_structured_params(run, go) if run.transport.needs_params
                   else go["params"].to_numpy()),
        "body": go["body"].to_numpy(),
        "send_at": go["send_at"].to_numpy(),
        "attempt": go["attempt"].to_numpy(),
        "account_id": account["account_id"],
        "contact_id": go["contact_id"].to_numpy(),
        "broadcast_id": b["broadcast_id"],
        "variant": variant.to_numpy(),
        "category": b["category"],
        "labels": go["labels"].to_numpy(),
    })
    frame["send_at"] = pd.to_datetime(frame["send_at"], utc=True)
    return frame[MESSAGE_FIELDS]


def _variant_templates(broadcast: dict) -> tuple[dict, dict]:
    """variant -> template name and language, from ``broadcasts.variants``."""
    names, languages = {}, {}
    variants = broadcast.get("variants")
    if isinstance(variants, str):
        variants = json.loads(variants)
    for v in variants or []:
        template = v.get("template")
        if isinstance(template, dict):
            names[v.get("variant")] = template.get("name")
            if template.get("language"):
                languages[v.get("variant")] = template["language"]
        elif template:
            names[v.get("variant")] = template
            if v.get("language"):
                languages[v.get("variant")] = v["language"]
    return names, languages


def _structured_params(run: _Run, go: pd.DataFrame) -> list:
    """Each recipient's frozen placeholder values split the way the template uses them:
    ``{"header": {...}, "body": {...}, "buttons": [{"index": i, "text": ...}]}``."""
    templates = run.templates
    out = []
    for variant, raw in zip(go["variant"], go["params"], strict=True):
        values = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
        parts = templates.get(variant)
        if parts is None:   # no registered template known: all values fill the body
            out.append(values)
            continue
        header, body, buttons = parts
        entry = {"body": {n: values.get(n, "") for n in body}}
        if header:
            entry["header"] = {n: values.get(n, "") for n in header}
        if buttons:
            entry["buttons"] = [{"index": i, "sub_type": "url", "text": values.get(n, "")}
                                for i, n in buttons]
        out.append(entry)
    return out


def _templates(con, b: dict) -> dict:
    """variant -> (header names, body names, [(button index, url name)]) of its template."""
    variants = b.get("variants")
    variants = json.loads(variants) if isinstance(variants, str) else (variants or [])
    ids = {v.get("variant"): v.get("template_id") for v in variants if v.get("template_id")}
    if not ids and b.get("template_id"):
        ids = {"A": b["template_id"]}
    parts = {}
    if ids:
        rows = con.execute("SELECT template_id, header, body, CAST(buttons AS VARCHAR) "
                           "FROM templates WHERE list_contains(?, template_id)",
                           [list(ids.values())]).fetchall()
        by_id = {r[0]: r[1:] for r in rows}
        for variant, template_id in ids.items():
            if template_id in by_id:
                header, body, buttons = by_id[template_id]
                urls = [(i, render.placeholders(x.get("url") or "")) for i, x in
                        enumerate(json.loads(buttons) if buttons else []) if x.get("type") == "url"]
                parts[variant] = (render.placeholders(header or ""), render.placeholders(body),
                                  [(i, names[0]) for i, names in urls if names])
    return parts


def _labels_of(con, run: _Run, go: pd.DataFrame) -> list:
    """Label names per recipient, for the simulated platform's read rates."""
    if not run.transport.honours_idempotency_key or go.empty:  # only the simulation uses them
        return [()] * len(go)
    con.register("_label_ids", go[["contact_id"]])
    try:
        found = con.execute("""
            SELECT cl.contact_id, list(l.name ORDER BY l.name) AS names
            FROM contact_labels cl JOIN labels l USING (label_id)
            WHERE cl.contact_id IN (SELECT contact_id FROM _label_ids)
            GROUP BY cl.contact_id""").df()
    finally:
        con.unregister("_label_ids")
    if found.empty:
        return [()] * len(go)
    names = dict(zip(found["contact_id"], found["names"], strict=True))
    return [tuple(names.get(c, ())) for c in go["contact_id"]]


# --- recording ---------------------------------------------------------------------------

def _record(con, run: _Run, outbound: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
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
    _write(con, """
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
        conversations.store_messages(con, pd.DataFrame({
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
    events = np.select([ok, unknown, defer & (state == "queued"), state == "queued"],
                       ["sent", "unknown", "deferred", "retry"], "failed")
    _log(con, bid, pd.DataFrame({
        "key": x["key"], "event": events, "at": send_at, "attempt": x["attempt"],
        "code": code, "message_id": out["message_id"]}))
    return out


def _settle_async_failures(con, broadcast_id: int, max_attempts: int = 5) -> None:
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
    _log(con, broadcast_id, deferred.assign(event="deferred", at=now, code=131049))


def _backfill_messages(con, broadcast: dict, transport_name: str) -> None:
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
    names, _ = _variant_templates(broadcast)
    template = missing["variant"].map(names).where(missing["variant"].map(names).notna(),
                                                   broadcast.get("template"))
    conversations.store_messages(con, pd.DataFrame({
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


# --- small helpers -----------------------------------------------------------------------

def _broadcast(con, broadcast_id: int) -> dict:
    cur = con.execute("SELECT * FROM broadcasts WHERE broadcast_id = ?", [int(broadcast_id)])
    rows = cur.fetchall()
    if not rows:
        raise NotFound(f"There is no broadcast {broadcast_id}. List them with `bizchat "
                       "broadcast list`.", broadcast_id=broadcast_id)
    return dict(zip([d[0] for d in cur.description], rows[0], strict=True))


def _account(con, account_id: int) -> dict:
    cur = con.execute("SELECT * FROM accounts WHERE account_id = ?", [account_id])
    rows = cur.fetchall()
    if not rows:
        raise NotFound(f"The broadcast's account {account_id} no longer exists.",
                       account_id=account_id)
    return dict(zip([d[0] for d in cur.description], rows[0], strict=True))


def _start_time(con, broadcast: dict, wall_now: datetime | None, rate: float) -> datetime:
    """Where the clock starts: the scheduled time (or now), after the last send so far."""
    now = wall_now or datetime.now(UTC)
    start = broadcast.get("scheduled_for") or now
    if wall_now is not None:
        return max(start, now)
    last = con.execute("SELECT max(sent_at) FROM broadcast_recipients WHERE broadcast_id = ?",
                       [broadcast["broadcast_id"]]).fetchall()[0][0]
    if last is not None:
        start = max(start, last + _interval(rate))
    return start


def _counts(con, broadcast_id: int, now: datetime) -> dict:
    rows = con.execute("""
        SELECT state, count(*), count(*) FILTER (WHERE not_before > ?)
        FROM broadcast_recipients WHERE broadcast_id = ? GROUP BY state""",
        [now, broadcast_id]).fetchall()
    result = {"broadcast_id": int(broadcast_id), **{s: 0 for s in STATES}, "deferred": 0}
    for state, n, later in rows:
        result[state] = int(n)
        if state == "queued":
            result["deferred"] = int(later)
    result["status"] = con.execute("SELECT status FROM broadcasts WHERE broadcast_id = ?",
                                   [broadcast_id]).fetchall()[0][0]
    return result


def _interval(rate: float) -> timedelta:
    return timedelta(microseconds=math.ceil(1e6 / rate))


def _summary(result: dict) -> str:
    return ", ".join(f"{result[s]} {s}" for s in STATES if result.get(s)) + (
        f" ({result['deferred']} deferred)" if result.get("deferred") else "")


def _write(con, sql: str, frame: pd.DataFrame, params: list) -> None:
    if frame.empty:
        return
    con.register("_x", frame)
    try:
        con.execute(sql, params)
    finally:
        con.unregister("_x")


def _log(con, broadcast_id: int, frame: pd.DataFrame) -> None:
    """The sender's trail in outbox_log: one row per recipient and event, no numbers."""
    if frame.empty:
        return
    frame = frame.reindex(columns=["key", "event", "at", "attempt", "code", "message_id"])
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    frame["attempt"] = pd.to_numeric(frame["attempt"]).astype("Int64")
    frame["code"] = pd.to_numeric(frame["code"]).astype("Int64")
    frame["message_id"] = frame["message_id"].astype(object)
    _write(con, """
        INSERT INTO outbox_log (broadcast_id, idempotency_key, event, "at", detail)
        SELECT ?, key, event, "at",
               json_object('attempt', attempt, 'code', code, 'message_id', message_id)
        FROM _x""", frame, [broadcast_id])


def _audit(con, actor: str, action: str, details: dict) -> None:
    con.execute('INSERT INTO audit_log ("at", actor, action, subject_key, details) '
                "VALUES (?, ?, ?, NULL, ?)", [datetime.now(UTC), actor, action, json.dumps(details)])


__all__ = ["STATES", "SendRefused", "counts", "resolve_unknown", "resume", "send"]
