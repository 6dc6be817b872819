"""The consent ledger and the one rule for "may this account send to this contact now?".

Consent is append-only: every opt-in and opt-out is an event in ``consent_events`` with
its source and evidence; the current state per contact and purpose is derived (view
``current_consent``: the latest event by ``recorded_at``, ties broken by ``event_id``) and
never overwritten. A backdated opt-in from an import therefore does not undo a later
opt-out.

The sending rule (``may_send``), which every path uses:

* marketing needs a current marketing ``opt_in`` (UWG §7: no consent, no marketing);
* service / utility messages are allowed unless the contact opted out of *service*. A
  marketing opt-out does not block order updates and other utility messages, and an
  opt-out keyword ("STOP") opts out of marketing only;
* a contact of another account (or no contact at all) is never sendable, nor one with
  no number, wa_id or user_id to address.

Every consent change writes an audit_log row with internal ids only (no numbers, names
or evidence text; subject_key stays NULL until privacy adds a pseudonymous key).
"""

from __future__ import annotations

import numbers
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd

from .. import store
from ..errors import InvalidValue, NotFound
from .accounts import get_account
from .contacts import first_contact, get_contact

PURPOSES = ("marketing", "service")
ACTIONS = ("opt_in", "opt_out")
# Broadcast categories and their consent purpose.
PURPOSE_OF = {"marketing": "marketing", "service": "service", "utility": "service",
              "authentication": "service"}
DEFAULT_OPT_OUT_KEYWORDS = ("STOP", "STOPP", "ABMELDEN", "UNSUBSCRIBE", "ABBESTELLEN")
REASONS = ("unknown_contact", "invalid_number", "opted_out", "no_consent")

# Clocks differ a little between machines; anything later than this is a mistake.
_FUTURE_SLACK = timedelta(minutes=5)
# A keyword message is short; longer texts are never whole-text keywords.
_MAX_KEYWORD_LEN = 64

_EVENT_COLUMNS = ["contact_id", "account_id", "purpose", "action", "source", "evidence",
                  "recorded_at"]


def _purpose(purpose: str) -> str:
    key = str(purpose).strip().lower()
    if key not in PURPOSE_OF:
        raise InvalidValue(
            f"{purpose!r} is not a consent purpose. Use marketing or service (utility and "
            "authentication messages count as service).", input=purpose)
    return PURPOSE_OF[key]



# --- opt-out keywords (pure) ---------------------------------------------------------------------

def normalise_keyword(text: str) -> str:
    """Casefolded, accents removed, surrounding whitespace and punctuation stripped."""
    decomposed = unicodedata.normalize("NFKD", str(text))
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))

    def edge(ch: str) -> bool:
        return ch.isspace() or unicodedata.category(ch)[0] in "PZC"

    start, end = 0, len(plain)
    while start < end and edge(plain[start]):
        start += 1
    while end > start and edge(plain[end - 1]):
        end -= 1
    return " ".join(plain[start:end].split()).casefold()


def is_opt_out_keyword(text: str | None, keywords=None) -> bool:
    """Whether the whole of ``text`` is an opt-out keyword (default: STOP, STOPP, ABMELDEN,
    UNSUBSCRIBE, ABBESTELLEN). Case, accents, surrounding whitespace and punctuation are
    ignored: " stop! " and "Stöpp" count, "please stop" does not."""
    if text is None or not isinstance(text, str) or len(text) > _MAX_KEYWORD_LEN:
        return False
    words = DEFAULT_OPT_OUT_KEYWORDS if keywords is None else keywords
    return normalise_keyword(text) in {normalise_keyword(w) for w in words}


# --- ledger writes inside a caller's transaction --------------------------------------------------

def _as_utc(values) -> pd.Series:
    stamps = pd.to_datetime(pd.Series(values), errors="raise")
    if stamps.dt.tz is None:
        stamps = stamps.dt.tz_localize("UTC")
    return stamps.dt.tz_convert("UTC").astype("datetime64[us, UTC]")


