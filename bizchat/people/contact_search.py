"""Contact search: finding customers by name or number, one page at a time.

The finder behind the label manager. A query matches a contact whose name contains it
(any case), or whose number is the query in any written form (``0151 1111 1111``,
``+49 151 …``, ``0049…``), or whose number contains its digits (three or more, a national
``0`` or international ``00`` dropped, so ``0151 11`` finds ``+49 151 11…``). Combined with
the label filters of ``labels.contact_filter``; pages are cut in SQL, so an account with
20,000 contacts sends 50 rows to the screen, not 20,000.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from ..errors import InvalidPhoneNumber, InvalidValue
from . import phones
from .accounts import default_region

MAX_QUERY = 200
MAX_PAGE = 1000


def query_predicate(account: dict, text) -> tuple[str, list]:
    """A condition on ``contacts c`` for a search text (name or number); TRUE when empty."""
    if text is None or not str(text).strip():
        return "TRUE", []
    text = str(text).strip()
    if len(text) > MAX_QUERY:
        raise InvalidValue(f"The search text is {len(text)} characters long; at most "
                           f"{MAX_QUERY} are searched. Shorten it.", input=text[:40])
    clauses = ["contains(lower(coalesce(c.name, '')), lower(?))"]
    params: list = [text]
    try:
        e164 = phones.normalize(text, default_region(account))
        clauses.append("c.phone_e164 = ?")
        params.append(e164)
    except InvalidPhoneNumber:
        pass
    digits = re.sub(r"\D", "", text)
    if text.startswith("00"):
        digits = digits[2:]
    elif text.startswith("0"):
        digits = digits[1:]
    if len(digits) >= 3 and not re.search(r"[^\d\s()+\-./]", text):
        clauses.append("contains(coalesce(c.phone_e164, '+' || c.wa_id, ''), ?)")
        params.append(digits)
    return "(" + " OR ".join(clauses) + ")", params


@dataclass(frozen=True)
class ContactPage:
    """One page of a search: ``rows`` (contact_id, phone_e164, name, language, timezone,
    marketing consent state, labels), the ``total`` matching, and where the page starts."""

    rows: pd.DataFrame
    total: int
    offset: int
    limit: int


def check_page(limit, offset) -> tuple[int, int]:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
        raise InvalidValue(f"A page holds 1 to {MAX_PAGE} contacts, not {limit!r}.", input=limit)
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidValue(f"A page starts at 0 or later, not {offset!r}.", input=offset)
    return limit, offset


def search_page(con, where: str, params: list, limit: int, offset: int) -> ContactPage:
    """The page of contacts matching ``where`` (on ``contacts c``), by name then id."""
    total = con.execute(f"SELECT count(*) FROM contacts c WHERE {where}", params).fetchall()[0][0]
    rows = con.execute(f"""
        SELECT c.contact_id, c.phone_e164, c.name, c.language, c.timezone,
               m.state AS marketing,
               coalesce((SELECT list(l.name ORDER BY l.name) FROM contact_labels x
                         JOIN labels l USING (label_id) WHERE x.contact_id = c.contact_id),
                        []) AS labels
        FROM contacts c
        LEFT JOIN current_consent m ON m.contact_id = c.contact_id AND m.purpose = 'marketing'
        WHERE {where}
        ORDER BY lower(c.name) NULLS LAST, c.contact_id
        LIMIT ? OFFSET ?""", [*params, limit, offset]).df()
    return ContactPage(rows=rows, total=int(total), offset=offset, limit=limit)


__all__ = ["ContactPage", "check_page", "query_predicate", "search_page"]
