"""Audiences: who a broadcast goes to, and why everyone else does not.

An ``Audience`` is the composer's definition, stored as JSON in ``broadcasts.audience``:
labels (any of, all of, none of), language, contact attributes, last activity (the
customer's last message, ``chats.last_inbound_at``), behaviour in past broadcasts
(received / read / did not read broadcast X), explicit contacts and a random sample.

``evaluate`` turns a broadcast's audience into recipients at a send time, set-based:

1. the account's contacts that match the definition (the candidates);
2. exclusions, each with its reason, in this order: ``invalid_number`` / ``opted_out`` /
   ``no_consent`` as ``consent.may_send`` decides (the one consent rule: marketing needs a
   current opt-in, utility only respects a service opt-out), ``frequency_cap`` (marketing:
   the account's cap of N messages per contact per D days), ``quiet_hours`` (the send
   time falls into the account's quiet hours in the recipient's time zone: counted
   here, decided by the outbox at hand-off, see ``outbox.time_rules``);
3. a seeded random sample of the remaining contacts, if asked for (those not drawn are
   no recipients at all);
4. a seeded split into the hold-out control group (skipped, reason ``control``) and the
   variants A, B, ...;
5. rendering each variant's template for its recipients; a missing placeholder value
   skips the recipient (``missing_placeholder``) unless the composer gave a fallback.

The result is what ``Broadcasts.schedule`` freezes, what ``plan`` counts and what the
preview shows, so the three never disagree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import numpy as np
import pandas as pd

from ..errors import InvalidValue, NotFound
from ..people import consent, labels
from . import templates as tpl

SKIP_REASONS = ("invalid_number", "opted_out", "no_consent", "frequency_cap", "quiet_hours",
                "missing_placeholder", "control", "cancelled")
_KEYS = {"labels_any": "labels_any", "any_of": "labels_any", "labels": "labels_any",
         "labels_all": "labels_all", "all_of": "labels_all",
         "labels_none": "labels_none", "none_of": "labels_none",
         "language": "language", "attributes": "attributes",
         "active_within_days": "active_within_days", "inactive_for_days": "inactive_for_days",
         "received": "received", "read": "read", "not_read": "not_read",
         "contacts": "contacts", "sample": "sample"}
# Written by earlier tools (the demo) and harmless: "consent" is always enforced anyway.
_IGNORED = {"consent", "everyone"}


def _list(value) -> tuple:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(x.strip() for x in value.split(",") if x.strip())
    if isinstance(value, int | float):
        return (value,)
    return tuple(value)


def _ids(value, what: str) -> tuple[int, ...]:
    out = []
    for item in _list(value):
        try:
            out.append(int(item))
        except (TypeError, ValueError) as exc:
            raise InvalidValue(f"{what} takes broadcast ids, got {item!r}.", input=item) from exc
    return tuple(out)


def _days(value, what: str) -> float | None:
    if value is None:
        return None
    try:
        days = float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidValue(f"{what} is a number of days, got {value!r}.", input=value) from exc
    if not days >= 0:
        raise InvalidValue(f"{what} cannot be negative, got {value!r}.", input=value)
    return days


@dataclass(frozen=True)
class Audience:
    """Who a broadcast is for. Empty fields set no condition; all given conditions hold."""

    labels_any: tuple = ()
    labels_all: tuple = ()
    labels_none: tuple = ()
    language: tuple = ()
    attributes: dict = field(default_factory=dict)
    active_within_days: float | None = None   # wrote to us within this many days
    inactive_for_days: float | None = None    # silent for at least this many days (or never)
    received: tuple = ()                      # got each of these broadcasts (delivered)
    read: tuple = ()                          # read each of these broadcasts
    not_read: tuple = ()                      # were sent each of these, and did not read it
    contacts: tuple = ()                      # only these contact_ids
    sample: int | float | None = None         # a random sample: a count, or a fraction < 1

    @classmethod
    def parse(cls, value=None, **more) -> Audience:
        """From an Audience, a dict or its JSON text (plus keyword overrides)."""
        if isinstance(value, Audience):
            value = value.to_dict()
        elif isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except ValueError as exc:
                raise InvalidValue(f"The audience {value!r} is not JSON.", input=value) from exc
        data = dict(value or {})
        data.update({k: v for k, v in more.items() if v is not None})
        fields: dict = {}
        for key, item in data.items():
            if key in _IGNORED:
                continue
            if key not in _KEYS:
                raise InvalidValue(f"Unknown audience key {key!r}; use {', '.join(sorted(set(_KEYS.values())))}.",
                                   input=key)
            fields[_KEYS[key]] = item
        attributes = fields.get("attributes") or {}
        if not isinstance(attributes, Mapping):
            raise InvalidValue(f"attributes must be a dict such as {{'city': 'Graz'}}, got "
                               f"{attributes!r}.", input=attributes)
        sample = fields.get("sample")
        if sample is not None:
            if isinstance(sample, str):
                sample = float(sample) if "." in sample else int(sample)
            if isinstance(sample, bool) or not isinstance(sample, int | float) or sample < 0 or (
                    isinstance(sample, float) and not (0 < sample <= 1)):
                raise InvalidValue(f"sample is a number of contacts or a fraction between 0 and 1, "
                                   f"got {fields.get('sample')!r}.", input=fields.get("sample"))
        return cls(
            labels_any=tuple(str(x) for x in _list(fields.get("labels_any"))),
            labels_all=tuple(str(x) for x in _list(fields.get("labels_all"))),
            labels_none=tuple(str(x) for x in _list(fields.get("labels_none"))),
            language=tuple(str(x) for x in _list(fields.get("language"))),
            attributes=dict(attributes),
            active_within_days=_days(fields.get("active_within_days"), "active_within_days"),
            inactive_for_days=_days(fields.get("inactive_for_days"), "inactive_for_days"),
            received=_ids(fields.get("received"), "received"),
            read=_ids(fields.get("read"), "read"),
            not_read=_ids(fields.get("not_read"), "not_read"),
            contacts=_ids(fields.get("contacts"), "contacts"),
            sample=sample)

    def to_dict(self) -> dict:
        """The non-empty fields, as stored in broadcasts.audience."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()
                if v not in ((), {}, None)}

    def label_key(self) -> tuple:
        """The label conditions, case-insensitively, to find broadcasts with the same labels."""
        return tuple(frozenset(x.lower() for x in v)
                     for v in (self.labels_any, self.labels_all, self.labels_none))

    def describe(self) -> str:
        parts = []
        for key, text in (("labels_any", "any of"), ("labels_all", "all of"),
                          ("labels_none", "none of")):
            if getattr(self, key):
                parts.append(f"labels {text} {', '.join(getattr(self, key))}")
        if self.language:
            parts.append(f"language {', '.join(self.language)}")
        for name, wanted in self.attributes.items():
            parts.append(f"{name} = {wanted}")
        if self.active_within_days is not None:
            parts.append(f"wrote within {self.active_within_days:g} days")
        if self.inactive_for_days is not None:
            parts.append(f"silent for {self.inactive_for_days:g}+ days")
        for key, text in (("received", "received"), ("read", "read"), ("not_read", "did not read")):
            if getattr(self, key):
                parts.append(f"{text} broadcast {', '.join(map(str, getattr(self, key)))}")
        if self.contacts:
            parts.append(f"{len(self.contacts)} chosen contacts")
        if self.sample is not None:
            parts.append(f"random sample of {self.sample:g}")
        return "; ".join(parts) or "all contacts"


