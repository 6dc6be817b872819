"""Quick replies: per-account shortcuts (``/danke``) for texts staff send often.

A text may use named placeholders (``{first_name}``, ``{name}``, ``{business_name}`` and
the contact's attributes); it is checked with the safe renderer when saved, and filled for
one contact with ``render``. Shortcuts are unique per account regardless of case and
kept as typed; up to ``accounts.max_quick_replies`` (50 by default) per account.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping
from datetime import UTC, datetime

import pandas as pd

from .. import store
from ..errors import Conflict, InvalidValue, LimitExceeded, NotFound, TemplateError
from ..people.accounts import get_account
from ..people.contacts import get_contact
from . import placeholders
from . import render as renderer

SHORTCUT = re.compile(r"/[A-Za-z0-9_-]+")
MAX_SHORTCUT_LENGTH = 25
MAX_TEXT_LENGTH = 4096  # the Cloud API's limit for a text message body


def check_shortcut(shortcut) -> str:
    """``/danke``: a slash, then letters, digits, ``_`` or ``-`` (at most 25 characters)."""
    text = shortcut.strip() if isinstance(shortcut, str) else shortcut
    if not isinstance(text, str) or not SHORTCUT.fullmatch(text):
        raise InvalidValue(
            f"{shortcut!r} is not a shortcut. Start with / and use letters, digits, _ or -, "
            "e.g. /danke or /oeffnungszeiten.", input=shortcut)
    if len(text) > MAX_SHORTCUT_LENGTH:
        raise InvalidValue(f"The shortcut {text!r} is longer than {MAX_SHORTCUT_LENGTH} "
                           "characters; shorten it.", input=shortcut)
    return text


def check_text(text) -> str:
    """A quick reply text: not empty, at most 4096 characters, safe template syntax."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidValue("A quick reply needs a text.", input=text)
    if len(text) > MAX_TEXT_LENGTH:
        raise InvalidValue(f"The text is {len(text)} characters long; WhatsApp allows "
                           f"{MAX_TEXT_LENGTH}. Shorten it.", input=text)
    renderer.validate(text)
    return text


def _lookup_key(shortcut) -> str:
    """Lookups accept the shortcut with or without its slash, in any case."""
    if not isinstance(shortcut, str) or not shortcut.strip():
        raise InvalidValue(f"{shortcut!r} is not a shortcut, e.g. /danke.", input=shortcut)
    text = shortcut.strip()
    return text if text.startswith("/") else "/" + text


def _find(con, account: dict, shortcut) -> dict | None:
    cur = con.execute("SELECT account_id, shortcut, text, created_at FROM quick_replies "
                      "WHERE account_id = ? AND lower(shortcut) = lower(?)",
                      [account["account_id"], _lookup_key(shortcut)])
    return store.one(cur)


def _get(con, account: dict, shortcut) -> dict:
    found = _find(con, account, shortcut)
    if found is None:
        raise NotFound(
            f"Account {account['phone_e164']} has no quick reply {shortcut!r}. List them with "
            f"`bizchat replies list --account {account['phone_e164']}`.", input=shortcut)
    return found


