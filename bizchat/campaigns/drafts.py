"""Drafts: a broadcast still being composed, checked and counted without storing anything.

The composer asks, while the marketer types and clicks, the questions a stored draft
answers through ``plan`` and ``preview``: is this text valid (an unknown placeholder is
named with its position), who would this audience reach now and who is excluded for
which reason, what would three of them read, and what is the plan (expected deliveries,
reads, replies, cost). Nothing is written: the definition is evaluated by the same
``audiences.evaluate`` that ``schedule`` freezes with, so the live count, the plan and
the frozen recipients never disagree. Only when the marketer sends or schedules does the
composer call ``Broadcasts.create``.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from ..errors import InvalidValue
from ..messaging import placeholders, render
from ..people.accounts import get_account
from . import audiences as aud
from . import planning
from . import templates as tpl

SAMPLES = 3


def available_placeholders(con, account: dict, values: Mapping | None = None) -> list[str]:
    """The placeholder names a message of ``account`` can use: the account's names (one
    list, messaging.placeholders.available) and the broadcast's fixed values."""
    names = placeholders.available(con, account["account_id"])
    return names + sorted(k for k in (values or {}) if k not in names)


@dataclass
class Estimate:
    """What an unsaved broadcast would do if sent at ``at``."""

    at: datetime
    counts: dict                      # audiences.summary: candidates, queued, by_variant, skipped
    samples: list[dict] = field(default_factory=list)   # contact_id, name, variant, text
    plan: planning.Plan | None = None

    @property
    def queued(self) -> int:
        return int(self.counts["queued"])

    @property
    def excluded(self) -> dict:
        """Skipped recipients by reason (the control group is not an exclusion)."""
        return {k: v for k, v in self.counts["skipped"].items() if k != "control"}


def _template(account: dict, entry: Mapping, category: str, language: str, con) -> dict:
    """The template row a variant uses: a saved one, or the written text checked and held
    in memory (the same shape, so audiences.evaluate renders it like a saved one)."""
    if entry.get("template") is not None:
        found = tpl.get_template(con, account, entry["template"])
        if found["category"] != category:
            raise InvalidValue(f"The template {found['name']!r} is a {found['category']} "
                               f"template; a {category} broadcast needs one of its own category.",
                               input=found["name"])
        return found
    parts = tpl.check_parts(entry.get("body"), entry.get("header"), entry.get("footer"),
                            entry.get("buttons"))
    row = {"template_id": None, "name": "(draft)", "language": language, "category": category,
           **parts}
    row["placeholders"] = tpl.placeholders(row)
    return row


def definition(con, account: dict, *, category: str, audience=None, body=None, template=None,
               header=None, footer=None, buttons=None, variants=None, control: float = 0.0,
               values: Mapping | None = None, fallbacks: Mapping | None = None,
               seed: int = 0, language: str = "de", name: str = "(draft)") -> dict:
    """The broadcast mapping ``audiences.evaluate`` and ``planning.plan`` take, built from
    the composer's fields (the same fields as ``Broadcasts.create``)."""
    if category not in ("marketing", "utility"):
        raise InvalidValue(f"A broadcast is marketing or utility, got {category!r}.",
                           input=category)
    if (body is None) == (template is None):
        raise InvalidValue("Give the message either as a text or as a saved template.")
    try:
        control = float(control or 0)
    except (TypeError, ValueError):
        raise InvalidValue(f"control is a fraction between 0 and 1, got {control!r}.",
                           input=control) from None
    if not 0 <= control < 1:
        raise InvalidValue(f"The control group is a fraction from 0 up to 1, got {control!r}.",
                           input=control)
    fixed = tpl.check_values(values)
    fallbacks = tpl.check_values(fallbacks, "fallback")
    parsed = aud.Audience.parse(audience)
    entries = [{"body": body, "template": template, "header": header, "footer": footer,
                "buttons": buttons}]
    for v in variants or []:
        entries.append({"body": v} if isinstance(v, str) else dict(v))
    if len(entries) > 26:
        raise InvalidValue("At most 26 variants (A to Z).")
    built = []
    for letter, entry in zip(string.ascii_uppercase, entries, strict=False):
        entry = {"header": header, "footer": footer, "buttons": buttons, **entry}
        built.append({"variant": letter, "share": entry.get("share"),
                      "template": _template(account, entry, category, language, con),
                      "values": {**fixed, **tpl.check_values(entry.get("values"))}})
    for v, share in zip(built, aud.variant_shares(built), strict=True):
        v["share"] = float(share)
    return {"broadcast_id": None, "name": name, "category": category,
            "audience": parsed.to_dict(), "variants": built, "control_fraction": control,
            "seed": int(seed), "missing_placeholder": "fallback" if fallbacks else "skip",
            "fallbacks": fallbacks}


