"""Retention: personal data is kept only as long as it is needed (Art. 5(1)(e) GDPR).

Policies per account (``retention_policies``; a row with account_id NULL is the default
for every account without its own; without any row the built-in defaults below apply;
days NULL means keep forever):

* ``message_bodies``: texts, captions and details of messages, frozen broadcast texts,
  placeholder values and addresses of sent broadcasts, and raw webhook bodies older than
  this are removed. Message rows, statuses and receipts stay, so statistics stay.
* ``raw_payloads``: raw webhook bodies (as received) older than this are deleted.
* ``inactive_contacts``: a contact with no inbound message and no consent event for this
  long (counted from its creation) is erased like an erasure request (erasure.py), with a
  tombstone.

``plan`` says what would go (the dry run); ``apply`` removes it in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd

from .. import store
from ..people import pseudonym
from ..people.accounts import InvalidValue, get_account
from ..store import audit

DEFAULTS = {"message_bodies": 365, "raw_payloads": 90, "inactive_contacts": 3 * 365}
KINDS = tuple(DEFAULTS)


@dataclass
class PurgeResult:
    """The plan (one row per account and policy) and, unless a dry run, what was done."""

    dry_run: bool
    as_of: datetime
    plan: pd.DataFrame
    contacts: pd.DataFrame           # inactive contacts: account_id, contact_id, subject_key, last_activity
    done: dict = field(default_factory=dict)
    erasure: object | None = None    # the ErasureResult of the inactive contacts
    compacted: bool = False

    def summary(self) -> str:
        head = "Would remove" if self.dry_run else "Removed"
        lines = [f"{head} (as of {self.as_of:%Y-%m-%d %H:%M} UTC):"]
        for row in self.plan.itertuples():
            keep = "kept forever" if pd.isna(row.days) else f"older than {int(row.days)} days"
            lines.append(f"  account {row.account:<16} {row.what:<34} {keep:<22} {row.rows:>8}")
        if not self.dry_run and self.done.get("changed") and not self.compacted:
            lines.append("  workspace NOT compacted yet: run `bizchat privacy compact`")
        return "\n".join(lines)


def check_kind(kind: str) -> str:
    if kind not in DEFAULTS:
        raise InvalidValue(f"{kind!r} is not a retention policy; use one of {', '.join(KINDS)}.",
                           input=kind)
    return kind


def set_policy(con: duckdb.DuckDBPyConnection, kind: str, days: int | None, *, account=None,
               actor: str = "bizchat") -> None:
    """Set a policy (days None: keep forever) for ``account`` or, without one, the default."""
    check_kind(kind)
    if days is not None and (not isinstance(days, int) or isinstance(days, bool) or days <= 0):
        raise InvalidValue(f"Retention days must be a positive whole number, not {days!r} "
                           "(or 'forever').", input=days)
    account_id = None if account is None else get_account(con, account)["account_id"]
    con.execute("DELETE FROM retention_policies WHERE kind = ? AND account_id IS NOT DISTINCT FROM ?",
                [kind, account_id])
    con.execute("INSERT INTO retention_policies (account_id, kind, days, updated_at) VALUES (?, ?, ?, ?)",
                [account_id, kind, days, datetime.now(UTC)])
    audit.record(con, actor, "privacy.retention", None,
                 {"account_id": account_id, "kind": kind, "days": days})


def policies(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The effective policy per account and kind, and where it comes from. The row without
    an account is for raw webhook bodies that matched no account."""
    defaults = pd.DataFrame({"kind": list(DEFAULTS), "builtin": list(DEFAULTS.values())})
    with store.registered(con, "_retention_defaults", defaults):
        return con.execute("""
            SELECT a.account_id, a.phone_e164 AS account, d.kind,
                   CASE WHEN own.kind IS NOT NULL THEN own.days
                        WHEN ws.kind IS NOT NULL THEN ws.days ELSE d.builtin END AS days,
                   CASE WHEN own.kind IS NOT NULL THEN 'account'
                        WHEN ws.kind IS NOT NULL THEN 'workspace default'
                        ELSE 'built-in default' END AS source
            FROM (SELECT account_id, phone_e164 FROM accounts
                  UNION ALL SELECT NULL, '(no account)') a
            CROSS JOIN _retention_defaults d
            LEFT JOIN retention_policies own ON own.account_id = a.account_id AND own.kind = d.kind
            LEFT JOIN retention_policies ws ON ws.account_id IS NULL AND ws.kind = d.kind
            WHERE a.account_id IS NOT NULL OR d.kind <> 'inactive_contacts'
            ORDER BY a.account_id NULLS LAST, d.kind""").df()


def _cutoffs(con, as_of: datetime) -> list[tuple]:
    """(account_id or None, account, kind, days or None, cutoff or None) per policy."""
    out = []
    for r in policies(con).itertuples():
        days = None if pd.isna(r.days) else int(r.days)
        out.append((None if pd.isna(r.account_id) else int(r.account_id), r.account, r.kind, days,
                    None if days is None else as_of - timedelta(days=days)))
    return out