def record_events(con: duckdb.DuckDBPyConnection, events: pd.DataFrame, *,
                  actor: str = "bizchat") -> int:
    """Append consent events in bulk; returns how many were new.

    ``events`` has contact_id, purpose, action, source, recorded_at, and optionally
    account_id (checked against the contact's) and evidence. An event equal to a stored
    one in (contact_id, purpose, action, recorded_at, source) is skipped, so replaying a
    webhook or re-importing a file changes nothing. Each new event gets an audit_log row.
    Call inside the caller's transaction.
    """
    if len(events) == 0:
        return 0
    missing = {"contact_id", "purpose", "action", "source", "recorded_at"} - set(events.columns)
    if missing:
        raise InvalidValue(f"Consent events need the columns {sorted(missing)}.", input=sorted(missing))
    batch = pd.DataFrame({
        "i": range(len(events)),
        "contact_id": pd.to_numeric(events["contact_id"].reset_index(drop=True)).astype("int64"),
        "account_id": (pd.to_numeric(events["account_id"].reset_index(drop=True)).astype("Int64")
                       if "account_id" in events else pd.Series([pd.NA] * len(events), dtype="Int64")),
        "purpose": events["purpose"].reset_index(drop=True).map(_purpose).astype(object),
        "action": events["action"].reset_index(drop=True).astype(object),
        "source": events["source"].reset_index(drop=True).astype(object),
        "evidence": (events["evidence"].reset_index(drop=True).astype(object)
                     if "evidence" in events else pd.Series([None] * len(events), dtype=object)),
        "recorded_at": _as_utc(events["recorded_at"].reset_index(drop=True)),
    })
    bad = sorted(set(batch["action"].dropna()) - set(ACTIONS)) + (
        ["<empty>"] if batch["action"].isna().any() else [])
    if bad:
        raise InvalidValue(f"Unknown consent actions {bad}; use opt_in or opt_out.", input=bad)
    if batch["source"].isna().any() or (batch["source"].astype(str).str.strip() == "").any():
        raise InvalidValue("Every consent event needs a source (e.g. double_opt_in_form, "
                           "in_store, chat, import, keyword).")
    if batch["recorded_at"].isna().any():
        raise InvalidValue("Every consent event needs the time it was given (recorded_at).")
    if (batch["recorded_at"] > pd.Timestamp.now(tz="UTC") + _FUTURE_SLACK).any():
        raise InvalidValue("A consent event lies in the future; give the time consent was "
                           "actually given.")
    batch["evidence"] = batch["evidence"].where(batch["evidence"].notna(), None)
    with store.registered(con, "_consent_in", batch):
        wrong = con.execute("""
            SELECT count(*) FILTER (WHERE c.contact_id IS NULL),
                   count(*) FILTER (WHERE e.account_id IS NOT NULL AND c.account_id <> e.account_id)
            FROM _consent_in e LEFT JOIN contacts c USING (contact_id)""").fetchall()[0]
        if wrong[0]:
            raise NotFound(f"{wrong[0]} consent event(s) name contacts that do not exist.")
        if wrong[1]:
            raise InvalidValue(f"{wrong[1]} consent event(s) name a contact of another account; "
                               "consent belongs to the contact of one account.")
        con.execute("""
            CREATE OR REPLACE TEMP TABLE _consent_new AS
            SELECT e.contact_id, c.account_id, e.purpose, e.action, e.source, e.evidence,
                   e.recorded_at, e.i
            FROM _consent_in e JOIN contacts c USING (contact_id)
            WHERE NOT EXISTS (
                SELECT 1 FROM consent_events x
                WHERE x.contact_id = e.contact_id AND x.purpose = e.purpose
                  AND x.action = e.action AND x.recorded_at = e.recorded_at
                  AND x.source = e.source)
            QUALIFY row_number() OVER (
                PARTITION BY e.contact_id, e.purpose, e.action, e.recorded_at, e.source
                ORDER BY e.i) = 1""")
    # event_id increases with recorded_at within the batch, then with batch order.
    count = con.execute("SELECT count(*) FROM _consent_new").fetchall()[0][0]
    con.execute("""
        INSERT INTO consent_events
            (event_id, contact_id, account_id, purpose, action, source, evidence, recorded_at)
        SELECT ? - 1 + row_number() OVER (ORDER BY recorded_at, i),
               contact_id, account_id, purpose, action, source, evidence, recorded_at
        FROM _consent_new""", [store.next_id(con, "consent_events", "event_id", count)])
    con.execute("""
        INSERT INTO audit_log ("at", actor, action, subject_key, details)
        SELECT ?, ?, 'consent.' || action, NULL,
               json_object('contact_id', contact_id, 'account_id', account_id,
                           'purpose', purpose, 'source', source, 'recorded_at', recorded_at)
        FROM _consent_new ORDER BY i""", [datetime.now(UTC), actor])
    added = con.execute("SELECT count(*) FROM _consent_new").fetchall()[0][0]
    con.execute("DROP TABLE _consent_new")
    return added


