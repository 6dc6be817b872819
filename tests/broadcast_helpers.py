"""Shared builders for the broadcast tests: small workspaces made through the real APIs,
and a stand-in for the sender that records hand-picked outcomes.

``deliver`` does what the outbox and the status webhooks do for a frozen broadcast, with
outcomes the test chooses: recipients become ``sent`` with a message id, the outbound
messages are stored through ``chats.store_messages``, their receipts through
``webhooks.record_receipts`` and replies as inbound messages, so every number the
tests expect can be counted by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from bizchat.campaigns.broadcasts import Broadcasts
from bizchat.ingest import webhooks
from bizchat.messaging import chats

T0 = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)   # Monday 10:00 in Berlin


def service(ws) -> Broadcasts:
    return ws.broadcasts


def account(ws, phone="+49 30 901820", name="Buchladen Linde", **more) -> dict:
    return ws.accounts.add(phone, name, **more)


def contact(ws, acc, n: int, *, name="Kundin", opt_in=True, service_opt_out=False,
            labels=(), at=None, **fields) -> dict:
    """Contact number n of the account (+49 170 10000nn), optionally opted in and labelled."""
    found = ws.contacts.add(acc["account_id"], f"+49 170 1{n:06d}", name=name, **fields)
    when = at or T0 - timedelta(days=30)
    if opt_in:
        ws.consent.opt_in(found["contact_id"], "marketing", source="double_opt_in_form",
                          evidence=f"form {n}", at=when)
    if service_opt_out:
        ws.consent.opt_out(found["contact_id"], "service", source="chat", at=when)
    for label in labels:
        ws.labels.assign(acc["account_id"], label, [found["contact_id"]])
    return found


def inbound(ws, acc, contact_id: int, at: datetime, text: str = "Hallo") -> None:
    """A message from the customer at ``at`` (opens the 24-hour window)."""
    with ws.transaction() as con:
        chats.store_messages(con, pd.DataFrame([{
            "message_id": f"wamid.in.{contact_id}.{at.timestamp():.0f}.{abs(hash(text)) % 997}",
            "account_id": acc["account_id"], "contact_id": contact_id, "direction": "in",
            "kind": "text", "body": text, "source": "webhook", "created_at": at}]))


def deliver(ws, broadcast_id: int, outcomes: dict, *, at: datetime | None = None,
            replies: dict | None = None) -> None:
    """Play the send of a frozen broadcast: ``outcomes`` maps contact_id to 'sent',
    'delivered', 'read' or 'failed' (a failed receipt after acceptance); ``replies`` maps
    contact_id to minutes after the send when the customer wrote back."""
    b = service(ws).get(broadcast_id)
    at = at or b["scheduled_for"]
    order = ["sent", "delivered", "read"]
    with ws.transaction() as con:
        frozen = con.execute("SELECT contact_id, variant, body FROM broadcast_recipients "
                             "WHERE broadcast_id = ? AND state = 'queued'", [broadcast_id]).df()
        frozen = frozen[frozen["contact_id"].isin(list(outcomes))]
        ids = {int(c): f"wamid.out.{broadcast_id}.{int(c)}" for c in frozen["contact_id"]}
        sent = pd.DataFrame({"contact_id": list(ids), "message_id": list(ids.values())})
        con.register("_sent", sent)
        con.execute("""UPDATE broadcast_recipients SET state = 'sent', message_id = s.message_id,
                       sent_at = ?, attempts = 1, updated_at = ?
                       FROM _sent s WHERE broadcast_id = ? AND broadcast_recipients.contact_id =
                       s.contact_id""", [at, at, broadcast_id])
        con.unregister("_sent")
        chats.store_messages(con, pd.DataFrame([{
            "message_id": ids[int(r.contact_id)], "account_id": b["account_id"],
            "contact_id": int(r.contact_id), "direction": "out", "kind": "template",
            "body": r.body, "template_name": b["template"], "broadcast_id": broadcast_id,
            "variant": r.variant, "source": "transport", "created_at": at}
            for r in frozen.itertuples()]))
        events = []
        for contact_id, outcome in outcomes.items():
            if contact_id not in ids:
                continue
            statuses = ["sent", "failed"] if outcome == "failed" else \
                order[:order.index(outcome) + 1]
            for k, status in enumerate(statuses):
                events.append({"message_id": ids[contact_id], "status": status,
                               "at": at + timedelta(seconds=5 + 60 * k),
                               "error_code": 131026 if status == "failed" else None})
        if events:
            frame = pd.DataFrame(events)
            frame["error_code"] = frame["error_code"].astype("Int32")
            webhooks.record_receipts(con, frame)
        con.execute("UPDATE broadcasts SET status = 'done', finished_at = ? "
                    "WHERE broadcast_id = ?", [at, broadcast_id])
    for contact_id, minutes in (replies or {}).items():
        acc = {"account_id": b["account_id"]}
        inbound(ws, acc, contact_id, at + timedelta(minutes=minutes), "Danke!")


def recipients(ws, broadcast_id: int) -> pd.DataFrame:
    return ws.sql("SELECT * FROM broadcast_recipients WHERE broadcast_id = ? ORDER BY contact_id",
                  [broadcast_id])


def by_contact(ws, broadcast_id: int) -> dict:
    """contact_id -> (state, skip_reason, variant)."""
    frame = recipients(ws, broadcast_id)
    return {int(r.contact_id): (r.state, None if pd.isna(r.skip_reason) else r.skip_reason,
                                None if pd.isna(r.variant) else r.variant)
            for r in frame.itertuples()}
