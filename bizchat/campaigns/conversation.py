"""Answering a chat: one message from a person at the inbox, through the transports.

``ws.conversations.reply(chat_id, text)`` sends free text, allowed only while the chat's
24-hour customer-service window is open; outside it ``send_template`` sends a saved
template rendered for the contact. Both ask ``consent.may_send`` first (marketing
templates need a marketing opt-in; everything else is refused after an opt-out), hand the
message to the same transports as broadcasts (simulated by default, or the Cloud API),
store it in the chat as sent, take in the receipts the transport produced, and mark the
chat read (answering means it was read). A refusal by the platform raises TransportError
and stores nothing, so the text can be sent again.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pandas as pd

from .. import store
from ..errors import ConsentRequired, InvalidValue, NotFound, SendRefused, TransportError
from ..messaging import chats as chat_store
from ..people.accounts import get_account
from ..people.consent import may_send
from ..store import audit
from .outbox import ingest_receipts
from .transports import OutboundMessage, make

MAX_TEXT = 4096   # the Cloud API's limit for a text message body


def _chat(con, chat_id) -> dict:
    found = store.rows(con.execute("""
        SELECT h.chat_id, h.account_id, h.contact_id, h.last_inbound_at, c.phone_e164, c.wa_id,
               c.name
        FROM chats h LEFT JOIN contacts c ON c.contact_id = h.contact_id
        WHERE h.chat_id = ?""", [chat_id]))
    if not found:
        raise NotFound(f"There is no chat {chat_id}.", chat_id=chat_id)
    return found[0]


def check_text(text) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InvalidValue("The reply is empty: type a message first.", input=text)
    if len(text) > MAX_TEXT:
        raise InvalidValue(f"The reply is {len(text):,} characters long; WhatsApp takes at "
                           f"most {MAX_TEXT:,}. Shorten it or send it in parts.",
                           input=text[:40])
    return text.strip()


class Conversations:
    """Replies from the inbox (``ws.conversations``): free text in the window, templates
    outside it."""

    def __init__(self, ws):
        self.ws = ws

    def reply(self, chat_id: int, text: str, *, transport=None, seed: int | None = None,
              at: datetime | None = None, actor: str = "bizchat") -> dict:
        """Send free ``text`` in the chat; only while its 24-hour window is open (else
        SendRefused: send a template). Returns the stored message (message_id, status)."""
        text = check_text(text)
        at = at or datetime.now(UTC)
        with self.ws.connect(read_only=True) as con:
            chat = _chat(con, chat_id)
            acc = get_account(con, chat["account_id"])
            last = chat["last_inbound_at"]
            if last is None or not last <= at < last + chat_store.SERVICE_WINDOW:
                closed = (f"closed at {last + chat_store.SERVICE_WINDOW:%Y-%m-%d %H:%M} UTC"
                          if last is not None else "never opened: the customer has not written")
                raise SendRefused(
                    f"The 24-hour window of this chat {closed}. Free text is only allowed "
                    "within 24 hours of the customer's last message; send a template instead.",
                    chat_id=chat_id, reason="window_closed")
            self._check_consent(con, chat, "service")
        return self._send(acc, chat, kind="text", body=text, template=None, at=at,
                          transport=transport, seed=seed, actor=actor)

    def send_template(self, chat_id: int, template, *, values: dict | None = None,
                      language: str | None = None, transport=None, seed: int | None = None,
                      at: datetime | None = None, actor: str = "bizchat") -> dict:
        """Send a saved template (name or id) rendered for the chat's contact, e.g. to
        reopen a chat whose window closed. A marketing template needs the contact's
        marketing opt-in (ConsentRequired otherwise)."""
        at = at or datetime.now(UTC)
        with self.ws.connect(read_only=True) as con:
            chat = _chat(con, chat_id)
            acc = get_account(con, chat["account_id"])
        found = self.ws.templates.get(acc["account_id"], template, language=language)
        rendered = self.ws.templates.preview(acc["account_id"], found["template_id"],
                                             chat["contact_id"], values=values)
        purpose = "marketing" if found["category"] == "marketing" else "service"
        with self.ws.connect(read_only=True) as con:
            self._check_consent(con, chat, purpose)
        return self._send(acc, chat, kind="template", body=rendered.text, template=found,
                          params=rendered.params, at=at, transport=transport, seed=seed,
                          actor=actor)

    @staticmethod
    def _check_consent(con, chat: dict, purpose: str) -> None:
        decision = may_send(con, chat["account_id"], [chat["contact_id"]], purpose).iloc[0]
        if not decision["allowed"]:
            reason = {"opted_out": f"opted out of {purpose} messages",
                      "no_consent": "has not opted in to marketing messages",
                      "invalid_number": "has no number to send to"}.get(
                          decision["reason"], decision["reason"])
            raise ConsentRequired(f"Not sent: this contact {reason}.", chat_id=chat["chat_id"],
                                  reason=decision["reason"])

    def _send(self, acc: dict, chat: dict, *, kind: str, body: str, template: dict | None,
              at: datetime, transport, seed: int | None, actor: str,
              params: dict | None = None) -> dict:
        sender = make(transport, seed=seed)
        sender.attach(self.ws, account=acc)
        key = f"inbox.{chat['chat_id']}.{uuid.uuid4().hex}"
        to = chat["wa_id"] or (chat["phone_e164"] or "").lstrip("+")
        message = OutboundMessage(
            idempotency_key=key, phone_number_id=acc.get("phone_number_id"), to=to, kind=kind,
            template_name=template["name"] if template else None,
            language=template["language"] if template else None, params=params, body=body,
            send_at=at, account_id=acc["account_id"], contact_id=chat["contact_id"],
            category=(template["category"] if template else "service"))
        try:
            result = sender.send_batch([message])[0]
        finally:
            sender.close()
        if not result.ok:
            why = result.error_title or "no answer"
            raise TransportError(
                f"The platform did not take the message ({why}"
                f"{f', code {result.error_code}' if result.error_code else ''}). Nothing was "
                "stored; try again.", code=result.error_code)
        sent_at = result.sent_at or at
        with self.ws.transaction() as con:
            chat_store.store_messages(con, pd.DataFrame([{
                "message_id": result.message_id, "chat_id": chat["chat_id"],
                "account_id": acc["account_id"], "contact_id": chat["contact_id"],
                "direction": "out", "kind": kind, "body": body,
                "template_name": template["name"] if template else None,
                "automatic": False, "source": "inbox", "created_at": sent_at}]))
            con.execute("UPDATE chats SET read_at = greatest(coalesce(read_at, ?::TIMESTAMPTZ), "
                        "?::TIMESTAMPTZ) WHERE chat_id = ?", [sent_at, sent_at, chat["chat_id"]])
            ingest_receipts(con, sender)
            audit.record(con, actor, f"inbox.{kind}", None,
                               {"chat_id": chat["chat_id"], "message_id": result.message_id})
            status = con.execute("SELECT status FROM message_status WHERE message_id = ?",
                                 [result.message_id]).fetchall()
        return {"message_id": result.message_id, "chat_id": chat["chat_id"], "kind": kind,
                "body": body, "sent_at": sent_at, "status": status[0][0] if status else "sent"}


__all__ = ["Conversations", "MAX_TEXT", "check_text"]