def record_keyword_opt_outs(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, *,
                            actor: str = "bizchat") -> pd.DataFrame:
    """Opt contacts out of marketing whose inbound text is an opt-out keyword.

    ``frame`` has account_id, contact_id, text, at, message_id (inbound messages). Each
    account's keywords are ``accounts.opt_out_keywords`` or the default list. Returns the
    rows that were keywords (a replayed message records nothing new). Call inside the
    ingestion transaction, so the opt-out lands with the message that carried it.
    """
    empty = frame.iloc[0:0]
    if len(frame) == 0:
        return empty
    text = frame["text"]
    short = frame[text.notna() & (text.astype(str).str.len() <= _MAX_KEYWORD_LEN)
                  & frame["contact_id"].notna()]
    if short.empty:
        return empty
    accounts = sorted({int(a) for a in short["account_id"].dropna()})
    rows = con.execute("SELECT account_id, opt_out_keywords FROM accounts "
                       "WHERE list_contains(?, account_id)", [accounts]).fetchall()
    words = pd.DataFrame(
        [(aid, normalise_keyword(w)) for aid, custom in rows
         for w in (DEFAULT_OPT_OUT_KEYWORDS if custom is None else custom)],
        columns=["_aid", "_word"]).drop_duplicates()
    probe = pd.MultiIndex.from_arrays([short["account_id"].astype("int64"),
                                       short["text"].astype(str).map(normalise_keyword)])
    hits = short[probe.isin(pd.MultiIndex.from_frame(words))]
    if hits.empty:
        return empty
    record_events(con, pd.DataFrame({
        "contact_id": hits["contact_id"], "account_id": hits["account_id"],
        "purpose": "marketing", "action": "opt_out", "source": "keyword",
        "evidence": "message " + hits["message_id"].astype(str),
        "recorded_at": hits["at"],
    }), actor=actor)
    return hits


# --- the sending rule --------------------------------------------------------------------------

def may_send(con: duckdb.DuckDBPyConnection, account_id: int, contact_ids,
             purpose: str = "marketing") -> pd.DataFrame:
    """May ``account_id`` send a ``purpose`` message to each of ``contact_ids`` now?

    Returns one row per given id, in order: contact_id, allowed (bool) and reason (None
    when allowed, else unknown_contact, invalid_number, opted_out or no_consent).
    Vectorised; call it when the audience is frozen and again at send time.
    """
    purpose = _purpose(purpose)
    ids = pd.DataFrame({"pos": range(len(contact_ids)),
                        "contact_id": pd.array(list(contact_ids), dtype="Int64")})
    with store.registered(con, "_may_ids", ids):
        result = con.execute("""
            SELECT i.contact_id,
                   CASE
                       WHEN c.contact_id IS NULL THEN 'unknown_contact'
                       WHEN coalesce(c.phone_e164, c.wa_id, c.user_id) IS NULL THEN 'invalid_number'
                       WHEN cc.state = 'opt_out' THEN 'opted_out'
                       WHEN ? = 'marketing' AND cc.state IS DISTINCT FROM 'opt_in' THEN 'no_consent'
                   END AS reason
            FROM _may_ids i
            LEFT JOIN contacts c ON c.contact_id = i.contact_id AND c.account_id = ?
            LEFT JOIN current_consent cc
                   ON cc.contact_id = c.contact_id AND cc.account_id = c.account_id
                  AND cc.purpose = ?
            ORDER BY i.pos""", [purpose, account_id, purpose]).df()
    result["contact_id"] = result["contact_id"].astype("Int64")
    result["reason"] = result["reason"].astype(object).where(result["reason"].notna(), None)
    result.insert(1, "allowed", result["reason"].isna())
    return result


@dataclass(frozen=True)
class Decision:
    """The answer for one contact: truthy when allowed; ``reason`` says why not."""

    allowed: bool
    reason: str | None

    def __bool__(self) -> bool:
        return self.allowed


# --- the service -------------------------------------------------------------------------------

