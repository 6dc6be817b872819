"""Webhook bodies into the store: one batch, one transaction, idempotent and order-free.

Meta delivers at least once, retries for up to 7 days and keeps no order. So:
- a body already stored (same sha256) is skipped whole; messages are keyed by wamid and
  receipts by (message, status), so even a re-encoded retry counts once;
- receipts may come before their message, or read before delivered: message_status
  merges them commutatively (see receipts.py) and they join up by message id;
- a body for a number that is no account of this workspace is kept in raw_payloads as
  ``unknown_account`` and reported, never dropped.

Bodies that carry only statuses (most of the traffic) are parsed in DuckDB
(status_bodies.py), the rest in Python (payloads.py); from the rows on, both
share one path, so a batch stores the same whichever path a body took.

Every field is typed before it is used (webhook_payloads), so a bad body is rejected
with its reason and kept in raw_payloads as ``rejected``; the receiver's ingester and
``bizchat webhook ingest`` call this through webhook_batches, which splits a batch that
still fails so that one body never holds up the others.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..messaging import chats, receipts
from ..people.contacts import ensure_contacts
from . import hooks, status_bodies
from .payloads import PayloadError, parse_batch

# Error 131050: the user stopped marketing messages from this business.
USER_STOPPED_MARKETING = 131050


@dataclass
class IngestReport:
    payloads: int = 0              # bodies offered
    duplicates: int = 0            # already stored before
    messages: int = 0              # new inbound messages
    statuses: int = 0              # new receipts
    consent_changes: int = 0       # opt-outs/opt-ins recorded
    automatic_replies: int = 0
    unknown_account: list[str] = field(default_factory=list)   # payload ids kept for review
    rejected: dict[str, str] = field(default_factory=dict)     # payload id -> reason

    def add(self, other: IngestReport) -> None:
        for name in ("payloads", "duplicates", "messages", "statuses", "consent_changes",
                     "automatic_replies"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.unknown_account += other.unknown_account
        self.rejected.update(other.rejected)

    def summary(self) -> str:
        text = (f"{self.payloads} payloads ({self.duplicates} seen before): "
                f"{self.messages} new messages, {self.statuses} new receipts, "
                f"{self.consent_changes} consent changes, {self.automatic_replies} automatic replies")
        if self.unknown_account:
            text += (f"; {len(self.unknown_account)} for an unknown business number, kept for "
                     "review in raw_payloads (add the account, then re-run bizchat webhook reprocess)")
        if self.rejected:
            text += f"; {len(self.rejected)} rejected"
        return text


def _account_map(con: duckdb.DuckDBPyConnection) -> tuple[dict, dict]:
    rows = con.execute("SELECT account_id, phone_number_id, phone_e164 FROM accounts").fetchall()
    by_pnid = {pnid: aid for aid, pnid, _ in rows if pnid}
    by_phone = {phone.lstrip("+"): aid for aid, _, phone in rows}
    return by_pnid, by_phone


def _account_for(by_pnid: dict, by_phone: dict, pnid, display) -> int | None:
    """The account of one business number: metadata.phone_number_id, else the display number."""
    digits = "".join(c for c in display if c.isdigit()) if isinstance(display, str) else ""
    return (by_pnid.get(pnid) if isinstance(pnid, str) else None) or by_phone.get(digits)


# A JSON escape of a UTF-16 surrogate; json.loads keeps an unpaired one as a lone
# surrogate, which no column can store. A cheap scan first, the exact check only then.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(doc) -> bool:
    try:
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    except (ValueError, RecursionError):
        return False        # the parser rejects what it cannot take
    return False


def _resolve(frame: pd.DataFrame, by_pnid: dict, by_phone: dict) -> pd.Series:
    """account_id per row: metadata.phone_number_id first, else the display number."""
    if frame.empty:
        return pd.Series([], dtype="Int64")
    by_id = frame["phone_number_id"].map(by_pnid).astype("Int64")
    digits = frame["display_phone"].astype(object).map(
        lambda d: "".join(c for c in d if c.isdigit()) if isinstance(d, str) else None)
    return by_id.fillna(digits.map(by_phone).astype("Int64"))


def ingest_bodies(con: duckdb.DuckDBPyConnection, items: list[tuple[str, datetime, str]],
                  *, actor: str = "webhook", sql_status_bodies: bool = True) -> IngestReport:
    """Store ``[(payload_id, received_at, body_text), ...]``. Call inside a transaction.

    Bodies that carry only statuses are parsed in DuckDB (status_bodies.py), the others
    in Python; ``sql_status_bodies=False`` sends all through Python (for tests that
    compare the two).
    """
    report = IngestReport(payloads=len(items))
    if not items:
        return report
    # 1. Skip bodies stored before (and repeats within the batch).
    ids = list(dict.fromkeys(pid for pid, _, _ in items))
    known = {r[0] for r in con.execute(
        "SELECT payload_id FROM raw_payloads WHERE payload_id IN (SELECT unnest(?))", [ids]).fetchall()}
    fresh: dict[str, tuple[datetime, str]] = {}
    for pid, received_at, text in items:
        if pid in known or pid in fresh:
            report.duplicates += 1
        else:
            fresh[pid] = (received_at, text)
    if not fresh:
        return report

    by_pnid, by_phone = _account_map(con)
    now = datetime.now(UTC)
    order = {pid: i for i, pid in enumerate(fresh)}   # a body's position, to keep row order
    taken = status_bodies.StatusBodies()
    if sql_status_bodies:
        # Only bodies naming statuses are worth a look; take() decides which it can parse.
        # A body that may hold a lone surrogate goes to Python, which can tell for sure.
        taken = status_bodies.take(
            con, [(order[pid], pid, at, text) for pid, (at, text) in fresh.items()
                  if '"statuses"' in text and not _SURROGATE_ESCAPE.search(text)],
            lambda pnid, display: _account_for(by_pnid, by_phone, pnid, display), now)

    decoded = []
    for pid, (_, text) in fresh.items():
        if pid in taken.accounts:
            continue
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError) as exc:
            report.rejected[pid] = f"not JSON: {exc}"
            continue
        if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(doc):
            report.rejected[pid] = (f"Payload {pid[:12]} holds a lone UTF-16 surrogate "
                                    "(such as \\ud800), which is not text")
            continue
        decoded.append((pid, doc))
    payload_account: dict[str, int | None] = dict(taken.accounts)
    parsed = parse_batch(decoded) if decoded else None   # None: the SQL path took all
    if parsed is not None:
        report.rejected.update(parsed.rejected)
        for pid, numbers in parsed.numbers.items():
            accounts = {a for pnid, disp in numbers
                        if (a := _account_for(by_pnid, by_phone, pnid, disp)) is not None}
            payload_account[pid] = min(accounts) if accounts else None
        for name in ("contacts", "messages", "statuses", "preferences"):
            frame = getattr(parsed, name)
            frame["account_id"] = _resolve(frame, by_pnid, by_phone)
            setattr(parsed, name, frame[frame["account_id"].notna()].reset_index(drop=True))
    report.unknown_account += [pid for pid in fresh
                               if pid in payload_account and payload_account[pid] is None]

    # Messages first (a 131050 receipt finds its contact through them), then receipts,
    # then preferences.
    received = {pid: at or now for pid, (at, _) in fresh.items()}
    lookup = _store_messages(con, parsed, report, received) if parsed is not None else None
    _store_receipts(con, parsed.statuses if parsed is not None else None, taken.events,
                    report, actor, received, order)
    if parsed is not None and lookup is not None and not parsed.preferences.empty:
        prefs = parsed.preferences.assign(
            contact_id=lookup(parsed.preferences, "wa_id", "user_id"),
            received_at=pd.to_datetime(parsed.preferences["payload_id"].map(received), utc=True))
        report.consent_changes += _preference_changes(con, prefs, actor)

    # 2. Keep every body as received, with what became of it (take() wrote its own).
    rest = [p for p in fresh if p not in taken.accounts]
    if not rest:
        return report
    raw = pd.DataFrame({
        "payload_id": rest,
        "received_at": [fresh[p][0] or now for p in rest],
        "account_id": pd.array([payload_account.get(p) for p in rest], dtype="Int64"),
        "state": ["rejected" if p in report.rejected else
                  "unknown_account" if payload_account.get(p) is None else "ingested" for p in rest],
        "note": [report.rejected.get(p) or (status_bodies.UNKNOWN_ACCOUNT_NOTE
                 if payload_account.get(p) is None else None) for p in rest],
        "body": [fresh[p][1] for p in rest],
    })
    raw["received_at"] = pd.to_datetime(raw["received_at"], utc=True)
    con.register("_raw_in", raw)
    try:
        con.execute("INSERT INTO raw_payloads SELECT payload_id, received_at, account_id, state, "
                    "note, body FROM _raw_in")
    finally:
        con.unregister("_raw_in")
    return report


def _store_messages(con, parsed, report: IngestReport, received: dict):
    """Contacts and inbound messages; returns the contact lookup for other rows."""
    # Contacts: every person named in contacts[], as a sender or as a preference holder.
    people = pd.concat([
        parsed.contacts[["account_id", "wa_id", "user_id", "name"]],
        parsed.messages[["account_id", "wa_id", "user_id"]].assign(name=None),
        parsed.preferences[["account_id", "wa_id", "user_id"]].assign(name=None),
    ], ignore_index=True)
    known = []
    for account_id, group in people.groupby("account_id", sort=True):
        known.append(group.assign(contact_id=ensure_contacts(con, int(account_id), group).to_numpy()))
    known = pd.concat(known, ignore_index=True) if known else people.assign(contact_id=None)
    known = known[known["contact_id"].notna()]

    def lookup(frame: pd.DataFrame, wa_col: str, user_col: str) -> pd.Series:
        """contact_id per row: by wa_id, else by business-scoped user id."""
        result = pd.Series(pd.NA, index=range(len(frame)), dtype="Int64")
        for key, col in (("wa_id", wa_col), ("user_id", user_col)):
            index = (known[known[key].notna()].drop_duplicates(["account_id", key])
                     [["account_id", key, "contact_id"]].rename(columns={key: col}))
            found = frame[["account_id", col]].merge(index, how="left", on=["account_id", col])
            ids = found["contact_id"].astype("Int64").reset_index(drop=True)
            result = result.fillna(ids)
        result.index = frame.index
        return result

    # Inbound messages.
    msgs = parsed.messages
    if not msgs.empty:
        msgs = msgs.assign(contact_id=lookup(msgs, "wa_id", "user_id"), direction="in",
                           source="webhook")
        new = chats.store_messages(con, msgs)
        report.messages += len(new)
        if len(new):
            arrived = dict(zip(msgs["message_id"], msgs["payload_id"].map(received), strict=True))
            new = new.assign(received_at=pd.to_datetime(new["message_id"].map(arrived), utc=True))
            report.consent_changes += _keyword_opt_outs(con, new)
            report.automatic_replies += _automatic_replies(con, new)
    return lookup


def _store_receipts(con, st: pd.DataFrame | None, sql_events: pa.Table | None,
                    report: IngestReport, actor: str, received: dict, order: dict) -> None:
    """Receipts parsed in Python (``st``) and in SQL, as one batch in body order (the
    first receipt per message and status wins, the first message per outbox key)."""
    parts = []
    if st is not None:
        st = st[st["status"].isin(receipts.STATUSES)]
    if st is not None and not st.empty:
        st = st.assign(recipient_id=st["recipient_id"].fillna(st["recipient_user_id"]),
                       # when the receiver accepted the body, not when it reached DuckDB
                       received_at=pd.to_datetime(st["payload_id"].map(received), utc=True))
        parts.append((st, pa.array(st["payload_id"].map(order).to_numpy(), pa.int32())))
    if sql_events is not None and sql_events.num_rows:
        parts.append((sql_events, sql_events.column("_body").cast(pa.int32())))
    if parts:
        events = pa.concat_tables([receipts.as_event_table(rows).append_column("_body", body)
                                   for rows, body in parts])
        if len(parts) > 1:
            events = events.take(pc.sort_indices(events, [("_body", "ascending")]))  # stable
        new, opted_out = _store_status_events(con, events, actor)
        report.statuses += new
        report.consent_changes += opted_out


def _store_status_events(con, events: pa.Table, actor: str) -> tuple[int, int]:
    """Receipts into message_events and message_status, the listeners told (campaigns
    settles its recipients), and 131050 failures recorded as marketing opt-outs."""
    new = record_receipts(con, events)
    failed = events.filter(pc.equal(events.column("error_code"), USER_STOPPED_MARKETING))
    opted_out = record_stopped_marketing(con, failed.to_pandas(), actor) if failed.num_rows else 0
    return new, opted_out


def record_receipts(con, events: pd.DataFrame | pa.Table) -> int:
    """Receipts as rows into message_events and message_status, and the listeners told
    (campaigns links them to broadcasts); no consent side effects, for callers that
    write consent themselves (the demo, test worlds). Returns how many were new."""
    events = receipts.as_event_table(events)
    new = receipts.record_status_events(con, events)
    hooks.receipts_stored(con, events)
    return new


def ingest_status_events(con, events: pd.DataFrame | pa.Table, *, actor: str = "bizchat") -> int:
    """Receipts that arrive as rows rather than webhook bodies (the simulated platform's
    bulk mode, a platform export): stored exactly as the webhook path stores them. Call
    inside a transaction; returns how many receipts were new."""
    return _store_status_events(con, receipts.as_event_table(events), actor)[0]


def _keyword_opt_outs(con, new_messages: pd.DataFrame) -> int:
    from ..people import consent

    texts = new_messages[new_messages["kind"] == "text"]
    if texts.empty:
        return 0
    frame = texts.rename(columns={"body": "text"})[
        ["account_id", "contact_id", "text", "message_id"]].assign(
        at=not_after_receipt(texts["created_at"], texts["received_at"]))
    return len(consent.record_keyword_opt_outs(con, frame, actor="webhook"))


def not_after_receipt(at: pd.Series, received: pd.Series) -> pd.Series:
    """Consent times that are no later than when we received them.

    Meta's clock and ours differ: a STOP or preference dated a few minutes after it
    reached us would be a consent event in the future, which the ledger refuses. It is
    recorded at the receive time instead; the original date stays in the stored message,
    receipt or evidence. (Not ``now``: a replay must give the same time.)"""
    at = pd.to_datetime(at, utc=True)
    received = pd.to_datetime(received, utc=True)
    return at.where(received.isna() | (at <= received), received)


def _evidence_with_date(evidence: pd.Series, at: pd.Series, recorded: pd.Series) -> pd.Series:
    late = pd.to_datetime(at, utc=True) != pd.to_datetime(recorded, utc=True)
    note = " (dated " + pd.to_datetime(at, utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ") + \
        " by the sender, after it reached us)"
    return evidence.where(~late, evidence.astype(str) + note)


def _automatic_replies(con, new_messages: pd.DataFrame) -> int:
    from ..messaging import automations

    inbound = new_messages[new_messages["direction"] == "in"]
    if inbound.empty:
        return 0
    replies = automations.apply(con, inbound)
    return 0 if replies is None else len(replies)


def _consent_rows(con, frame: pd.DataFrame, actor: str) -> int:
    from ..people import consent

    return consent.record_events(con, frame, actor=actor)


def record_stopped_marketing(con, failed: pd.DataFrame, actor: str) -> int:
    """Error 131050 means the customer stopped marketing from us: record the opt-out, at
    the time of that customer's failure, with the message it came with as evidence."""
    rows = con.execute("""
        SELECT m.message_id, m.contact_id, m.account_id FROM messages m
        WHERE m.message_id IN (SELECT unnest(?)) AND m.contact_id IS NOT NULL""",
        [failed["message_id"].tolist()]).df()
    if rows.empty:
        return 0
    failed = failed.assign(recorded_at=not_after_receipt(
        failed["at"], failed["received_at"] if "received_at" in failed else failed["at"]))
    first = failed.sort_values("at").groupby("message_id", as_index=False).first()[
        ["message_id", "at", "recorded_at"]]
    frame = rows.merge(first, on="message_id")
    evidence = "error 131050 (user stopped marketing messages) on message " + frame["message_id"]
    frame = frame.assign(
        purpose="marketing", action="opt_out", source="delivery_failure",
        evidence=_evidence_with_date(evidence, frame["at"], frame["recorded_at"]))
    return _consent_rows(con, frame.drop(columns=["message_id", "at"]), actor)


def _preference_changes(con, prefs: pd.DataFrame, actor: str) -> int:
    """user_preferences: the customer stopped or resumed marketing inside WhatsApp."""
    marketing = prefs[(prefs["category"] == "marketing_messages") & prefs["contact_id"].notna()]
    action = marketing["value"].map({"stop": "opt_out", "resume": "opt_in", "signup": "opt_in"})
    marketing = marketing[action.notna()]
    if marketing.empty:
        return 0
    recorded = not_after_receipt(marketing["at"], marketing["received_at"])
    evidence = _evidence_with_date(marketing["detail"].fillna(marketing["value"]),
                                   marketing["at"], recorded)
    frame = pd.DataFrame({
        "contact_id": marketing["contact_id"].astype("int64"),
        "account_id": marketing["account_id"].astype("int64"),
        "purpose": "marketing",
        "action": action[action.notna()].to_numpy(),
        "source": "user_preferences",
        "evidence": evidence.to_numpy(),
        "recorded_at": recorded.to_numpy(),
    })
    return _consent_rows(con, frame, actor)


__all__ = ["IngestReport", "PayloadError", "ingest_bodies", "record_stopped_marketing",
           "ingest_status_events"]
