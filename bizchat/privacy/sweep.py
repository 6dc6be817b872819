"""The last pass of erasure: find the person's number and name in free text anywhere.

The structured part of erasure knows where a person's data lives (their contact, chats,
messages ...). People also turn up in other rows: another customer writes "call Anna on
0170 1234567", a webhook batch quotes them, a report run got their number as a
parameter. This pass searches every text and JSON column for every written form of the
person's identifiers and replaces each with ``[erased]``.

Scope: tables that belong to an account (an ``account_id`` column, or a broadcast of one)
are searched in the accounts the person is erased from, for all their identifiers. Tables
that belong to no account (audit_log, report_runs, message_events ...) are searched for
the identifiers no remaining contact uses: if the same person stays a customer of another
account, their number is theirs there. A name is not replaced in the rows of another
contact who has the same name, nor in the business's own texts (templates, labels ...).

DuckDB finds candidate rows with a loose pattern (``regexp_matches``); Python then replaces
whole matches only (digits are not cut out of longer numbers, names are whole words) and
the changed cells are written back by rowid in one UPDATE per column.
"""

from __future__ import annotations

import json

import duckdb
import pandas as pd

from .payloads import Redaction, scrub
from .subjects import Identifiers

SKIP_TABLES = {"schema_migrations", "settings", "accounts", "subject_keys",
               "privacy_tombstones", "retention_policies"}
# In contacts only the free attributes of *other* contacts can mention someone.
ONLY_COLUMNS = {"contacts": {"attributes"}}
BY_BROADCAST = {"broadcast_recipients", "outbox_log"}
# The business's own texts: a customer called "Krimi" must not edit the templates.
NO_NAMES = {"templates", "labels", "quick_replies", "automations", "broadcasts"}


def text_columns(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str]]]:
    """table -> [(column, type)] for the VARCHAR and JSON columns of every base table."""
    rows = con.execute("""
        SELECT c.table_name, c.column_name, c.data_type
        FROM information_schema.columns c
        JOIN information_schema.tables t
          ON t.table_schema = c.table_schema AND t.table_name = c.table_name
        WHERE c.table_schema = 'main' AND t.table_type = 'BASE TABLE'
          AND c.data_type IN ('VARCHAR', 'JSON')
        ORDER BY c.table_name, c.ordinal_position""").fetchall()
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, dtype in rows:
        if table in SKIP_TABLES or (table in ONLY_COLUMNS and column not in ONLY_COLUMNS[table]):
            continue
        out.setdefault(table, []).append((column, dtype))
    return out


def _has_column(con, table: str, column: str) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'main' "
        "AND table_name = ? AND column_name = ?", [table, column]).fetchall()[0][0])


def _replace(value: str, dtype: str, redaction: Redaction) -> str:
    if dtype == "JSON":
        try:
            return json.dumps(scrub(json.loads(value), redaction), ensure_ascii=False,
                              separators=(",", ":"))
        except ValueError:
            pass
    return redaction.text(value)


def _pass(con, table: str, columns, where: str, params: list, ids: Identifiers) -> int:
    pattern = ids.pattern()
    if pattern is None:
        return 0
    redaction = Redaction(ids=set(), pattern=pattern)
    changed = 0
    for column, dtype in columns:
        rows: dict = {}
        for loose in ids.prefilters():
            rows.update(con.execute(
                f'SELECT rowid, CAST("{column}" AS VARCHAR) FROM "{table}" '
                f'WHERE "{column}" IS NOT NULL AND ({where}) '
                f'AND regexp_matches(CAST("{column}" AS VARCHAR), ?)', [*params, loose]).fetchall())
        updates = [(rid, new) for rid, old in rows.items()
                   if (new := _replace(old, dtype, redaction)) != old]
        if not updates:
            continue
        frame = pd.DataFrame(updates, columns=["rid", "new"]).astype({"new": object})
        con.register("_sweep", frame)
        try:
            con.execute(f'UPDATE "{table}" SET "{column}" = CAST(s.new AS {dtype}) '
                        f'FROM _sweep AS s WHERE "{table}".rowid = s.rid')
        finally:
            con.unregister("_sweep")
        changed += len(updates)
    return changed


def sweep(con: duckdb.DuckDBPyConnection, account_ids: list[int], scoped: Identifiers,
          unscoped: Identifiers) -> dict[str, int]:
    """Replace the identifiers in every text column (see the module docstring); returns
    cells changed per table. Call inside erasure's transaction, after the contacts are gone."""
    counts: dict[str, int] = {}
    names = sorted(n.lower() for n in scoped.names)
    for table, columns in text_columns(con).items():
        if _has_column(con, table, "account_id"):
            where, params, ids = "account_id IS NULL OR list_contains(?::INTEGER[], account_id)", [account_ids], scoped
        elif table in BY_BROADCAST:
            where = ("broadcast_id IN (SELECT broadcast_id FROM broadcasts "
                     "WHERE list_contains(?::INTEGER[], account_id))")
            params, ids = [account_ids], scoped
        else:
            where, params, ids = "true", [], unscoped
        n = _pass(con, table, columns, where, params, ids.only(names=False))
        if ids.names and table not in NO_NAMES:
            name_where, name_params = where, list[object](params)
            if _has_column(con, table, "contact_id"):
                name_where = (f"({where}) AND (contact_id IS NULL OR contact_id NOT IN ("
                              "SELECT contact_id FROM contacts WHERE list_contains(?::VARCHAR[], lower(name))))")
                name_params.append(names)
            n += _pass(con, table, columns, name_where, name_params, ids.only(names=True))
        if n:
            counts[table] = n
    return counts