# --- account limits ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Limits:
    """The sending limits of an account (accounts columns from migration 0003)."""

    messaging_tier: int | None
    send_rate: int
    marketing_cap_count: int
    marketing_cap_days: int
    quiet_hours_start: time | None
    quiet_hours_end: time | None
    timezone: str

    def quiet_at(self, at: datetime, zone: str) -> bool:
        """Whether ``at`` falls into the quiet hours in time zone ``zone``."""
        start, end = self.quiet_hours_start, self.quiet_hours_end
        if start is None or end is None or start == end:
            return False
        local = at.astimezone(_zone(zone, self.timezone)).time().replace(tzinfo=None)
        return start <= local < end if start < end else (local >= start or local < end)


def _zone(name, fallback: str) -> ZoneInfo:
    for candidate in (name, fallback, "UTC"):
        try:
            if candidate:
                return ZoneInfo(candidate)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo("UTC")  # pragma: no cover


def limits(con: duckdb.DuckDBPyConnection, account_id: int) -> Limits:
    rows = con.execute("""
        SELECT messaging_tier, send_rate, marketing_cap_count, marketing_cap_days,
               quiet_hours_start, quiet_hours_end, timezone
        FROM accounts WHERE account_id = ?""", [account_id]).fetchall()
    if not rows:
        raise NotFound(f"No account {account_id}.", input=account_id)
    return Limits(*rows[0])