def inactive_contacts(con: duckdb.DuckDBPyConnection, account_id: int, cutoff: datetime) -> pd.DataFrame:
    """Contacts of the account whose last inbound message, consent event or creation is
    before ``cutoff``."""
    return con.execute("""
        SELECT c.contact_id, c.account_id,
               greatest(c.created_at, coalesce(m.last_in, c.created_at),
                        coalesce(e.last_consent, c.created_at)) AS last_activity
        FROM contacts c
        LEFT JOIN (SELECT contact_id, max(created_at) AS last_in FROM messages
                   WHERE direction = 'in' GROUP BY contact_id) m USING (contact_id)
        LEFT JOIN (SELECT contact_id, max(recorded_at) AS last_consent FROM consent_events
                   GROUP BY contact_id) e USING (contact_id)
        WHERE c.account_id = ?
          AND greatest(c.created_at, coalesce(m.last_in, c.created_at),
                       coalesce(e.last_consent, c.created_at)) < ?
        ORDER BY c.contact_id""", [account_id, cutoff]).df()


_COUNTS = {
    "message_bodies": [
        ("message texts", """SELECT count(*) FROM messages WHERE account_id = ? AND created_at < ?
                             AND (body IS NOT NULL OR details IS NOT NULL)"""),
        ("frozen broadcast texts", """SELECT count(*) FROM broadcast_recipients r
             JOIN broadcasts b USING (broadcast_id)
             WHERE b.account_id = ? AND coalesce(r.sent_at, r.updated_at) < ?
               AND r.state NOT IN ('queued', 'sending', 'unknown')
               AND (r.body IS NOT NULL OR r.params IS NOT NULL OR r.wa_id IS NOT NULL)"""),
    ],
    "raw_payloads": [
        ("raw webhook bodies", """SELECT count(*) FROM raw_payloads
             WHERE account_id IS NOT DISTINCT FROM ? AND received_at < ?"""),
    ],
}

_PURGES = {
    "message texts": """UPDATE messages SET body = NULL, details = NULL
        WHERE account_id = ? AND created_at < ? AND (body IS NOT NULL OR details IS NOT NULL)""",
    "frozen broadcast texts": """UPDATE broadcast_recipients SET body = NULL, params = NULL, wa_id = NULL
        WHERE broadcast_id IN (SELECT broadcast_id FROM broadcasts WHERE account_id = ?)
          AND coalesce(sent_at, updated_at) < ? AND state NOT IN ('queued', 'sending', 'unknown')
          AND (body IS NOT NULL OR params IS NOT NULL OR wa_id IS NOT NULL)""",
    "raw webhook bodies": """DELETE FROM raw_payloads
        WHERE account_id IS NOT DISTINCT FROM ? AND received_at < ?""",
}


def plan(con: duckdb.DuckDBPyConnection, as_of: datetime | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the policies remove as of ``as_of`` (default now): (plan, inactive contacts).

    Raw bodies fall under both message_bodies (they hold the texts) and raw_payloads: the
    shorter period wins.
    """
    as_of = as_of or datetime.now(UTC)
    rows, contacts = [], []
    accounts: dict = {}
    for aid, account, kind, days, cutoff in _cutoffs(con, as_of):
        accounts.setdefault((aid, account), {})[kind] = (days, cutoff)
    for (aid, account), kinds in accounts.items():
        for kind, (days, cutoff) in kinds.items():
            if kind == "raw_payloads":
                # Raw bodies hold message texts too: the shorter period of the two wins.
                cutoff = max([c for c in (cutoff, kinds["message_bodies"][1]) if c is not None],
                             default=None)
                days = None if cutoff is None else (as_of - cutoff).days
            if kind == "inactive_contacts":
                found = (inactive_contacts(con, aid, cutoff) if aid is not None and cutoff is not None
                         else pd.DataFrame(columns=["contact_id", "account_id", "last_activity"]))
                contacts.append(found)
                rows.append((aid, account, kind, days, cutoff, "inactive contacts (erased)", len(found)))
                continue
            for what, sql in _COUNTS[kind]:
                if aid is None and what != "raw webhook bodies":
                    continue
                n = 0 if cutoff is None else con.execute(sql, [aid, cutoff]).fetchall()[0][0]
                rows.append((aid, account, kind, days, cutoff, what, int(n)))
    result = pd.DataFrame(rows, columns=["account_id", "account", "kind", "days", "cutoff", "what", "rows"])
    result["account_id"] = result["account_id"].astype("Int64")
    result["days"] = pd.to_numeric(result["days"]).astype("Int64")
    found = [f for f in contacts if len(f)]
    inactive = (pd.concat(found, ignore_index=True) if found
                else pd.DataFrame({"contact_id": pd.Series(dtype="int64"),
                                   "account_id": pd.Series(dtype="int64"), "last_activity": pd.Series(dtype="datetime64[us, UTC]")}))
    if len(inactive):
        inactive.insert(2, "subject_key", pseudonym.contact_keys(con, inactive["contact_id"]).to_numpy())
    else:
        inactive.insert(2, "subject_key", pd.Series(dtype=object))
    return result, inactive


def apply_bodies(con: duckdb.DuckDBPyConnection, the_plan: pd.DataFrame) -> dict:
    """Remove what ``the_plan`` lists except inactive contacts; returns rows per item."""
    done: dict[str, int] = {}
    for row in the_plan.itertuples():
        if row.what not in _PURGES or pd.isna(row.cutoff) or not row.rows:
            continue
        aid = None if pd.isna(row.account_id) else int(row.account_id)
        n = con.execute(_PURGES[row.what], [aid, row.cutoff]).fetchall()[0][0]
        done[row.what] = done.get(row.what, 0) + int(n)
    return done