class Consent:
    """The consent ledger (``ws.consent``)."""

    def __init__(self, ws):
        self.ws = ws

    def _contact(self, con, contact, account) -> dict:
        if account is not None:
            return get_contact(con, get_account(con, account), contact)
        if isinstance(contact, dict) and "contact_id" in contact:
            contact = contact["contact_id"]
        if isinstance(contact, numbers.Integral) and not isinstance(contact, bool):
            found = first_contact(con, "contact_id = ?", [int(contact)])
            if found:
                return found
            raise NotFound(f"No contact with contact_id {contact}.", input=contact)
        raise InvalidValue(
            f"To find the contact {contact!r} by number, wa_id or user_id, also give its "
            "account (account=...).", input=contact)

    def _record(self, action, contact, purpose, account, source, evidence, at, actor) -> dict:
        purpose = _purpose(purpose)
        at = at or datetime.now(UTC)
        if isinstance(at, datetime) and at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        if not source or not str(source).strip():
            raise InvalidValue("Say where the consent came from (its source), e.g. "
                               "double_opt_in_form, in_store or chat.")
        with self.ws.transaction() as con:
            found = self._contact(con, contact, account)
            record_events(con, pd.DataFrame([{
                "contact_id": found["contact_id"], "account_id": found["account_id"],
                "purpose": purpose, "action": action, "source": str(source).strip(),
                "evidence": evidence, "recorded_at": at}]), actor=actor)
            return {"contact_id": found["contact_id"], "account_id": found["account_id"],
                    "purpose": purpose, "action": action, "source": str(source).strip(),
                    "evidence": evidence, "recorded_at": at}

    def opt_in(self, contact, purpose: str = "marketing", *, source: str, evidence: str | None = None,
               at: datetime | None = None, account=None, actor: str = "bizchat") -> dict:
        """Record consent. ``source`` is required (where it was given), ``evidence`` should
        say how to prove it (e.g. the confirmation message and time). ``contact`` is a
        contact_id or contact dict, or any reference within ``account``."""
        return self._record("opt_in", contact, purpose, account, source, evidence, at, actor)

    def opt_out(self, contact, purpose: str = "marketing", *, source: str = "manual",
                evidence: str | None = None, at: datetime | None = None, account=None,
                actor: str = "bizchat") -> dict:
        """Record a withdrawal of consent; it takes effect at once."""
        return self._record("opt_out", contact, purpose, account, source, evidence, at, actor)

    def record(self, contact, *, action: str, purpose: str = "marketing", source: str,
               evidence: str | None = None, at: datetime | None = None, account=None,
               actor: str = "bizchat") -> dict:
        """Record an opt-in or opt-out (``action``: ``opt_in`` / ``opt_out``) with where it
        came from and its evidence, e.g. a customer who agreed on the phone or at the
        counter: ``record(phone, account=..., action="opt_in", source="phone", evidence=
        "Call 2026-03-02 10:14, agent Jana")``."""
        if action not in ("opt_in", "opt_out"):
            raise InvalidValue(f"{action!r} is not a consent action; use opt_in or opt_out.",
                               input=action)
        return self._record(action, contact, purpose, account, source, evidence, at, actor)

    def history(self, contact, *, account=None) -> pd.DataFrame:
        """Every consent event of the contact, oldest first."""
        with self.ws.connect(read_only=True) as con:
            found = self._contact(con, contact, account)
            return con.execute("""
                SELECT recorded_at, purpose, action, source, evidence, event_id
                FROM consent_events WHERE contact_id = ?
                ORDER BY recorded_at, event_id""", [found["contact_id"]]).df()

    def current(self, contact, purpose: str = "marketing", *, account=None) -> str | None:
        """'opt_in', 'opt_out', or None when nothing was ever recorded for ``purpose``."""
        purpose = _purpose(purpose)
        with self.ws.connect(read_only=True) as con:
            found = self._contact(con, contact, account)
            rows = con.execute("SELECT state FROM current_consent WHERE contact_id = ? "
                               "AND purpose = ?", [found["contact_id"], purpose]).fetchall()
            return rows[0][0] if rows else None

    def may_send(self, account, contact, purpose: str = "marketing") -> Decision:
        """May ``account`` send a ``purpose`` message to ``contact`` now? (see may_send)"""
        with self.ws.connect(read_only=True) as con:
            acc = get_account(con, account)
            if isinstance(contact, dict) and "contact_id" in contact:
                contact = contact["contact_id"]
            if isinstance(contact, numbers.Integral) and not isinstance(contact, bool):
                contact_id = int(contact)
            else:
                try:
                    contact_id = get_contact(con, acc, contact)["contact_id"]
                except NotFound:
                    return Decision(False, "unknown_contact")
            row = may_send(con, acc["account_id"], [contact_id], purpose).iloc[0]
            return Decision(bool(row["allowed"]), row["reason"])

    def may_send_many(self, account, contact_ids, purpose: str = "marketing") -> pd.DataFrame:
        """The vectorised answer for many contact_ids (see the module function)."""
        with self.ws.connect(read_only=True) as con:
            return may_send(con, get_account(con, account)["account_id"], contact_ids, purpose)