TIERS = (250, 2000, 10000, 100000)


def _time_of_day(value) -> time | None:
    if value is None or isinstance(value, time):
        return value
    text = str(value).strip()
    try:
        hours, minutes = text.split(":")
        return time(int(hours), int(minutes))
    except ValueError as exc:
        raise InvalidValue(f"{value!r} is not a time of day; write HH:MM, e.g. 21:00.",
                           input=value) from exc


def check_limits(fields: dict) -> dict:
    """The accounts columns to set for ``Broadcasts.set_limits`` keyword arguments."""
    allowed = {"messaging_tier", "send_rate", "marketing_cap_count", "marketing_cap_days",
               "quiet_hours", "quiet_hours_start", "quiet_hours_end"}
    unknown = set(fields) - allowed
    if unknown:
        raise InvalidValue(f"Cannot set {sorted(unknown)}; settable: "
                           f"{', '.join(sorted(allowed))}.", input=sorted(unknown))
    values: dict = {}
    if "messaging_tier" in fields:
        tier = fields["messaging_tier"]
        if tier not in (None, *TIERS):
            raise InvalidValue(f"messaging_tier is one of {', '.join(map(str, TIERS))} or "
                               f"None (unlimited), got {tier!r}.", input=tier)
        values["messaging_tier"] = tier
    for key in ("send_rate", "marketing_cap_count", "marketing_cap_days"):
        if key in fields:
            try:
                number = int(fields[key])
            except (TypeError, ValueError) as exc:
                raise InvalidValue(f"{key} is a whole number, got {fields[key]!r}.",
                                   input=fields[key]) from exc
            if number < (1 if key == "send_rate" else 0):
                raise InvalidValue(f"{key} is too small: {number}.", input=number)
            values[key] = number
    if "quiet_hours" in fields:
        spec = fields["quiet_hours"]
        if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "off",
                                                                                "none")):
            values["quiet_hours_start"] = values["quiet_hours_end"] = None
        else:
            parts = spec.split("-") if isinstance(spec, str) else list(spec)
            if len(parts) != 2:
                raise InvalidValue(f"quiet_hours is a range like 21:00-08:00, got {spec!r}.",
                                   input=spec)
            start, end = parts
            values["quiet_hours_start"] = _time_of_day(start)
            values["quiet_hours_end"] = _time_of_day(end)
    for key in ("quiet_hours_start", "quiet_hours_end"):
        if key in fields:
            values[key] = _time_of_day(fields[key])
    return values


# --- the candidates -------------------------------------------------------------------------------

def check_broadcast_refs(con, account: dict, audience: Audience) -> None:
    """Past broadcasts named by the audience exist and belong to the account."""
    wanted = sorted(set(audience.received) | set(audience.read) | set(audience.not_read))
    if not wanted:
        return
    found = {r[0] for r in con.execute(
        "SELECT broadcast_id FROM broadcasts WHERE account_id = ? AND list_contains(?, broadcast_id)",
        [account["account_id"], wanted]).fetchall()}
    missing = [b for b in wanted if b not in found]
    if missing:
        raise NotFound(f"Account {account['phone_e164']} has no broadcast {missing[0]} (named in "
                       "the audience). List them with `bizchat broadcast list`.", input=missing)


_DELIVERED = ("s.status IS DISTINCT FROM 'failed' AND "
              "coalesce(s.delivered_at, s.read_at, s.played_at) IS NOT NULL")
_READ = "s.status IS DISTINCT FROM 'failed' AND coalesce(s.read_at, s.played_at) IS NOT NULL"
_NOT_READ = ("r.message_id IS NOT NULL AND r.state = 'sent' AND s.status IS DISTINCT FROM "
             "'failed' AND s.read_at IS NULL AND s.played_at IS NULL")


