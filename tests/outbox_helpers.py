"""Builders for the outbox tests: a frozen broadcast made through the real APIs, and
``Scripted``, a transport with hand-picked answers per recipient and attempt."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd

from bizchat.campaigns.broadcasts import Broadcasts
from bizchat.campaigns.transports import SendResult, SimClock, SimRates, Transport
from bizchat.ingest import payloads
from bizchat.people.consent import record_events

T0 = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)   # Wednesday 10:00 in Berlin
PNID = "106540352242922"
CALM = SimRates(stopped_marketing=0, marketing_limit=0)   # no synchronous refusals


def service(ws) -> Broadcasts:
    return ws.broadcasts


def campaign(ws, n=40, *, category="marketing", body="Hallo {first_name}, neue Bücher!",
             opt_in=True, at=T0, seed=1, account=None, **create) -> int:
    """An account with ``n`` opted-in contacts and a broadcast frozen for ``at``."""
    acc = account or ws.accounts.add("+49 30 901820", "Buchladen", phone_number_id=PNID)
    frame = pd.DataFrame({"wa_id": [f"4917{i:08d}" for i in range(n)],
                          "name": [f"Kundin{i} Muster" for i in range(n)]})
    ids = ws.contacts.ensure(acc["account_id"], frame)
    if opt_in:
        with ws.transaction() as con:
            record_events(con, pd.DataFrame({
                "contact_id": ids, "purpose": "marketing", "action": "opt_in",
                "source": "double_opt_in_form", "recorded_at": at - timedelta(days=30)}))
    found = service(ws).create(acc["account_id"], f"Aktion {seed}", body=body,
                               category=category, seed=seed, **create)
    service(ws).schedule(found["broadcast_id"], at)
    return found["broadcast_id"]


def recipients(ws, broadcast_id) -> pd.DataFrame:
    return ws.sql("SELECT * FROM broadcast_recipients WHERE broadcast_id = ? ORDER BY contact_id",
                  [broadcast_id])


def sent_per_contact(ws, broadcast_id) -> pd.Series:
    return ws.sql("SELECT contact_id, count(*) AS n FROM messages WHERE broadcast_id = ? "
                  "AND direction = 'out' GROUP BY contact_id", [broadcast_id]).set_index("contact_id").n


class Scripted(Transport):
    """Answers from a script: ``{wa_id: [outcome of attempt 1, attempt 2, ...]}`` where an
    outcome is None (accepted), an error code, or "unknown"."""

    name = "scripted"

    def __init__(self, script=None, retry_after=None):
        super().__init__()
        self.clock = SimClock(T0)
        self.script = script or {}
        self.retry_after = retry_after or {}
        self.calls: list = []

    def send_batch(self, messages):
        out = []
        for m in messages:
            self.calls.append(m)
            n = sum(1 for c in self.calls if c.to == m.to)
            plan = self.script.get(m.to, [])
            outcome = plan[n - 1] if n <= len(plan) else None
            if outcome is None:
                out.append(SendResult(m.idempotency_key, True, message_id=f"wamid.T{m.to}.{n}",
                                      sent_at=m.send_at))
            elif outcome == "unknown":
                out.append(SendResult(m.idempotency_key, False, unknown=True, error_title="timeout"))
            else:
                out.append(SendResult(m.idempotency_key, False, error_code=outcome,
                                      error_title=f"error {outcome}",
                                      retry_after=self.retry_after.get(outcome)))
        return out


def wa(i: int) -> str:
    return f"4917{i:08d}"


def status_webhook(message_id: str, key: str, to: str,
                   failure: tuple[int, str] | None = None) -> tuple:
    """A status for ``message_id`` echoing the outbox key, as the platform posts it: delivered,
    or failed with ``failure`` = (error code, title). Returns a row for ``ingest_bodies``."""
    status: dict = {"id": message_id, "status": "delivered", "timestamp": "1772614800",
                    "recipient_id": to, "biz_opaque_callback_data": key}
    if failure is not None:
        status.update(status="failed", errors=[{"code": failure[0], "title": failure[1]}])
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "4930901820", "phone_number_id": PNID},
            "statuses": [status]}}]}]})
    return payloads.payload_id(body), datetime.now(UTC), body
