"""A small sending world for the send-time tests: one account in Berlin with quiet hours,
contacts (optionally in other time zones) opted in, and broadcasts made through the real
API. Kept tiny so property tests can build one per example."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pandas as pd

from bizchat.campaigns.transports import SimRates, SimulatedTransport
from bizchat.people.consent import record_events

CALM = SimRates(stopped_marketing=0, marketing_limit=0, undeliverable=0)
PNID = "106540352242922"


def berlin(*args) -> datetime:
    """A Berlin wall-clock time as UTC."""
    return datetime(*args, tzinfo=ZoneInfo("Europe/Berlin")).astimezone(UTC)


def shop(ws, n: int = 5, *, zones=None, quiet="21:00-08:00", cap=None, opt_in_at=None):
    """The account and ``n`` opted-in contacts (``zones``: each contact's time zone or None)."""
    acc = ws.accounts.add("+49 30 901820", "Buchladen", phone_number_id=PNID,
                          timezone="Europe/Berlin")
    limits = {"quiet_hours": quiet}
    if cap is not None:
        limits.update(marketing_cap_count=cap[0], marketing_cap_days=cap[1])
    ws.broadcasts.set_limits(acc["account_id"], **limits)
    frame = pd.DataFrame({"wa_id": [f"4917{i:08d}" for i in range(n)],
                          "name": [f"Kundin{i} Muster" for i in range(n)]})
    ids = [int(i) for i in ws.contacts.ensure(acc["account_id"], frame)]
    for contact_id, zone in zip(ids, zones or [None] * n, strict=True):
        if zone:
            ws.contacts.update(acc["account_id"], contact_id, timezone=zone)
    with ws.transaction() as con:
        record_events(con, pd.DataFrame({
            "contact_id": ids, "purpose": "marketing", "action": "opt_in",
            "source": "double_opt_in_form",
            "recorded_at": opt_in_at or datetime(2024, 1, 1, tzinfo=UTC)}))
    return acc, ids


def draft(ws, acc, name="Aktion", **more) -> int:
    return ws.broadcasts.create(acc["account_id"], name, body="Hallo {first_name}!",
                                category="marketing", seed=3, **more)["broadcast_id"]


def sim(seed: int = 5, **more) -> SimulatedTransport:
    return SimulatedTransport(seed, rates=CALM, **more)


def handed(ws, broadcast_id=None) -> pd.DataFrame:
    """Every message the simulated platform accepted: contact, zone, time."""
    return ws.sql("""
        SELECT r.broadcast_id, r.contact_id, c.timezone, l."at"
        FROM outbox_log l JOIN broadcast_recipients r USING (broadcast_id, idempotency_key)
        JOIN contacts c USING (contact_id)
        WHERE l.event = 'simulated.accept' AND (? IS NULL OR l.broadcast_id = ?)
        ORDER BY l."at" """, [broadcast_id, broadcast_id])


def inside(at: datetime, zone: str, start: time, end: time) -> bool:
    """The independent check: is ``at`` inside quiet hours ``start``-``end`` in ``zone``?"""
    if start == end:
        return False
    local = pd.Timestamp(at).to_pydatetime().astimezone(ZoneInfo(zone)).time()
    return start <= local < end if start < end else (local >= start or local < end)


def later(at: datetime, **delta) -> datetime:
    return at + timedelta(**delta)
