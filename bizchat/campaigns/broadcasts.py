"""Broadcasts: compose, plan, freeze and follow campaigns to opted-in customers
(``ws.broadcasts``).

Life of a broadcast: ``create`` makes a draft (its template, audience, A/B variants and
hold-out control group, seed, what to do when a placeholder has no value, what to do
outside the recipients' hours and a deadline); ``preview`` shows the exact text any
contact would get, ``plan`` the audience size, expected outcomes and cost; ``schedule``
sets the send time and moves the draft to ``scheduled``: a draft is frozen at its send
time, not before (``broadcast_recipients``: queued, or skipped with the reason), so
``schedule`` for now freezes at once and ``schedule`` for later leaves the freezing to
``send`` / ``run_due`` when the time has come; ``reschedule``, ``pause`` and ``unpause``
change that until it starts sending; the sender (``bizchat.campaigns.outbox``) works
through the queue and decides quiet hours and the frequency cap at hand-off; ``cancel``
stops it, turning whoever is still queued into ``skipped`` / ``cancelled``; ``show`` and
``funnel`` follow it. Times without a zone are read in the account's time zone. Who is in and why not is decided in ``bizchat.campaigns.audiences``; consent
only by ``bizchat.people.consent.may_send``.

A draft's variants are stored in ``broadcasts.variants`` as
``[{"variant": "A", "template": name, "template_id": id, "share": 0.5, "values": {...}}]``
(``values``: fixed placeholder values, the same for every recipient).
"""

from __future__ import annotations

import builtins
import json
import secrets
import string
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd
import pyarrow as pa

from .. import store
from ..errors import Conflict, InvalidValue, NotFound
from ..messaging.chats import SERVICE_WINDOW
from ..people.accounts import get_account
from ..store import faults
from . import audiences as aud
from . import clock, planning
from . import templates as tpl

# A broadcast due within this much of now counts as due (cron runs a little early).
DUE_EARLY = timedelta(minutes=5)
CATEGORIES = ("marketing", "utility")
MISSING = ("skip", "fallback")
OUTSIDE_HOURS = ("defer", "skip")
STATES = ("queued", "sending", "sent", "unknown", "failed", "skipped")
_COLUMNS = ("broadcast_id, account_id, name, template, template_id, category, language, "
            "audience, variants, control_fraction, seed, missing_placeholder, fallbacks, "
            "status, scheduled_for, created_at, finished_at, outside_hours, expires_at, "
            "frozen_at")


def _utc(at, tz: str | None = None) -> datetime:
    """``at`` as UTC (a time without a zone is read in ``tz``); None is the campaign now."""
    return clock.now(at, tz)


def _outside_hours(value) -> str:
    if value not in OUTSIDE_HOURS:
        raise InvalidValue(f"outside_hours is 'defer' (send when the recipient's quiet hours "
                           f"end) or 'skip', got {value!r}.", input=value)
    return value


def _audit(con, action: str, details: dict, actor: str) -> None:
    con.execute("""INSERT INTO audit_log ("at", actor, action, subject_key, details)
                   VALUES (?, ?, ?, NULL, ?)""",
                [datetime.now(UTC), actor, action, json.dumps(details, default=str)])


def _load(con, broadcast_id) -> dict:
    try:
        key = int(broadcast_id)
    except (TypeError, ValueError) as exc:
        raise NotFound(f"{broadcast_id!r} is not a broadcast id (a number).",
                       input=broadcast_id) from exc
    cur = con.execute(f"SELECT {_COLUMNS} FROM broadcasts WHERE broadcast_id = ?", [key])
    found = store.one(cur)
    if found is None:
        raise NotFound(f"There is no broadcast {broadcast_id}. List them with "
                       "`bizchat broadcast list`.", input=broadcast_id)
    for column in ("audience", "variants", "fallbacks"):
        found[column] = json.loads(found[column]) if found[column] else None
    found["audience"] = found["audience"] or {}
    found["fallbacks"] = found["fallbacks"] or {}
    return found


def _resolved(con, account: dict, broadcast: dict) -> dict:
    """The broadcast with each variant's template row, ready for audiences.evaluate."""
    variants = broadcast["variants"] or [{"variant": "A", "template": broadcast["template"],
                                          "template_id": broadcast["template_id"], "share": 1.0}]
    out = []
    for v in variants:
        ref = v.get("template_id") or v.get("template")
        template = tpl.get_template(con, account, ref, broadcast.get("language"))
        out.append({**v, "variant": v.get("variant") or "A", "template": template})
    return {**broadcast, "variants": out}


def _state_check(broadcast: dict, allowed: tuple, doing: str) -> None:
    if broadcast["status"] not in allowed:
        raise Conflict(f"Broadcast {broadcast['broadcast_id']} is {broadcast['status']}; it can "
                       f"only be {doing} while {' or '.join(allowed)}.",
                       input=broadcast["broadcast_id"], status=broadcast["status"])


