"""Sending a broadcast by one set of rules, whichever surface asks (``ws.broadcasts.send``).

A draft is frozen for now first (consent, frequency cap and quiet hours checked, as
``schedule`` does); a broadcast scheduled for later is not sent early through the Cloud
API, because its recipients were checked for that time. Then the outbox works through
the queue (``outbox.send``/``resume``). Issue 16's ``run_due`` (every broadcast whose time
has come) belongs here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from ..errors import SendRefused
from . import outbox

# How far ahead of its scheduled time a Cloud API send may start (cron runs a little early).
EARLY = timedelta(minutes=5)


def send(ws, broadcast_id: int, *, transport=None, seed: int | None = None,
         progress: bool | object = False, actor: str = "bizchat", **options) -> dict:
    """Freeze a draft for now, refuse an early Cloud API send, then send. Returns the
    outbox's counts by state; ``frozen`` holds the freeze counts when a draft was frozen."""
    found = ws.broadcasts.get(broadcast_id)
    frozen = None
    if found["status"] == "draft":
        frozen = ws.broadcasts.schedule(broadcast_id, actor=actor)
    elif (transport == "cloud" and found["status"] == "scheduled"
          and found["scheduled_for"] is not None
          and found["scheduled_for"] > datetime.now(UTC) + EARLY):
        raise SendRefused(
            f"Broadcast {broadcast_id} is scheduled for {found['scheduled_for']:%Y-%m-%d %H:%M} "
            "UTC; quiet hours and the frequency cap were checked for that time. Send it then "
            "(e.g. from cron), or cancel it and create a new one to send now.",
            broadcast_id=broadcast_id, scheduled_for=found["scheduled_for"])
    result = outbox.send(ws, broadcast_id, transport=transport, seed=seed, progress=progress,
                         actor=actor, **options)
    if frozen is not None:
        result["frozen"] = {k: v for k, v in frozen.items() if k != "broadcast_id"}
    return result


def resume(ws, broadcast_id: int, **options) -> dict:
    """After a crash: recipients left ``sending`` become ``unknown`` (never resent), then
    the send continues."""
    return outbox.resume(ws, broadcast_id, **options)


def resolve(ws, broadcast_id: int, decision: str, *, keys: Sequence[str] | None = None,
            actor: str = "bizchat") -> dict:
    """Settle ``unknown`` recipients: ``"resend"`` (same idempotency key) or ``"give_up"``."""
    return outbox.resolve_unknown(ws, broadcast_id, decision, keys=keys, actor=actor)