def samples(con, account: dict, frame: pd.DataFrame, n: int = SAMPLES) -> list[dict]:
    """Up to ``n`` queued recipients, one per variant first, spread over the audience:
    their name and the exact text they would get."""
    from ..people.contacts import get_contact

    queued = frame[frame["state"] == "queued"]
    if queued.empty:
        return []
    picks: list[int] = []
    for _, group in queued.groupby("variant", sort=True):
        picks.append(int(group.index[0]))
    spread = [int(queued.index[round(i * (len(queued) - 1) / max(n - 1, 1))]) for i in range(n)]
    for i in spread:
        if len(picks) >= n:
            break
        if i not in picks:
            picks.append(i)
    out = []
    for i in picks[:n]:
        row = frame.loc[i]
        person = get_contact(con, account, int(row["contact_id"]))
        out.append({"contact_id": int(row["contact_id"]), "name": person.get("name"),
                    "variant": row["variant"], "text": row["body"],
                    "params": json.loads(row["params"] or "{}")})
    return out


def estimate(ws, account, at: datetime, *, with_plan: bool = False, rate_card=None,
             n_samples: int = SAMPLES, **fields) -> Estimate:
    """Evaluate an unsaved broadcast at ``at``: the counts, ``n_samples`` previews and,
    with ``with_plan``, the plan. One read-only connection; nothing is written."""
    card = None
    if with_plan:
        card = rate_card if isinstance(rate_card, planning.RateCard) else \
            planning.RateCard.load(rate_card)
    with ws.connect(read_only=True) as con:
        acc = get_account(con, account)
        broadcast = definition(con, acc, **fields)
        frame = aud.evaluate(con, acc, broadcast, at)
        result = Estimate(at=at, counts=aud.summary(frame),
                          samples=samples(con, acc, frame, n_samples) if n_samples else [])
        if with_plan:
            result.plan = planning.plan(con, acc, broadcast, frame, at, rate_card=card)
    return result


def options(ws, account) -> dict:
    """What the composer offers for an account: labels, languages, attribute names with
    their most common values, placeholders, saved templates and past broadcasts."""
    with ws.connect(read_only=True) as con:
        acc = get_account(con, account)
        aid = acc["account_id"]
        labels = [r[0] for r in con.execute(
            "SELECT name FROM labels WHERE account_id = ? ORDER BY lower(name)", [aid]).fetchall()]
        languages = [r[0] for r in con.execute(
            "SELECT DISTINCT language FROM contacts WHERE account_id = ? AND language IS NOT NULL "
            "ORDER BY language", [aid]).fetchall()]
        attrs = con.execute("""
            WITH kv AS (
                SELECT k, json_extract_string(attributes, '$.' || k) AS v
                FROM (SELECT attributes, unnest(json_keys(attributes)) AS k FROM contacts
                      WHERE account_id = ? AND attributes IS NOT NULL))
            SELECT k, v, count(*) AS n FROM kv WHERE v IS NOT NULL
            GROUP BY k, v QUALIFY row_number() OVER (PARTITION BY k ORDER BY n DESC, v) <= 50
            ORDER BY k, n DESC, v""", [aid]).fetchall()
        attributes: dict[str, list[str]] = {}
        for k, v, _ in attrs:
            if render.NAME.fullmatch(k):
                attributes.setdefault(k, []).append(v)
        templates = con.execute("""
            SELECT template_id, name, language, category, body FROM templates
            WHERE account_id = ? AND category IN ('marketing', 'utility')
            ORDER BY template_id DESC""", [aid]).df()
        broadcasts = con.execute("""
            SELECT broadcast_id, name, status FROM broadcasts WHERE account_id = ?
            AND status <> 'draft' ORDER BY broadcast_id DESC LIMIT 200""", [aid]).df()
        return {"account": acc, "labels": labels, "languages": languages,
                "attributes": attributes, "placeholders": available_placeholders(con, acc),
                "templates": templates, "broadcasts": broadcasts}


__all__ = ["Estimate", "available_placeholders", "definition", "estimate",
           "options", "samples"]
