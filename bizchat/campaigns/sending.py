"""Sending broadcasts by one set of rules, whichever surface asks (``ws.broadcasts.send``,
``resume``, ``run_due``).

* ``send``: a draft is scheduled for now (durably, first) and then frozen; a broadcast
  scheduled for later is refused until its time has come, whatever the transport (the
  simulated platform has no future either). Then the outbox works through the queue.
* ``resume``: continues any interrupted send, also one killed while it froze a draft
  (the draft was already marked scheduled for now, so it is frozen and sent).
* ``run_due``: the one function behind ``bizchat broadcast run-due``, cron and the
  scheduler: freezes and sends every scheduled broadcast whose time has come, sends every
  deferred recipient now due, and lets the simulated platform deliver the receipts whose
  time has come. Two at once never send one recipient twice: each broadcast has one
  sender (the outbox's lease; the other process steps aside) and every state change is
  one transaction under DuckDB's single-writer lock.

"Now" is the campaign clock (``campaigns.clock``): ``now=``, ``$BIZCHAT_NOW`` or the wall
clock.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from ..errors import BizchatError, Conflict, SendRefused
from . import clock, outbox

log = logging.getLogger("bizchat.campaigns.sending")

# How far ahead of its scheduled time a send may start (cron runs a little early).
EARLY = timedelta(minutes=5)
# How long after its last send a simulated broadcast may still produce receipts.
RECEIPT_TAIL = timedelta(days=6)


def send(ws, broadcast_id: int, *, transport=None, seed: int | None = None,
         progress: bool = False, now=None, actor: str = "bizchat", **options) -> dict:
    """Schedule a draft for now and freeze it, refuse a broadcast not yet due, then send.
    Returns the outbox's counts by state; ``frozen`` holds the freeze counts."""
    current = clock.now(now)
    found = ws.broadcasts.get(broadcast_id)
    if found["status"] == "draft":
        # Durable intent first, freezing in a transaction of its own: a kill while
        # freezing leaves a broadcast scheduled for now, which resume / run_due freeze
        # and send.
        ws.broadcasts.schedule(broadcast_id, current, now=current, freeze_now=False,
                               actor=actor)
        found = ws.broadcasts.get(broadcast_id)
    _refuse_early(found, current)
    return _send(ws, found, transport, seed, progress, current, actor, resume=False, **options)


def resume(ws, broadcast_id: int, *, transport=None, seed: int | None = None,
           progress: bool = False, now=None, actor: str = "bizchat", **options) -> dict:
    """After a crash: recipients left ``sending`` become ``unknown`` (never resent), a
    broadcast whose freezing was interrupted is frozen, then the send continues."""
    current = clock.now(now)
    found = ws.broadcasts.get(broadcast_id)
    if found["status"] == "draft":
        raise SendRefused(f"Broadcast {broadcast_id} is a draft: no send was started, so there "
                          f"is nothing to resume. Send it with `bizchat broadcast send "
                          f"{broadcast_id}`.", broadcast_id=broadcast_id, status="draft")
    _refuse_early(found, current)
    return _send(ws, found, transport, seed, progress, current, actor, resume=True, **options)


def _refuse_early(found: dict, current) -> None:
    if (found["status"] == "scheduled" and found["scheduled_for"] is not None
            and found["scheduled_for"] > current + EARLY):
        raise SendRefused(
            f"Broadcast {found['broadcast_id']} is scheduled for "
            f"{found['scheduled_for']:%Y-%m-%d %H:%M} UTC; it goes out then (bizchat "
            "broadcast run-due, e.g. from cron). To send it now, reschedule it to now.",
            broadcast_id=found["broadcast_id"], scheduled_for=found["scheduled_for"])


def _send(ws, found: dict, transport, seed, progress, current, actor, *, resume: bool,
          **options) -> dict:
    bid = found["broadcast_id"]
    frozen = ws.broadcasts.freeze_due(bid, now=current, actor=actor)
    run = outbox.resume if resume else outbox.send
    result = run(ws, bid, transport=transport, seed=seed, progress=progress, actor=actor,
                 now=current, **options)
    if frozen is not None:
        result["frozen"] = {k: v for k, v in frozen.items()
                            if k not in ("broadcast_id", "scheduled_for")}
    return result


def due(ws, now, *, simulated: bool) -> list[int]:
    """Broadcasts with work at ``now``: scheduled and due, sending with recipients due (or
    left mid-send by a crash), and (simulated) sent recently enough that receipts may
    still be due."""
    with ws.connect() as con:
        rows = con.execute("""
            SELECT b.broadcast_id FROM broadcasts b
            WHERE (b.status = 'scheduled' AND b.scheduled_for <= ?::TIMESTAMPTZ + ?)
               OR (b.status = 'sending' AND EXISTS (
                    SELECT 1 FROM broadcast_recipients r
                    WHERE r.broadcast_id = b.broadcast_id
                      AND (r.state IN ('sending', 'unknown')
                           OR (r.state = 'queued'
                               AND (r.not_before IS NULL OR r.not_before <= ?)))))
               OR (? AND b.status IN ('sending', 'done') AND EXISTS (
                    -- receipts may still be due: accepted within the longest receipt
                    -- delay before the last release, and not released up to now yet
                    SELECT 1 FROM outbox_log l
                    LEFT JOIN (SELECT max("at") AS released FROM outbox_log
                               WHERE broadcast_id = b.broadcast_id
                                 AND event = 'simulated.receipts') AS r ON true
                    WHERE l.broadcast_id = b.broadcast_id AND l.event = 'simulated.accept'
                      AND l."at" <= ?
                      AND (r.released IS NULL OR (r.released < ?
                           AND l."at" > r.released - ?::INTERVAL))))
            ORDER BY b.scheduled_for NULLS LAST, b.broadcast_id""",
                           [now, EARLY, now, simulated, now, now, RECEIPT_TAIL]).fetchall()
    return [int(r[0]) for r in rows]


def run_due(ws, *, now=None, transport=None, seed: int | None = None, progress: bool = False,
            actor: str = "bizchat", **options) -> list[dict]:
    """Send everything due at ``now``; see the module docstring. One dict per broadcast:
    the outbox's counts, or ``busy`` (another process is sending it) or ``error``."""
    current = clock.now(now)
    simulated = transport is None or transport == "simulated" or getattr(
        getattr(transport, "clock", None), "simulated", False)
    results = []
    for bid in due(ws, current, simulated=simulated):
        try:
            result = resume(ws, bid, transport=transport, seed=seed, progress=progress,
                            now=current, actor=actor, **options)
        except Conflict as exc:
            log.info("broadcast %s: %s", bid, exc)
            result = {"broadcast_id": bid, "busy": str(exc)}
        except BizchatError as exc:
            log.warning("broadcast %s: %s", bid, exc)
            result = {"broadcast_id": bid, "error": str(exc)}
        results.append(result)
    return results


def resolve(ws, broadcast_id: int, decision: str, *, keys: Sequence[str] | None = None,
            actor: str = "bizchat") -> dict:
    """Settle ``unknown`` recipients: ``"resend"`` (same idempotency key) or ``"give_up"``."""
    return outbox.resolve_unknown(ws, broadcast_id, decision, keys=keys, actor=actor)
