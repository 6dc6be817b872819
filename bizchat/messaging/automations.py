"""Automated messages: the greeting and the away message of each account.

Rules (table ``automations``, one greeting and one away rule per account):

- **greeting**: answers a contact's first inbound message, and the first one after
  ``silence_days`` (default 14) without any message in either direction. Silence is
  measured against the messages *before* the inbound one (ties at the same instant are
  broken by message_id), so a batch with several inbound messages greets once.
- **away**: answers inbound messages while its schedule is active: ``always``,
  ``outside_hours`` (outside ``accounts.business_hours`` in the account's time zone; an
  account without hours is always open, so never away) or ``custom`` (``schedule_spec``,
  shaped like business hours, says when the away message is active). At most one away
  message per contact per *continuous away period*, e.g. Friday 18:00 to Monday 09:00 is
  one period. A schedule with no break at all (``always``, or closed all week) has no
  period end, so there the period is the local calendar day: at most one per day.
- **scope**: everyone; unknown_contacts (the contact did not exist before this message:
  the ``new_contact`` column of the inbound batch, else: the contact was created at or
  after the message's time and no earlier message with them exists);
  only_labels / except_labels (``scope_labels``: label names, matched in any case, on the
  contact or any of its chats).

``apply(con, inbound)`` decides and records the replies for a batch of inbound messages
inside the caller's transaction (webhook ingestion calls it after inserting them). It
reads only accounts, contacts, labels, contact_labels, chat_labels, chats, messages and
automations, and writes outbound ``messages`` rows (automatic, source 'automation', kind
'text', created_at = the inbound time, details = automation_id, kind, inbound message id,
period). Reply ids are deterministic ('auto-' + sha256 of rule and inbound id), so applying
the same inbound message twice adds nothing. Sending them is the transports' job.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import duckdb
import pandas as pd

from .. import store
from ..errors import InvalidValue, NotFound
from ..people.accounts import WEEKDAYS, get_account, parse_hours
from ..people.labels import label_ids
from . import placeholders
from . import render as renderer

KINDS = ("greeting", "away")
SCHEDULES = ("always", "outside_hours", "custom")
SCOPES = ("everyone", "unknown_contacts", "only_labels", "except_labels")
MAX_TEXT_LENGTH = 4096
_WEEK = 7 * 1440  # minutes

_COLUMNS = ("automation_id, account_id, kind, text, schedule, schedule_spec, scope, "
            "scope_labels, silence_days, enabled, created_at")

# What apply returns: the automatic messages it inserted.
RESULT_COLUMNS = ["message_id", "automation_id", "kind", "account_id", "contact_id", "chat_id",
                  "inbound_message_id", "body", "created_at"]


# --- checks (pure) ------------------------------------------------------------------------------

def check_text(text) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InvalidValue("An automated message needs a text, e.g. 'Hallo {first_name}, danke "
                           "für Ihre Nachricht!'.", input=text)
    if len(text) > MAX_TEXT_LENGTH:
        raise InvalidValue(f"The text is {len(text)} characters long; WhatsApp allows "
                           f"{MAX_TEXT_LENGTH}. Shorten it.", input=text)
    renderer.validate(text)
    return text


def _check_choice(value, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise InvalidValue(f"{value!r} is not a {what}; use one of {', '.join(choices)}.",
                           input=value)
    return value


def _minutes(hhmm: str) -> int:
    hours, minutes = str(hhmm).split(":")
    return int(hours) * 60 + int(minutes)


def _week_ranges(hours: dict) -> list[tuple[int, int]]:
    """Per-day ranges as merged [start, end) minutes of the week (Monday 00:00 = 0)."""
    ranges = sorted(
        (day * 1440 + _minutes(start), day * 1440 + _minutes(end))
        for day, name in enumerate(WEEKDAYS) for start, end in (hours.get(name) or []))
    merged: list[tuple[int, int]] = []
    for start, end in ranges:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def away_intervals(schedule: str, spec: dict | None, business_hours: dict | None
                   ) -> list[tuple[int, int, int, bool]]:
    """When an away rule is active, as rows (lo, hi, shift, daily) over minutes of the week.

    A local time at week minute ``w`` with lo <= w < hi is away; its period began
    ``w + shift`` minutes earlier. ``daily`` marks a schedule without any break, whose
    period is the calendar day. A period across Sunday midnight is two rows.
    """
    if schedule == "always":
        return [(0, _WEEK, 0, True)]
    if schedule == "custom":
        active = _week_ranges(spec or {})
    else:
        if not business_hours:
            return []  # no hours: always open (as accounts.is_open_at), never away
        active, cursor = [], 0
        for start, end in _week_ranges(business_hours):
            if start > cursor:
                active.append((cursor, start))
            cursor = end
        if cursor < _WEEK:
            active.append((cursor, _WEEK))
    if not active:
        return []
    if active == [(0, _WEEK)]:
        return [(0, _WEEK, 0, True)]
    rows = [(start, end, -start, False) for start, end in active]
    if len(active) > 1 and active[0][0] == 0 and active[-1][1] == _WEEK:
        # Sunday night continues into Monday morning: one period.
        last_start = active[-1][0]
        rows[0] = (0, active[0][1], _WEEK - last_start, False)
    return rows


# --- apply: the set-based core ---------------------------------------------------------------------

def _inbound_frame(inbound: pd.DataFrame) -> pd.DataFrame:
    needed = {"account_id", "contact_id", "message_id", "created_at"}
    missing = needed - set(inbound.columns)
    if missing:
        raise InvalidValue(f"The inbound batch lacks the column(s) {sorted(missing)}; it needs "
                           "account_id, contact_id, message_id, created_at (chat_id and "
                           "new_contact are optional).", input=sorted(missing))
    n = len(inbound)
    src = inbound.reset_index(drop=True)

    def optional(name: str):
        return src[name] if name in src.columns else [None] * n

    frame = pd.DataFrame({
        "account_id": pd.array(src["account_id"], dtype="Int64"),
        "contact_id": pd.array(src["contact_id"], dtype="Int64"),
        "chat_id": pd.array(optional("chat_id"), dtype="Int64"),
        "message_id": src["message_id"].astype(object),
        "created_at": pd.to_datetime(src["created_at"], utc=True),
        "new_contact": pd.array(optional("new_contact"), dtype="boolean"),
    })
    frame = frame[frame["contact_id"].notna() & frame["message_id"].notna()]
    return frame.drop_duplicates("message_id")


_DECIDE = """
WITH inb AS (
    SELECT i.account_id, i.contact_id, i.message_id, i.created_at, i.new_contact,
           coalesce(i.chat_id, (SELECT min(h.chat_id) FROM chats h WHERE h.account_id =
                    i.account_id AND h.contact_id = i.contact_id)) AS chat_id
    FROM _auto_in i
),
act AS (  -- everything said with these contacts: the table and this batch
    SELECT m.account_id, m.contact_id, m.message_id, m.created_at FROM messages m
    WHERE m.contact_id IN (SELECT contact_id FROM inb)
    UNION
    SELECT account_id, contact_id, message_id, created_at FROM inb
),
cand AS (
    SELECT i.*, r.automation_id, r.kind, r.text, r.scope, r.silence_days,
           list_transform(coalesce(r.scope_labels, []), lambda x: lower(x)) AS wanted,
           timezone(a.timezone, i.created_at) AS local_at,
           coalesce(i.new_contact, k.created_at >= i.created_at AND NOT EXISTS (
               SELECT 1 FROM act p WHERE p.account_id = i.account_id
               AND p.contact_id = i.contact_id AND p.message_id <> i.message_id
               AND (p.created_at < i.created_at
                    OR (p.created_at = i.created_at AND p.message_id < i.message_id))))
               AS is_new
    FROM inb i
    JOIN automations r ON r.account_id = i.account_id AND r.enabled
    JOIN accounts a ON a.account_id = i.account_id
    JOIN contacts k ON k.contact_id = i.contact_id
),
labelled AS (
    SELECT c.*, (
        EXISTS (SELECT 1 FROM contact_labels x JOIN labels l USING (label_id)
                WHERE x.contact_id = c.contact_id AND l.account_id = c.account_id
                AND list_contains(c.wanted, lower(l.name)))
        OR EXISTS (SELECT 1 FROM chat_labels x JOIN labels l USING (label_id)
                   JOIN chats h ON h.chat_id = x.chat_id
                   WHERE h.contact_id = c.contact_id AND l.account_id = c.account_id
                   AND list_contains(c.wanted, lower(l.name)))) AS has_label
    FROM cand c
),
scoped AS (
    SELECT *,
           (isodow(local_at) - 1) * 1440 + hour(local_at) * 60 + minute(local_at) AS week_minute
    FROM labelled
    WHERE scope = 'everyone' OR (scope = 'unknown_contacts' AND is_new)
       OR (scope = 'only_labels' AND has_label) OR (scope = 'except_labels' AND NOT has_label)
),
greetings AS (
    SELECT s.*, CAST(NULL AS VARCHAR) AS period FROM scoped s
    WHERE s.kind = 'greeting' AND NOT EXISTS (
        SELECT 1 FROM act p WHERE p.account_id = s.account_id AND p.contact_id = s.contact_id
        AND p.message_id <> s.message_id
        AND (p.created_at < s.created_at
             OR (p.created_at = s.created_at AND p.message_id < s.message_id))
        AND p.created_at > s.created_at - to_days(s.silence_days))
),
aways AS (
    SELECT s.*, CASE WHEN w.daily THEN strftime(s.local_at, '%Y-%m-%d')
                     ELSE strftime(date_trunc('minute', s.local_at)
                                   - to_minutes(s.week_minute + w.shift), '%Y-%m-%d %H:%M')
                END AS period
    FROM scoped s JOIN _auto_away w ON w.automation_id = s.automation_id
         AND s.week_minute >= w.lo AND s.week_minute < w.hi
    WHERE s.kind = 'away'
    QUALIFY row_number() OVER (PARTITION BY s.automation_id, s.contact_id, period
                               ORDER BY s.created_at, s.message_id) = 1
),
decided AS (
    SELECT * FROM greetings UNION ALL BY NAME SELECT * FROM aways
)
SELECT 'auto-' || substr(sha256(d.automation_id::VARCHAR || ':' || d.message_id), 1, 32)
           AS reply_id,
       d.automation_id, d.kind, d.text, d.account_id, d.contact_id, d.chat_id,
       d.message_id AS inbound_message_id, d.created_at, d.period,
       c.name, c.attributes, a.display_name
