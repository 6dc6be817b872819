"""Who a request is about: the contacts a phone number (or wa_id, user_id) names, and every
written form of their identifiers that erasure must find in free text.

A person can be a contact of several accounts of one workspace. A request names the
account (``--account``), or else it covers every account where the reference matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import duckdb
import phonenumbers

from .. import store
from ..errors import NotFound
from ..people.accounts import get_account
from ..people.contacts import find_contact

# Names shorter than this are not searched for in free text (they would match everywhere).
MIN_NAME_LENGTH = 3
# Identifiers per regular expression: RE2 refuses very large patterns.
CHUNK = 100


@dataclass
class Subject:
    """The contacts one request is about, with their identifiers."""

    query: str
    contacts: list[dict] = field(default_factory=list)

    @property
    def contact_ids(self) -> list[int]:
        return [int(c["contact_id"]) for c in self.contacts]

    @property
    def account_ids(self) -> list[int]:
        return sorted({int(c["account_id"]) for c in self.contacts})


def find(con: duckdb.DuckDBPyConnection, ref, account=None) -> Subject:
    """The contacts ``ref`` (number in any written form, wa_id, user_id, contact_id) names,
    in ``account`` or in every account. NotFound when there is none."""
    if account is not None:
        accounts = [get_account(con, account)]
    else:
        cur = con.execute("SELECT account_id, phone_e164, region FROM accounts ORDER BY account_id")
        accounts = [dict(zip(("account_id", "phone_e164", "region"), row, strict=True))
                    for row in cur.fetchall()]
    found = []
    for acc in accounts:
        contact = find_contact(con, acc, ref)
        if contact is not None:
            found.append(contact)
    if not found:
        where = f"account {accounts[0]['phone_e164']}" if account is not None else "any account"
        raise NotFound(
            f"No contact {ref!r} in {where} of this workspace. Give the number in "
            "international form (+49 170 1234567), the wa_id or the user_id; "
            "`bizchat contacts list --account PHONE` lists the contacts.", input=ref)
    return Subject(query=str(ref), contacts=found)


def contacts_by_id(con: duckdb.DuckDBPyConnection, contact_ids) -> list[dict]:
    """Contact rows (as dicts) for internal ids, e.g. those a retention policy selects."""
    cur = con.execute("""
        SELECT contact_id, account_id, phone_e164, wa_id, user_id, name FROM contacts
        WHERE list_contains(?::BIGINT[], contact_id) ORDER BY contact_id""",
                      [[int(c) for c in contact_ids]])
    return store.rows(cur)


# --- written forms -----------------------------------------------------------------------------

# Between two digits of a written number: spaces, dashes, dots, slashes, brackets.
_SEP = r"[\s\-./()]*"


def number_pattern(e164: str | None, *, lookaround: bool = True) -> str | None:
    """A regular expression for every written form of a number: +49 151 2345 6789,
    0049-151-23456789, (0151) 234 56789, 4915123456789 (wa_id), 15123456789 ...

    With ``lookaround`` (Python) a match may not touch other digits, so a number is never
    cut out of a longer one; without it (RE2 in DuckDB, a loose prefilter) it may.
    """
    if not e164:
        return None
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return re.escape(e164)
    nsn = phonenumbers.national_significant_number(number)
    cc = str(number.country_code)
    region = phonenumbers.region_code_for_number(number)
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region) if region else None
    trunk = (meta.national_prefix if meta else None) or ""
    country = _SEP.join(cc)
    prefixes = [rf"(?:\+|00){_SEP}{country}{_SEP}(?:\(0\){_SEP})?", country]
    if trunk:
        prefixes.append(_SEP.join(trunk))
    body = rf"\(?(?:(?:{'|'.join(prefixes)}){_SEP})?" + _SEP.join(nsn)
    return rf"(?<![0-9]){body}(?![0-9])" if lookaround else body


@dataclass
class Identifiers:
    """What to search for in free text: phone numbers in any written form, exact ids
    (wa_id, user_id: matched between non-alphanumerics) and names (whole words, any case)."""

    phones: set[str] = field(default_factory=set)    # E.164
    ids: set[str] = field(default_factory=set)       # wa_id and user_id values
    names: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.phones or self.ids or self.names)

    def without(self, other: Identifiers) -> Identifiers:
        lower = {n.lower() for n in other.names}
        return Identifiers(phones=self.phones - other.phones, ids=self.ids - other.ids,
                           names={n for n in self.names if n.lower() not in lower})

    def only(self, *, names: bool) -> Identifiers:
        """The names alone, or everything but the names."""
        if names:
            return Identifiers(names=set(self.names))
        return Identifiers(phones=set(self.phones), ids=set(self.ids))

    def _parts(self, lookaround: bool) -> list[str]:
        """One pattern per identifier, longest first within each kind."""
        parts = [number_pattern(p, lookaround=lookaround) for p in sorted(self.phones)]
        for value in sorted(self.ids, key=len, reverse=True):
            parts.append(rf"(?<![0-9A-Za-z]){re.escape(value)}(?![0-9A-Za-z])" if lookaround
                         else re.escape(value))
        for name in sorted(self.names, key=len, reverse=True):
            parts.append(rf"(?i:(?<!\w){re.escape(name)}(?!\w))" if lookaround
                         else f"(?i:{re.escape(name)})")
        return [p for p in parts if p]

    def pattern(self) -> Patterns | None:
        """Regular expressions for all of them (Python, Unicode-aware boundaries), in chunks
        so that erasing thousands of people (a retention purge) stays fast."""
        parts = self._parts(True)
        if not parts:
            return None
        return Patterns([re.compile("|".join(parts[i:i + CHUNK])) for i in range(0, len(parts), CHUNK)])

    def prefilters(self) -> list[str]:
        """Loose RE2 patterns for DuckDB's regexp_matches (any of them, anywhere), in chunks
        that stay below RE2's size limit."""
        parts = [_re2(p) for p in self._parts(False)]
        return ["|".join(parts[i:i + CHUNK]) for i in range(0, len(parts), CHUNK)]