def candidates(con, account: dict, audience: Audience, at: datetime, *,
               attribute_names=(), contact_ids=None) -> pd.DataFrame:
    """The account's contacts matching ``audience`` at ``at`` (before any exclusion).

    Columns: contact_id, phone_e164, name, timezone, last_inbound_at, wa_address (the
    address: wa_id, else the number's digits, else the user id), valid_address (one
    WhatsApp can take), and one ``attr_<name>`` column (JSON text) per wanted attribute.
    """
    where, params = labels.contact_filter(con, account, {
        "any_of": list(audience.labels_any), "all_of": list(audience.labels_all),
        "none_of": list(audience.labels_none), "language": list(audience.language),
        "attributes": audience.attributes})
    clauses, more = [where], list(params)
    if audience.active_within_days is not None:
        clauses.append("h.last_inbound_at >= ?::TIMESTAMPTZ - to_microseconds(?)")
        more += [at, int(audience.active_within_days * 86_400_000_000)]
    if audience.inactive_for_days is not None:
        clauses.append("(h.last_inbound_at IS NULL OR "
                       "h.last_inbound_at < ?::TIMESTAMPTZ - to_microseconds(?))")
        more += [at, int(audience.inactive_for_days * 86_400_000_000)]
    check_broadcast_refs(con, account, audience)
    for ids, condition in ((audience.received, _DELIVERED), (audience.read, _READ),
                           (audience.not_read, _NOT_READ)):
        for broadcast_id in ids:
            clauses.append(f"""EXISTS (SELECT 1 FROM broadcast_recipients r
                               LEFT JOIN message_status s ON s.message_id = r.message_id
                               WHERE r.broadcast_id = ? AND r.contact_id = c.contact_id
                                 AND {condition})""")
            more.append(broadcast_id)
    if audience.contacts:
        clauses.append("list_contains(?, c.contact_id)")
        more.append(list(audience.contacts))
    if contact_ids is not None:
        clauses.append("list_contains(?, c.contact_id)")
        more.append([int(x) for x in contact_ids])
    attrs = "".join(f", json_extract(c.attributes, ?) AS attr_{i}"
                    for i, _ in enumerate(attribute_names))
    frame = con.execute(f"""
        SELECT c.contact_id, c.phone_e164, c.name, c.timezone, h.last_inbound_at,
               coalesce(c.wa_id, ltrim(c.phone_e164, '+'), c.user_id) AS wa_address,
               coalesce(regexp_full_match(coalesce(c.wa_id, ltrim(c.phone_e164, '+')),
                                          '[1-9][0-9]{{6,14}}'),
                        c.user_id IS NOT NULL) AS valid_address {attrs}
        FROM contacts c
        LEFT JOIN chats h ON h.account_id = c.account_id AND h.contact_id = c.contact_id
        WHERE {' AND '.join(clauses)}
        ORDER BY c.contact_id""", ["$." + n for n in attribute_names] + more).df()
    return frame.rename(columns={f"attr_{i}": f"attr_{n}" for i, n in enumerate(attribute_names)})


def marketing_counts(con, account_id: int, at: datetime, days: float,
                     exclude_broadcast: int | None = None) -> pd.DataFrame:
    """Marketing messages per contact within ``days`` of ``at`` (either side): sent ones not
    failed, and ones queued or in flight in other scheduled broadcasts. Checking both sides
    keeps two broadcasts scheduled close together from both passing the cap."""
    span = int(days * 86_400_000_000)
    return con.execute("""
        WITH hits AS (
            SELECT r.contact_id
            FROM broadcast_recipients r JOIN broadcasts b USING (broadcast_id)
            LEFT JOIN message_status s ON s.message_id = r.message_id
            WHERE b.account_id = ? AND b.category = 'marketing'
              AND b.broadcast_id IS DISTINCT FROM ?
              AND r.state IN ('queued', 'sending', 'sent', 'unknown')
              AND s.status IS DISTINCT FROM 'failed'
              AND abs(epoch_us(coalesce(r.sent_at, s.sent_at, r.not_before, b.scheduled_for,
                                        r.updated_at)) - epoch_us(?::TIMESTAMPTZ)) < ?
            UNION ALL
            -- marketing templates sent outside a broadcast (e.g. by hand in another tool)
            SELECT m.contact_id
            FROM messages m
            LEFT JOIN message_status s ON s.message_id = m.message_id
            WHERE m.account_id = ? AND m.direction = 'out' AND m.broadcast_id IS NULL
              AND m.kind = 'template' AND s.status IS DISTINCT FROM 'failed'
              AND abs(epoch_us(m.created_at) - epoch_us(?::TIMESTAMPTZ)) < ?
              AND EXISTS (SELECT 1 FROM templates t WHERE t.account_id = m.account_id
                          AND t.name = m.template_name AND t.category = 'marketing')
        )
        SELECT contact_id, count(*) AS recent FROM hits GROUP BY contact_id""",
                       [account_id, exclude_broadcast, at, span, account_id, at, span]).df()


