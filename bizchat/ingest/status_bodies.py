"""Status-only webhook bodies, parsed in DuckDB instead of Python.

Every message sent comes back as sent, delivered and read webhooks, so most bodies carry
nothing but ``statuses``. Decoding those with ``json.loads`` and walking the dicts costs
many times a plain Arrow insert of the same rows (issue 4). Here a batch's bodies go to
DuckDB as one Arrow column, and ``json_transform`` + ``unnest`` make the receipt rows:
the same values ``payloads.status_row`` gives, the same account resolution. What
happens to the rows afterwards (dedupe, message_status, outbox, 131050) is shared with
the Python path in webhook_ingest.

A body is taken here only when the result is sure to equal the Python path's; every
other body goes to the Python path whole (a body never goes through both):

1. ``json_structure`` (types per path, merged over array elements) fits ``BODY``:
   ``object`` and ``entry`` present, values with ``statuses`` and no ``messages``,
   ``contacts``, ``user_preferences`` or ``errors``, text where text belongs, ``billable``
   true/false. Anything the Python parser would refuse or convert fails the fit, and so
   does JSON that DuckDB reads more leniently than Python (trailing commas, ``inf``);
2. values that a merged structure cannot show: ``object`` is a WhatsApp Business account,
   every status is an object with an id and a timestamp of Unix seconds in range, every
   entry, change and value holds statuses (so every business number is on some row);
3. a status's ``errors`` array goes through ``status_errors`` in Python (errors are rare;
   it keeps the stored JSON text byte-equal); if it refuses one, the body goes to Python.

Known limit: JSON with a key twice in one object (RFC 8259 leaves its meaning open):
Python keeps the last value, DuckDB the first. Meta's bodies never repeat a key, and the
receiver takes only bodies signed with the app secret.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from ..messaging.receipts import STATUSES
from .payloads import MAX_TIMESTAMP, status_errors

UNKNOWN_ACCOUNT_NOTE = "no account for this business number"

# The parts of a body the receipts need, for json_transform (a constant, never input).
SHAPE = json.dumps({"object": "VARCHAR", "entry": [{"changes": [{"value": {
    "metadata": {"phone_number_id": "VARCHAR", "display_phone_number": "VARCHAR"},
    "statuses": [{"id": "VARCHAR", "status": "VARCHAR", "timestamp": "VARCHAR",
                  "recipient_id": "VARCHAR", "recipient_user_id": "VARCHAR",
                  "biz_opaque_callback_data": "VARCHAR", "errors": "JSON",
                  "conversation": {"id": "VARCHAR", "origin": {"type": "VARCHAR"}},
                  "pricing": {"category": "VARCHAR", "pricing_model": "VARCHAR",
                              "billable": "BOOLEAN"}}]}}]}]})

# JSON that DuckDB reads and Python's json module refuses: a comma before a closing
# bracket (found by this regex; matching inside a string too is harmless, that body
# just takes the Python path), and inf/nan literals (Python knows only NaN, Infinity),
# which json_structure shows as DOUBLE, or as JSON where they mix with other types.
# Status bodies hold neither, so a structure naming either type goes to Python.
TRAILING_COMMA = r",\s*[\]}]"
UNSURE_TYPES = ('"DOUBLE"', '"JSON"')

# --- the structure a body must have ---------------------------------------------------
# json_structure names each leaf's type ("VARCHAR", "UBIGINT", "NULL", "JSON" for mixed,
# ...), writes an object as a dict and an array as [element structure], merged over the
# elements. A spec below is a set of allowed leaf types, ANY, or an Obj/Arr.

ANY = None
TEXT = frozenset({"VARCHAR", "NULL"})


@dataclass(frozen=True)
class Obj:
    fields: dict
    required: tuple = ()
    forbidden: tuple = ()
    nullable: bool = True     # may be null (or missing): Python reads it as {}


@dataclass(frozen=True)
class Arr:
    element: object
    nullable: bool = True
    empty: bool = True        # may be [] (json_structure: ["NULL"])


STATUS = Obj({
    "id": frozenset({"VARCHAR"}), "status": TEXT, "timestamp": frozenset({"VARCHAR"}),
    "recipient_id": TEXT, "recipient_user_id": TEXT, "biz_opaque_callback_data": TEXT,
    "conversation": Obj({"id": TEXT, "origin": Obj({"type": TEXT})}),
    "pricing": Obj({"category": TEXT, "pricing_model": TEXT,
                    "billable": frozenset({"BOOLEAN", "NULL"})}),
    "errors": ANY,            # decided by status_errors, row by row
}, required=("id", "timestamp"), nullable=False)
VALUE = Obj({
    "metadata": Obj({"phone_number_id": TEXT, "display_phone_number": TEXT}),
    "statuses": Arr(STATUS, nullable=False, empty=False),
}, required=("statuses",), forbidden=("messages", "contacts", "user_preferences", "errors"))
BODY = Obj({
    "object": frozenset({"VARCHAR"}),
    "entry": Arr(Obj({"changes": Arr(Obj({"value": VALUE}))}), nullable=False),
}, required=("object", "entry"), nullable=False)


def fits(node, spec) -> bool:
    """Whether a json_structure ``node`` fits ``spec``."""
    if spec is ANY:
        return True
    if isinstance(spec, frozenset):
        return isinstance(node, str) and node in spec
    if node == "NULL":
        return spec.nullable
    if isinstance(spec, Arr):
        if not (isinstance(node, list) and len(node) == 1):
            return False
        return spec.empty if node[0] == "NULL" else fits(node[0], spec.element)
    if not isinstance(node, dict) or any(k in node for k in spec.forbidden):
        return False
    if any(k not in node for k in spec.required):
        return False
    return all(fits(node[k], sub) for k, sub in spec.fields.items() if k in node)


def _fits_text(structure: str | None) -> bool:
    if structure is None or any(t in structure for t in UNSURE_TYPES):
        return False                # not JSON to DuckDB, or maybe lenient (see above)
    try:
        return fits(json.loads(structure), BODY)
    except (ValueError, RecursionError):
        return False


# --- taking bodies ---------------------------------------------------------------------

_INT = pa.int32()


@dataclass
class StatusBodies:
    """What the SQL path took from a batch."""

    # payload_id -> account_id (None: no account for its business number) of every body
    # taken; their raw_payloads rows are written
    accounts: dict[str, int | None] = field(default_factory=dict)
    # their receipts for known accounts and statuses: EVENT_SCHEMA's columns plus "_body"
    # (the body's position in the batch), in body order
    events: pa.Table | None = None


def take(con: duckdb.DuckDBPyConnection, bodies: list[tuple[int, str, datetime, str]],
         account_of: Callable[[str | None, str | None], int | None],
         now: datetime) -> StatusBodies:
    """Parse the status-only ones of ``[(position, payload_id, received_at, text)]``.

    ``account_of(phone_number_id, display_phone_number)`` resolves a business number as
    the Python path does. Writes raw_payloads for the bodies taken; call inside the
    batch's transaction. The rest is the caller's (see the module docstring).
    """
    result = StatusBodies()
    if not bodies:
        return result
    texts = [b[3] for b in bodies]
    try:
        for text in texts:
            if not text.isascii():
                text.encode("utf-8")           # e.g. a lone surrogate: Python decides
    except UnicodeError:
        return result
    # A pandas frame, not an Arrow table: DuckDB reads Python strings in place, while
    # copying megabytes of bodies into a fresh Arrow buffer cost up to a fifth of a
    # batch (page faults in a new memory pool), for no gain: the bodies are read here.
    batch = pd.DataFrame({
        "ord": np.array([b[0] for b in bodies], np.int32),
        "payload_id": pd.Series([b[1] for b in bodies], dtype=object),
        "received_at": pd.to_datetime([b[2] for b in bodies], utc=True),
        "body": pd.Series(texts, dtype=object),   # object: pandas' str dtype is Arrow
    })
    registered = ["_sb_in"]
    con.register("_sb_in", batch)
    try:
        taken = _take(con, result, account_of, now, registered, {b[0]: b[1] for b in bodies})
    except BaseException:
        with contextlib.suppress(duckdb.Error):   # the transaction is lost anyway
            _clean(con, registered)
        raise
    _clean(con, registered)
    return taken


def _clean(con, registered: list) -> None:
    con.execute("DROP TABLE IF EXISTS _sb_rows")
    for name in registered:
        con.unregister(name)


def _take(con, result: StatusBodies, account_of, now, registered: list,
          ids: dict) -> StatusBodies:
    # 1 + 2. Which bodies fit, by their structure; few distinct ones per batch.
    shapes = con.execute(f"""
        SELECT ord, CASE WHEN regexp_matches(body, '{TRAILING_COMMA}') THEN NULL
                         ELSE try(json_structure(body)) END
        FROM _sb_in""").fetchall()
    verdict: dict = {}
    for _, structure in shapes:
        if structure not in verdict:
            verdict[structure] = _fits_text(structure)
    taken = [o for o, structure in shapes if verdict[structure]]
    if not taken:
        return result
    # One flat row per status, with where it sits (entry ei of n_e, change ci of n_c,
    # status si) to keep body order and to see bodies with parts that hold no status.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _sb_rows AS
        SELECT ord, received_at, object, n_e, ei, n_c, ci, si, pnid, display,
               st IS NULL AS missing, st.id AS message_id, st.status AS status,
               st.timestamp AS ts,
               coalesce(st.recipient_id, st.recipient_user_id) AS recipient_id,
               st.errors AS errors_json,
               st.conversation.id AS conversation_id,
               st.conversation.origin.type AS conversation_category,
               st.pricing.category AS pricing_category,
               st.pricing.pricing_model AS pricing_model,
               st.pricing.billable AS billable,
               st.biz_opaque_callback_data AS callback_data
        FROM (SELECT ord, received_at, object, n_e, ei, n_c, ci,
                     c.value.metadata.phone_number_id AS pnid,
                     c.value.metadata.display_phone_number AS display,
                     generate_subscripts(c.value.statuses, 1) AS si, unnest(c.value.statuses) AS st
              FROM (SELECT ord, received_at, object, n_e, ei, len(e.changes) AS n_c,
                           generate_subscripts(e.changes, 1) AS ci, unnest(e.changes) AS c
                    FROM (SELECT ord, received_at, d.object AS object, len(d.entry) AS n_e,
                                 generate_subscripts(d.entry, 1) AS ei, unnest(d.entry) AS e
                          FROM (SELECT ord, received_at, json_transform(body, '{SHAPE}') AS d
                                FROM _sb_in WHERE ord IN (SELECT unnest(?::INTEGER[]))))))""",
        [taken])
    # 3. Values a merged structure cannot show; such bodies go to Python: another
    # object, a status that is null or has no id or no usable timestamp, and (so that
    # every business number of a body is on some row) an entry, change or value
    # without statuses. With it, per body: whether it has errors[], its numbers.
    checked = con.execute("""
        SELECT ord, count(*) = any_value(n_e) AND bool_and(whole) AND NOT bool_or(bad),
               bool_or(errs), flatten(list(numbers))
        FROM (SELECT ord, ei, any_value(n_e) AS n_e,
                     count(DISTINCT ci) = any_value(n_c) AS whole,
                     bool_or(object IS DISTINCT FROM 'whatsapp_business_account' OR missing
                             OR message_id IS NULL
                             OR NOT regexp_full_match(coalesce(ts, ''), '[0-9]{1,10}')
                             OR TRY_CAST(ts AS BIGINT) >= ?) AS bad,
                     bool_or(errors_json IS NOT NULL) AS errs,
                     list(DISTINCT [pnid, display]) AS numbers
              FROM _sb_rows GROUP BY ord, ei)
        GROUP BY ord""", [MAX_TIMESTAMP]).fetchall()
    good = {o: numbers for o, ok, _, numbers in checked if ok}
    # 4. errors[] through the Python path's own function.
    keys, fields = [], []
    if any(errs for o, _, errs, _ in checked if o in good):
        for ord_, ei, ci, si, text in con.execute("""
                SELECT ord, ei, ci, si, errors_json FROM _sb_rows
                WHERE errors_json IS NOT NULL""").fetchall():
            if ord_ not in good:
                continue
            try:
                fields.append(status_errors(json.loads(text)))
            except (ValueError, TypeError, AttributeError, RecursionError):
                del good[ord_]
                continue
            keys.append((ord_, ei, ci, si))
    if not good:
        return result
    # Business numbers: few distinct per batch, resolved by the Python path's rule; a
    # body's account is the lowest of its numbers that is ours.
    resolved = {tuple(n): account_of(*n) for numbers in good.values() for n in numbers}
    account = {o: min((resolved[tuple(n)] for n in numbers if resolved[tuple(n)] is not None),
                      default=None) for o, numbers in good.items()}
    registered.append("_sb_acc")
    con.register("_sb_acc", pa.table({
        "pnid": pa.array([n[0] for n in resolved], pa.string()),
        "display": pa.array([n[1] for n in resolved], pa.string()),
        "account_id": pa.array(list(resolved.values()), _INT),
    }))
    if keys:
        registered.append("_sb_errors")
        con.register("_sb_errors", pa.table({
            "ord": pa.array([k[0] for k in keys], _INT),
            "ei": pa.array([k[1] for k in keys], pa.int64()),
            "ci": pa.array([k[2] for k in keys], pa.int64()),
            "si": pa.array([k[3] for k in keys], pa.int64()),
            "error_code": pa.array([f[0] for f in fields], _INT),
            "error_title": pa.array([f[1] for f in fields], pa.string()),
            "errors": pa.array([f[2] for f in fields], pa.string()),
        }))
        errors, join = "e.error_code, e.error_title, e.errors", \
            "LEFT JOIN _sb_errors AS e USING (ord, ei, ci, si)"
    else:
        errors, join = "NULL::INTEGER AS error_code, NULL AS error_title, NULL AS errors", ""
    taken = sorted(good)
    statuses = ", ".join(f"'{s}'" for s in STATUSES)   # module constants, not input
    result.events = con.sql(f"""
        SELECT r.message_id, r.status, to_timestamp(TRY_CAST(r.ts AS BIGINT)) AS "at",
               r.recipient_id, {errors}, r.conversation_id, r.conversation_category,
               r.pricing_category, r.pricing_model, r.billable, r.callback_data,
               r.received_at, r.ord AS _body
        FROM _sb_rows AS r
        JOIN _sb_acc AS a ON a.pnid IS NOT DISTINCT FROM r.pnid
                         AND a.display IS NOT DISTINCT FROM r.display
        {join}
        WHERE r.ord IN (SELECT unnest(?::INTEGER[])) AND a.account_id IS NOT NULL
          AND r.status IN ({statuses})
        ORDER BY r.ord, r.ei, r.ci, r.si""", params=[taken]).to_arrow_table()
    con.execute("""
        INSERT INTO raw_payloads
        SELECT i.payload_id, coalesce(i.received_at, ?), a.account_id,
               CASE WHEN a.account_id IS NULL THEN 'unknown_account' ELSE 'ingested' END,
               CASE WHEN a.account_id IS NULL THEN ? END, i.body
        FROM _sb_in AS i
        JOIN (SELECT unnest(?::INTEGER[]) AS ord, unnest(?::INTEGER[]) AS account_id) AS a
          USING (ord)""",
        [now, UNKNOWN_ACCOUNT_NOTE, taken, [account[o] for o in taken]])
    result.accounts = {ids[o]: account[o] for o in taken}
    return result


__all__ = ["BODY", "SHAPE", "StatusBodies", "UNKNOWN_ACCOUNT_NOTE", "fits", "take"]
