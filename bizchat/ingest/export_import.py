"""A WhatsApp "Export chat" file stored as a chat of one business account.

The export is a 1:1 chat between the business and one customer. The business side is
recognised by its name (the account's display name unless given); the customer is
named by ``contact_phone``, or by the other author when WhatsApp wrote a number because
the customer was not saved. Times in the file are wall-clock times without a zone; they
are read in the account's time zone.

Message ids are derived from the content (account, contact, time, author, text and the
repeat count of identical lines), so importing the same file again, or an export that
overlaps an earlier one, stores each message once. System lines (the encryption notice,
"X added Y") are not messages and are counted but not stored.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

import numpy as np
import pandas as pd

from ..errors import ImportFormatError, InvalidPhoneNumber
from ..messaging import chats
from ..people import phones
from ..people.accounts import get_account
from ..people.consent import record_keyword_opt_outs
from ..people.contacts import ensure_contacts
from .chat_export import parse_export


@dataclass
class ExportImport:
    chat_id: int | None
    contact_id: int
    messages: int          # in the file (not counting system lines)
    new: int               # stored now
    system_lines: int
    inbound: int
    outbound: int

    def summary(self) -> str:
        return (f"{self.messages} messages in the export ({self.inbound} from the customer, "
                f"{self.outbound} from the business; {self.system_lines} system lines skipped): "
                f"{self.new} new, {self.messages - self.new} already stored. Chat {self.chat_id}.")


def _customer_phone(author: str | None, contact_phone: str | None, region: str) -> phones.Phone:
    if contact_phone:
        return phones.parse(contact_phone, region)
    try:
        return phones.parse(author or "", region)
    except InvalidPhoneNumber:
        raise ImportFormatError(
            f"The customer in this export is {author!r}, a saved name, not a number. Give "
            "their number with --contact-phone (contact_phone=...) so the chat belongs to "
            "the right contact.", input=author) from None


def import_export(con, account_ref, source: str | os.PathLike | IO, *,
                  contact_phone: str | None = None, business_name: str | None = None,
                  dayfirst: bool | None = None, actor: str = "bizchat") -> ExportImport:
    """Parse ``source`` and store it as a chat of the account. Call inside a transaction."""
    account = get_account(con, account_ref)
    frame = parse_export(source, dayfirst=dayfirst)
    name = str(getattr(source, "name", source))
    business = (business_name or account["display_name"]).strip()
    system = frame["kind"] == "system"
    messages = frame[~system].reset_index(drop=True)
    authors = set(messages["author"].dropna()) - {business}
    if len(authors) > 1:
        raise ImportFormatError(
            f"{name} has {len(authors)} authors besides {business!r} ({', '.join(sorted(authors)[:5])}). "
            "bizchat imports 1:1 customer chats; if the business wrote under another name, give "
            "it with --business-name.", source=name)
    if messages.empty:
        raise ImportFormatError(f"{name} holds no messages to import.", source=name)
    author = next(iter(authors), None)
    phone = _customer_phone(author, contact_phone, account["region"] or phones.DEFAULT_REGION)
    contact_id = int(ensure_contacts(con, account["account_id"], pd.DataFrame(
        {"wa_id": [phone.wa_id], "user_id": [None], "name": [author]})).iloc[0])

    local = messages["timestamp"].dt.tz_localize(account["timezone"], ambiguous="NaT",
                                                 nonexistent="shift_forward")
    # The hour that repeats when clocks go back cannot be told apart: read it as the first.
    first = messages["timestamp"].dt.tz_localize(account["timezone"], ambiguous=True,
                                                 nonexistent="shift_forward")
    created = local.fillna(first).dt.tz_convert(UTC)
    outbound = (messages["author"] == business).fillna(False).to_numpy(dtype=bool)
    key = pd.DataFrame({"t": messages["timestamp"].astype(str), "a": messages["author"].fillna(""),
                        "x": messages["text"].fillna("")})
    repeat = key.groupby(["t", "a", "x"]).cumcount().astype(str)
    digest_input = (f"{account['account_id']}\x1f{contact_id}\x1f" + key["t"] + "\x1f" + key["a"]
                    + "\x1f" + key["x"] + "\x1f" + repeat)
    ids = ["export-" + hashlib.sha256(s.encode("utf-8")).hexdigest()[:32] for s in digest_input]
    kind = messages["kind"].astype(str)
    rows = pd.DataFrame({
        "message_id": ids,
        "account_id": account["account_id"],
        "contact_id": contact_id,
        "direction": np.where(outbound, "out", "in"),
        "kind": kind,
        "body": messages["text"].where(kind != "deleted", None).astype(object),
        "source": "export",
        "details": [json.dumps({"edited": True}) if e else None for e in messages["edited"]],
        "created_at": created,
    })
    new = chats.store_messages(con, rows)
    texts = new[(new["direction"] == "in") & (new["kind"] == "text")]
    if len(texts):
        record_keyword_opt_outs(con, texts.rename(columns={"body": "text", "created_at": "at"}),
                                actor=actor)
    chat = con.execute("SELECT chat_id FROM chats WHERE account_id = ? AND contact_id = ?",
                       [account["account_id"], contact_id]).fetchall()
    con.execute("""INSERT INTO audit_log ("at", actor, action, subject_key, details)
                   VALUES (?, ?, 'export.import', NULL, ?)""",
                [datetime.now(UTC), actor, json.dumps({
                    "account_id": account["account_id"], "contact_id": contact_id,
                    "file": os.path.basename(name), "messages": len(rows), "new": len(new)})])
    return ExportImport(chat_id=chat[0][0] if chat else None, contact_id=contact_id,
                        messages=len(rows), new=len(new), system_lines=int(system.sum()),
                        inbound=int((~outbound).sum()), outbound=int(outbound.sum()))