# --- evaluation -----------------------------------------------------------------------------------

def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) % (2**63), stream])


def variant_shares(variants: list[dict]) -> np.ndarray:
    """Each variant's part of the non-control recipients: ``share`` is a relative weight
    (default 1, so variants without one split evenly)."""
    shares = np.array([float(v.get("share") or 0) for v in variants])
    shares = np.where(shares > 0, shares, 1.0)
    return shares / shares.sum()


def split(n: int, seed: int, control: float, variants: list[dict]) -> np.ndarray:
    """Labels for ``n`` recipients (in contact_id order): 'control' for round(n * control)
    of them, the rest divided among the variants by their shares; seeded and exact."""
    labels_out = np.empty(n, dtype=object)
    if n == 0:
        return labels_out
    order = _rng(seed, 2).permutation(n)
    n_control = int(round(n * control))
    labels_out[order[:n_control]] = "control"
    rest = order[n_control:]
    bounds = np.round(np.cumsum(variant_shares(variants)) * len(rest)).astype(int)
    start = 0
    for variant, end in zip(variants, bounds, strict=True):
        labels_out[rest[start:end]] = variant["variant"]
        start = end
    return labels_out


def sample(n: int, seed: int, size) -> np.ndarray:
    """Which of ``n`` eligible contacts (in contact_id order) a sample keeps (bool mask)."""
    keep = np.ones(n, dtype=bool)
    if size is None or n == 0:
        return keep
    k = int(round(n * size)) if isinstance(size, float) else int(size)
    if k >= n:
        return keep
    keep[:] = False
    keep[_rng(seed, 1).choice(n, size=k, replace=False)] = True
    return keep


