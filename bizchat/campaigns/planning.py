"""Campaign planning: what a broadcast will likely achieve and cost, before it is sent.

Expected outcomes come from the account's own history. Past broadcasts are compared with
the planned one at decreasing similarity, and the first level with enough past
recipients (``min_recipients``) gives the rates:

1. same labels, same send hour (in the account's time zone) and same category;
2. same labels and category;
3. same category (account-wide for that category);
4. every past broadcast of the account.

Rates follow DESIGN.md: delivery rate = delivered / sent, open rate = read / delivered
(a lower bound: users can switch read receipts off), reply rate = recipients who wrote
back within 72 h / delivered. The plan says which level was used and how many past
recipients the estimate rests on.

Cost: WhatsApp charges per delivered template message, by the recipient's country
calling code and the template category. A utility template to a contact whose 24-hour
customer-service window is open at the send time is free, as are free-form service
replies (which are only allowed inside that window). The rates come from an editable CSV
rate card (``bizchat/data/rate_card.csv``; ``$BIZCHAT_RATE_CARD`` or ``rate_card=`` point
to another one); its header says where its example rates come from and of when.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import phonenumbers

from ..errors import ImportFormatError, InvalidValue

CATEGORIES = ("marketing", "utility", "authentication")
REPLY_WINDOW_HOURS = 72
MIN_RECIPIENTS = 100
BASES = ("same labels, send hour and category", "same labels and category",
         "same category", "all past broadcasts of the account")


# --- the rate card ------------------------------------------------------------------------------

@dataclass
class RateCard:
    """Prices per delivered template message by country (ISO code) and category."""

    rates: pd.DataFrame            # index: country (upper case, 'DEFAULT'); columns: categories
    currency: str = "EUR"
    source: str = ""
    date: str = ""
    path: str = ""

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> RateCard:
        """The rate card at ``path``, else ``$BIZCHAT_RATE_CARD``, else the shipped one."""
        path = path or os.environ.get("BIZCHAT_RATE_CARD")
        if path:
            where = Path(path)
            try:
                text = where.read_text("utf-8")
            except OSError as exc:
                raise ImportFormatError(f"Cannot read the rate card {where}: {exc.strerror}. "
                                        "Give the path of a CSV rate card.", path=str(where)) from exc
        else:
            entry = resources.files("bizchat").joinpath("data/rate_card.csv")
            where, text = Path(str(entry)), entry.read_text("utf-8")
        return cls.parse(text, str(where))

    @classmethod
    def parse(cls, text: str, path: str = "<rate card>") -> RateCard:
        meta: dict[str, list[str]] = {}
        rows, header, header_line = [], None, 0
        for number, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            if not stripped:
                continue
            if stripped.startswith("#"):
                key, sep, value = stripped.lstrip("#").strip().partition(":")
                if sep and key.strip().lower() in ("source", "date", "currency"):
                    meta.setdefault(key.strip().lower(), []).append(value.strip())
                continue
            cells = next(csv.reader(io.StringIO(line)))
            if header is None:
                header, header_line = [c.strip().lower() for c in cells], number
                missing = {"country", *CATEGORIES} - set(header)
                if missing:
                    raise ImportFormatError(
                        f"{path}, line {number}: the rate card needs the columns country, "
                        f"marketing, utility, authentication; missing {sorted(missing)}.",
                        path=path, line=number)
                continue
            if len(cells) != len(header):
                raise ImportFormatError(f"{path}, line {number}: {len(cells)} cells, the header "
                                        f"has {len(header)}.", path=path, line=number)
            row = dict(zip(header, (c.strip() for c in cells), strict=True))
            entry: dict[str, str | float] = {"country": row["country"].upper()}
            for category in CATEGORIES:
                try:
                    entry[category] = rate = float(row[category])
                except ValueError as exc:
                    raise ImportFormatError(
                        f"{path}, line {number}: the {category} rate {row[category]!r} is not a "
                        "number (write e.g. 0.1131).", path=path, line=number) from exc
                if rate < 0:
                    raise ImportFormatError(f"{path}, line {number}: a rate cannot be negative.",
                                            path=path, line=number)
            rows.append((number, entry))
        if header is None:
            raise ImportFormatError(f"{path} has no header line (country,marketing,utility,"
                                    "authentication).", path=path, line=header_line)
        seen: dict[str, int] = {}
        for number, entry in rows:
            country = str(entry["country"])
            if country in seen:
                raise ImportFormatError(f"{path}, line {number}: {country} is listed twice "
                                        f"(first on line {seen[country]}).",
                                        path=path, line=number)
            seen[country] = number
        if "DEFAULT" not in seen:
            raise ImportFormatError(f"{path} needs a 'default' row for countries it does not "
                                    "list.", path=path, line=None)
        rates = pd.DataFrame([e for _, e in rows]).set_index("country")
        return cls(rates=rates, currency=" ".join(meta.get("currency", ["EUR"])),
                   source=" ".join(meta.get("source", [])), date=" ".join(meta.get("date", [])),
                   path=path)

    def rate(self, country: str | None, category: str) -> float:
        """The price of one delivered template of ``category`` to ``country``."""
        if category not in CATEGORIES:
            raise InvalidValue(f"{category!r} is not a template category ({', '.join(CATEGORIES)}).")
        key = (country or "").upper()
        row = self.rates.loc[key] if key in self.rates.index else self.rates.loc["DEFAULT"]
        return float(row[category])

    def price(self, country: str | None, category: str, *, in_service_window: bool,
              free_form: bool = False) -> float:
        """What one delivered message costs: free-form service messages (only allowed inside
        the window) and utility templates inside the window are free."""
        if free_form:
            if not in_service_window:
                raise InvalidValue("A free-form message is only allowed inside the 24-hour "
                                 "customer-service window; send a template instead.")
            return 0.0
        if category == "utility" and in_service_window:
            return 0.0
        return self.rate(country, category)


def countries(numbers: pd.Series) -> pd.Series:
    """The ISO country of each number (wa_id digits or E.164), None when unknown.

    By the country calling code; where several countries share one (+1, +7, +44 ...) the
    number itself decides.
    """
    digits = numbers.astype(object).where(numbers.notna(), None).map(
        lambda x: x.lstrip("+") if isinstance(x, str) else None)
    codes = phonenumbers.COUNTRY_CODE_TO_REGION_CODE
    out = pd.Series([None] * len(numbers), index=numbers.index, dtype=object)
    for length in (1, 2, 3):
        prefix = digits.str[:length]
        for code in pd.unique(prefix.dropna()):
            if not code.isdigit() or int(code) not in codes:
                continue
            hit = (prefix == code) & out.isna()
            regions = [r for r in codes[int(code)] if r != "001"]
            if not regions:
                continue
            if len(regions) == 1:
                out[hit] = regions[0]
            else:
                out[hit] = digits[hit].map(lambda d, main=regions[0]: _region(d, main))
    return out


def _region(digits: str, main: str) -> str:
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse("+" + digits)) or main
    except phonenumbers.NumberParseException:
        return main


# --- outcomes of past broadcasts ----------------------------------------------------------------

def recipient_outcomes(con, account_id: int, broadcast_ids=None) -> pd.DataFrame:
    """Per recipient of the account's broadcasts (all, or ``broadcast_ids``): broadcast_id,
    variant, state, sent / delivered / read / failed / replied flags, as campaign_stats
    counts them; replied = wrote to the business within 72 h after the message was sent."""
    filter_ids = broadcast_ids is not None
    return con.execute(f"""
        WITH r AS (
            SELECT r.broadcast_id, r.contact_id, r.variant, r.state, r.message_id,
                   s.status, s.delivered_at, s.read_at, s.played_at,
                   coalesce(r.sent_at, s.sent_at, m.created_at, b.scheduled_for) AS sent_time
            FROM broadcast_recipients r
            JOIN broadcasts b USING (broadcast_id)
            LEFT JOIN message_status s ON s.message_id = r.message_id
            LEFT JOIN (SELECT message_id, min(created_at) AS created_at FROM messages
                       WHERE account_id = ? AND broadcast_id IS NOT NULL
                       GROUP BY message_id) m ON m.message_id = r.message_id
            WHERE b.account_id = ? {"AND list_contains(?, r.broadcast_id)" if filter_ids else ""}
        ),
        replies AS (
            SELECT DISTINCT r.broadcast_id, r.contact_id
            FROM r JOIN messages i ON i.account_id = ? AND i.contact_id = r.contact_id
                 AND i.direction = 'in' AND i.created_at > r.sent_time
                 AND i.created_at <= r.sent_time + INTERVAL {REPLY_WINDOW_HOURS} HOURS
            WHERE r.message_id IS NOT NULL
        )
        SELECT r.broadcast_id, r.contact_id, r.variant, r.state, r.sent_time,
               r.message_id IS NOT NULL AS sent,
               coalesce(r.status <> 'failed'
                        AND coalesce(r.delivered_at, r.read_at, r.played_at) IS NOT NULL,
                        false) AS delivered,
               coalesce(r.status <> 'failed' AND coalesce(r.read_at, r.played_at) IS NOT NULL,
                        false) AS "read",
               (r.status = 'failed' OR r.state = 'failed') IS TRUE AS failed,
               (r.message_id IS NOT NULL AND p.contact_id IS NOT NULL) AS replied
        FROM r LEFT JOIN replies p USING (broadcast_id, contact_id)""",
                       [account_id, account_id, *([list(broadcast_ids)] if filter_ids else []),
                        account_id]).df()


def funnel(outcomes: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """sent, delivered, read, failed, replied (and the rates) overall or per ``by``."""
    columns = ["sent", "delivered", "read", "failed", "replied"]
    frame = outcomes[[*([by] if by else []), *columns]].copy()
    if by:
        frame[by] = frame[by].astype(object).where(frame[by].notna(), "-")
        out = frame.groupby(by, sort=True)[columns].sum().reset_index()
    else:
        out = pd.DataFrame([frame[columns].sum()])
    out[columns] = out[columns].astype("int64")
    out["delivery_rate"] = out["delivered"] / out["sent"].where(out["sent"] > 0)
    out["open_rate"] = out["read"] / out["delivered"].where(out["delivered"] > 0)
    out["reply_rate"] = out["replied"] / out["delivered"].where(out["delivered"] > 0)
    return out


def _past(con, account: dict, exclude: int | None) -> pd.DataFrame:
    """Past broadcasts of the account with their funnel, labels and send hour."""
    outcomes = recipient_outcomes(con, account["account_id"])
    outcomes = outcomes[outcomes["sent"] & (outcomes["broadcast_id"] != (exclude or -1))]
    if outcomes.empty:
        return pd.DataFrame(columns=["broadcast_id", "sent", "delivered", "read", "replied",
                                     "category", "labels", "hour"])
    per = outcomes.groupby("broadcast_id").agg(
        sent=("sent", "sum"), delivered=("delivered", "sum"), read=("read", "sum"),
        replied=("replied", "sum"), first_sent=("sent_time", "min")).reset_index()
    meta = con.execute("""
        SELECT broadcast_id, category, audience, scheduled_for FROM broadcasts
        WHERE account_id = ?""", [account["account_id"]]).df()
    per = per.merge(meta, on="broadcast_id", how="left")
    from .audiences import Audience

    def label_key(text):
        try:
            return Audience.parse(text).label_key()
        except Exception:  # an audience written by another tool: compare as "no labels"
            return Audience().label_key()

    zone = ZoneInfo(account.get("timezone") or "UTC")
    per["labels"] = per["audience"].map(label_key)
    when = pd.to_datetime(per["scheduled_for"], utc=True).fillna(
        pd.to_datetime(per["first_sent"], utc=True))
    per["hour"] = when.dt.tz_convert(zone).dt.hour
    return per


@dataclass
class Plan:
    """The planning numbers of one broadcast (``ws.broadcasts.plan``)."""

    broadcast_id: int
    name: str
    category: str
    at: datetime
    audience: dict
    basis: str | None
    basis_broadcasts: int
    basis_recipients: int
    rates: dict
    expected: dict
    cost: dict
    by_country: pd.DataFrame = field(repr=False)
    rate_card: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("broadcast_id", "name", "category", "audience",
                                             "basis", "basis_broadcasts", "basis_recipients",
                                             "rates", "expected", "cost", "rate_card")}
        out["at"] = self.at.isoformat()
        out["by_country"] = self.by_country.to_dict("records")
        return out

    def lines(self) -> list[str]:
        a, e, c = self.audience, self.expected, self.cost
        out = [f"Broadcast {self.broadcast_id} {self.name!r} ({self.category}), send time "
               f"{self.at:%Y-%m-%d %H:%M} UTC",
               f"Audience: {a['candidates']} matching contacts, {a['queued']} to send"
               + (f" ({', '.join(f'{k}: {v}' for k, v in a['by_variant'].items())})"
                  if len(a["by_variant"]) > 1 else "")]
        if a["skipped"]:
            out.append("Not sent: " + ", ".join(f"{k} {v}" for k, v in a["skipped"].items()))
        if a.get("not_sampled"):
            out.append(f"Not drawn in the sample: {a['not_sampled']}")
        if self.basis:
            r = self.rates
            out.append(f"History: {self.basis_recipients} past recipients of "
                       f"{self.basis_broadcasts} broadcasts ({self.basis}): delivery "
                       f"{_pct(r['delivery_rate'])}, open {_pct(r['open_rate'])}, reply "
                       f"{_pct(r['reply_rate'])}")
            out.append(f"Expected: {e['delivered']:.0f} delivered, {e['read']:.0f} read, "
                       f"{e['replies']:.0f} replies")
        else:
            out.append("History: no past broadcasts to learn from; no outcome estimate.")
        note = "" if self.basis else " (assuming every message is delivered)"
        out.append(f"Cost: {c['total']:.2f} {c['currency']} for {c['expected_billable']:.0f} "
                   f"billable deliveries{note}; {c['free_in_window']} utility messages free "
                   "inside the 24-hour window")
        rc = self.rate_card
        out.append(f"Rate card: {rc.get('path')}, rates as of {rc.get('date') or '?'} "
                   f"(source: {rc.get('source') or 'not stated'})")
        return out


def _pct(x) -> str:
    return "n/a" if x is None or pd.isna(x) else f"{100 * x:.1f}%"


def _rates(part: pd.DataFrame) -> dict:
    sent, delivered = int(part["sent"].sum()), int(part["delivered"].sum())
    return {"delivery_rate": delivered / sent if sent else None,
            "open_rate": int(part["read"].sum()) / delivered if delivered else None,
            "reply_rate": int(part["replied"].sum()) / delivered if delivered else None}


def history(con, account: dict, category: str, label_key: tuple, hour: int,
            exclude: int | None = None, min_recipients: int = MIN_RECIPIENTS) -> dict:
    """The rates of the most similar past broadcasts with at least ``min_recipients``
    recipients (or the widest level with any), and what they rest on."""
    past = _past(con, account, exclude)
    levels = [
        (past["labels"].map(lambda k: k == label_key) & (past["hour"] == hour)
         & (past["category"] == category)) if len(past) else None,
        (past["labels"].map(lambda k: k == label_key) & (past["category"] == category))
        if len(past) else None,
        (past["category"] == category) if len(past) else None,
        pd.Series(True, index=past.index) if len(past) else None,
    ]
    chosen = None
    for basis, mask in zip(BASES, levels, strict=True):
        if mask is None:
            break
        part = past[mask.astype(bool)]
        if part["sent"].sum() >= min_recipients:
            chosen = basis, part
            break
        if basis == BASES[-1] and part["sent"].sum() > 0:
            chosen = basis, part
    if chosen is None:
        return {"basis": None, "broadcasts": 0, "recipients": 0,
                "rates": {"delivery_rate": None, "open_rate": None, "reply_rate": None}}
    basis, part = chosen
    return {"basis": basis, "broadcasts": len(part), "recipients": int(part["sent"].sum()),
            "rates": _rates(part)}


def plan(con, account: dict, broadcast: dict, frame: pd.DataFrame, at: datetime, *,
         rate_card: RateCard | None = None, min_recipients: int = MIN_RECIPIENTS) -> Plan:
    """The plan of ``broadcast`` from its evaluated recipients ``frame`` (audiences.evaluate)."""
    from .audiences import Audience, summary

    rate_card = rate_card or RateCard.load()
    counts = summary(frame)
    zone = ZoneInfo(account.get("timezone") or "UTC")
    hour = at.astimezone(zone).hour
    category = broadcast["category"]
    found = history(con, account, category, Audience.parse(broadcast.get("audience")).label_key(),
                    hour, broadcast["broadcast_id"], min_recipients)
    rates = found["rates"]
    queued = frame[frame["state"] == "queued"]
    delivery = rates["delivery_rate"] if rates["delivery_rate"] is not None else 1.0
    expected: dict[str, float | None] = {"sent": len(queued), "delivered": None, "read": None,
                                         "replies": None}
    if found["basis"]:
        delivered = len(queued) * (rates["delivery_rate"] or 0.0)
        expected.update(delivered=delivered, read=delivered * (rates["open_rate"] or 0.0),
                        replies=delivered * (rates["reply_rate"] or 0.0))
    free = queued["in_window"] if category == "utility" else pd.Series(False, index=queued.index)
    billing = pd.DataFrame({"country": countries(queued["wa_id"]).fillna("other"),
                            "billable": ~free.astype(bool)})
    if billing.empty:
        by_country = pd.DataFrame(columns=["country", "recipients", "billable", "rate",
                                           "expected_billable", "cost"])
    else:
        by_country = billing.groupby("country").agg(
            recipients=("billable", "size"), billable=("billable", "sum")).reset_index()
        by_country["rate"] = [rate_card.rate(c if c != "other" else None, category)
                              for c in by_country["country"]]
        by_country["expected_billable"] = by_country["billable"] * delivery
        by_country["cost"] = by_country["expected_billable"] * by_country["rate"]
    cost = {"currency": rate_card.currency,
            "total": float(by_country["cost"].sum()) if len(by_country) else 0.0,
            "expected_billable": float(by_country["expected_billable"].sum())
            if len(by_country) else 0.0,
            "free_in_window": int(free.sum()),
            "assumed_delivery_rate": delivery}
    return Plan(broadcast_id=broadcast["broadcast_id"], name=broadcast.get("name", ""),
                category=category, at=at, audience=counts, basis=found["basis"],
                basis_broadcasts=found["broadcasts"], basis_recipients=found["recipients"],
                rates=rates, expected=expected, cost=cost, by_country=by_country,
                rate_card={"path": rate_card.path, "source": rate_card.source,
                           "date": rate_card.date, "currency": rate_card.currency})


def plan_json(p: Plan) -> str:
    return json.dumps(p.to_dict(), default=str, ensure_ascii=False)


__all__ = ["BASES", "Plan", "RateCard", "countries", "funnel", "history", "plan",
           "recipient_outcomes"]
