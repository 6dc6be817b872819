"""Labels: coloured tags on contacts and chats, per account (``ws.labels``).

As in WhatsApp Business: each account has its own labels (up to ``accounts.max_labels``,
20 by default), names unique per account regardless of case, colours from a palette of
20. Labels are assigned to contacts and chats in bulk, by a list of contacts (any written
form of their number, wa_id, user_id or contact_id) or by a filter (other labels,
language, attributes); every bulk path is one set-based statement. A label and what it is
assigned to always belong to the same account: contacts and chats are only ever looked
up inside the label's account.

Automated messages name their scope labels by name, so renaming, merging and deleting a
label also updates ``automations.scope_labels``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import duckdb
import pandas as pd

from .. import store
from ..errors import Conflict, InvalidPhoneNumber, InvalidValue, LimitExceeded, NotFound
from . import phones
from .accounts import default_region, get_account
from .contact_search import query_predicate

# WhatsApp's 20 label colours; colour number n is PALETTE[n - 1] (the app counts 0..19).
PALETTE = (
    "#ff9485", "#64c4ff", "#ffd429", "#dfaef0", "#99b6c1",
    "#55ccb3", "#ff9dff", "#d3a91d", "#6d7cce", "#d7e752",
    "#00d0e2", "#ffc5c7", "#93ceac", "#f74848", "#00a0f2",
    "#83e422", "#ffaf04", "#b5ebff", "#9ba6ff", "#9368cf",
)
MAX_NAME_LENGTH = 100
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ATTRIBUTE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

CONTACT_FILTER_KEYS = ("any_of", "all_of", "none_of", "language", "attributes", "query")
CHAT_FILTER_KEYS = ("any_of", "all_of", "none_of")


# --- checks (pure) ------------------------------------------------------------------------------

def check_name(name) -> str:
    """A label name: any text (quotes, emoji, SQL-looking words are fine), trimmed,
    1..100 characters, no line breaks or control characters."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidValue("A label needs a name, e.g. 'VIP' or 'Neukunde'.", input=name)
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidValue(f"The label name is {len(name)} characters long; at most "
                           f"{MAX_NAME_LENGTH} are allowed. Shorten it.", input=name)
    if _CONTROL.search(name):
        raise InvalidValue(f"The label name {name!r} contains a line break or control "
                           "character; use a single line of text.", input=name)
    return name


def check_color(color) -> int:
    """A colour number 1..20, or one of PALETTE's hex codes."""
    if isinstance(color, str):
        text = color.strip().lower()
        if text in PALETTE:
            return PALETTE.index(text) + 1
        if text.isdigit():
            color = int(text)
    if isinstance(color, int) and not isinstance(color, bool) and 1 <= color <= len(PALETTE):
        return color
    raise InvalidValue(f"{color!r} is not a label colour. Use a number from 1 to {len(PALETTE)} "
                       "(see bizchat.people.labels.PALETTE).", input=color)


def _names(values) -> list:
    if values is None:
        return []
    if isinstance(values, str | int):
        return [values]
    return list(values)


# --- lookups inside a caller's transaction --------------------------------------------------------

def _rows(con, sql: str, params: list) -> list[dict]:
    return store.rows(con.execute(sql, params))


def _find_label(con, account_id: int, ref) -> dict | None:
    if isinstance(ref, Mapping) and "label_id" in ref:
        ref = ref["label_id"]
    param: int | str
    if isinstance(ref, int) and not isinstance(ref, bool):
        where, param = "label_id = ?", ref
    elif isinstance(ref, str) and ref.strip():
        where, param = "lower(name) = lower(?)", ref.strip()
    else:
        return None
    found = _rows(con, "SELECT label_id, account_id, name, color, created_at FROM labels "
                       f"WHERE account_id = ? AND {where}", [account_id, param])
    return found[0] if found else None


def _label(con, account: dict, ref) -> dict:
    found = _find_label(con, account["account_id"], ref)
    if found is None:
        names = [r["name"] for r in _rows(con, "SELECT name FROM labels WHERE account_id = ? "
                                               "ORDER BY name", [account["account_id"]])]
        raise NotFound(
            f"Account {account['phone_e164']} has no label {ref!r}. Its labels: "
            f"{', '.join(names) or 'none yet'}. Create one with "
            f"`bizchat labels create NAME --account {account['phone_e164']}`.", input=ref)
    return found