class QuickReplies:
    """Quick replies of each account (``ws.replies``)."""

    def __init__(self, ws):
        self.ws = ws

    def list(self, account) -> pd.DataFrame:
        """shortcut, text, the placeholders it uses, created_at; sorted by shortcut."""
        with self.ws.connect(read_only=True) as con:
            acc = get_account(con, account)
            frame = con.execute("SELECT shortcut, text, created_at FROM quick_replies "
                                "WHERE account_id = ? ORDER BY lower(shortcut)",
                                [acc["account_id"]]).df()
        frame.insert(2, "placeholders", [renderer.placeholders(t) for t in frame["text"]])
        return frame

    def available_placeholders(self, account) -> builtins.list[str]:
        """The placeholder names this account's texts may use (contact fields, account
        fields, attribute keys present on its contacts); what saving checks against."""
        with self.ws.connect(read_only=True) as con:
            return placeholders.available(con, get_account(con, account)["account_id"])

    def get(self, account, shortcut) -> dict:
        """One quick reply by its shortcut (with or without the slash, any case)."""
        with self.ws.connect(read_only=True) as con:
            return _get(con, get_account(con, account), shortcut)

    def add(self, account, shortcut: str, text: str, *, extra_placeholders=()) -> dict:
        """Save a new quick reply. Raises InvalidValue / TemplateError for a bad shortcut or
        text (also a placeholder the account cannot fill: see ``available_placeholders``;
        ``extra_placeholders`` names those the agent fills in when sending, e.g.
        order_no), Conflict if the shortcut exists (any case), LimitExceeded beyond the
        limit."""
        shortcut, text = check_shortcut(shortcut), check_text(text)
        with self.ws.transaction() as con:
            acc = get_account(con, account)
            placeholders.check(con, acc["account_id"], text, extra=extra_placeholders,
                               what="quick reply")
            clash = _find(con, acc, shortcut)
            if clash:
                raise Conflict(
                    f"Account {acc['phone_e164']} already has the quick reply "
                    f"{clash['shortcut']!r}. Change that reply's text, or remove it first.",
                    input=shortcut)
            count = con.execute("SELECT count(*) FROM quick_replies WHERE account_id = ?",
                                [acc["account_id"]]).fetchall()[0][0]
            if count >= acc["max_quick_replies"]:
                raise LimitExceeded(
                    f"Account {acc['phone_e164']} already has {count} quick replies, the most it "
                    f"may have ({acc['max_quick_replies']}). Remove one first, or raise the "
                    "limit (accounts update max_quick_replies=...).",
                    limit=acc["max_quick_replies"])
            con.execute("INSERT INTO quick_replies (account_id, shortcut, text, created_at) "
                        "VALUES (?, ?, ?, ?)", [acc["account_id"], shortcut, text,
                                                datetime.now(UTC)])
            return _get(con, acc, shortcut)

    def update(self, account, shortcut, text: str, *, extra_placeholders=()) -> dict:
        """Replace the text of an existing quick reply (checked as ``add`` checks it)."""
        text = check_text(text)
        with self.ws.transaction() as con:
            acc = get_account(con, account)
            found = _get(con, acc, shortcut)
            placeholders.check(con, acc["account_id"], text, extra=extra_placeholders,
                               what="quick reply")
            con.execute("UPDATE quick_replies SET text = ? WHERE account_id = ? AND shortcut = ?",
                        [text, acc["account_id"], found["shortcut"]])
            return {**found, "text": text}

    def remove(self, account, shortcut) -> dict:
        """Delete a quick reply; returns what it was."""
        with self.ws.transaction() as con:
            acc = get_account(con, account)
            found = _get(con, acc, shortcut)
            con.execute("DELETE FROM quick_replies WHERE account_id = ? AND shortcut = ?",
                        [acc["account_id"], found["shortcut"]])
            return found

    def render(self, shortcut, contact, *, account=None, extra: Mapping | None = None) -> str:
        """The text of ``shortcut`` filled in for ``contact``.

        ``contact`` is a contact_id or a contact dict (its account is used), or with
        ``account`` any reference (number, wa_id, user_id). ``extra`` adds or overrides
        values (e.g. an order number). An unknown placeholder raises TemplateError naming it.
        """
        with self.ws.connect(read_only=True) as con:
            if account is None:
                account = _account_of(con, contact)
            acc = get_account(con, account)
            row = get_contact(con, acc, contact)
            reply = _get(con, acc, shortcut)
        values = {**renderer.contact_values(row, acc), **(extra or {})}
        try:
            return renderer.render(reply["text"], values)
        except TemplateError as exc:
            exc.message = f"Quick reply {reply['shortcut']}: {exc.message}"
            exc.args = (exc.message,)
            raise


def _account_of(con, contact) -> int:
    if isinstance(contact, Mapping) and contact.get("account_id") is not None:
        return int(contact["account_id"])
    if isinstance(contact, int) and not isinstance(contact, bool):
        rows = con.execute("SELECT account_id FROM contacts WHERE contact_id = ?",
                           [contact]).fetchall()
        if rows:
            return rows[0][0]
        raise NotFound(f"There is no contact with id {contact}.", input=contact)
    raise InvalidValue(
        f"Give the account to find the contact {contact!r} by number: "
        "render(shortcut, contact, account=PHONE).", input=contact)


__all__ = ["MAX_SHORTCUT_LENGTH", "MAX_TEXT_LENGTH", "QuickReplies", "check_shortcut",
           "check_text"]
