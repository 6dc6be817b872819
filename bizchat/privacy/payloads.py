"""Webhook bodies with one person taken out, or with only that person left in.

Raw bodies (``raw_payloads``, the spool) are batches: one body can carry several
customers' contacts, messages, statuses and preferences. Erasure removes the person's
parts and keeps everyone else's (``redact``); an access export shows the person their
parts only, not other customers' (``about``). Statuses of the person's messages stay, without
the recipient and under the anonymous message id erasure gave the message, so campaign
statistics rebuilt from raw bodies still count them.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .subjects import Patterns


def anonymous_id() -> str:
    """A fresh id for a message, key or conversation whose original encoded a person."""
    return "erased." + uuid.uuid4().hex


@dataclass
class Redaction:
    """What erasure replaces: the person's ids, and old -> anonymous message ids, idempotency
    keys and conversation ids (the same mapping the tables got)."""

    ids: set[str]
    pattern: Patterns | None
    messages: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    conversations: dict[str, str] = field(default_factory=dict)

    def text(self, value: str) -> str:
        return self.pattern.sub("[erased]", value) if self.pattern else value

    def mentions(self, text: str) -> bool:
        """Whether ``text`` names the person (never, without identifiers)."""
        return bool(self.pattern and self.pattern.search(text))

    def message(self, old):
        if old is None:
            return None
        if old not in self.messages:
            self.messages[old] = anonymous_id()
        return self.messages[old]


def scrub(value, redaction: Redaction):
    """Every string in a JSON value with the identifiers replaced; numbers that are one of
    the identifiers become null (a wa_id can be written as a JSON number)."""
    if isinstance(value, str):
        return redaction.text(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        if redaction.pattern and redaction.pattern.fullmatch(str(value)):
            return None
        return value
    if isinstance(value, list):
        return [scrub(v, redaction) for v in value]
    if isinstance(value, dict):
        return {redaction.text(str(k)): scrub(v, redaction) for k, v in value.items()}
    return value


def account_scope(con, account_ids) -> Callable[[dict], bool]:
    """``in_scope(metadata)`` for ``redact``: the change belongs to one of ``account_ids``
    (by phone_number_id, else display number) or to no account of the workspace."""
    accounts = con.execute("SELECT account_id, phone_number_id, phone_e164 FROM accounts").fetchall()
    erased = set(account_ids)

    def in_scope(meta: dict) -> bool:
        pnid = meta.get("phone_number_id")
        digits = "".join(ch for ch in str(meta.get("display_phone_number") or "") if ch.isdigit())
        owner = [a for a, p, e in accounts if (pnid and p == pnid) or (digits and e.lstrip("+") == digits)]
        return not owner or owner[0] in erased

    return in_scope


def _values(doc):
    if not isinstance(doc, dict):
        return
    for entry in doc.get("entry") or []:
        for change in (entry or {}).get("changes") or []:
            value = (change or {}).get("value")
            if isinstance(value, dict):
                yield value


def _theirs(item: dict, ids: set[str], *keys: str) -> bool:
    return any(item.get(k) is not None and str(item.get(k)) in ids for k in keys)


def redact(doc, redaction: Redaction, in_scope: Callable[[dict], bool] = lambda meta: True):
    """A copy of a decoded body without the person (see the module docstring).

    ``in_scope(metadata)`` says whether a change belongs to an account the person is erased
    from; others are left alone. Returns (new_doc, changed).
    """
    doc = copy.deepcopy(doc)
    ids, changed = redaction.ids, False
    for value in _values(doc):
        if not in_scope(value.get("metadata") or {}):
            continue
        for key, fields in (("contacts", ("wa_id", "user_id")),
                            ("messages", ("from", "from_user_id")),
                            ("user_preferences", ("wa_id", "user_id"))):
            items = value.get(key)
            if isinstance(items, list):
                kept = [i for i in items if not (isinstance(i, dict) and (
                    _theirs(i, ids, *fields) or (key == "messages" and i.get("id") in redaction.messages)))]
                if len(kept) != len(items):
                    value[key] = kept
                    changed = True
        for message in value.get("messages") or []:
            # Someone else's reply or reaction to the person's message.
            for holder, key in ((message.get("context"), "id"), (message.get("reaction"), "message_id")):
                if isinstance(holder, dict) and holder.get(key) in redaction.messages:
                    holder[key] = redaction.messages[holder[key]]
                    changed = True
        for status in value.get("statuses") or []:
            if not isinstance(status, dict):
                continue
            if not (_theirs(status, ids, "recipient_id", "recipient_user_id")
                    or status.get("id") in redaction.messages):
                continue
            changed = True
            status.pop("recipient_id", None)
            status.pop("recipient_user_id", None)
            status["id"] = redaction.message(status.get("id"))
            callback = status.get("biz_opaque_callback_data")
            if callback is not None:
                status["biz_opaque_callback_data"] = redaction.keys.setdefault(callback, anonymous_id())
            conversation = status.get("conversation")
            if isinstance(conversation, dict) and conversation.get("id") is not None:
                conversation["id"] = redaction.conversations.setdefault(conversation["id"], anonymous_id())
            for error in status.get("errors") or []:
                if isinstance(error, dict):
                    error.pop("error_data", None)   # free text, may quote the number
    scrubbed = scrub(doc, redaction)
    return scrubbed, changed or scrubbed != doc


def redact_text(text: str, redaction: Redaction, in_scope=lambda meta: True) -> str:
    """``redact`` for a body as stored (JSON text); a body that is not JSON is only scrubbed."""
    try:
        doc = json.loads(text)
        new, changed = redact(doc, redaction, in_scope)
    except (ValueError, RecursionError):    # not JSON, or nested deeper than we walk
        return redaction.text(text)
    return json.dumps(new, ensure_ascii=False, separators=(",", ":")) if changed else text


def about(doc, ids: set[str]):
    """A copy of a decoded body with only the parts about ``ids`` (for an access export)."""
    out = copy.deepcopy(doc)
    for value in _values(out):
        for key, fields in (("contacts", ("wa_id", "user_id")),
                            ("messages", ("from", "from_user_id")),
                            ("statuses", ("recipient_id", "recipient_user_id")),
                            ("user_preferences", ("wa_id", "user_id"))):
            if isinstance(value.get(key), list):
                value[key] = [i for i in value[key] if isinstance(i, dict) and _theirs(i, ids, *fields)]
                if not value[key]:
                    value.pop(key)
    return out


def mentions(doc, ids: set[str]) -> bool:
    """Whether a decoded body has a contact, message, status or preference of ``ids``."""
    for value in _values(doc):
        for key, fields in (("contacts", ("wa_id", "user_id")),
                            ("messages", ("from", "from_user_id")),
                            ("statuses", ("recipient_id", "recipient_user_id")),
                            ("user_preferences", ("wa_id", "user_id"))):
            if any(isinstance(i, dict) and _theirs(i, ids, *fields) for i in value.get(key) or []):
                return True
    return False