class Patterns:
    """Several compiled expressions used as one (see Identifiers.pattern)."""

    def __init__(self, compiled: list[re.Pattern]):
        self.compiled = compiled

    def sub(self, replacement: str, text: str) -> str:
        for pattern in self.compiled:
            text = pattern.sub(replacement, text)
        return text

    def search(self, text: str) -> bool:
        return any(pattern.search(text) for pattern in self.compiled)

    def fullmatch(self, text: str) -> bool:
        return any(pattern.fullmatch(text) for pattern in self.compiled)


def _re2(pattern: str) -> str:
    """RE2 takes escaped punctuation but not Python's escaped whitespace (``\\ ``)."""
    return re.sub(r"\\(\s)", r"\1", pattern)


def identifiers(contacts: list[dict]) -> Identifiers:
    found = Identifiers()
    for c in contacts:
        if c.get("phone_e164"):
            found.phones.add(str(c["phone_e164"]))
        for key in ("wa_id", "user_id"):
            value = c.get(key)
            if value:
                found.ids.add(str(value))
        wa_id = c.get("wa_id")
        if wa_id and str(wa_id).isdigit():
            found.phones.add("+" + str(wa_id))
        name = (c.get("name") or "").strip()
        if len(name) >= MIN_NAME_LENGTH:
            found.names.add(name)
    return found


def remaining_identifiers(con: duckdb.DuckDBPyConnection, ids: Identifiers) -> Identifiers:
    """The identifiers of ``ids`` that other (not erased) contacts still use: those stay
    where no account tells whose they are (audit log, report outputs)."""
    if not ids:
        return Identifiers()
    rows = con.execute("""
        SELECT phone_e164, wa_id, user_id, name FROM contacts
        WHERE list_contains(?::VARCHAR[], wa_id) OR list_contains(?::VARCHAR[], user_id)
           OR list_contains(?::VARCHAR[], phone_e164)
           OR list_contains(?::VARCHAR[], lower(name))""",
                       [sorted(ids.ids), sorted(ids.ids), sorted(ids.phones),
                        sorted(n.lower() for n in ids.names)]).fetchall()
    others = [dict(zip(("phone_e164", "wa_id", "user_id", "name"), r, strict=True)) for r in rows]
    return identifiers(others)
