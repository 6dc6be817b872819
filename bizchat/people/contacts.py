"""Contacts: the customers of one business account.

Every query here is scoped by ``account_id``: two accounts with the same customer have two
separate contacts and never see each other's. A contact is found by any written form of
its number (national forms are read in the account's region), by its ``wa_id`` (E.164
without the plus) or by its business-scoped ``user_id`` (payloads may withhold the
number). There is no address-book upload: contacts come from conversations
(``ensure_contacts``, used by webhook ingestion) or from imports with consent evidence.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from datetime import UTC, datetime

import duckdb
import pandas as pd

from .. import store
from ..errors import Conflict, InvalidPhoneNumber, InvalidValue, NotFound
from . import phones
from .accounts import check_timezone, default_region, get_account
from .contact_search import ContactPage, check_page, search_page

_COLUMNS = ("contact_id, account_id, phone_e164, wa_id, user_id, name, language, timezone, "
            "attributes, created_at")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


# --- field checks (pure) -----------------------------------------------------------------------

def check_language(value: str | None) -> str | None:
    """A BCP 47 tag such as ``de``, ``de-AT`` or ``en`` (``de_AT`` is accepted), or None."""
    if value is None or not str(value).strip():
        return None
    tag = str(value).strip().replace("_", "-")
    if not _LANGUAGE.match(tag):
        raise InvalidValue(f"{value!r} is not a language tag. Use e.g. de, de-AT or en.",
                           input=value)
    parts = tag.split("-")
    return "-".join([parts[0].lower(), *(p.upper() if len(p) == 2 else p for p in parts[1:])])


ATTRIBUTES_DEPTH = 16       # nesting of objects and lists in one attributes value


def _not_json_constant(name: str):
    raise ValueError(f"{name} is not a JSON value; write null or a number")


def check_attributes(value) -> dict | None:
    """Free attributes as a JSON object (a dict, or its JSON text).

    Refused: text that is not strict JSON (NaN, Infinity), nesting deeper than
    ATTRIBUTES_DEPTH, and strings or keys that cannot be UTF-8 (a lone surrogate from an
    escape such as ``"\\ud800"``), which DuckDB could not store.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value, parse_constant=_not_json_constant)
        except json.JSONDecodeError as exc:
            raise InvalidValue(
                f"The attributes {_shown(value)} are not JSON ({exc.msg}). Write an object "
                'such as {"city": "Graz"}.', input=value) from None
        except (ValueError, RecursionError) as exc:
            reason = (f"nest deeper than {ATTRIBUTES_DEPTH} levels"
                      if isinstance(exc, RecursionError) else f"are not JSON: {exc}")
            raise InvalidValue(f"The attributes {_shown(value)} {reason}. Write a flat object "
                               'such as {"city": "Graz"}.', input=value) from None
    if not isinstance(value, dict):
        raise InvalidValue(f"Attributes must be a JSON object, got {_shown(value)}.", input=value)
    _check_nested(value)
    return value


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_nested(value: dict) -> None:
    """Depth, UTF-8 and finite numbers of a decoded attributes value (iteratively, so no
    input can exhaust the stack)."""
    todo: list[tuple[dict | list, int]] = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if depth > ATTRIBUTES_DEPTH:
            raise InvalidValue(f"The attributes nest deeper than {ATTRIBUTES_DEPTH} levels. "
                               'Write a flat object such as {"city": "Graz"}.', input=value)
        children = (list(item.keys()) + list(item.values()) if isinstance(item, dict)
                    else item if isinstance(item, list) else [])
        for child in children:
            if isinstance(child, str):
                try:
                    child.encode("utf-8")
                except UnicodeEncodeError:
                    raise InvalidValue(
                        f"The attributes hold {_shown(child)}, which is not text (a lone "
                        "surrogate, half of a UTF-16 character). Fix that value.",
                        input=value) from None
            elif isinstance(child, float) and not math.isfinite(child):
                raise InvalidValue("The attributes hold NaN or Infinity, which JSON has not. "
                                   "Use null or a number.", input=value)
            elif isinstance(child, (dict, list)):
                todo.append((child, depth + 1))
            elif not (child is None or isinstance(child, (bool, int, float))):
                raise InvalidValue(f"The attributes hold {_shown(child)}, which is not a JSON "
                                   "value. Use text, numbers, true/false or null.", input=value)