def label_ids(con, account: dict, refs) -> list[int]:
    """The label_ids for label names (any case) or ids of ``account``; NotFound otherwise."""
    return [_label(con, account, ref)["label_id"] for ref in _names(refs)]


def _check_unique(con, account: dict, name: str, except_id: int | None = None) -> None:
    clash = _rows(con, "SELECT label_id, name FROM labels WHERE account_id = ? "
                       "AND lower(name) = lower(?) AND label_id IS DISTINCT FROM ?",
                  [account["account_id"], name, except_id])
    if clash:
        raise Conflict(
            f"Account {account['phone_e164']} already has a label {clash[0]['name']!r} "
            f"(names are unique regardless of case). Pick another name, or merge into it.",
            input=name, label_id=clash[0]["label_id"])


def _rename_in_scopes(con, account_id: int, old: str, new: str | None) -> None:
    """Keep automations' scope_labels (names) in step: rename, or drop when ``new`` is None."""
    con.execute("""
        UPDATE automations SET scope_labels = list_distinct(list_filter(
            list_transform(scope_labels,
                           lambda x: CASE WHEN lower(x) = lower(?) THEN ? ELSE x END),
            lambda x: x IS NOT NULL))
        WHERE account_id = ? AND list_contains(list_transform(scope_labels, lambda x: lower(x)),
                                               lower(?))""",
                [old, new, account_id, old])


# --- filters: fixed SQL fragments, values only as parameters ---------------------------------------

def _label_predicates(con, account: dict, flt: Mapping, table: str, key: str,
                      alias: str) -> tuple[list[str], list]:
    """any_of / all_of / none_of over ``table`` (contact_labels or chat_labels).

    None or an empty list means "no condition", so a widget's empty selection filters
    nothing.
    """
    clauses: list[str] = []
    params: list[object] = []
    any_of = label_ids(con, account, flt.get("any_of"))
    all_of = sorted(set(label_ids(con, account, flt.get("all_of"))))
    none_of = label_ids(con, account, flt.get("none_of"))
    if any_of:
        clauses.append(f"EXISTS (SELECT 1 FROM {table} x WHERE x.{key} = {alias}.{key} "
                       "AND list_contains(?, x.label_id))")
        params.append(any_of)
    if all_of:
        clauses.append(f"(SELECT count(DISTINCT x.label_id) FROM {table} x WHERE x.{key} = "
                       f"{alias}.{key} AND list_contains(?, x.label_id)) = ?")
        params += [all_of, len(all_of)]
    if none_of:
        clauses.append(f"NOT EXISTS (SELECT 1 FROM {table} x WHERE x.{key} = {alias}.{key} "
                       "AND list_contains(?, x.label_id))")
        params.append(none_of)
    return clauses, params


def _check_keys(flt: Mapping, allowed: tuple[str, ...]) -> None:
    unknown = set(flt) - set(allowed)
    if unknown:
        raise InvalidValue(f"Unknown filter key(s) {sorted(unknown)}; use {', '.join(allowed)}.",
                           input=sorted(unknown))


def contact_filter(con, account: dict, flt: Mapping | None) -> tuple[str, list]:
    """A WHERE condition on ``contacts c`` of ``account`` for a filter dict.

    Keys: any_of / all_of / none_of (label names or ids), language (a tag or a list;
    ``de`` also matches ``de-AT``), attributes (``{"city": "Graz"}``; a list of values
    matches any of them; compared as text), query (a name or number, as the contact
    finder reads it: see ``contact_search``).
    """
    flt = dict(flt or {})
    _check_keys(flt, CONTACT_FILTER_KEYS)
    clauses, params = ["c.account_id = ?"], [account["account_id"]]
    more, more_params = _label_predicates(con, account, flt, "contact_labels", "contact_id", "c")
    clauses += more
    params += more_params
    languages = [str(x).strip().replace("_", "-").lower() for x in _names(flt.get("language"))]
    if languages:
        clauses.append("(list_contains(?, lower(c.language)) OR "
                       "list_contains(?, lower(split_part(c.language, '-', 1))))")
        params += [languages, languages]
    attributes = flt.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise InvalidValue(f"attributes must be a dict such as {{'city': 'Graz'}}, got "
                           f"{attributes!r}.", input=attributes)
    for name, wanted in attributes.items():
        if not (isinstance(name, str) and _ATTRIBUTE.fullmatch(name)):
            raise InvalidValue(f"{name!r} is not an attribute name (letters, digits, _).",
                               input=name)
        values = [str(v).lower() if isinstance(v, bool) else str(v) for v in _names(wanted)]
        clauses.append("list_contains(?, json_extract_string(c.attributes, ?))")
        params += [values, "$." + name]
    if flt.get("query"):
        where, more_params = query_predicate(account, flt["query"])
        clauses.append(where)
        params += more_params
    return " AND ".join(clauses), params


