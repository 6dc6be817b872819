"""Erasure (GDPR Art. 17) inside the database: one set-based pass for any number of contacts.

What goes, per erased contact (in the accounts it is erased from):

* the contact row, its labels, its chats' labels and its pseudonymous key row;
* every message text, caption and detail of its chats and of messages to or from it, the
  frozen broadcast texts, placeholder values and wa_id, consent evidence texts, the
  recipient id and error details of its receipts;
* ids that encode the person: Cloud API message ids (base64 of the wa_id), idempotency keys
  (may carry the contact id) and conversation ids are replaced by fresh random ids,
  consistently in every table, so joins between the remaining rows still hold;
* its parts of raw webhook bodies (payloads.redact), and every written form of its number
  and name in any other text (sweep.py).

What stays, anonymous: the rows that statistics count. Messages, receipts, statuses,
chats, consent events and broadcast recipients keep their times, kinds, states and
variants under a fresh negative contact id that nothing links to the person. So
campaign_stats, message_status and consent rates of the past do not change.

What is added: tombstones (keyed hashes of the number, wa_id and user_id per account, see
tombstones.py) and one ``privacy.erase`` audit entry per contact.

The database file still holds the old values afterwards; compaction.py rewrites it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import pandas as pd

from .. import store
from ..people import pseudonym, tombstones
from ..store import audit
from . import sweep
from .payloads import Redaction, account_scope, anonymous_id, redact_text
from .subjects import Identifiers, identifiers, remaining_identifiers

PENDING = "privacy.compaction_pending"


@dataclass
class ErasureResult:
    """What an erasure did; ``rows`` counts rows changed or deleted per table."""

    contacts: int = 0
    accounts: list[int] = field(default_factory=list)
    subject_keys: list[str] = field(default_factory=list)
    reason: str = "request"
    rows: dict[str, int] = field(default_factory=dict)
    spool: dict | None = None
    report_files: list[str] = field(default_factory=list)
    compacted: bool = False
    file_bytes: tuple[int, int] | None = None     # workspace size before and after compaction

    def summary(self) -> str:
        lines = [f"Erased {self.contacts} contact(s) from account(s) "
                 f"{', '.join(map(str, self.accounts))} (reason: {self.reason})."]
        lines += [f"  {table:<22}{n}" for table, n in sorted(self.rows.items()) if n]
        if self.spool:
            lines.append(f"  webhook spool: {self.spool['changed_lines']} pending line(s) redacted")
        if self.report_files:
            lines.append(f"  report outputs redacted or removed: {len(self.report_files)}")
        if self.compacted and self.file_bytes:
            lines.append(f"  workspace compacted: {self.file_bytes[0]:,} -> {self.file_bytes[1]:,} bytes")
        elif not self.compacted:
            lines.append("  workspace NOT compacted yet: run `bizchat privacy compact`")
        return "\n".join(lines)


def _count(con, sql: str, params=None) -> int:
    rows = con.execute(sql, params or []).fetchall()
    return int(rows[0][0]) if rows else 0


def erase_in(con: duckdb.DuckDBPyConnection, contacts: list[dict], *, reason: str, actor: str,
             now: datetime | None = None) -> tuple[ErasureResult, Redaction, Redaction]:
    """Erase ``contacts`` (rows with contact_id, account_id, phone_e164, wa_id, user_id,
    name). Call inside one transaction. Returns the result and the redactions for places
    outside the database: (in the erased accounts, anywhere)."""
    now = now or datetime.now(UTC)
    secret = pseudonym.workspace_secret(con)
    result = ErasureResult(contacts=len(contacts), reason=reason,
                           accounts=sorted({int(c["account_id"]) for c in contacts}))
    scoped = identifiers(contacts)
    ids = sorted(scoped.ids)

    # 1. Who, and their anonymous stand-in ids (below every id in use, never reused).
    base = _count(con, """SELECT least(0, (SELECT min(contact_id) FROM broadcast_recipients),
        (SELECT min(contact_id) FROM messages), (SELECT min(contact_id) FROM consent_events),
        (SELECT min(contact_id) FROM chats))""")
    frame = pd.DataFrame({"contact_id": [int(c["contact_id"]) for c in contacts],
                          "account_id": [int(c["account_id"]) for c in contacts]})
    frame["anon_id"] = base - 1 - pd.RangeIndex(len(frame))
    frame["subject_key"] = [pseudonym.contact_key(secret, c) for c in frame["contact_id"]]
    result.subject_keys = frame["subject_key"].tolist()
    with store.registered(con, "_erase_in", frame):
        con.execute("CREATE OR REPLACE TEMP TABLE _erase AS SELECT * FROM _erase_in")
    con.execute("""CREATE OR REPLACE TEMP TABLE _erase_chats AS
        SELECT c.chat_id, e.anon_id FROM chats c JOIN _erase e USING (contact_id)""")

    # 2. Ids that encode the person -> fresh random ids.
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _erase_msgs AS
        WITH theirs AS (
            SELECT message_id FROM messages
            WHERE contact_id IN (SELECT contact_id FROM _erase)
               OR chat_id IN (SELECT chat_id FROM _erase_chats)
            UNION SELECT message_id FROM broadcast_recipients
            WHERE contact_id IN (SELECT contact_id FROM _erase) AND message_id IS NOT NULL
            UNION SELECT e.message_id FROM message_events e
            WHERE list_contains(?::VARCHAR[], e.recipient_id)
              AND e.recipient_id NOT IN (SELECT wa_id FROM contacts WHERE wa_id IS NOT NULL
                                         AND contact_id NOT IN (SELECT contact_id FROM _erase))
              AND e.message_id NOT IN (SELECT message_id FROM messages)
              AND e.message_id NOT IN (SELECT message_id FROM broadcast_recipients
                                       WHERE message_id IS NOT NULL))
        SELECT message_id AS old, 'erased.' || replace(CAST(uuid() AS VARCHAR), '-', '') AS new
        FROM theirs""", [ids])
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _erase_keys AS
        SELECT idempotency_key AS old, 'erased.' || replace(CAST(uuid() AS VARCHAR), '-', '') AS new
        FROM (SELECT DISTINCT idempotency_key FROM broadcast_recipients
              WHERE contact_id IN (SELECT contact_id FROM _erase))""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _erase_convs AS
        SELECT conversation_id AS old, 'erased.' || replace(CAST(uuid() AS VARCHAR), '-', '') AS new
        FROM (SELECT DISTINCT conversation_id FROM message_events
              WHERE conversation_id IS NOT NULL AND message_id IN (SELECT old FROM _erase_msgs))""")
    rows = result.rows

    # 3. Receipts and statuses: keep the counts, drop who and why.
    rows["message_events"] = _count(con, """
        UPDATE message_events SET message_id = m.new, recipient_id = NULL, errors = NULL,
               conversation_id = (SELECT new FROM _erase_convs c WHERE c.old = message_events.conversation_id),
               callback_data = coalesce((SELECT new FROM _erase_keys k WHERE k.old = message_events.callback_data),
                                        CASE WHEN callback_data IS NULL THEN NULL ELSE 'erased' END)
        FROM _erase_msgs m WHERE message_events.message_id = m.old""")
    rows["message_status"] = _count(con, """
        UPDATE message_status SET message_id = m.new FROM _erase_msgs m
        WHERE message_status.message_id = m.old""")

    # 4. Messages: no content, anonymous contact, new ids (and replies pointing at them).
    rows["messages"] = _count(con, """
        UPDATE messages SET body = NULL, details = NULL, media_mime = NULL,
               contact_id = CASE WHEN contact_id IS NULL THEN NULL ELSE
                   coalesce((SELECT anon_id FROM _erase e WHERE e.contact_id = messages.contact_id),
                            (SELECT anon_id FROM _erase_chats c WHERE c.chat_id = messages.chat_id)) END,
               message_id = m.new
        FROM _erase_msgs m WHERE messages.message_id = m.old""")
    con.execute("UPDATE messages SET reply_to = m.new FROM _erase_msgs m WHERE messages.reply_to = m.old")

    # 5. Broadcast memberships: counted as before, but nothing personal; never sent now.
    rows["broadcast_recipients"] = _count(con, """
        UPDATE broadcast_recipients SET contact_id = e.anon_id, body = NULL, params = NULL,
               wa_id = NULL,
               idempotency_key = coalesce((SELECT new FROM _erase_keys k
                                           WHERE k.old = broadcast_recipients.idempotency_key), 'erased'),
               message_id = coalesce((SELECT new FROM _erase_msgs m
                                      WHERE m.old = broadcast_recipients.message_id), message_id),
               state = CASE WHEN state = 'queued' THEN 'skipped' ELSE state END,
               skip_reason = CASE WHEN state = 'queued' THEN 'erased' ELSE skip_reason END
        FROM _erase e WHERE broadcast_recipients.contact_id = e.contact_id""")
    rows["outbox_log"] = _count(con, """
        UPDATE outbox_log SET idempotency_key = k.new, detail = NULL
        FROM _erase_keys k WHERE outbox_log.idempotency_key = k.old""")

    # 6. Consent ledger and chats: anonymous, without evidence texts.
    rows["consent_events"] = _count(con, """
        UPDATE consent_events SET contact_id = e.anon_id, evidence = NULL
        FROM _erase e WHERE consent_events.contact_id = e.contact_id""")
    rows["chats"] = _count(con, """
        UPDATE chats SET contact_id = c.anon_id FROM _erase_chats c WHERE chats.chat_id = c.chat_id""")
    rows["chat_labels"] = _count(con, "DELETE FROM chat_labels WHERE chat_id IN (SELECT chat_id FROM _erase_chats)")
    rows["contact_labels"] = _count(con, "DELETE FROM contact_labels WHERE contact_id IN (SELECT contact_id FROM _erase)")
    # Older audit entries (consent changes) name the contact by its internal id.
    rows["audit_log"] = _count(con, """
        UPDATE audit_log SET details = json_merge_patch(details, json_object('contact_id', e.anon_id))
        FROM _erase e
        WHERE TRY_CAST(json_extract_string(audit_log.details, '$.contact_id') AS BIGINT) = e.contact_id""")
    rows["subject_keys"] = _count(con, "DELETE FROM subject_keys WHERE contact_id IN (SELECT contact_id FROM _erase)")
    store.raise_id_floor(con, "contacts", "contact_id")  # the id is never given to someone else
    rows["contacts"] = _count(con, "DELETE FROM contacts WHERE contact_id IN (SELECT contact_id FROM _erase)")

    # 7. Outside the rows: raw bodies, then every other mention (sweep).
    mapping = dict(con.execute("SELECT old, new FROM _erase_msgs").fetchall())
    keys = dict(con.execute("SELECT old, new FROM _erase_keys").fetchall())
    convs = dict(con.execute("SELECT old, new FROM _erase_convs").fetchall())
    in_accounts = Redaction(ids=set(ids), pattern=scoped.pattern(), messages=mapping, keys=keys,
                            conversations=convs)
    rows["raw_payloads"] = _redact_raw(con, result.accounts, scoped, in_accounts)
    unscoped = scoped.without(remaining_identifiers(con, scoped))
    # Files (report outputs) may also show the pseudonymous keys of the person.
    in_files = Identifiers(phones=unscoped.phones, ids=unscoped.ids | set(result.subject_keys),
                           names=unscoped.names)
    anywhere = Redaction(ids=set(ids) & unscoped.ids, pattern=in_files.pattern(),
                         messages=mapping, keys=keys, conversations=convs)
    for table, n in sweep.sweep(con, result.accounts, scoped, unscoped).items():
        rows[f"{table} (text)"] = n

    # 8. What stays: tombstones, the audit entries, the reminder to compact.
    tombstones.add(con, contacts, secret=secret, reason=reason, at=now)
    details = [{"account_id": int(a), "anonymous_id": int(x), "reason": reason}
               for a, x in zip(frame["account_id"], frame["anon_id"], strict=True)]
    audit.record_many(con, actor, "privacy.erase", result.subject_keys, details, at=now)
    con.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", [PENDING, now.isoformat()])
    for name in ("_erase", "_erase_chats", "_erase_msgs", "_erase_keys", "_erase_convs"):
        con.execute(f"DROP TABLE IF EXISTS {name}")
    return result, in_accounts, anywhere


def _redact_raw(con, account_ids: list[int], ids, redaction: Redaction) -> int:
    """Take the person out of stored webhook bodies of their accounts (or of no account)."""
    in_scope = account_scope(con, account_ids)
    # Every body about the person names their wa_id or user_id (from, recipient_id, wa_id).
    found: dict = {}
    for loose in ids.prefilters():
        found.update(con.execute("""
            SELECT rowid, body FROM raw_payloads
            WHERE (account_id IS NULL OR list_contains(?::INTEGER[], account_id))
              AND regexp_matches(body, ?)""", [account_ids, loose]).fetchall())
    updates = [(rid, new) for rid, body in found.items()
               if (new := redact_text(body, redaction, in_scope)) != body]
    if updates:
        con.register("_raw_new", pd.DataFrame(updates, columns=["rid", "body"]).astype({"body": object}))
        try:
            con.execute("UPDATE raw_payloads SET body = r.body FROM _raw_new r WHERE raw_payloads.rowid = r.rid")
        finally:
            con.unregister("_raw_new")
    return len(updates)


__all__ = ["PENDING", "ErasureResult", "anonymous_id", "erase_in"]