def _stored(con, contact_id) -> dict:
    """The contact just written in this transaction."""
    contact = first_contact(con, "contact_id = ?", [contact_id])
    if contact is None:
        raise NotFound(f"Contact {contact_id} is gone.", input=contact_id)
    return contact


def _dumped(value: dict | None) -> str | None:
    return None if value is None else dump_attributes(value)


def dump_attributes(value: dict) -> str:
    """Compact JSON, as DuckDB's json() writes it, so stored values compare as text."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def parse_contact_phone(raw: str, region: str) -> phones.Phone:
    """A contact's number: valid, and of a type WhatsApp can reach."""
    phone = phones.parse(raw, region)
    if not phones.is_mobile_capable(phone):
        raise InvalidPhoneNumber(
            f"{raw!r} is a {phone.number_type.replace('_', ' ')} number, which cannot be on "
            "WhatsApp. Check the number.", input=raw)
    return phone


# --- lookups inside a caller's transaction ------------------------------------------------------

def first_contact(con, where: str, params: list) -> dict | None:
    """The contact with the lowest id matching the SQL condition ``where`` (parameterised
    with ``params``), or None."""
    cur = con.execute(f"SELECT {_COLUMNS} FROM contacts WHERE {where} ORDER BY contact_id LIMIT 1",
                      params)
    contact = store.one(cur)   # fetches all: fetchone would leave a pending result
    if contact is None:
        return None
    if contact["attributes"] is not None:
        contact["attributes"] = json.loads(contact["attributes"])
    return contact


def find_contact(con: duckdb.DuckDBPyConnection, account: dict, ref) -> dict | None:
    """The contact of ``account`` that ``ref`` names (contact_id, number, wa_id, user_id)."""
    aid = account["account_id"]
    if isinstance(ref, dict) and "contact_id" in ref:
        ref = ref["contact_id"]
    if isinstance(ref, bool):
        return None
    if isinstance(ref, numbers.Integral):  # numpy ints from DataFrames too
        return first_contact(con, "account_id = ? AND contact_id = ?", [aid, int(ref)])
    if not isinstance(ref, str) or not ref.strip():
        return None
    text = ref.strip()
    found = first_contact(con, "account_id = ? AND (user_id = ? OR wa_id = ?)", [aid, text, text])
    if found:
        return found
    try:
        e164 = phones.normalize(text, default_region(account))
    except InvalidPhoneNumber:
        # Not a number: an all-digit text is a contact_id written as text (CLI).
        if text.isdigit() and len(text) < 19:
            return first_contact(con, "account_id = ? AND contact_id = ?", [aid, int(text)])
        return None
    return first_contact(con, "account_id = ? AND (phone_e164 = ? OR wa_id = ?)", [aid, e164, e164[1:]])


def get_contact(con: duckdb.DuckDBPyConnection, account: dict, ref) -> dict:
    """The contact of ``account`` that ``ref`` names (contact_id, number, wa_id,
    user_id); NotFound otherwise."""
    contact = find_contact(con, account, ref)
    if contact is None:
        raise NotFound(
            f"No contact {ref!r} for account {account['phone_e164']}. List them with "
            f"`bizchat contacts list --account {account['phone_e164']}`.", input=ref)
    return contact


def resolve_contact_id(con: duckdb.DuckDBPyConnection, account_ref, ref) -> int:
    """contact_id of ``ref`` within the account ``account_ref``; NotFound otherwise."""
    return get_contact(con, get_account(con, account_ref), ref)["contact_id"]


# --- bulk: contacts from conversations --------------------------------------------------------

