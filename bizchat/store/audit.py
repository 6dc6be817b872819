"""The audit log: an append-only record of what was done to whom, by whom and when.

Exports, erasures, consent changes, imports and broadcasts sent each add a row to
``audit_log`` ("at", actor, action, subject_key, details). ``subject_key`` is the
pseudonymous contact key (see pseudonym.py), never a number or a name, and ``details``
hold counts and internal ids, never message text. There is no update or delete here on
purpose; the only rewrite of old rows is erasure replacing an erased contact's internal
id with its anonymous one (see privacy/erasure.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import duckdb
import pandas as pd

from ..errors import InvalidValue
from . import registered

ACTIONS = {
    "privacy.export": "a subject access / portability export was written",
    "privacy.erase": "a person was erased (Art. 17) or purged by a retention policy",
    "privacy.purge": "retention policies were applied",
    "privacy.retention": "a retention policy was set",
    "privacy.compact": "the workspace file was rewritten to drop deleted values",
    "report.run": "a report notebook was executed",
}


def _json(details) -> str | None:
    if details is None:
        return None
    return json.dumps(details, ensure_ascii=False, default=str, sort_keys=True)


def record(con: duckdb.DuckDBPyConnection, actor: str, action: str, subject_key: str | None = None,
           details: dict | None = None, *, at: datetime | None = None) -> None:
    """Append one audit entry. Call inside the caller's transaction, so the entry lands
    together with the change it records (or not at all)."""
    if not actor or not str(actor).strip():
        raise InvalidValue("An audit entry needs an actor (who did it), e.g. a user name or 'cli'.")
    if not action or not str(action).strip():
        raise InvalidValue("An audit entry needs an action, e.g. privacy.export.")
    con.execute('INSERT INTO audit_log ("at", actor, action, subject_key, details) '
                "VALUES (?, ?, ?, ?, ?)",
                [at or datetime.now(UTC), str(actor), str(action), subject_key, _json(details)])


def record_many(con: duckdb.DuckDBPyConnection, actor: str, action: str, subject_keys,
                details: list[dict] | dict | None = None, *, at: datetime | None = None) -> int:
    """One entry per subject key in one insert (``details`` per key, or shared)."""
    keys = list(subject_keys)
    if not keys:
        return 0
    each = [details] * len(keys) if details is None or isinstance(details, dict) else details
    frame = pd.DataFrame({"subject_key": pd.Series(keys, dtype=object),
                          "details": pd.Series([_json(d) for d in each], dtype=object)})
    with registered(con, "_audit_in", frame):
        con.execute("""
            INSERT INTO audit_log ("at", actor, action, subject_key, details)
            SELECT ?, ?, ?, subject_key, CAST(details AS JSON) FROM _audit_in""",
                    [at or datetime.now(UTC), str(actor), str(action)])
    return len(keys)


def entries(con: duckdb.DuckDBPyConnection, *, subject_keys=(), contact_ids=(),
            action_prefix: str | None = None) -> pd.DataFrame:
    """Audit entries about the given subjects: by subject_key, or by the contact_id that
    older entries (consent changes) carry in their details. Oldest first."""
    return con.execute("""
        SELECT "at", actor, action, subject_key, details FROM audit_log
        WHERE (list_contains(?::VARCHAR[], subject_key)
               OR list_contains(?::BIGINT[], TRY_CAST(json_extract_string(details, '$.contact_id') AS BIGINT)))
          AND (? IS NULL OR starts_with(action, ?))
        ORDER BY "at" """,
        [list(subject_keys), [int(c) for c in contact_ids], action_prefix, action_prefix]).df()


__all__ = ["ACTIONS", "entries", "record", "record_many"]
