"""The outbox: works through a scheduled broadcast's queue, paced and crash-safe.

Per batch there are two transactions around the transport call:

1. pick the queued recipients that are due, check consent again (``consent.may_send``:
   whoever opted out since scheduling is skipped), place each message on the pacing
   schedule, decide the time rules at that paced hand-off time (``time_rules``: quiet
   hours in the recipient's zone defer or skip, the frequency cap skips, a deadline
   expires), and write ``sending`` (attempts + 1) for the batch;
2. call the transport (no connection held);
3. write what came back: ``sent`` with message id and send time, ``failed`` with code
   and message, back to ``queued`` with ``not_before`` for back-offs and deferrals, or
   ``unknown`` when the transport cannot tell; store the sent messages, ingest the
   receipts the transport produced, append to ``outbox_log`` and ``audit_log``.

A crash between 1 and 3 leaves ``sending`` rows. ``resume`` turns them into ``unknown``
and never resends them: a status webhook echoing the idempotency key settles them
(``campaigns.settlement``, told by ingestion; the simulated transport re-delivers the receipts of
everything its ledger accepted), or an operator decides with ``resolve_unknown``.

Pacing (the platform's rules): at most ``accounts.send_rate`` messages per second per
number, at least 6 s between two messages to one user, and no more unique users per
rolling 24 h than ``accounts.messaging_tier``. The transport's clock does the waiting:
the simulated clock only moves time forward, so pacing shapes simulated send times; the
wall clock sleeps. Error handling: 130429 (throughput) halves the rate and retries the
recipient after ``retry_after``; 131056 (pair rate) retries that recipient after a
back-off; 131049 (per-user marketing limit) defers the recipient by 24 h; 131050 (user
stopped marketing) fails the recipient and records a marketing opt-out.

"Now" is the campaign clock (``campaigns.clock``: ``now=``, ``$BIZCHAT_NOW`` or the wall
clock). The simulated clock never runs past it: what is due later stays queued for the
next run (``run_due``), and the simulated platform produces no receipt later than it.
One process sends a broadcast at a time: the sender takes a lease on the broadcast
(``broadcasts.sender``, renewed per batch), so two ``run-due`` processes never work one
queue and ``resume`` never calls a live sender's messages unknown.

The parts: ``pacing`` (send times), ``time_rules`` (quiet hours, cap, deadline),
``messages`` (the outbound batch), ``record`` (outcomes, late answers, the trail),
``lease`` (one sender per broadcast); this module runs the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from ... import store
from ...errors import InvalidValue, NotFound, SendRefused
from ...ingest import webhooks
from ...people import consent
from .. import audiences, settlement
from .. import clock as campaign_clock
from ..transports import Transport, make
from . import lease, messages, pacing, record, time_rules

log = logging.getLogger("bizchat.campaigns.outbox")

STATES = ("queued", "sending", "sent", "unknown", "failed", "skipped")


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
    limits: audiences.Limits
    due_by: datetime | None = None     # simulated: pick nothing due later than this
    batches: int = 0


def send(ws, broadcast_id: int, *, transport=None, seed: int | None = None,
         progress: bool = False, batch_size: int = 500, max_wait: float | None = None,
         horizon: float | None = None, max_attempts: int = 5, actor: str = "bizchat",
         now=None) -> dict:
    """Send the broadcast's queued recipients (and deferred ones now due); returns counts
    by state (plus ``deferred``: queued with a later ``not_before``).

    ``transport``: None or ``"simulated"`` (SimulatedTransport with ``seed``, default the
    broadcast's seed), ``"cloud"``, or a Transport. ``max_wait``: the longest single wait
    (seconds) for due recipients before returning with the rest still queued (simulated
    clock: 2 days, so deferrals play out; wall clock: 120 s). ``horizon``: the longest the
    whole run may span on the transport's clock (simulated: 14 days; wall: unlimited).
    ``now``: the campaign clock (default ``$BIZCHAT_NOW``, else the wall clock); the
    simulated clock never passes it. Recipients left ``sending`` by a crash are not
    touched here: use ``resume``.
    """
    return _send(ws, broadcast_id, transport, seed, progress, batch_size, max_wait, horizon,
                 max_attempts, actor, resume=False, now=now)


def resume(ws, broadcast_id: int, **options) -> dict:
    """After a crash: recipients left ``sending`` become ``unknown`` (never resent; a
    status with their key or ``resolve_unknown`` settles them), then continue as ``send``."""
    return _send(ws, broadcast_id, options.pop("transport", None), options.pop("seed", None),
                 options.pop("progress", False), options.pop("batch_size", 500),
                 options.pop("max_wait", None), options.pop("horizon", None),
                 options.pop("max_attempts", 5), options.pop("actor", "bizchat"), resume=True,
                 now=options.pop("now", None), **options)


def resolve_unknown(ws, broadcast_id: int, decision: str, *, keys: Sequence[str] | None = None,
                    actor: str = "bizchat") -> dict:
    """An operator's decision for ``unknown`` recipients (all, or those with ``keys``):
    ``"resend"`` queues them again with the same idempotency key (safe with a transport
    that honours it; with the Cloud API the customer may get the message twice), or
    ``"give_up"`` fails them. Returns counts by state."""
    if decision not in ("resend", "give_up"):
        raise InvalidValue(f"decision={decision!r}: use 'resend' or 'give_up'.")
    now = datetime.now(UTC)
    with ws.transaction() as con:
        _broadcast(con, broadcast_id)
        where = "broadcast_id = ? AND state = 'unknown'"
        params: list = [broadcast_id]
        if keys is not None:
            where += " AND list_contains(?, idempotency_key)"
            params.append(list(keys))
        chosen = con.execute(f"SELECT idempotency_key AS key FROM broadcast_recipients WHERE {where}",
                             params).df()
        if decision == "resend":
            con.execute(f"UPDATE broadcast_recipients SET state = 'queued', not_before = NULL, "
                        f"updated_at = ? WHERE {where}", [now, *params])
        else:
            con.execute(f"UPDATE broadcast_recipients SET state = 'failed', error_title = "
                        f"'outcome unknown after an interruption; given up by an operator', "
                        f"updated_at = ? WHERE {where}", [now, *params])
        record.trail(con, broadcast_id, chosen.assign(event=f"resolved.{decision}", at=now))
        record.audit(con, actor, "broadcast.resolve_unknown",
               {"broadcast_id": broadcast_id, "decision": decision, "recipients": len(chosen)})
        if decision == "resend":
            con.execute("UPDATE broadcasts SET status = 'sending', finished_at = NULL "
                        "WHERE broadcast_id = ? AND status = 'done'", [broadcast_id])
        return _counts(con, broadcast_id, now)


def ingest_receipts(con, transport) -> int:
    """The receipts the transport produced (simulation) through the public ingest API,
    as the receiver would ingest them; returns how many were new."""
    bodies, events = transport.take_receipts()
    new = webhooks.ingest_bodies(con, bodies, actor=transport.name).statuses if bodies else 0
    if events is not None:
        new += webhooks.ingest_status_events(con, events, actor=transport.name)
    return new


def counts(ws, broadcast_id: int, now=None) -> dict:
    """Recipients of the broadcast by state, with ``deferred``, ``next_due`` and
    ``deferred_until`` as of ``now`` (the campaign clock)."""
    with ws.connect(read_only=True) as con:
        _broadcast(con, broadcast_id)
        return _counts(con, broadcast_id, campaign_clock.now(now))


# --- the run -----------------------------------------------------------------------------

def _send(ws, broadcast_id, transport, seed, progress, batch_size, max_wait, horizon,
          max_attempts, actor, *, resume: bool, now=None) -> dict:
    if batch_size < 1:
        raise InvalidValue("batch_size must be at least 1.")
    now = campaign_clock.now(now)
    with ws.connect() as con:
        broadcast = _broadcast(con, broadcast_id)
        account = _account(con, broadcast["account_id"])
    if broadcast["status"] in ("draft", "cancelled", "paused") or (
            broadcast["status"] == "scheduled" and broadcast.get("frozen_at") is None):
        raise SendRefused(
            f"Broadcast {broadcast_id} is {broadcast['status']}: " + {
                "draft": "schedule it first (ws.broadcasts.schedule), which freezes its "
                         "recipients.",
                "cancelled": "a cancelled broadcast is not sent.",
                "paused": "unpause it first (bizchat broadcast unpause).",
            }.get(broadcast["status"], "its recipients are frozen at its send time; send it "
                                       "with ws.broadcasts.send or run_due."),
            broadcast_id=broadcast_id, status=broadcast["status"])
    seed = broadcast.get("seed") if seed is None else seed
    transport = make(transport, seed=seed)
    rate = float(account.get("send_rate") or 80)
    # Checks the transport's configuration before anything is marked as sending.
    transport.attach(ws, account=account, rate=rate)
    clock = transport.clock
    simulated = getattr(clock, "simulated", False)
    if simulated:
        transport.horizon = now     # no receipt later than the campaign clock
    with lease.held(ws, broadcast_id):
        return _run(ws, broadcast, account, transport, rate, seed, progress, batch_size,
                    max_wait, horizon, max_attempts, actor, resume=resume, now=now)


def _run(ws, broadcast, account, transport, rate, seed, progress, batch_size, max_wait,
         horizon, max_attempts, actor, *, resume: bool, now: datetime) -> dict:
    broadcast_id = broadcast["broadcast_id"]
    clock = transport.clock
    simulated = getattr(clock, "simulated", False)
    with ws.transaction() as con:
        if resume:
            lost = con.execute("""
                UPDATE broadcast_recipients SET state = 'unknown', updated_at = ?
                WHERE broadcast_id = ? AND state = 'sending' RETURNING idempotency_key""",
                [datetime.now(UTC), broadcast_id]).df()
            record.trail(con, broadcast_id, lost.assign(event="unknown", at=datetime.now(UTC)))
            if len(lost):
                log.warning("broadcast %s: %d recipients were mid-send when the sender stopped; "
                            "they are 'unknown' until a status webhook or an operator settles "
                            "them", broadcast_id, len(lost))
        transport.recover(con, broadcast_id)
        ingest_receipts(con, transport)
        record.settle_async_failures(con, broadcast_id, max_attempts)
        record.backfill_messages(con, broadcast, transport.name)
        settlement.link_broadcast(con, broadcast_id)
        start = _start_time(con, broadcast, clock.now() if not simulated else None, rate)
        if simulated:
            clock.start_at(min(start, now))
        lim = audiences.limits(con, account["account_id"])
        con.execute("UPDATE broadcasts SET status = 'sending' WHERE broadcast_id = ? "
                    "AND status IN ('scheduled', 'done') AND EXISTS (SELECT 1 FROM "
                    "broadcast_recipients WHERE broadcast_id = ? AND state = 'queued')",
                    [broadcast_id, broadcast_id])
        templates = messages.templates(con, broadcast) if transport.needs_params else {}
        total = con.execute("SELECT count(*) FROM broadcast_recipients WHERE broadcast_id = ? "
                            "AND state = 'queued'", [broadcast_id]).fetchall()[0][0]
    if simulated and start > now:
        log.info("broadcast %s is due at %s; not sending yet", broadcast_id, start)
        return counts(ws, broadcast_id)
    wait = timedelta(seconds=max_wait) if max_wait is not None else (
        timedelta(days=2) if simulated else timedelta(seconds=120))
    span = horizon if horizon is not None else (14 * 86400 if simulated else None)
    until = start + timedelta(seconds=span) if span else None
    # The simulated clock takes nothing due after the campaign clock; it runs past it only
    # as far as pacing what was due takes (840 messages at 80/s: 10.5 s).
    run = _Run(broadcast, account, transport, rate, consent.PURPOSE_OF[broadcast["category"]],
               batch_size, wait, until, max_attempts, actor, next_slot=start,
               templates=templates, limits=lim, due_by=now if simulated else None)
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
            lease.renew(ws, broadcast_id)
    finally:
        if bar is not None:
            bar.close()
        transport.close()
    with ws.transaction() as con:
        ingest_receipts(con, transport)
        record.backfill_messages(con, broadcast, transport.name)
        settlement.link_broadcast(con, broadcast_id)
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
        if status in ("cancelled", "paused"):
            return False
        # On the simulated clock waiting costs nothing, so recipients due later (back-offs,
        # deferrals spread over a day) join this batch, paced to their not_before, instead
        # of coming due in dribs and drabs; the wall clock only takes what is due.
        cutoff = now
        if clock.simulated:
            cutoff = now + run.max_wait if run.until is None else min(now + run.max_wait, run.until)
            if run.due_by is not None:
                cutoff = min(cutoff, run.due_by)
        picked = _pick(con, run, cutoff)
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
        go, free_at = pacing.tier_budget(con, run, go, now)
        go = pacing.pace(con, run, go, now)
        # The time rules, at the paced hand-off time of each message (the one place).
        go, deferred, held = time_rules.decide(con, run, go, run.limits)
        skip = pd.concat([skip[["key", "reason"]], held], ignore_index=True)
        go = go.assign(labels=messages.labels_of(con, run, go))
        record.write(con, """
            UPDATE broadcast_recipients SET not_before = x.not_before, updated_at = ?
            FROM _x AS x
            WHERE broadcast_id = ? AND idempotency_key = x.key AND state = 'queued'""",
               deferred, [datetime.now(UTC), bid])
        record.trail(con, bid, deferred.assign(event="deferred", at=now))
        record.write(con, """
            UPDATE broadcast_recipients SET state = 'skipped', skip_reason = x.reason,
                   updated_at = ? FROM _x AS x
            WHERE broadcast_id = ? AND idempotency_key = x.key AND state = 'queued'""",
               skip[["key", "reason"]], [datetime.now(UTC), bid])
        record.trail(con, bid, skip.assign(event="skipped", at=now))
        record.write(con, """
            UPDATE broadcast_recipients SET state = 'sending', attempts = attempts + 1,
                   not_before = x.send_at, updated_at = ? FROM _x AS x
            WHERE broadcast_id = ? AND idempotency_key = x.key AND state = 'queued'""",
               go[["key", "send_at"]], [datetime.now(UTC), bid])
    if go.empty:
        if bar is not None:
            bar.update(len(skip))
        return bool(len(skip)) or bool(len(deferred)) or _wait_for(run, now, free_at)

    outbound = messages.outbound(run, go)
    results = run.transport.send_frame(outbound)

    with ws.transaction() as con:
        done = record.record(con, run, outbound, results)
        ingest_receipts(con, run.transport)
        tally = done["state"].value_counts().to_dict()
        tally["skipped"] = tally.get("skipped", 0) + len(skip)
        record.audit(con, run.actor, "broadcast.send", {
            "broadcast_id": bid, "batch": run.batches + 1, "transport": run.transport.name,
            **{k: int(v) for k, v in tally.items()}})
    run.batches += 1
    last = go["send_at"].max()
    run.next_slot = max(run.next_slot, last + pacing.interval(run.rate))
    if clock.simulated:
        clock.sleep_until(run.next_slot)
    if bar is not None:   # recipients settled for now; retries count when they settle
        bar.update(len(go) - tally.get("queued", 0) + len(skip))
    log.info("broadcast %s batch %d: %s (clock %s)", bid, run.batches,
             ", ".join(f"{v} {k}" for k, v in sorted(tally.items())), last.isoformat())
    return True


def _wait_for(run: _Run, now: datetime, due) -> bool:
    """Wait (on the transport's clock) for the next due recipient, within the limits."""
    if due is None or pd.isna(due):
        return False
    due = pd.Timestamp(due).to_pydatetime()
    if (due - now > run.max_wait or (run.until is not None and due > run.until)
            or (run.due_by is not None and due > run.due_by)):
        return False
    run.transport.clock.sleep_until(due)
    run.next_slot = max(run.next_slot, due)
    return True


def _pick(con, run: _Run, now: datetime) -> pd.DataFrame:
    return con.execute("""
        SELECT p.idempotency_key AS key, p.contact_id, p.variant, p.attempts + 1 AS attempt,
               p.body, CAST(p.params AS VARCHAR) AS params,
               coalesce(p.wa_id, c.wa_id, ltrim(c.phone_e164, '+'), c.user_id) AS "to",
               p.not_before, c.timezone AS zone
        FROM (SELECT * FROM broadcast_recipients
              WHERE broadcast_id = ? AND state = 'queued'
                AND (not_before IS NULL OR not_before <= ?)
              ORDER BY not_before NULLS FIRST, contact_id LIMIT ?) AS p
        LEFT JOIN contacts c USING (contact_id)
        ORDER BY p.not_before NULLS FIRST, p.contact_id""",
        [run.broadcast["broadcast_id"], now, run.batch_size]).df()


def _broadcast(con, broadcast_id: int) -> dict:
    cur = con.execute("SELECT * FROM broadcasts WHERE broadcast_id = ?", [int(broadcast_id)])
    found = store.one(cur)
    if found is None:
        raise NotFound(f"There is no broadcast {broadcast_id}. List them with `bizchat "
                       "broadcast list`.", broadcast_id=broadcast_id)
    return found


def _account(con, account_id: int) -> dict:
    cur = con.execute("SELECT * FROM accounts WHERE account_id = ?", [account_id])
    found = store.one(cur)
    if found is None:
        raise NotFound(f"The broadcast's account {account_id} no longer exists.",
                       account_id=account_id)
    return found


def _start_time(con, broadcast: dict, wall_now: datetime | None, rate: float) -> datetime:
    """Where the clock starts: the scheduled time (or now), after the last send so far."""
    now = wall_now or datetime.now(UTC)
    start = broadcast.get("scheduled_for") or now
    if wall_now is not None:
        return max(start, now)
    last = con.execute("SELECT max(sent_at) FROM broadcast_recipients WHERE broadcast_id = ?",
                       [broadcast["broadcast_id"]]).fetchall()[0][0]
    if last is not None:
        start = max(start, last + pacing.interval(rate))
    return start


def _counts(con, broadcast_id: int, now: datetime) -> dict:
    rows = con.execute("""
        SELECT state, count(*), count(*) FILTER (WHERE not_before > ?),
               min(not_before) FILTER (WHERE not_before > ?),
               max(not_before) FILTER (WHERE not_before > ?)
        FROM broadcast_recipients WHERE broadcast_id = ? GROUP BY state""",
        [now, now, now, broadcast_id]).fetchall()
    result = {"broadcast_id": int(broadcast_id), **{s: 0 for s in STATES}, "deferred": 0,
              "next_due": None, "deferred_until": None}
    for state, n, later, first, last in rows:
        result[state] = int(n)
        if state == "queued":
            result["deferred"] = int(later)
            result["next_due"], result["deferred_until"] = first, last
    result["status"] = con.execute("SELECT status FROM broadcasts WHERE broadcast_id = ?",
                                   [broadcast_id]).fetchall()[0][0]
    return result


def _summary(result: dict) -> str:
    return ", ".join(f"{result[s]} {s}" for s in STATES if result.get(s)) + (
        f" ({result['deferred']} deferred)" if result.get("deferred") else "")


__all__ = ["STATES", "SendRefused", "counts", "resolve_unknown", "resume", "send"]