def ensure_contacts(con: duckdb.DuckDBPyConnection, account_id: int, frame: pd.DataFrame,
                    *, now: datetime | None = None) -> pd.Series:
    """The contact_id of each row of ``frame`` (wa_id, user_id, name), creating missing ones.

    Vectorised for webhook ingestion; call inside the caller's transaction. A row matches
    an existing contact of the account by wa_id, else by user_id; rows of one new person
    share one new contact. Missing wa_id, user_id, phone or name of matched contacts are
    filled in (a stored name is never overwritten by a profile name). Rows with neither
    wa_id nor user_id get <NA>. Returns an Int64 Series aligned with ``frame.index``.
    """
    now = now or datetime.now(UTC)
    n = len(frame)
    if n == 0:
        return pd.Series([], index=frame.index, dtype="Int64")

    def col(name):
        if name not in frame.columns:
            return pd.Series([None] * n, dtype=object)
        values = frame[name].reset_index(drop=True).astype(object)
        return values.where(values.notna(), None)

    incoming = pd.DataFrame({"i": range(n), "wa_id": col("wa_id"), "user_id": col("user_id"),
                             "name": col("name")})
    con.register("_ensure_in", incoming)
    try:
        con.execute("""
            CREATE OR REPLACE TEMP TABLE _ensure AS
            SELECT i::BIGINT AS i,
                   nullif(trim(CAST(wa_id AS VARCHAR)), '') AS wa_id,
                   nullif(trim(CAST(user_id AS VARCHAR)), '') AS user_id,
                   nullif(trim(CAST(name AS VARCHAR)), '') AS name,
                   CAST(NULL AS BIGINT) AS contact_id
            FROM _ensure_in""")
    finally:
        con.unregister("_ensure_in")
    # 1. Existing contacts: wa_id first, then user_id.
    con.execute("""
        UPDATE _ensure SET contact_id = m.contact_id
        FROM (SELECT wa_id, min(contact_id) AS contact_id FROM contacts
              WHERE account_id = ? AND wa_id IS NOT NULL GROUP BY wa_id) AS m
        WHERE _ensure.wa_id = m.wa_id""", [account_id])
    con.execute("""
        UPDATE _ensure SET contact_id = m.contact_id
        FROM (SELECT user_id, min(contact_id) AS contact_id FROM contacts
              WHERE account_id = ? AND user_id IS NOT NULL GROUP BY user_id) AS m
        WHERE _ensure.contact_id IS NULL AND _ensure.user_id = m.user_id""", [account_id])
    # 2. New people with a wa_id: one contact per wa_id (the rows' user_id travels along).
    base = store.next_id(con, "contacts", "contact_id")
    con.execute("""
        UPDATE _ensure SET contact_id = k.contact_id
        FROM (SELECT wa_id, ? - 1 + row_number() OVER (ORDER BY min(i)) AS contact_id
              FROM _ensure WHERE contact_id IS NULL AND wa_id IS NOT NULL GROUP BY wa_id) AS k
        WHERE _ensure.contact_id IS NULL AND _ensure.wa_id = k.wa_id""", [base])
    # 3. Rows with only a user_id: same person as a new wa_id row carrying that user_id,
    #    else one new contact per user_id.
    con.execute("""
        UPDATE _ensure SET contact_id = m.contact_id
        FROM (SELECT user_id, min(contact_id) AS contact_id FROM _ensure
              WHERE contact_id >= ? AND user_id IS NOT NULL GROUP BY user_id) AS m
        WHERE _ensure.contact_id IS NULL AND _ensure.user_id = m.user_id""", [base])
    base2 = con.execute("SELECT greatest(?, coalesce(max(contact_id) + 1, 0)) FROM _ensure",
                        [base]).fetchall()[0][0]
    con.execute("""
        UPDATE _ensure SET contact_id = k.contact_id
        FROM (SELECT user_id, ? - 1 + row_number() OVER (ORDER BY min(i)) AS contact_id
              FROM _ensure WHERE contact_id IS NULL AND user_id IS NOT NULL GROUP BY user_id) AS k
        WHERE _ensure.contact_id IS NULL AND _ensure.user_id = k.user_id""", [base2])
    # One row per contact: the first non-empty value of each field in batch order.
    per_contact = """
        SELECT contact_id,
               arg_min(wa_id, i) FILTER (WHERE wa_id IS NOT NULL) AS wa_id,
               arg_min(user_id, i) FILTER (WHERE user_id IS NOT NULL) AS user_id,
               arg_min(name, i) FILTER (WHERE name IS NOT NULL) AS name
        FROM _ensure WHERE contact_id IS NOT NULL GROUP BY contact_id"""
    con.execute(f"""
        INSERT INTO contacts (contact_id, account_id, phone_e164, wa_id, user_id, name, created_at)
        SELECT contact_id, ?, CASE WHEN regexp_full_match(wa_id, '[1-9][0-9]{{6,14}}')
                                   THEN '+' || wa_id END,
               wa_id, user_id, name, ?
        FROM ({per_contact}) AS p WHERE contact_id >= ?""", [account_id, now, base])
    con.execute(f"""
        UPDATE contacts SET
            wa_id = coalesce(contacts.wa_id, p.wa_id),
            phone_e164 = coalesce(contacts.phone_e164,
                CASE WHEN contacts.wa_id IS NULL AND regexp_full_match(p.wa_id, '[1-9][0-9]{{6,14}}')
                     THEN '+' || p.wa_id END),
            user_id = coalesce(contacts.user_id,
                CASE WHEN NOT EXISTS (SELECT 1 FROM contacts o WHERE o.account_id = ?
                                      AND o.user_id = p.user_id) THEN p.user_id END),
            name = coalesce(contacts.name, p.name)
        FROM ({per_contact}) AS p
        WHERE contacts.contact_id = p.contact_id AND contacts.contact_id < ?
          AND ((contacts.wa_id IS NULL AND p.wa_id IS NOT NULL)
               OR (contacts.user_id IS NULL AND p.user_id IS NOT NULL)
               OR (contacts.name IS NULL AND p.name IS NOT NULL))""", [account_id, base])
    ids = con.execute("SELECT contact_id FROM _ensure ORDER BY i").df()["contact_id"]
    con.execute("DROP TABLE _ensure")
    return pd.Series(ids.to_numpy(), index=frame.index, dtype="Int64")