def evaluate(con, account: dict, broadcast: Mapping, at: datetime, *, contact_ids=None,
             choose: bool = True) -> pd.DataFrame:
    """The recipients of ``broadcast`` if it were frozen for sending at ``at``.

    ``broadcast`` carries category, audience, variants (each with its ``template`` dict,
    ``variant`` letter, ``share`` and fixed ``values``), control_fraction, seed,
    missing_placeholder and fallbacks. Returns one row per recipient: contact_id, state
    ('queued' or 'skipped'), skip_reason, variant, wa_id (the address), phone_e164,
    template, body, params, in_window (the 24-hour service window is open at ``at``).
    ``choose=False`` skips sampling and the split (variant A), for a one-contact preview.
    ``frame.attrs`` holds ``candidates`` and ``not_sampled``.
    """
    audience = Audience.parse(broadcast.get("audience"))
    category = broadcast["category"]
    variants = list(broadcast["variants"])
    names = sorted({n for v in variants for n in tpl.placeholders(v["template"])})
    frame = candidates(con, account, audience, at, attribute_names=names,
                       contact_ids=contact_ids)
    n_candidates = len(frame)
    valid = frame["valid_address"].astype(bool)
    decided = consent.may_send(con, account["account_id"], frame["contact_id"].tolist(), category)
    reason = pd.Series(decided["reason"].to_numpy(), index=frame.index, dtype=object)
    reason = reason.where(reason.notna() | valid, "invalid_number")
    lim = limits(con, account["account_id"])
    if category == "marketing" and lim.marketing_cap_days > 0:
        recent = marketing_counts(con, account["account_id"], at, lim.marketing_cap_days,
                                  broadcast.get("broadcast_id"))
        counts = frame["contact_id"].map(dict(zip(recent["contact_id"], recent["recent"],
                                                  strict=True))).fillna(0)
        reason = reason.where(reason.notna() | (counts < lim.marketing_cap_count), "frequency_cap")
    # Quiet hours are not an exclusion: the outbox decides them at hand-off time and
    # defers (or skips, if the broadcast says so). Here they are only counted.
    zones = frame["timezone"].astype(object).where(frame["timezone"].notna(), lim.timezone)
    quiet = {z: lim.quiet_at(at, z) for z in pd.unique(zones)}
    frame["quiet_now"] = zones.map(quiet).astype(bool)
    last = pd.to_datetime(frame["last_inbound_at"], utc=True)
    stamp = pd.Timestamp(at)
    frame["in_window"] = ((last <= stamp) & (last + timedelta(hours=24) > stamp)).fillna(False)
    frame["skip_reason"] = reason
    frame["variant"] = None
    frame["template"] = None
    frame["body"] = None
    frame["params"] = None
    use_fallbacks = broadcast.get("missing_placeholder") == "fallback"
    fallbacks = dict(broadcast.get("fallbacks") or {}) if use_fallbacks else None
    attributes = frame[[f"attr_{n}" for n in names]].rename(columns=lambda c: c[5:])
    # Every variant is rendered for every eligible contact before the split, so a missing
    # placeholder value excludes a contact from treatment and control alike (eligibility
    # decided identically for both, before assignment: lift and A/B stay unbiased).
    eligible = frame.index[reason.isna()]
    texts = {}
    for variant in variants:
        if len(eligible) == 0:
            break
        template = variant["template"]
        values = tpl.value_frame(frame.loc[eligible], account, tpl.placeholders(template),
                                 attributes.loc[eligible], variant.get("values"))
        rendered = tpl.render_template(template, values, fallbacks)
        rendered.index = eligible
        texts[variant["variant"]] = rendered
        lacking = eligible[rendered["text"].isna().to_numpy()]
        frame.loc[lacking, "skip_reason"] = "missing_placeholder"
    eligible = frame.index[frame["skip_reason"].isna()]
    kept = sample(len(eligible), broadcast.get("seed") or 0,
                  audience.sample) if choose else np.ones(len(eligible), dtype=bool)
    dropped = eligible[~kept]
    frame = frame.drop(index=dropped)
    eligible = eligible[kept]
    if choose:
        frame.loc[eligible, "variant"] = split(len(eligible), broadcast.get("seed") or 0,
                                               float(broadcast.get("control_fraction") or 0),
                                               variants)
    else:
        frame.loc[eligible, "variant"] = variants[0]["variant"]
    frame.loc[frame["variant"] == "control", "skip_reason"] = "control"
    for variant in variants:
        rows = frame.index[(frame["variant"] == variant["variant"]) & frame["skip_reason"].isna()]
        if len(rows) == 0:
            continue
        rendered = texts[variant["variant"]].loc[rows]
        frame.loc[rows, "template"] = variant["template"]["name"]
        frame.loc[rows, "body"] = rendered["text"].to_numpy()
        frame.loc[rows, "params"] = rendered["params"].to_numpy()
    frame["state"] = np.where(frame["skip_reason"].isna(), "queued", "skipped")
    out = frame[["contact_id", "state", "skip_reason", "variant", "wa_address", "phone_e164",
                 "template", "body", "params", "in_window"]].rename(
        columns={"wa_address": "wa_id"}).reset_index(drop=True)
    for column in ("skip_reason", "variant", "template", "body", "params", "wa_id", "phone_e164"):
        out[column] = tpl.as_objects(out[column])
    out["in_window"] = out["in_window"].astype(bool)
    quiet_queued = int((frame["quiet_now"] & (frame["state"] == "queued")).sum())
    out.attrs.update(candidates=n_candidates, not_sampled=len(dropped), at=at,
                     quiet_hours=quiet_queued)
    return out


def summary(frame: pd.DataFrame) -> dict:
    """Counts of an evaluation: candidates, queued, by variant, and skipped by reason."""
    queued = frame[frame["state"] == "queued"]
    skipped = frame[frame["state"] == "skipped"]
    return {
        "candidates": int(frame.attrs.get("candidates", len(frame))),
        "not_sampled": int(frame.attrs.get("not_sampled", 0)),
        "recipients": len(frame),
        "queued": len(queued),
        "by_variant": {str(k): int(v) for k, v in queued["variant"].value_counts().sort_index().items()},
        "skipped": {str(k): int(v) for k, v in skipped["skip_reason"].value_counts().sort_index().items()},
        # queued recipients inside their quiet hours at that time: the outbox defers them
        "quiet_hours": int(frame.attrs.get("quiet_hours", 0)),
    }


def now_utc() -> datetime:
    return datetime.now(UTC)


__all__ = ["Audience", "Limits", "SKIP_REASONS", "candidates", "evaluate", "limits",
           "marketing_counts", "sample", "split", "summary"]