def chat_filter(con, account: dict, flt: Mapping | None) -> tuple[str, list]:
    """A WHERE condition on ``chats h`` of ``account``: any_of / all_of / none_of chat labels."""
    flt = dict(flt or {})
    _check_keys(flt, CHAT_FILTER_KEYS)
    clauses, params = _label_predicates(con, account, flt, "chat_labels", "chat_id", "h")
    return " AND ".join(["h.account_id = ?", *clauses]), [account["account_id"], *params]


# --- resolving lists of contacts and chats (set-based) ---------------------------------------------

def _ref_frame(account: dict, refs: Iterable) -> pd.DataFrame:
    """One row per reference: its position, and the id, E.164 or text to match it by."""
    region = default_region(account)
    rows = []
    for i, ref in enumerate(refs):
        row = {"i": i, "ref": str(ref), "id": None, "e164": None, "text": None}
        if isinstance(ref, int) and not isinstance(ref, bool):
            row["id"] = ref
        elif isinstance(ref, str) and ref.strip():
            row["text"] = ref.strip()
            try:
                row["e164"] = phones.normalize(ref, region)
            except InvalidPhoneNumber:
                # As in contacts: an all-digit text that is no number is a contact_id (CLI).
                if ref.strip().isdigit() and len(ref.strip()) < 19:
                    row["id"] = int(ref.strip())
        else:
            raise InvalidValue(f"{ref!r} is neither a phone number nor a contact id.", input=ref)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["i", "ref", "id", "e164", "text"])
    return frame.astype({"i": "int64", "id": "Int64", "ref": object, "e164": object,
                         "text": object})