class Broadcasts:
    """Broadcast campaigns of every account (``ws.broadcasts``)."""

    def __init__(self, ws):
        self.ws = ws

    # -- composing ---------------------------------------------------------------------------

    def create(self, account, name: str, *, body: str | None = None, template=None,
               category: str | None = None, language: str = "de", header: str | None = None,
               footer: str | None = None, buttons=None, audience=None, labels_any=None,
               labels_all=None, labels_none=None, variants=None, control: float = 0.0,
               seed: int | None = None, missing: str | None = None,
               fallbacks: Mapping | None = None, values: Mapping | None = None,
               outside_hours: str = "defer", expires=None, actor: str = "bizchat") -> dict:
        """A draft broadcast; returns it (``broadcast_id`` ...).

        Give the message as ``body`` (a template named after the broadcast is registered,
        with ``header``, ``footer``, ``buttons``) or as an existing ``template`` (id or
        name). ``variants`` adds B, C, ...: each a body text, a template id, or a dict with
        ``body`` or ``template`` and optionally ``share`` and ``values``. ``control`` is the
        hold-out fraction that receives nothing. ``missing``: ``skip`` recipients lacking a
        placeholder value, or ``fallback`` to ``fallbacks`` (default: fallback when
        fallbacks are given). ``values`` are fixed placeholder values for everyone.
        ``outside_hours``: a recipient inside their quiet hours when the message would go
        is ``"defer"``red to the end of them (default) or ``"skip"``ped. ``expires``: a
        time (ISO, read in the account's zone when it has none) after which deferred
        recipients are skipped with reason ``expired``.
        """
        if not isinstance(name, str) or not name.strip():
            raise InvalidValue("A broadcast needs a name, e.g. 'Sommeraktion 2025'.", input=name)
        name = name.strip()
        if (body is None) == (template is None):
            raise InvalidValue("Give the message either as a body or as an existing template, "
                               "not both or neither.")
        try:
            control = float(control or 0)
        except (TypeError, ValueError) as exc:
            raise InvalidValue(f"control is a fraction between 0 and 1, got {control!r}.",
                               input=control) from exc
        if not 0 <= control < 1:
            raise InvalidValue(f"control is the hold-out fraction, from 0 up to (not including) "
                               f"1, got {control!r}.", input=control)
        fixed = tpl.check_values(values)
        fallbacks = tpl.check_values(fallbacks, "fallback")
        missing = missing or ("fallback" if fallbacks else "skip")
        if missing not in MISSING:
            raise InvalidValue(f"missing is 'skip' or 'fallback', got {missing!r}.", input=missing)
        if missing == "fallback" and not fallbacks:
            raise InvalidValue("missing='fallback' needs fallbacks, e.g. "
                               "fallbacks={'first_name': 'liebe Kundin, lieber Kunde'}.")
        audience = aud.Audience.parse(audience, labels_any=labels_any, labels_all=labels_all,
                                      labels_none=labels_none)
        outside_hours = _outside_hours(outside_hours)
        seed = int(seed) if seed is not None else secrets.randbelow(2**31)
        if seed < 0:
            raise InvalidValue(f"seed must be 0 or more, got {seed}.", input=seed)
        with self.ws.transaction() as con:
            acc = get_account(con, account)
            self._check_audience(con, acc, audience)
            expires_at = None if expires is None else _utc(expires, acc.get("timezone"))
            entries = [{"body": body, "template": template, "header": header, "footer": footer,
                        "buttons": buttons}]
            entries += [self._variant_entry(v) for v in (variants or [])]
            if len(entries) > 26:
                raise InvalidValue("At most 26 variants (A to Z).")
            base = tpl.slug(name)
            stored, chosen = [], category
            for letter, entry in zip(string.ascii_uppercase, entries, strict=False):
                if entry.get("template") is not None:
                    found = tpl.get_template(con, acc, entry["template"])
                else:
                    # B, C ... take A's header, footer and buttons unless they bring their own.
                    suffix = "" if letter == "A" else "_" + letter.lower()
                    supplied = [*fixed, *fallbacks, *tpl.check_values(entry.get("values"))]
                    found = tpl.create_template(
                        con, acc, tpl.free_name(con, acc["account_id"], base + suffix,
                                                 _lang(language)),
                        entry["body"], language=language, category=chosen or "marketing",
                        header=entry.get("header", header), footer=entry.get("footer", footer),
                        buttons=entry.get("buttons", buttons), extra_placeholders=supplied,
                        actor=actor)
                chosen = chosen or found["category"]
                if chosen not in CATEGORIES:
                    raise InvalidValue(f"A broadcast is marketing or utility, got {chosen!r}.",
                                       input=chosen)
                if found["category"] != chosen:
                    raise InvalidValue(
                        f"The template {found['name']!r} is a {found['category']} template; a "
                        f"{chosen} broadcast needs templates of its own category.",
                        input=found["name"])
                stored.append({"variant": letter, "template": found["name"],
                               "template_id": found["template_id"],
                               "language": found["language"], "share": entry.get("share"),
                               "values": {**fixed, **tpl.check_values(entry.get("values"))}})
            first = tpl.get_template(con, acc, stored[0]["template_id"])
            shares = aud.variant_shares(stored)
            for v, share in zip(stored, shares, strict=True):
                v["share"] = round(float(share), 6)
            broadcast_id = store.next_id(con, "broadcasts", "broadcast_id")
            con.execute("""
                INSERT INTO broadcasts (broadcast_id, account_id, name, template, template_id,
                    category, language, audience, variants, control_fraction, seed,
                    missing_placeholder, fallbacks, status, created_at, outside_hours,
                    expires_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'draft', ?, ?, ?)""",
                        [broadcast_id, acc["account_id"], name, first["name"],
                         first["template_id"], chosen, first["language"],
                         json.dumps(audience.to_dict(), ensure_ascii=False),
                         json.dumps(stored, ensure_ascii=False), control, seed, missing,
                         json.dumps(fallbacks, ensure_ascii=False) if fallbacks else None,
                         datetime.now(UTC), outside_hours, expires_at])
            _audit(con, "broadcast.create", {"broadcast_id": broadcast_id,
                                             "account_id": acc["account_id"],
                                             "category": chosen, "variants": len(stored)}, actor)
            return _load(con, broadcast_id)

    @staticmethod
    def _variant_entry(value) -> dict:
        if isinstance(value, str):
            return {"body": value}
        if isinstance(value, int) and not isinstance(value, bool):
            return {"template": value}
        if isinstance(value, Mapping):
            if "template_id" in value and "template" not in value:
                return {**value, "template": value["template_id"]}
            if (value.get("body") is None) == (value.get("template") is None):
                raise InvalidValue("A variant gives either body or template.", input=dict(value))
            return dict(value)
        raise InvalidValue(f"A variant is a body text, a template id or a dict, got {value!r}.",
                           input=value)

    @staticmethod
    def _check_audience(con, acc: dict, audience: aud.Audience) -> None:
        """Fail while composing, not when sending: labels and past broadcasts must exist."""
        from ..people.labels import label_ids

        label_ids(con, acc, [*audience.labels_any, *audience.labels_all, *audience.labels_none])
        aud.check_broadcast_refs(con, acc, audience)
        if audience.contacts:
            found = {r[0] for r in con.execute(
                "SELECT contact_id FROM contacts WHERE account_id = ? AND "
                "list_contains(?, contact_id)", [acc["account_id"], list(audience.contacts)]
            ).fetchall()}
            lost = [c for c in audience.contacts if c not in found]
            if lost:
                raise NotFound(f"Account {acc['phone_e164']} has no contact {lost[0]} (named in "
                               "the audience).", input=lost)

    def update(self, broadcast_id, *, name: str | None = None, audience=None,
               control: float | None = None, seed: int | None = None,
               missing: str | None = None, fallbacks: Mapping | None = None,
               values: Mapping | None = None, outside_hours: str | None = None,
               expires=None, actor: str = "bizchat") -> dict:
        """Change a draft: its name, audience, control fraction, seed, missing-value rule,
        fallbacks, fixed values, ``outside_hours`` or ``expires`` (given ones replace the
        stored ones; ``expires="none"`` removes the deadline)."""
        with self.ws.transaction() as con:
            found = _load(con, broadcast_id)
            _state_check(found, ("draft",), "changed")
            acc = get_account(con, found["account_id"])
            changes: dict = {}
            if name is not None:
                if not str(name).strip():
                    raise InvalidValue("A broadcast needs a name.", input=name)
                changes["name"] = str(name).strip()
            if audience is not None:
                parsed = aud.Audience.parse(audience)
                self._check_audience(con, acc, parsed)
                changes["audience"] = json.dumps(parsed.to_dict(), ensure_ascii=False)
            if control is not None:
                if not 0 <= float(control) < 1:
                    raise InvalidValue(f"control is a fraction from 0 up to 1, got {control!r}.",
                                       input=control)
                changes["control_fraction"] = float(control)
            if seed is not None:
                if int(seed) < 0:
                    raise InvalidValue(f"seed must be 0 or more, got {seed}.", input=seed)
                changes["seed"] = int(seed)
            if fallbacks is not None:
                checked = tpl.check_values(fallbacks, "fallback")
                changes["fallbacks"] = json.dumps(checked, ensure_ascii=False) if checked else None
            if missing is not None:
                if missing not in MISSING:
                    raise InvalidValue(f"missing is 'skip' or 'fallback', got {missing!r}.",
                                       input=missing)
                changes["missing_placeholder"] = missing
            if outside_hours is not None:
                changes["outside_hours"] = _outside_hours(outside_hours)
            if expires is not None:
                changes["expires_at"] = (None if str(expires).lower() == "none"
                                         else _utc(expires, acc.get("timezone")))
            if values is not None:
                fixed = tpl.check_values(values)
                changes["variants"] = json.dumps([{**v, "values": fixed}
                                                  for v in found["variants"]], ensure_ascii=False)
            if changes:
                con.execute(f"UPDATE broadcasts SET {', '.join(f'{k} = ?' for k in changes)} "
                            "WHERE broadcast_id = ?", [*changes.values(), found["broadcast_id"]])
            updated = _load(con, found["broadcast_id"])
            if updated["missing_placeholder"] == "fallback" and not updated["fallbacks"]:
                raise InvalidValue("missing='fallback' needs fallbacks.")
            _audit(con, "broadcast.update", {"broadcast_id": found["broadcast_id"],
                                             "fields": sorted(changes)}, actor)
            return updated

    # -- reading -----------------------------------------------------------------------------

    def get(self, broadcast_id) -> dict:
        """The broadcast with its audience, variants and fallbacks parsed."""
        with self.ws.connect(read_only=True) as con:
            return _load(con, broadcast_id)

    def list(self, account=None) -> pd.DataFrame:
        """Broadcasts (of one account, or all), newest first, with their counts so far."""
        with self.ws.connect(read_only=True) as con:
            account_id = get_account(con, account)["account_id"] if account is not None else None
            return con.execute("""
                SELECT s.broadcast_id, a.phone_e164 AS account, s.name, s.category, s.status,
                       s.scheduled_for, s.recipients,
                       s.recipients - s.skipped AS to_send, s.skipped, s.sent, s.delivered,
                       s."read", s.failed, b.created_at
                FROM campaign_stats s JOIN broadcasts b USING (broadcast_id)
                JOIN accounts a ON a.account_id = b.account_id
                WHERE ? IS NULL OR b.account_id = ?
                ORDER BY b.broadcast_id DESC""", [account_id, account_id]).df()

    def names(self, account=None) -> pd.DataFrame:
        """broadcast_id, account_id, name, category, status, scheduled_for of the broadcasts
        (of one account, or all), newest first: what a picker lists, without the counts
        ``list`` adds (and pays for)."""
        with self.ws.connect() as con:
            account_id = get_account(con, account)["account_id"] if account is not None else None
            return con.execute("""
                SELECT broadcast_id, account_id, name, category, status, scheduled_for
                FROM broadcasts WHERE ? IS NULL OR account_id = ?
                ORDER BY broadcast_id DESC""", [account_id, account_id]).df()

    def recipients(self, broadcast_id) -> pd.DataFrame:
        """The frozen recipients with their state, reason, variant and message."""
        with self.ws.connect(read_only=True) as con:
            found = _load(con, broadcast_id)
            return con.execute("""
                SELECT r.contact_id, c.name, r.variant, r.state, r.skip_reason, r.message_id,
                       s.status, r.error_code, r.error_title, r.attempts, r.not_before,
                       r.sent_at, r.body
                FROM broadcast_recipients r LEFT JOIN contacts c USING (contact_id)
                LEFT JOIN message_status s ON s.message_id = r.message_id
                WHERE r.broadcast_id = ? ORDER BY r.contact_id""",
                               [found["broadcast_id"]]).df()

    def audience(self, broadcast_id, at=None) -> pd.DataFrame:
        """Who would receive what if the broadcast were frozen for ``at`` (default: its
        scheduled time, else now); for a frozen one, its recipients."""
        with self.ws.connect(read_only=True) as con:
            found = _load(con, broadcast_id)
            acc = get_account(con, found["account_id"])
            when = _utc(at if at is not None else found["scheduled_for"])
            return aud.evaluate(con, acc, _resolved(con, acc, found), when)

    def preview(self, broadcast_id, contact, *, variant: str | None = None,
                at=None) -> tpl.Rendered:
        """The exact text ``contact`` gets (any reference within the account).

        For a frozen broadcast: the frozen text, variant and state. For a draft: the text of
        ``variant`` (default A), and whether the contact would be sent it at ``at`` (default:
        now) or skipped, with the reason (``not_in_audience`` when the audience does not
        select them). Renders even for excluded contacts, so the composer can read every
        version; raises TemplateError when a placeholder has no value.
        """
        from ..people.contacts import get_contact

        with self.ws.connect(read_only=True) as con:
            found = _load(con, broadcast_id)
            acc = get_account(con, found["account_id"])
            person = get_contact(con, acc, contact)
            rows = con.execute("""
                SELECT variant, state, skip_reason, body, params FROM broadcast_recipients
                WHERE broadcast_id = ? AND contact_id = ?""",
                               [found["broadcast_id"], person["contact_id"]]).fetchall()
            if rows and rows[0][3] is not None and variant in (None, rows[0][0]):
                v, state, reason, body, params = rows[0]
                name = next((x["template"] for x in found["variants"] or []
                             if x.get("variant") == v), found["template"])
                return tpl.Rendered(text=body, params=json.loads(params or "{}"), template=name,
                                    variant=v, state=state, skip_reason=reason)
            ready = _resolved(con, acc, found)
            chosen = variant or (rows[0][0] if rows and rows[0][0] not in (None, "control")
                                 else "A")
            picked = [v for v in ready["variants"] if v["variant"] == chosen]
            if not picked:
                raise NotFound(f"Broadcast {found['broadcast_id']} has no variant {chosen!r}; it "
                               f"has {', '.join(v['variant'] for v in ready['variants'])}.",
                               input=variant)
            if rows:
                state, reason = rows[0][1], rows[0][2]
            elif found["status"] != "draft":
                state, reason = "skipped", "not_in_audience"    # not among the frozen
            else:
                check = aud.evaluate(con, acc, {**ready, "variants": picked},
                                     _utc(at if at is not None else found["scheduled_for"]),
                                     contact_ids=[person["contact_id"]], choose=False)
                state, reason = ((check["state"].iloc[0], check["skip_reason"].iloc[0])
                                 if len(check) else ("skipped", "not_in_audience"))
        use = found["fallbacks"] if found["missing_placeholder"] == "fallback" else None
        template = picked[0]["template"]
        shown = tpl.Templates(self.ws).preview(acc["account_id"], template["template_id"],
                                            person["contact_id"], values=picked[0].get("values"),
                                            fallbacks=use)
        return tpl.Rendered(text=shown.text, params=shown.params, template=template["name"],
                            variant=chosen, state=state, skip_reason=reason)

    def plan(self, broadcast_id, at=None, *, rate_card=None,
             min_recipients: int = planning.MIN_RECIPIENTS) -> planning.Plan:
        """Audience size, expected delivered / read / replies from similar past broadcasts,
        and the cost from the rate card (a path or a RateCard; default: the shipped one).
        For a frozen broadcast the numbers are those of its queued recipients."""
        card = rate_card if isinstance(rate_card, planning.RateCard) else \
            planning.RateCard.load(rate_card)
        with self.ws.connect(read_only=True) as con:
            found = _load(con, broadcast_id)
            acc = get_account(con, found["account_id"])
            when = _utc(at if at is not None else found["scheduled_for"])
            if found["status"] == "draft":
                frame = aud.evaluate(con, acc, _resolved(con, acc, found), when)
            else:
                frame = self._frozen(con, found, when)
            return planning.plan(con, acc, found, frame, when, rate_card=card,
                                 min_recipients=min_recipients)

    @staticmethod
    def _frozen(con, found: dict, at: datetime) -> pd.DataFrame:
        frame = con.execute("""
            SELECT r.contact_id, CASE WHEN r.state = 'skipped' THEN 'skipped' ELSE 'queued' END
                       AS state, r.skip_reason, r.variant, r.wa_id, c.phone_e164, NULL AS template,
                   r.body, r.params,
                   coalesce(h.last_inbound_at <= ?::TIMESTAMPTZ
                            AND h.last_inbound_at + INTERVAL 24 HOURS > ?::TIMESTAMPTZ,
                            false) AS in_window
            FROM broadcast_recipients r LEFT JOIN contacts c USING (contact_id)
            LEFT JOIN chats h ON h.contact_id = r.contact_id AND h.account_id = ?
            WHERE r.broadcast_id = ? ORDER BY r.contact_id""",
                            [at, at, found["account_id"], found["broadcast_id"]]).df()
        frame.attrs.update(candidates=len(frame), not_sampled=0)
        return frame

    # -- freezing and stopping -------------------------------------------------------------

    def schedule(self, broadcast_id, at=None, *, now=None, freeze_now: bool = True,
                 actor: str = "bizchat") -> dict:
        """Set the send time of a draft (default now; a time without a zone is in the
        account's time zone) and mark it scheduled. A draft is frozen at its send time,
        not before: due now, its recipients are frozen at once; later, ``send`` or
        ``run_due`` freezes them when the time has come. Returns the counts (queued, by
        variant, skipped by reason, ``quiet_hours``: queued inside their quiet hours at
        that time, which the outbox defers), ``frozen`` (whether they are frozen yet),
        ``scheduled_for`` (UTC) and ``scheduled_local`` (the time in the account's zone,
        with the zone). To change a scheduled one: ``reschedule``, ``pause``, ``cancel``.
        ``freeze_now=False`` only sets the time (``send`` freezes in a transaction of its own,
        so a kill while freezing is continued by ``resume``)."""
        current = clock.now(now)
        with self.ws.transaction() as con:
            found = _load(con, broadcast_id)
            _state_check(found, ("draft",), "scheduled")
            acc = get_account(con, found["account_id"])
            when = current if at is None else _utc(at, acc.get("timezone"))
            frame = aud.evaluate(con, acc, _resolved(con, acc, found), when)
            frozen = freeze_now and when <= current + DUE_EARLY
            if frozen:
                freeze(con, found["broadcast_id"], frame)
            con.execute("UPDATE broadcasts SET status = 'scheduled', scheduled_for = ?, "
                        "frozen_at = ? WHERE broadcast_id = ?",
                        [when, current if frozen else None, found["broadcast_id"]])
            counts = aud.summary(frame)
            _audit(con, "broadcast.schedule", {"broadcast_id": found["broadcast_id"],
                                               "scheduled_for": when.isoformat(),
                                               "frozen": frozen, **counts}, actor)
        return {"broadcast_id": found["broadcast_id"], "scheduled_for": when,
                "scheduled_local": clock.local(when, acc.get("timezone")), "frozen": frozen,
                **counts}

    def freeze_due(self, broadcast_id, *, now=None, actor: str = "bizchat") -> dict | None:
        """Freeze a scheduled broadcast whose time has come (evaluated at its send time);
        returns the freeze counts, or None when there was nothing to freeze (already
        frozen, not scheduled, or not due yet)."""
        current = clock.now(now)
        with self.ws.transaction() as con:
            found = _load(con, broadcast_id)
            if (found["status"] != "scheduled" or found["frozen_at"] is not None
                    or found["scheduled_for"] is None
                    or found["scheduled_for"] > current + DUE_EARLY):
                return None
            acc = get_account(con, found["account_id"])
            frame = aud.evaluate(con, acc, _resolved(con, acc, found), found["scheduled_for"])
            freeze(con, found["broadcast_id"], frame)
            con.execute("UPDATE broadcasts SET frozen_at = ? WHERE broadcast_id = ?",
                        [current, found["broadcast_id"]])
            counts = aud.summary(frame)
            _audit(con, "broadcast.freeze", {"broadcast_id": found["broadcast_id"],
                                             **counts}, actor)
        return {"broadcast_id": found["broadcast_id"], "scheduled_for": found["scheduled_for"],
                **counts}

    def reschedule(self, broadcast_id, at, *, now=None, actor: str = "bizchat") -> dict:
        """Move a scheduled (or paused) broadcast that has not started sending to ``at``
        (a time without a zone is in the account's zone). Recipients frozen for the old
        time are let go; they are frozen again at the new time. Returns ``broadcast_id``,
        ``scheduled_for``, ``scheduled_local`` and ``previous``."""
        with self.ws.transaction() as con:
            found = _load(con, broadcast_id)
            _state_check(found, ("scheduled", "paused"), "rescheduled")
            self._not_started(con, found, "rescheduled")
            acc = get_account(con, found["account_id"])
            when = _utc(at, acc.get("timezone"))
            con.execute("DELETE FROM broadcast_recipients WHERE broadcast_id = ?",
                        [found["broadcast_id"]])
            con.execute("UPDATE broadcasts SET scheduled_for = ?, frozen_at = NULL, "
                        "status = 'scheduled' WHERE broadcast_id = ?",
                        [when, found["broadcast_id"]])
            _audit(con, "broadcast.reschedule", {"broadcast_id": found["broadcast_id"],
                                                 "previous": str(found["scheduled_for"]),
                                                 "scheduled_for": when.isoformat()}, actor)
        return {"broadcast_id": found["broadcast_id"], "scheduled_for": when,
                "scheduled_local": clock.local(when, acc.get("timezone")),
                "previous": found["scheduled_for"]}

    def pause(self, broadcast_id, *, actor: str = "bizchat") -> dict:
        """Hold a scheduled or sending broadcast: ``run_due`` and ``send`` leave it alone
        (a running sender stops after its current batch) until ``unpause``."""
        with self.ws.transaction() as con:
            found = _load(con, broadcast_id)
            _state_check(found, ("scheduled", "sending"), "paused")
            con.execute("UPDATE broadcasts SET status = 'paused' WHERE broadcast_id = ?",
                        [found["broadcast_id"]])
            _audit(con, "broadcast.pause", {"broadcast_id": found["broadcast_id"],
                                            "previous_status": found["status"]}, actor)
        return {"broadcast_id": found["broadcast_id"], "status": "paused",
                "previous_status": found["status"]}

    def unpause(self, broadcast_id, *, actor: str = "bizchat") -> dict:
        """Release a paused broadcast: back to ``sending`` if it had started, else
        ``scheduled`` (it goes out at its time, or at the next ``run_due`` if that passed)."""
        with self.ws.transaction() as con:
            found = _load(con, broadcast_id)
            _state_check(found, ("paused",), "unpaused")
            started = con.execute("""
                SELECT count(*) FROM broadcast_recipients
                WHERE broadcast_id = ? AND (state NOT IN ('queued', 'skipped') OR attempts > 0)""",
                                  [found["broadcast_id"]]).fetchall()[0][0]
            status = "sending" if started else "scheduled"
            con.execute("UPDATE broadcasts SET status = ? WHERE broadcast_id = ?",
                        [status, found["broadcast_id"]])
            _audit(con, "broadcast.unpause", {"broadcast_id": found["broadcast_id"],
                                              "status": status}, actor)
        return {"broadcast_id": found["broadcast_id"], "status": status}

    @staticmethod
    def _not_started(con, found: dict, doing: str) -> None:
        started = con.execute("""
            SELECT count(*) FROM broadcast_recipients
            WHERE broadcast_id = ? AND (state NOT IN ('queued', 'skipped') OR attempts > 0)""",
                              [found["broadcast_id"]]).fetchall()[0][0]
        if started:
            raise Conflict(f"Broadcast {found['broadcast_id']} has started sending ({started} "
                           f"recipients handed over); it can no longer be {doing}. Pause or "
                           "cancel it instead.", input=found["broadcast_id"])

    def cancel(self, broadcast_id, *, actor: str = "bizchat") -> dict:
        """Stop a broadcast: whoever is still queued becomes skipped / cancelled. Messages
        already handed to the platform (sending, sent, unknown) stay as they are."""
        with self.ws.transaction() as con:
            found = _load(con, broadcast_id)
            _state_check(found, ("draft", "scheduled", "sending", "paused"), "cancelled")
            now = datetime.now(UTC)
            cancelled = con.execute("""
                UPDATE broadcast_recipients SET state = 'skipped', skip_reason = 'cancelled',
                       updated_at = ?
                WHERE broadcast_id = ? AND state = 'queued'""",
                                    [now, found["broadcast_id"]]).fetchall()[0][0]
            con.execute("UPDATE broadcasts SET status = 'cancelled', finished_at = ? "
                        "WHERE broadcast_id = ?", [now, found["broadcast_id"]])
            _audit(con, "broadcast.cancel", {"broadcast_id": found["broadcast_id"],
                                             "previous_status": found["status"],
                                             "cancelled_recipients": cancelled}, actor)
        return {"broadcast_id": found["broadcast_id"], "cancelled": int(cancelled),
                "previous_status": found["status"]}

    # -- sending (the rules in campaigns/sending.py; issue 16's run_due goes there too) ----

    def send(self, broadcast_id, *, transport=None, seed: int | None = None,
             progress: bool | object = False, now=None, actor: str = "bizchat", **options) -> dict:
        """Send the broadcast through the crash-safe outbox: a draft is scheduled for now
        and frozen first; a broadcast scheduled for later is refused until its time
        (``run_due`` sends it then). ``transport``: ``"simulated"`` (default, with
        ``seed``), ``"cloud"`` or a Transport. ``now``: the campaign clock (default
        ``$BIZCHAT_NOW``, else the wall clock). ``progress``: True for a tqdm bar, or the
        caller's bar (``update(n)``, ``close()``, optionally ``reset(total=...)``: a
        widget's). Returns the counts by state, ``deferred`` and ``next_due``
        (``frozen``: what freezing found)."""
        from . import sending

        return sending.send(self.ws, broadcast_id, transport=transport, seed=seed,
                            progress=progress, now=now, actor=actor, **options)

    def resume(self, broadcast_id, *, transport=None, seed: int | None = None,
               progress: bool | object = False, now=None, actor: str = "bizchat", **options) -> dict:
        """Continue an interrupted send, also one killed while it froze the recipients;
        recipients caught mid-call become ``unknown`` and are never resent blindly."""
        from . import sending

        return sending.resume(self.ws, broadcast_id, transport=transport, seed=seed,
                              progress=progress, now=now, actor=actor, **options)

    def run_due(self, now=None, *, transport=None, seed: int | None = None,
                progress: bool | object = False, actor: str = "bizchat", **options) -> builtins.list[dict]:
        """Send everything whose time has come: every scheduled broadcast that is due
        (frozen then), every deferred recipient now due, and (simulated transport) the
        receipts that have come due meanwhile. Safe to run from cron every minute and
        from two processes at once (one sender per broadcast; the other steps aside).
        Returns one dict per broadcast looked at: its counts, or ``error`` / ``busy``."""
        from . import sending

        return sending.run_due(self.ws, now=now, transport=transport, seed=seed,
                               progress=progress, actor=actor, **options)

    def resolve(self, broadcast_id, decision: str, *, keys: Sequence[str] | None = None,
                actor: str = "bizchat") -> dict:
        """Settle ``unknown`` recipients (all, or those with ``keys``): ``"resend"`` or
        ``"give_up"``."""
        from . import sending

        return sending.resolve(self.ws, broadcast_id, decision, keys=keys, actor=actor)

    def counts(self, broadcast_id, *, now=None) -> dict:
        """Recipients of the broadcast by state, plus ``deferred`` (queued with a later
        ``not_before``), ``next_due`` and ``deferred_until`` (the first and last of those
        times) as of ``now`` (the campaign clock)."""
        from . import outbox

        return outbox.counts(self.ws, broadcast_id, now=now)

    # -- following ---------------------------------------------------------------------------

    def funnel(self, broadcast_id, *, by_variant: bool = False):
        """sent, delivered, read, failed, replied (within 72 h) so far, with the rates;
        a dict, or a DataFrame per variant."""
        with self.ws.connect(read_only=True) as con:
            found = _load(con, broadcast_id)
            outcomes = planning.recipient_outcomes(con, found["account_id"],
                                                   [found["broadcast_id"]])
        outcomes = outcomes[outcomes["state"] != "skipped"]
        if by_variant:
            return planning.funnel(outcomes, "variant")
        row = planning.funnel(outcomes).iloc[0].to_dict()
        return {k: (int(v) if k in ("sent", "delivered", "read", "failed", "replied")
                    else (None if pd.isna(v) else float(v))) for k, v in row.items()}

    def show(self, broadcast_id, *, now=None) -> dict:
        """Everything about one broadcast: its row, recipients by state and skip reason,
        the deferral counts (``counts``), the funnel overall and per variant, and the
        account's time zone (``timezone``) for showing times."""
        with self.ws.connect(read_only=True) as con:
            found = _load(con, broadcast_id)
            zone = get_account(con, found["account_id"]).get("timezone")
            states = con.execute("""
                SELECT state, skip_reason, count(*) AS recipients FROM broadcast_recipients
                WHERE broadcast_id = ? GROUP BY ALL ORDER BY state, skip_reason NULLS FIRST""",
                                 [found["broadcast_id"]]).df()
        return {"broadcast": found, "states": states, "timezone": zone,
                "counts": self.counts(broadcast_id, now=now),
                "funnel": self.funnel(broadcast_id),
                "by_variant": self.funnel(broadcast_id, by_variant=True),
                "audience": aud.Audience.parse(found["audience"]).describe()}

    # -- rules the composer needs ----------------------------------------------------------

    def composer_options(self, account) -> dict:
        """What a broadcast of ``account`` can be built from: labels, languages, attribute
        names with their common values, placeholders, saved templates, past broadcasts."""
        from . import drafts

        return drafts.options(self.ws, account)

    def check_text(self, account, text: str, *, values: Mapping | None = None,
                   part: str = "body") -> Sequence[str]:
        """The placeholders of a message text being written; TemplateError names the first
        unsafe or unknown one with its position and the names available to the account."""
        with self.ws.connect(read_only=True) as con:
            return tpl.check_text(con, get_account(con, account)["account_id"], text,
                                  extra=list(values or {}), part=part)

    def estimate(self, account, *, category: str = "marketing", audience=None,
                 body: str | None = None, template=None, header: str | None = None,
                 footer: str | None = None, buttons=None, variants=None,
                 control: float = 0.0, values: Mapping | None = None,
                 fallbacks: Mapping | None = None, seed: int = 0, at=None,
                 plan: bool = False, samples: int = 3, rate_card=None):
        """What a broadcast not yet saved would do if sent at ``at`` (default now), with the
        fields of ``create``: ``.counts`` (candidates, queued, by_variant, skipped by
        reason), ``.samples`` (the exact text for a few recipients) and, with ``plan``,
        ``.plan`` (expected deliveries, reads, replies, cost). Writes nothing."""
        from . import drafts

        return drafts.estimate(self.ws, account, _utc(at), with_plan=plan, rate_card=rate_card,
                               n_samples=samples, category=category, audience=audience,
                               body=body, template=template, header=header, footer=footer,
                               buttons=buttons, variants=variants, control=control,
                               values=values, fallbacks=fallbacks, seed=seed)

    def requires_template(self, account, contact, at=None) -> bool:
        """Whether a message to ``contact`` at ``at`` (default now) must be a template: true
        outside the 24-hour customer-service window (the customer's last message), where
        free-form text is not allowed."""
        from ..people.contacts import get_contact

        when = _utc(at)
        with self.ws.connect(read_only=True) as con:
            acc = get_account(con, account)
            person = get_contact(con, acc, contact)
            rows = con.execute("SELECT last_inbound_at FROM chats WHERE account_id = ? AND "
                               "contact_id = ?", [acc["account_id"],
                                                  person["contact_id"]]).fetchall()
        last = rows[0][0] if rows else None
        return not (last is not None and last <= when < last + SERVICE_WINDOW)

    def limits(self, account) -> dict:
        """The account's sending limits: messaging tier, send rate, marketing cap, quiet hours."""
        with self.ws.connect(read_only=True) as con:
            acc = get_account(con, account)
            return {"account": acc["phone_e164"], **vars(aud.limits(con, acc["account_id"]))}

    def set_limits(self, account, *, actor: str = "bizchat", **fields) -> dict:
        """Change sending limits: ``messaging_tier`` (250, 2000, 10000, 100000 or None for
        unlimited), ``send_rate`` (messages/s), ``marketing_cap_count`` and
        ``marketing_cap_days`` (days 0 = no cap), ``quiet_hours`` ("21:00-08:00", a pair,
        or None for none) or ``quiet_hours_start`` / ``quiet_hours_end``."""
        values = aud.check_limits(fields)
        with self.ws.transaction() as con:
            acc = get_account(con, account)
            if values:
                con.execute(f"UPDATE accounts SET {', '.join(f'{k} = ?' for k in values)} "
                            "WHERE account_id = ?", [*values.values(), acc["account_id"]])
                _audit(con, "account.limits", {"account_id": acc["account_id"],
                                               **{k: str(v) for k, v in values.items()}}, actor)
            return {"account": acc["phone_e164"], **vars(aud.limits(con, acc["account_id"]))}


