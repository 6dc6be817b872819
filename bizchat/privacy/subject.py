"""Subject access and data portability (GDPR Art. 15 and 20): every row about one person.

``collect`` gathers, for the contacts a request is about: the contact itself (with its
pseudonymous key), consent events, labels, chats and their labels, messages in both
directions, receipts and latest statuses, broadcast memberships with what was sent,
the sender's trail, audit entries, and the raw webhook bodies that mention them, cut down to
their parts (other customers in the same batch are not theirs to see, Art. 15(4)).

``write_json`` writes one machine-readable file; ``write_csv_dir`` one CSV per table (cells
neutralised against formula injection) plus ``manifest.json``.
"""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from .. import store
from ..people import pseudonym
from ..store import audit
from ..store.durable import write_atomic
from . import payloads
from .safe_export import safe_csv
from .subjects import Identifiers, Subject, identifiers

FORMAT = "bizchat-subject-export/1"
JSON_COLUMNS = {"attributes", "details", "params", "errors", "detail", "body_json", "audience",
                "variants"}


def collect(con: duckdb.DuckDBPyConnection, subject: Subject) -> dict[str, pd.DataFrame]:
    """Every table's rows about ``subject``, as DataFrames (one per table)."""
    secret = pseudonym.workspace_secret(con)
    ids, accounts = subject.contact_ids, subject.account_ids
    keys = [pseudonym.contact_key(secret, c) for c in ids]
    with store.registered(con, "_subject_ids", pd.DataFrame({"contact_id": ids, "subject_key": keys})):
        con.execute("CREATE OR REPLACE TEMP TABLE _subject AS SELECT * FROM _subject_ids")
    con.execute("""CREATE OR REPLACE TEMP TABLE _subject_msgs AS
        SELECT message_id FROM messages WHERE contact_id IN (SELECT contact_id FROM _subject)
           OR chat_id IN (SELECT chat_id FROM chats WHERE contact_id IN (SELECT contact_id FROM _subject))
        UNION SELECT message_id FROM broadcast_recipients
        WHERE contact_id IN (SELECT contact_id FROM _subject) AND message_id IS NOT NULL""")
    q = {
        "accounts": """SELECT account_id, phone_e164, display_name, email, address FROM accounts
                       WHERE account_id IN (SELECT account_id FROM contacts
                                            WHERE contact_id IN (SELECT contact_id FROM _subject))""",
        "contacts": "SELECT s.subject_key, c.* FROM contacts c JOIN _subject s USING (contact_id)",
        "consent_events": """SELECT * FROM consent_events WHERE contact_id IN (SELECT contact_id FROM _subject)
                             ORDER BY recorded_at, event_id""",
        "contact_labels": """SELECT cl.contact_id, l.name AS label, l.color, cl.assigned_at
                             FROM contact_labels cl JOIN labels l USING (label_id)
                             WHERE cl.contact_id IN (SELECT contact_id FROM _subject)""",
        "chats": "SELECT * FROM chats WHERE contact_id IN (SELECT contact_id FROM _subject)",
        "chat_labels": """SELECT cl.chat_id, l.name AS label, l.color, cl.assigned_at
                          FROM chat_labels cl JOIN labels l USING (label_id)
                          WHERE cl.chat_id IN (SELECT chat_id FROM chats
                                               WHERE contact_id IN (SELECT contact_id FROM _subject))""",
        "messages": """SELECT * FROM messages WHERE message_id IN (SELECT message_id FROM _subject_msgs)
                       ORDER BY created_at""",
        "message_events": """SELECT * FROM message_events
                             WHERE message_id IN (SELECT message_id FROM _subject_msgs) ORDER BY "at" """,
        "message_status": """SELECT * FROM message_status
                             WHERE message_id IN (SELECT message_id FROM _subject_msgs)""",
        "broadcast_recipients": """
            SELECT b.name AS broadcast, b.category, b.template AS template_name, r.*
            FROM broadcast_recipients r JOIN broadcasts b USING (broadcast_id)
            WHERE r.contact_id IN (SELECT contact_id FROM _subject) ORDER BY r.broadcast_id""",
        "outbox_log": """SELECT * FROM outbox_log WHERE idempotency_key IN (
                             SELECT idempotency_key FROM broadcast_recipients
                             WHERE contact_id IN (SELECT contact_id FROM _subject)) ORDER BY "at" """,
    }
    tables = {name: con.execute(sql).df() for name, sql in q.items()}
    tables["audit_log"] = audit.entries(con, subject_keys=keys, contact_ids=ids)
    tables["raw_payloads"] = _raw_payloads(con, subject, accounts)
    con.execute("DROP TABLE _subject")
    con.execute("DROP TABLE _subject_msgs")
    return tables


def _raw_payloads(con, subject: Subject, accounts: list[int]) -> pd.DataFrame:
    found = identifiers(subject.contacts)
    rows: dict = {}
    for loose in Identifiers(ids=set(found.ids)).prefilters():
        for row in con.execute("""
                SELECT payload_id, received_at, account_id, state, body FROM raw_payloads
                WHERE (account_id IS NULL OR list_contains(?::INTEGER[], account_id))
                  AND regexp_matches(body, ?) ORDER BY received_at""", [accounts, loose]).fetchall():
            rows[row[0]] = row
    out = []
    for pid, at, aid, state, body in sorted(rows.values(), key=lambda r: r[1]):
        try:
            doc = json.loads(body)
        except ValueError:
            continue
        if payloads.mentions(doc, found.ids):
            out.append((pid, at, aid, state, json.dumps(payloads.about(doc, found.ids), ensure_ascii=False)))
    return pd.DataFrame(out, columns=["payload_id", "received_at", "account_id", "state", "body_json"])


# --- writing ---------------------------------------------------------------------------------

def _plain(value):
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    if hasattr(value, "item"):          # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):        # numpy arrays (VARCHAR[] columns)
        return value.tolist()
    return value


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts: ISO times, None for missing, JSON columns parsed."""
    out = []
    for row in frame.astype(object).to_dict("records"):
        item = {}
        for key, value in row.items():
            value = _plain(value)
            if key in JSON_COLUMNS and isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    pass
            item["body" if key == "body_json" else key] = value
        out.append(item)
    return out


def document(subject: Subject, tables: dict[str, pd.DataFrame], subject_keys: list[str]) -> dict:
    return {
        "format": FORMAT,
        "generated_at": datetime.now(UTC).isoformat(),
        "request": {"reference": subject.query, "accounts": subject.account_ids,
                    "subject_keys": subject_keys},
        "about": "Every row bizchat stores about this person, table by table; "
                 "see docs/privacy.md for what each table is.",
        "tables": {name: records(frame) for name, frame in tables.items()},
    }


def write_json(doc: dict, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, json.dumps(doc, ensure_ascii=False, indent=2))


def write_csv_dir(doc: dict, folder: str | os.PathLike) -> list[Path]:
    """One CSV per table (neutralised cells; nested values as JSON text) and manifest.json;
    returns the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, rows in doc["tables"].items():
        written.append(folder / f"{name}.csv")
        frame = pd.DataFrame([{k: json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v
                               for k, v in row.items()} for row in rows])
        safe_csv(frame, folder / f"{name}.csv")
    manifest = {k: v for k, v in doc.items() if k != "tables"}
    manifest["tables"] = {name: {"file": f"{name}.csv", "rows": len(rows)}
                          for name, rows in doc["tables"].items()}
    written.append(write_json(manifest, folder / "manifest.json"))
    return written