FROM decided d
JOIN contacts c ON c.contact_id = d.contact_id
JOIN accounts a ON a.account_id = d.account_id
WHERE NOT EXISTS (  -- idempotent: this rule already answered this message
        SELECT 1 FROM messages m WHERE m.message_id =
            'auto-' || substr(sha256(d.automation_id::VARCHAR || ':' || d.message_id), 1, 32))
  AND (d.period IS NULL OR NOT EXISTS (  -- one away message per contact and period
        SELECT 1 FROM messages m WHERE m.automatic AND m.contact_id = d.contact_id
        AND m.account_id = d.account_id
        AND json_extract(m.details, '$.automation_id')::INTEGER = d.automation_id
        AND json_extract_string(m.details, '$.period') = d.period))
ORDER BY d.created_at, d.message_id, d.kind DESC
"""

_TIDY_SPACE = re.compile(r"[ \t]{2,}")
_TIDY_PUNCT = re.compile(r"[ \t]+([,.!?;:])")


def _body(text: str, row: dict) -> tuple[str, list[str]]:
    """Render a rule's text for one contact; missing values become empty (a webhook must
    not fail because a contact has no name), and are reported in details.missing."""
    gaps: list[str] = []

    def blank(name: str) -> str:
        gaps.append(name)
        return ""

    values = renderer.contact_values(row, row)
    body = renderer.render(text, values, missing=blank)
    if gaps:
        body = _TIDY_PUNCT.sub(r"\1", _TIDY_SPACE.sub(" ", body)).strip()
    return body, sorted(set(gaps))


def apply(con: duckdb.DuckDBPyConnection, inbound: pd.DataFrame) -> pd.DataFrame:
    """Decide and insert the automatic replies to a batch of inbound messages.

    ``inbound``: account_id, contact_id, message_id, created_at, optional chat_id and
    new_contact (True when this message created the contact). The messages should already
    be in ``messages``; the batch counts as earlier activity either way. Runs inside the
    caller's transaction; returns the replies inserted now (RESULT_COLUMNS), none on a
    repeat.
    """
    empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in RESULT_COLUMNS})
    if inbound is None or len(inbound) == 0:
        return empty
    frame = _inbound_frame(inbound)
    if frame.empty:
        return empty
    accounts = sorted({int(a) for a in frame["account_id"].dropna()})
    cur = con.execute("""
        SELECT r.automation_id, r.schedule, r.schedule_spec, a.business_hours
        FROM automations r JOIN accounts a USING (account_id)
        WHERE r.enabled AND r.kind = 'away' AND list_contains(?, r.account_id)""", [accounts])
    windows = []
    for automation_id, schedule, spec, hours in cur.fetchall():
        for lo, hi, shift, daily in away_intervals(
                schedule, json.loads(spec) if spec else None, json.loads(hours) if hours else None):
            windows.append((automation_id, lo, hi, shift, daily))
    away = pd.DataFrame(windows, columns=["automation_id", "lo", "hi", "shift", "daily"]).astype(
        {"automation_id": "int64", "lo": "int64", "hi": "int64", "shift": "int64",
         "daily": "bool"})
    con.register("_auto_in", frame)
    con.register("_auto_away", away)
    try:
        decided = con.execute(_DECIDE).df()
        if decided.empty:
            return empty
        rendered = [_body(text, {"name": name, "attributes": attrs, "display_name": business})
                    for text, name, attrs, business in zip(
                        decided["text"], decided["name"], decided["attributes"],
                        decided["display_name"], strict=True)]
        details = []
        for (aid, kind, inbound_id, period), (_, gaps) in zip(
                decided[["automation_id", "kind", "inbound_message_id", "period"]].itertuples(
                    index=False), rendered, strict=True):
            entry = {"automation_id": int(aid), "kind": kind, "inbound_message_id": inbound_id}
            if isinstance(period, str):
                entry["period"] = period
            if gaps:
                entry["missing"] = gaps
            details.append(json.dumps(entry, ensure_ascii=False))
        out = pd.DataFrame({
            "message_id": decided["reply_id"],
            "automation_id": decided["automation_id"].astype("int64"),
            "kind": decided["kind"],
            "account_id": decided["account_id"].astype("int64"),
            "contact_id": decided["contact_id"].astype("int64"),
            "chat_id": pd.array(decided["chat_id"], dtype="Int64"),
            "inbound_message_id": decided["inbound_message_id"],
            "body": [body for body, _ in rendered],
            "created_at": pd.to_datetime(decided["created_at"], utc=True),
            "details": details,
        })
        con.register("_auto_out", out)
        try:
            con.execute("""
                INSERT INTO messages (message_id, chat_id, account_id, contact_id, direction,
                                      kind, body, automatic, source, details, created_at)
                SELECT message_id, chat_id, account_id, contact_id, 'out', 'text', body, true,
                       'automation', details::JSON, created_at
                FROM _auto_out""")
        finally:
            con.unregister("_auto_out")
    finally:
        con.unregister("_auto_in")
        con.unregister("_auto_away")
    return out[RESULT_COLUMNS].reset_index(drop=True)


# --- the service --------------------------------------------------------------------------------

def _rows(con, where: str, params: list) -> list[dict]:
    cur = con.execute(f"SELECT {_COLUMNS} FROM automations WHERE {where} "
                      "ORDER BY automation_id", params)
    out = []
    for rule in store.rows(cur):
        rule["schedule_spec"] = json.loads(rule["schedule_spec"]) if rule["schedule_spec"] else None
        rule["scope_labels"] = list(rule["scope_labels"]) if rule["scope_labels"] else None
        out.append(rule)
    return out


class Automations:
    """Greeting and away messages of each account (``ws.automations``)."""

    def __init__(self, ws):
        self.ws = ws

    def list(self, account) -> pd.DataFrame:
        """The account's rules: automation_id, kind, enabled, text, schedule, scope ..."""
        with self.ws.connect(read_only=True) as con:
            acc = get_account(con, account)
            return con.execute("""
                SELECT automation_id, kind, enabled, text, schedule, schedule_spec, scope,
                       scope_labels, silence_days, created_at
                FROM automations WHERE account_id = ? ORDER BY kind""",
                               [acc["account_id"]]).df()

    def get(self, account, rule) -> dict:
        """One rule by kind ('greeting', 'away') or automation_id."""
        with self.ws.connect(read_only=True) as con:
            return self._rule(con, get_account(con, account), rule)

    def preview(self, account, rule, contact) -> dict:
        """The exact text the rule (its kind or id) would send ``contact`` (any reference
        within the account), as ``apply`` renders it: ``text``, ``missing`` (placeholders
        this contact has no value for, left out of the text) and ``available``."""
        from ..people.contacts import get_contact

        with self.ws.connect(read_only=True) as con:
            acc = get_account(con, account)
            found = self._rule(con, acc, rule)
            person = get_contact(con, acc, contact)
            names = placeholders.available(con, acc["account_id"])
        body, missing = _body(found["text"], {**acc, **person})
        return {"kind": found["kind"], "text": body, "missing": missing, "available": names}

    def set_greeting(self, account, text: str, *, scope: str = "everyone", labels=None,
                     silence_days: int = 14, enabled: bool = True) -> dict:
        """Create or replace the account's greeting message; returns the rule."""
        if isinstance(silence_days, bool) or not isinstance(silence_days, int) \
                or not 1 <= silence_days <= 3650:
            raise InvalidValue(f"silence_days must be a whole number of days from 1 to 3650, "
                               f"got {silence_days!r}.", input=silence_days)
        return self._save(account, "greeting", text, scope=scope, labels=labels,
                          fields={"schedule": "always", "schedule_spec": None,
                                  "silence_days": silence_days}, enabled=enabled)

    def set_away(self, account, text: str, *, schedule: str = "outside_hours", spec=None,
                 scope: str = "everyone", labels=None, enabled: bool = True) -> dict:
        """Create or replace the account's away message; returns the rule.

        ``schedule``: always, outside_hours (the account's business hours, which must be
        set) or custom with ``spec`` (when the away message is active; same forms as
        business hours, e.g. ``"mon-fri=18:00-24:00; sat-sun=00:00-24:00"``).
        """
        _check_choice(schedule, SCHEDULES, "schedule")
        if schedule == "custom":
            parsed = parse_hours(spec) if spec is not None else None
            if not parsed or not any(parsed.values()):
                raise InvalidValue("A custom away schedule needs the times it is active, e.g. "
                                   "spec='mon-fri=18:00-24:00; sat-sun=00:00-24:00'.", input=spec)
            spec_json = json.dumps(parsed)
        elif spec is not None:
            raise InvalidValue(f"spec only applies to schedule='custom' (got {schedule!r}).",
                               input=spec)
        else:
            spec_json = None
        return self._save(account, "away", text, scope=scope, labels=labels,
                          fields={"schedule": schedule, "schedule_spec": spec_json},
                          enabled=enabled)

    def enable(self, account, rule) -> dict:
        """Switch the greeting or away message (``rule``: its kind or id) on."""
        return self._set_enabled(account, rule, True)

    def disable(self, account, rule) -> dict:
        """Switch the greeting or away message (``rule``: its kind or id) off; it is kept."""
        return self._set_enabled(account, rule, False)

    def delete(self, account, rule) -> dict:
        """Remove a rule; the messages it sent stay."""
        with self.ws.transaction() as con:
            found = self._rule(con, get_account(con, account), rule)
            con.execute("DELETE FROM automations WHERE automation_id = ?",
                        [found["automation_id"]])
            return found

    def process_inbound(self, message_ids) -> pd.DataFrame:
        """Run ``apply`` for stored inbound messages (by message_id), in one transaction."""
        ids = [message_ids] if isinstance(message_ids, str) else [str(m) for m in message_ids]
        with self.ws.transaction() as con:
            frame = con.execute("""
                SELECT DISTINCT ON (message_id) account_id, contact_id, chat_id, message_id,
                       created_at
                FROM messages WHERE direction = 'in' AND list_contains(?, message_id)""",
                                [ids]).df()
            unknown = sorted(set(ids) - set(frame["message_id"]))
            if unknown:
                raise NotFound(f"No inbound message with id {', '.join(unknown[:5])}"
                               f"{' ...' if len(unknown) > 5 else ''}. Nothing was sent.",
                               input=unknown)
            return apply(con, frame)

    # -- internals

    @staticmethod
    def _rule(con, account: dict, rule) -> dict:
        if isinstance(rule, int) and not isinstance(rule, bool):
            found = _rows(con, "account_id = ? AND automation_id = ?", [account["account_id"], rule])
        else:
            _check_choice(rule, KINDS, "kind of automated message")
            found = _rows(con, "account_id = ? AND kind = ?", [account["account_id"], rule])
        if not found:
            raise NotFound(f"Account {account['phone_e164']} has no {rule} message yet; set it "
                           f"with `bizchat automations set-{rule if rule in KINDS else 'greeting'}"
                           f" --account {account['phone_e164']} TEXT`.", input=rule)
        return found[0]

    def _set_enabled(self, account, rule, enabled: bool) -> dict:
        with self.ws.transaction() as con:
            found = self._rule(con, get_account(con, account), rule)
            con.execute("UPDATE automations SET enabled = ? WHERE automation_id = ?",
                        [enabled, found["automation_id"]])
            return {**found, "enabled": enabled}

    def _save(self, account, kind: str, text: str, *, scope: str, labels, fields: dict,
              enabled: bool) -> dict:
        text = check_text(text)
        _check_choice(scope, SCOPES, "scope")
        names = [labels] if isinstance(labels, str) else list(labels or [])
        if scope in ("only_labels", "except_labels") and not names:
            raise InvalidValue(f"The scope {scope} needs at least one label to name, e.g. VIP.",
                               input=scope, argument="labels")
        if scope not in ("only_labels", "except_labels") and names:
            raise InvalidValue("Labels only apply to the scopes only_labels and except_labels.",
                               input=labels)
        with self.ws.transaction() as con:
            acc = get_account(con, account)
            placeholders.check(con, acc["account_id"], text, what=f"{kind} message")
            if fields.get("schedule") == "outside_hours" and not acc.get("business_hours"):
                raise InvalidValue(
                    f"Account {acc['phone_e164']} has no business hours, so it is never outside "
                    "them. Set them first (accounts update, business_hours=...), or use "
                    "schedule='always' or 'custom'.", input="outside_hours")
            scope_labels = None
            if names:
                ids = label_ids(con, acc, names)
                scope_labels = [r[0] for r in con.execute(
                    "SELECT name FROM labels WHERE list_contains(?, label_id) ORDER BY name",
                    [ids]).fetchall()]
            values = {"text": text, "scope": scope, "scope_labels": scope_labels,
                      "enabled": bool(enabled), **fields}
            existing = _rows(con, "account_id = ? AND kind = ?", [acc["account_id"], kind])
            if existing:
                automation_id = existing[0]["automation_id"]
                con.execute(f"UPDATE automations SET {', '.join(f'{k} = ?' for k in values)} "
                            "WHERE automation_id = ?", [*values.values(), automation_id])
            else:
                automation_id = store.next_id(con, "automations", "automation_id")
                values.update(automation_id=automation_id, account_id=acc["account_id"],
                              kind=kind, created_at=datetime.now(UTC))
                con.execute(f"INSERT INTO automations ({', '.join(values)}) "
                            f"VALUES ({', '.join('?' for _ in values)})", list(values.values()))
            return _rows(con, "automation_id = ?", [automation_id])[0]


__all__ = ["Automations", "KINDS", "RESULT_COLUMNS", "SCHEDULES", "SCOPES", "apply",
           "away_intervals", "check_text"]