def _lang(language) -> str:
    from ..people.contacts import check_language

    return check_language(language) or "de"


def freeze(con: duckdb.DuckDBPyConnection, broadcast_id: int, frame: pd.DataFrame) -> int:
    """Write evaluated recipients as ``broadcast_recipients`` rows (one Arrow insert), each
    with a fresh idempotency key; returns how many. Call inside the caller's transaction."""
    if con.execute("SELECT count(*) FROM broadcast_recipients WHERE broadcast_id = ?",
                   [broadcast_id]).fetchall()[0][0]:
        raise Conflict(f"Broadcast {broadcast_id} already has frozen recipients.",
                       input=broadcast_id)
    # Arrow, not object columns: DuckDB scans a million Python strings slowly.
    rows = pa.table({
        "contact_id": pa.array(frame["contact_id"].to_numpy("int64")),
        **{name: pa.array(frame[name].to_numpy(object), pa.string())
           for name in ("variant", "state", "skip_reason", "body", "params", "wa_id")},
    })
    nonce = secrets.token_hex(8)
    con.register("_freeze", rows)
    try:
        con.execute("""
            INSERT INTO broadcast_recipients (broadcast_id, contact_id, variant, state,
                skip_reason, idempotency_key, updated_at, body, params, wa_id)
            SELECT ?, contact_id, variant, state, skip_reason,
                   left(sha256(? || ':' || ?::VARCHAR || ':' || contact_id::VARCHAR), 32),
                   ?, body, params, wa_id
            FROM _freeze""", [broadcast_id, nonce, broadcast_id, datetime.now(UTC)])
    finally:
        con.unregister("_freeze")
    faults.point("broadcast.freeze")     # crash tests: killed while freezing
    return len(rows)


__all__ = ["Broadcasts", "CATEGORIES", "freeze"]