def _resolve(con, account: dict, refs, *, chats: bool) -> pd.DataFrame:
    """The contact_ids (or chat_ids) of ``refs`` in ``account``; NotFound names the misses.

    Ints are contact ids (chat ids when ``chats``); text is any form of the number, a
    wa_id or a user_id, and for chats means that contact's chats.
    """
    frame = _ref_frame(account, _names(refs))
    if frame.empty:
        return pd.DataFrame({"id": pd.Series([], dtype="int64")})
    con.register("_label_refs", frame)
    try:
        by_id = ("SELECT r.i, h.chat_id AS id FROM _label_refs r JOIN chats h "
                 "ON h.chat_id = r.id WHERE h.account_id = ?" if chats else
                 "SELECT r.i, c.contact_id AS id FROM _label_refs r JOIN contacts c "
                 "ON c.contact_id = r.id WHERE c.account_id = ?")
        people = """
            SELECT r.i, c.contact_id FROM _label_refs r JOIN contacts c ON c.phone_e164 = r.e164
            WHERE c.account_id = ?
            UNION ALL
            SELECT r.i, c.contact_id FROM _label_refs r JOIN contacts c ON c.wa_id = r.text
            WHERE c.account_id = ?
            UNION ALL
            SELECT r.i, c.contact_id FROM _label_refs r JOIN contacts c ON c.user_id = r.text
            WHERE c.account_id = ?"""
        by_person = (f"SELECT p.i, h.chat_id AS id FROM ({people}) p JOIN chats h "
                     "ON h.contact_id = p.contact_id WHERE h.account_id = ?" if chats else
                     f"SELECT p.i, p.contact_id AS id FROM ({people}) p")
        aid = account["account_id"]
        params = [aid, aid, aid, aid] + ([aid] if chats else [])
        hits = con.execute(f"""
            WITH hits AS ({by_id} UNION ALL {by_person})
            SELECT r.i, r.ref, h.id FROM _label_refs r LEFT JOIN hits h USING (i) ORDER BY r.i""",
                           params).df()
    finally:
        con.unregister("_label_refs")
    missing = hits.loc[hits["id"].isna(), "ref"].drop_duplicates().tolist()
    if missing:
        what = "chat" if chats else "contact"
        shown = ", ".join(repr(m) for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise NotFound(
            f"Account {account['phone_e164']} has no {what} for {len(missing)} of the given "
            f"references: {shown}. Nothing was changed; check the numbers (contacts of other "
            "accounts are not visible here).", input=missing)
    return pd.DataFrame({"id": hits["id"].astype("int64").drop_duplicates().to_numpy()})


# --- contacts listed in a file -----------------------------------------------------------------

CSV_COLUMNS = ("phone", "phone_e164", "number", "wa_id", "contact", "contact_id")


def csv_references(path) -> list[str]:
    """The contact references of a CSV file (see ``Labels.assign_from_csv``), blanks
    skipped; InvalidValue for a missing, unreadable or empty file."""
    import csv
    from pathlib import Path

    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise NotFound(f"There is no file {str(file)!r}. Give the path of a CSV file with a "
                       "phone column.", input=str(file)) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = "it is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc.strerror
        raise InvalidValue(f"Cannot read {str(file)!r}: {reason}. Save it as a UTF-8 CSV "
                           "file with a phone column.", input=str(file)) from None
    rows = list(csv.reader(text.splitlines(), dialect=_dialect(text)))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise InvalidValue(f"{str(file)!r} is empty. It needs a phone column with one "
                           "contact per row.", input=str(file))
    header = [h.strip().lower() for h in rows[0]]
    column = next((header.index(c) for c in CSV_COLUMNS if c in header), None)
    body = rows[1:] if column is not None else rows
    column = column or 0
    refs = [r[column].strip() for r in body if len(r) > column and r[column].strip()]
    if not refs:
        raise InvalidValue(f"{str(file)!r} lists no contacts in its column "
                           f"{rows[0][column]!r}.", input=str(file))
    return refs


def _dialect(text: str):
    import csv

    try:
        return csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        return csv.excel


# --- the service --------------------------------------------------------------------------------

class Labels:
    """Labels of each account (``ws.labels``); every call names the account."""

    def __init__(self, ws):
        self.ws = ws

    # -- reading

    def list(self, account) -> pd.DataFrame:
        """label_id, name, color, hex, contacts and chats carrying it, created_at."""
        with self.ws.connect(read_only=True) as con:
            acc = get_account(con, account)
            return con.execute("""
                SELECT l.label_id, l.name, l.color, list_extract(?::VARCHAR[], l.color) AS hex,
                       (SELECT count(*) FROM contact_labels x WHERE x.label_id = l.label_id)
                           AS contacts,
                       (SELECT count(*) FROM chat_labels x WHERE x.label_id = l.label_id)
                           AS chats,
                       l.created_at
                FROM labels l WHERE l.account_id = ? ORDER BY l.label_id""",
                               [list(PALETTE), acc["account_id"]]).df()

    def get(self, account, label) -> dict:
        """One label by name (any case) or label_id, with its hex colour."""
        with self.ws.connect(read_only=True) as con:
            found = _label(con, get_account(con, account), label)
        return {**found, "hex": PALETTE[found["color"] - 1]}

    def contacts(self, account, *, any_of=None, all_of=None, none_of=None, language=None,
                 attributes=None) -> pd.DataFrame:
        """Contacts of ``account`` by their labels (any of / all of / none of), language and
        attributes, with the names of all their labels (sorted)."""
        flt = {"any_of": any_of, "all_of": all_of, "none_of": none_of, "language": language,
               "attributes": attributes}
        with self.ws.connect(read_only=True) as con:
            acc = get_account(con, account)
            where, params = contact_filter(con, acc, flt)
            return con.execute(f"""
                SELECT c.contact_id, c.phone_e164, c.name, c.language,
                       coalesce((SELECT list(l.name ORDER BY l.name) FROM contact_labels x
                                 JOIN labels l USING (label_id)
                                 WHERE x.contact_id = c.contact_id), []) AS labels
                FROM contacts c WHERE {where} ORDER BY c.contact_id""", params).df()

    def chats(self, account, *, any_of=None, all_of=None, none_of=None) -> pd.DataFrame:
        """Chats of ``account`` by their labels, with the contact and all chat label names."""
        flt = {"any_of": any_of, "all_of": all_of, "none_of": none_of}
        with self.ws.connect(read_only=True) as con:
            acc = get_account(con, account)
            where, params = chat_filter(con, acc, flt)
            return con.execute(f"""
                SELECT h.chat_id, h.contact_id, c.phone_e164, c.name, h.last_inbound_at,
                       coalesce((SELECT list(l.name ORDER BY l.name) FROM chat_labels x
                                 JOIN labels l USING (label_id)
                                 WHERE x.chat_id = h.chat_id), []) AS labels
                FROM chats h LEFT JOIN contacts c ON c.contact_id = h.contact_id
                WHERE {where} ORDER BY h.chat_id""", params).df()

    # -- writing labels

    def create(self, account, name: str, *, color=None) -> dict:
        """A new label; ``color`` 1..20 (default: the first colour this account does not use
        yet). Conflict if the name exists in any case, LimitExceeded beyond max_labels."""
        name = check_name(name)
        color = None if color is None else check_color(color)
        with self.ws.transaction() as con:
            acc = get_account(con, account)
            _check_unique(con, acc, name)
            used = [r["color"] for r in _rows(con, "SELECT color FROM labels WHERE account_id = ?",
                                              [acc["account_id"]])]
            if len(used) >= acc["max_labels"]:
                raise LimitExceeded(
                    f"Account {acc['phone_e164']} already has {len(used)} labels, the most it "
                    f"may have ({acc['max_labels']}). Delete or merge labels first, or raise the "
                    "limit (accounts update max_labels=...).",
                    limit=acc["max_labels"])
            if color is None:
                free = [n for n in range(1, len(PALETTE) + 1) if n not in used]
                color = free[0] if free else len(used) % len(PALETTE) + 1
            label_id = store.next_id(con, "labels", "label_id")
            con.execute("INSERT INTO labels (label_id, account_id, name, color, created_at) "
                        "VALUES (?, ?, ?, ?, ?)",
                        [label_id, acc["account_id"], name, color, datetime.now(UTC)])
            found = _label(con, acc, label_id)
        return {**found, "hex": PALETTE[color - 1]}

    def rename(self, account, label, new_name: str) -> dict:
        """Rename a label (a change of case only is fine); automations follow."""
        new_name = check_name(new_name)
        with self.ws.transaction() as con:
            acc = get_account(con, account)
            found = _label(con, acc, label)
            _check_unique(con, acc, new_name, except_id=found["label_id"])
            con.execute("UPDATE labels SET name = ? WHERE label_id = ?",
                        [new_name, found["label_id"]])
            _rename_in_scopes(con, acc["account_id"], found["name"], new_name)
            found = _label(con, acc, found["label_id"])
        return {**found, "hex": PALETTE[found["color"] - 1]}

    def recolor(self, account, label, color) -> dict:
        """Give a label another colour (1..20 or a PALETTE hex code)."""
        color = check_color(color)
        with self.ws.transaction() as con:
            acc = get_account(con, account)
            found = _label(con, acc, label)
            con.execute("UPDATE labels SET color = ? WHERE label_id = ?",
                        [color, found["label_id"]])
        return {**found, "color": color, "hex": PALETTE[color - 1]}

    def merge(self, account, source, into) -> dict:
        """Move every assignment of ``source`` to ``into`` (no duplicates), then delete
        ``source``. Returns ``into`` with the number of contacts and chats moved."""
        with self.ws.transaction() as con:
            acc = get_account(con, account)
            src, dst = _label(con, acc, source), _label(con, acc, into)
            if src["label_id"] == dst["label_id"]:
                raise InvalidValue(f"Cannot merge the label {src['name']!r} into itself.",
                                   input=source)
            moved = {}
            for table, key in (("contact_labels", "contact_id"), ("chat_labels", "chat_id")):
                moved[table] = con.execute(f"""
                    INSERT INTO {table} ({key}, label_id, assigned_at)
                    SELECT s.{key}, ?, s.assigned_at FROM {table} s
                    WHERE s.label_id = ? AND NOT EXISTS (
                        SELECT 1 FROM {table} x WHERE x.{key} = s.{key} AND x.label_id = ?)""",
                                           [dst["label_id"], src["label_id"], dst["label_id"]]
                                           ).fetchall()[0][0]
                con.execute(f"DELETE FROM {table} WHERE label_id = ?", [src["label_id"]])
            con.execute("DELETE FROM labels WHERE label_id = ?", [src["label_id"]])
            _rename_in_scopes(con, acc["account_id"], src["name"], dst["name"])
        return {**dst, "hex": PALETTE[dst["color"] - 1],
                "contacts_moved": moved["contact_labels"], "chats_moved": moved["chat_labels"]}

    def delete(self, account, label) -> dict:
        """Delete a label with all its assignments; automations stop naming it.

        Returns the deleted label with the number of contacts and chats it was on."""
        with self.ws.transaction() as con:
            acc = get_account(con, account)
            found = _label(con, acc, label)
            removed = {}
            for table in ("contact_labels", "chat_labels"):
                removed[table] = con.execute(f"DELETE FROM {table} WHERE label_id = ?",
                                             [found["label_id"]]).fetchall()[0][0]
            con.execute("DELETE FROM labels WHERE label_id = ?", [found["label_id"]])
            _rename_in_scopes(con, acc["account_id"], found["name"], None)
        return {**found, "contacts": removed["contact_labels"], "chats": removed["chat_labels"]}

    # -- assignments

    def assign(self, account, label, contacts=None, *, chats=None) -> dict:
        """Put ``label`` on contacts and/or chats; returns how many were newly labelled.

        ``contacts`` / ``chats``: a list of references (numbers in any written form, wa_ids,
        user_ids, contact ids; for chats, chat ids or a contact's reference meaning its
        chats), or a filter dict (see ``contact_filter`` / ``chat_filter``). An unknown
        reference raises NotFound and nothing is changed; already labelled ones are kept.
        """
        return self._change(account, label, contacts, chats, add=True)

    def unassign(self, account, label, contacts=None, *, chats=None) -> dict:
        """Take ``label`` off contacts and/or chats (same arguments as ``assign``)."""
        return self._change(account, label, contacts, chats, add=False)

    def assign_from_csv(self, account, label, path) -> dict:
        """Put ``label`` on the contacts a CSV file lists, in one transaction.

        The contacts are read from the column ``phone`` (or ``phone_e164``, ``number``,
        ``wa_id``, ``contact``, ``contact_id``; else the first column), one per row, any
        written form. A reference the account does not know raises NotFound naming it,
        and nothing is changed. Returns the counts as ``assign`` does, plus ``rows``.
        """
        refs = csv_references(path)
        result = self._change(account, label, refs, None, add=True)
        return {**result, "rows": len(refs)}

    def _change(self, account, label, contacts, chats, *, add: bool) -> dict:
        if contacts is None and chats is None:
            raise InvalidValue("Name the contacts or chats to label: a list of numbers / ids, "
                               "or a filter such as {'any_of': ['VIP']}.")
        now = datetime.now(UTC)
        counts = {"contacts": 0, "chats": 0}
        with self.ws.transaction() as con:
            acc = get_account(con, account)
            found = _label(con, acc, label)
            for target, refs in (("contacts", contacts), ("chats", chats)):
                if refs is None:
                    continue
                counts[target] = _apply(con, acc, found["label_id"], refs, now,
                                        chats=target == "chats", add=add)
        return {"label": found["name"], "label_id": found["label_id"], **counts}


def _apply(con: duckdb.DuckDBPyConnection, account: dict, label_id: int, refs, now: datetime,
           *, chats: bool, add: bool) -> int:
    """One set-based INSERT (or DELETE) of ``label_id`` for the contacts/chats ``refs`` name."""
    table, key = ("chat_labels", "chat_id") if chats else ("contact_labels", "contact_id")
    if isinstance(refs, Mapping):
        where, params = (chat_filter if chats else contact_filter)(con, account, refs)
        source = (f"SELECT h.chat_id AS id FROM chats h WHERE {where}" if chats else
                  f"SELECT c.contact_id AS id FROM contacts c WHERE {where}")
        registered = None
    else:
        ids = _resolve(con, account, refs, chats=chats)
        con.register("_label_targets", ids)
        registered = "_label_targets"
        source, params = "SELECT id FROM _label_targets", []
    try:
        if add:
            sql = f"""
                INSERT INTO {table} ({key}, label_id, assigned_at)
                SELECT DISTINCT t.id, ?, ? FROM ({source}) t
                WHERE NOT EXISTS (SELECT 1 FROM {table} x WHERE x.{key} = t.id
                                  AND x.label_id = ?)"""
            cur = con.execute(sql, [label_id, now, *params, label_id])
        else:
            sql = f"DELETE FROM {table} WHERE label_id = ? AND {key} IN ({source})"
            cur = con.execute(sql, [label_id, *params])
        return cur.fetchall()[0][0]
    finally:
        if registered:
            con.unregister(registered)


__all__ = ["CHAT_FILTER_KEYS", "CONTACT_FILTER_KEYS", "Labels", "MAX_NAME_LENGTH", "PALETTE",
           "chat_filter", "check_color", "check_name", "contact_filter", "label_ids"]