# --- the service -------------------------------------------------------------------------------

class Contacts:
    """The contacts of each account (``ws.contacts``); every call names the account."""

    def __init__(self, ws):
        self.ws = ws

    def add(self, account, phone: str | None = None, *, name: str | None = None,
            language: str | None = None, timezone: str | None = None,
            attributes: dict | str | None = None, wa_id: str | None = None,
            user_id: str | None = None) -> dict:
        """Add a contact to ``account`` by number (any written form; national forms in the
        account's region), or by wa_id / user_id alone. Returns the contact.

        Raises InvalidPhoneNumber, InvalidValue, or Conflict when the account already has
        this person (find it with ``get``).
        """
        values: dict[str, object] = {
            "name": (str(name).strip() or None) if name is not None else None,
            "language": check_language(language),
            "timezone": check_timezone(timezone) if timezone else None,
            "attributes": _dumped(check_attributes(attributes)),
            "user_id": (str(user_id).strip() or None) if user_id is not None else None,
        }
        with self.ws.transaction() as con:
            acc = get_account(con, account)
            if phone is not None:
                number = parse_contact_phone(phone, default_region(acc))
                if wa_id is not None and str(wa_id).strip() != number.wa_id:
                    raise InvalidValue(f"wa_id {wa_id!r} is not the number {number.e164}.",
                                       input=wa_id)
                values.update(phone_e164=number.e164, wa_id=number.wa_id)
            elif wa_id is not None and str(wa_id).strip():
                number = phones.parse("+" + str(wa_id).strip().lstrip("+"), None)
                values.update(phone_e164=number.e164, wa_id=number.wa_id)
            elif not values["user_id"]:
                raise InvalidValue("A contact needs a phone number, a wa_id or a user_id.")
            clash = first_contact(con, "account_id = ? AND (wa_id = ? OR user_id = ?)",
                         [acc["account_id"], values.get("wa_id"), values["user_id"]])
            if clash:
                raise Conflict(
                    f"Account {acc['phone_e164']} already has this contact (contact_id "
                    f"{clash['contact_id']}). Change that contact instead of adding another.", input=phone or wa_id
                    or user_id, contact_id=clash["contact_id"])
            values.update(contact_id=store.next_id(con, "contacts", "contact_id"),
                          account_id=acc["account_id"], created_at=datetime.now(UTC))
            values = {k: v for k, v in values.items() if v is not None}
            con.execute(f"INSERT INTO contacts ({', '.join(values)}) "
                        f"VALUES ({', '.join('?' for _ in values)})", list(values.values()))
            return _stored(con, values["contact_id"])

    def get(self, account, ref) -> dict:
        """The contact of ``account`` named by contact_id, any form of its number, wa_id or
        user_id; NotFound if the account has none (other accounts are never searched)."""
        with self.ws.connect(read_only=True) as con:
            return get_contact(con, get_account(con, account), ref)

    def find(self, account, ref) -> dict | None:
        """Like get, but None when there is no such contact (or ``ref`` is no number)."""
        with self.ws.connect(read_only=True) as con:
            return find_contact(con, get_account(con, account), ref)

    def update(self, account, ref, **fields) -> dict:
        """Change name, language, timezone, phone, user_id or attributes; returns the contact.

        ``attributes`` are merged into the stored ones (a key set to None is removed);
        ``replace_attributes=True`` replaces them instead. None clears other fields.
        """
        replace = fields.pop("replace_attributes", False)
        allowed = {"name", "language", "timezone", "attributes", "phone", "user_id"}
        unknown = set(fields) - allowed
        if unknown:
            raise InvalidValue(f"Cannot set {sorted(unknown)} on a contact; settable: "
                               f"{', '.join(sorted(allowed))}.", input=sorted(unknown))
        with self.ws.transaction() as con:
            acc = get_account(con, account)
            contact = get_contact(con, acc, ref)
            values = {}
            if "name" in fields:
                values["name"] = (str(fields["name"]).strip() or None) if fields["name"] else None
            if "language" in fields:
                values["language"] = check_language(fields["language"])
            if "timezone" in fields:
                tz = fields["timezone"]
                values["timezone"] = check_timezone(tz) if tz else None
            if "user_id" in fields:
                uid = fields["user_id"]
                values["user_id"] = (str(uid).strip() or None) if uid is not None else None
            if "phone" in fields:
                number = parse_contact_phone(fields["phone"], default_region(acc))
                other = first_contact(con, "account_id = ? AND wa_id = ? AND contact_id <> ?",
                             [acc["account_id"], number.wa_id, contact["contact_id"]])
                if other:
                    raise Conflict(f"Another contact of this account has {number.e164}.",
                                   input=fields["phone"])
                values.update(phone_e164=number.e164, wa_id=number.wa_id)
            if "attributes" in fields:
                new = check_attributes(fields["attributes"]) or {}
                merged = new if replace else {**(contact["attributes"] or {}), **new}
                merged = {k: v for k, v in merged.items() if v is not None}
                values["attributes"] = dump_attributes(merged) if merged else None
            if values:
                con.execute(f"UPDATE contacts SET {', '.join(f'{k} = ?' for k in values)} "
                            "WHERE contact_id = ?", [*values.values(), contact["contact_id"]])
            return _stored(con, contact["contact_id"])

    def search(self, account, query: str | None = None, *, any_of=None, all_of=None,
               none_of=None, language=None, attributes=None, limit: int = 50,
               offset: int = 0) -> ContactPage:
        """One page of the contacts of ``account`` that match: ``query`` is a name (part,
        any case) or a number in any written form or three or more of its digits; the label
        filters are any of / all of / none of (names or ids), as in ``labels.assign``.

        Returns a ContactPage: ``rows`` (contact_id, phone_e164, name, language, timezone,
        marketing consent, labels), ``total`` matches, ``offset``, ``limit``. Ordered by
        name, so paging is stable.
        """
        from .labels import contact_filter

        limit, offset = check_page(limit, offset)
        flt = {"any_of": any_of, "all_of": all_of, "none_of": none_of, "language": language,
               "attributes": attributes, "query": query}
        with self.ws.connect(read_only=True) as con:
            acc = get_account(con, account)
            where, params = contact_filter(con, acc, flt)
            return search_page(con, where, params, limit, offset)

    def list(self, account) -> pd.DataFrame:
        """The contacts of ``account`` with their current marketing consent."""
        with self.ws.connect(read_only=True) as con:
            aid = get_account(con, account)["account_id"]
            return con.execute("""
                SELECT c.contact_id, c.phone_e164, c.wa_id, c.user_id, c.name, c.language,
                       c.timezone, c.attributes,
                       m.state AS marketing, s.state AS service, c.created_at
                FROM contacts c
                LEFT JOIN current_consent m ON m.contact_id = c.contact_id AND m.purpose = 'marketing'
                LEFT JOIN current_consent s ON s.contact_id = c.contact_id AND s.purpose = 'service'
                WHERE c.account_id = ?
                ORDER BY c.contact_id""", [aid]).df()

    def ensure(self, account, frame: pd.DataFrame) -> pd.Series:
        """contact_ids for a frame of (wa_id, user_id, name), creating missing contacts."""
        with self.ws.transaction() as con:
            return ensure_contacts(con, get_account(con, account)["account_id"], frame)
