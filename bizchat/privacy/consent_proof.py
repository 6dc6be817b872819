"""Consent proof: for one contact, the whole consent history with source and evidence, who
recorded each event and when; and per account, how well its contacts' consent is covered.

UWG §7 and Art. 7(1) GDPR put the burden of proof on the business: it must be able to
show, for every marketing message, that the recipient had opted in, how and when. The
ledger (consent_events) is append-only, so the history is the proof; the audit log adds
who recorded each event.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from ..people import pseudonym
from ..people.accounts import get_account


@dataclass
class ConsentProof:
    """One contact's consent: current state per purpose and the full history."""

    contact: dict
    subject_key: str
    current: dict          # purpose -> {state, source, evidence, recorded_at} or None
    history: pd.DataFrame  # recorded_at, purpose, action, source, evidence, recorded_by, logged_at

    def summary(self) -> str:
        c = self.contact
        lines = [f"contact     {c.get('phone_e164') or c.get('user_id') or c['contact_id']}"
                 f" (account {c['account_id']}, subject key {self.subject_key})"]
        for purpose, state in self.current.items():
            if state is None:
                lines.append(f"{purpose:<12}no consent recorded")
            else:
                lines.append(f"{purpose:<12}{state['state']} since {state['recorded_at']:%Y-%m-%d %H:%M} UTC"
                             f" via {state['source']}"
                             + (f"; evidence: {state['evidence']}" if state['evidence'] else
                                "; NO evidence text recorded"))
        return "\n".join(lines)


def proof(con: duckdb.DuckDBPyConnection, contact: dict) -> ConsentProof:
    """The consent proof of ``contact`` (a contact row as a dict)."""
    cid = int(contact["contact_id"])
    history = con.execute("""
        SELECT e.recorded_at, e.purpose, e.action, e.source, e.evidence,
               a.actor AS recorded_by, a."at" AS logged_at, e.event_id
        FROM consent_events e
        LEFT JOIN (
            -- The first audit entry of each event: who recorded it and when.
            SELECT TRY_CAST(json_extract_string(details, '$.contact_id') AS BIGINT) AS cid,
                   json_extract_string(details, '$.purpose') AS purpose,
                   json_extract_string(details, '$.source') AS source,
                   substr(action, 9) AS act,
                   TRY_CAST(json_extract_string(details, '$.recorded_at') AS TIMESTAMPTZ) AS rec,
                   arg_min(actor, "at") AS actor, min("at") AS "at"
            FROM audit_log WHERE action IN ('consent.opt_in', 'consent.opt_out')
            GROUP BY ALL
        ) a ON a.cid = e.contact_id AND a.purpose = e.purpose AND a.source = e.source
           AND a.act = e.action AND a.rec = e.recorded_at
        WHERE e.contact_id = ?
        ORDER BY e.recorded_at, e.event_id""", [cid]).df()
    current = {}
    for purpose in ("marketing", "service"):
        rows = con.execute("""SELECT state, source, evidence, recorded_at FROM current_consent
                              WHERE contact_id = ? AND purpose = ?""", [cid, purpose]).fetchall()
        current[purpose] = (dict(zip(("state", "source", "evidence", "recorded_at"), rows[0], strict=True))
                            if rows else None)
    key = pseudonym.contact_key(pseudonym.workspace_secret(con), cid)
    return ConsentProof(contact=contact, subject_key=key, current=current,
                        history=history.drop(columns=["event_id"]))


def coverage(con: duckdb.DuckDBPyConnection, account=None) -> pd.DataFrame:
    """Per account: contacts, and how many have marketing consent, with evidence, opted
    out, or nothing recorded; plus the share of opt-ins that carry an evidence text."""
    account_id = None if account is None else get_account(con, account)["account_id"]
    return con.execute("""
        WITH c AS (
            SELECT c.account_id, m.state, m.evidence
            FROM contacts c
            LEFT JOIN current_consent m ON m.contact_id = c.contact_id AND m.purpose = 'marketing'
            WHERE ? IS NULL OR c.account_id = ?)
        SELECT a.account_id, a.phone_e164 AS account, a.display_name,
               count(c.account_id) AS contacts,
               count(*) FILTER (WHERE c.state = 'opt_in') AS marketing_opt_in,
               count(*) FILTER (WHERE c.state = 'opt_in' AND nullif(trim(c.evidence), '') IS NOT NULL)
                   AS opt_in_with_evidence,
               count(*) FILTER (WHERE c.state = 'opt_in' AND nullif(trim(c.evidence), '') IS NULL)
                   AS opt_in_without_evidence,
               count(*) FILTER (WHERE c.state = 'opt_out') AS marketing_opt_out,
               count(*) FILTER (WHERE c.account_id IS NOT NULL AND c.state IS NULL) AS never_asked,
               round(count(*) FILTER (WHERE c.state = 'opt_in') / nullif(count(c.account_id), 0), 4)
                   AS opt_in_share,
               round(count(*) FILTER (WHERE c.state = 'opt_in' AND nullif(trim(c.evidence), '') IS NOT NULL)
                     / nullif(count(*) FILTER (WHERE c.state = 'opt_in'), 0), 4) AS evidence_share
        FROM accounts a LEFT JOIN c USING (account_id)
        WHERE ? IS NULL OR a.account_id = ?
        GROUP BY ALL ORDER BY a.account_id""", [account_id] * 4).df()


def coverage_by_source(con: duckdb.DuckDBPyConnection, account=None) -> pd.DataFrame:
    """Current marketing opt-ins per account and source (double_opt_in_form, in_store ...)."""
    account_id = None if account is None else get_account(con, account)["account_id"]
    return con.execute("""
        SELECT c.account_id, m.source, count(*) AS opt_ins,
               count(*) FILTER (WHERE nullif(trim(m.evidence), '') IS NOT NULL) AS with_evidence
        FROM contacts c JOIN current_consent m
          ON m.contact_id = c.contact_id AND m.purpose = 'marketing' AND m.state = 'opt_in'
        WHERE ? IS NULL OR c.account_id = ?
        GROUP BY ALL ORDER BY c.account_id, opt_ins DESC, m.source""", [account_id] * 2).df()
