"""Business accounts: the WhatsApp Business numbers of one workspace and their profiles.

Each account has its own number (mobile or landline; stored as E.164 with its type and
region) and never sees another account's contacts, labels, chats or statistics: other
modules scope every query by ``account_id``, found with ``resolve_id``.

Business hours are kept as ``{"mon": [["09:00", "18:00"]], ..., "sun": []}`` in the
account's IANA time zone; ``is_open_at`` is the pure rule automations use for "away".
"""

from __future__ import annotations

import json
import numbers
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import pandas as pd

from .. import store
from ..errors import BizchatError, Conflict, InvalidPhoneNumber, InvalidValue, NotFound  # noqa: F401 - InvalidValue re-exported
from . import phones

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_TIMEZONE = "Europe/Berlin"

# Limits of the Cloud API business profile, so a profile set here can also be published.
_MAX_LEN = {"about": 139, "description": 512, "address": 256, "email": 128,
            "display_name": 256, "category": 100}
_MAX_WEBSITES = 2

# Columns update() may set, with the keyword aliases users reach for first.
_SETTABLE = ("display_name", "phone_number_id", "waba_id", "about", "description", "category",
             "address", "email", "websites", "business_hours", "timezone", "opt_out_keywords",
             "max_labels", "max_quick_replies")
_ALIASES = {"name": "display_name", "hours": "business_hours", "website": "websites",
            "vertical": "category"}

_COLUMNS = ("account_id, phone_e164, number_type, region, display_name, phone_number_id, "
            "waba_id, about, description, category, address, email, websites, business_hours, "
            "timezone, opt_out_keywords, max_labels, max_quick_replies, created_at")


# --- validation (pure) ---------------------------------------------------------------------

def check_timezone(name: str) -> str:
    """``name`` if it is an IANA time zone (``Europe/Vienna``), else InvalidValue."""
    try:
        if not isinstance(name, str) or not name.strip():
            raise ValueError
        ZoneInfo(name.strip())
    # ZoneInfo reads a file named by the key: a folder ("Europe") or an overlong name
    # fails as an OSError, a file that is no zone (zone.tab) as a ValueError.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        shown = name if not isinstance(name, str) or len(name) <= 60 else name[:57] + "..."
        raise InvalidValue(
            f"{shown!r} is not a time zone. Use an IANA name such as Europe/Berlin, "
            "Europe/Vienna or Europe/Zurich.", input=name) from None
    return name.strip()


_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")


def _minutes(text: str, day: str) -> int:
    text = text.strip()
    if len(text) == 4 and text[1] == ":":
        text = "0" + text  # 9:00 -> 09:00
    if not _HHMM.match(text):
        raise InvalidValue(
            f"{text!r} in the hours of {day} is not a time. Write HH:MM, e.g. 09:00-18:00.",
            input=text)
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _ranges(value, day: str) -> list[list[str]]:
    """One day's hours from '09:00-12:00,13:00-18:00', 'closed' or [['09:00','12:00'], ...]."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", "closed", "geschlossen", "-"):
            return []
        if text in ("24h", "open", "always"):
            return [["00:00", "24:00"]]
        pairs = []
        for part in text.split(","):
            bits = part.split("-")
            if len(bits) != 2:
                raise InvalidValue(
                    f"{part.strip()!r} in the hours of {day} is not a range. Write "
                    "HH:MM-HH:MM, several separated by commas, or 'closed'.", input=value)
            pairs.append(bits)
    else:
        pairs = list(value)
    out = []
    for pair in pairs:
        if isinstance(pair, str) or len(pair) != 2:
            raise InvalidValue(f"{pair!r} in the hours of {day} is not a [start, end] pair.",
                               input=value)
        start, end = _minutes(str(pair[0]), day), _minutes(str(pair[1]), day)
        if start >= end:
            raise InvalidValue(
                f"The range {pair[0]}-{pair[1]} on {day} ends before it starts. Hours past "
                f"midnight go on the next day (e.g. {day}=22:00-24:00 and the next day "
                "00:00-02:00).", input=value)
        out.append((start, end))
    out.sort()
    for (_, end), (start, _) in zip(out, out[1:], strict=False):
        if start < end:
            raise InvalidValue(f"The hours of {day} overlap: {value!r}.", input=value)
    return [[f"{s // 60:02d}:{s % 60:02d}", f"{e // 60:02d}:{e % 60:02d}"] for s, e in out]


def _days(key: str) -> list[str]:
    """'mon' -> [mon]; 'mon-fri' (also 'Montag'-style prefixes) -> [mon..fri]; 'daily'."""
    key = key.strip().lower()
    if key in ("daily", "all", "every day"):
        return list(WEEKDAYS)
    first, _, last = key.partition("-")
    first, last = first.strip()[:3], (last.strip()[:3] or first.strip()[:3])
    if first in WEEKDAYS and last in WEEKDAYS:
        i, j = WEEKDAYS.index(first), WEEKDAYS.index(last)
        if i <= j:
            return list(WEEKDAYS[i:j + 1])
    raise InvalidValue(
        f"{key!r} is not a weekday. Use mon, tue, wed, thu, fri, sat, sun or a span like "
        "mon-fri.", input=key)


def parse_hours(spec, base: dict | None = None) -> dict | None:
    """Business hours from a dict or text, checked and normalised to all seven days.

    ``{"mon": "09:00-18:00", "sat": [["10:00", "14:00"]]}``, or text such as
    ``"mon-fri=09:00-18:00; sat=10:00-14:00"``. Days not named are closed, or keep their
    value from ``base`` when it is given (for ``accounts set --hours``). None clears.
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        if not spec.strip():
            return None
        pairs = {}
        for part in re.split(r"[;\n]", spec):
            if not part.strip():
                continue
            day, sep, value = part.partition("=")
            if not sep:
                raise InvalidValue(
                    f"{part.strip()!r} is not a day's hours. Write e.g. mon=09:00-18:00 or "
                    "mon-fri=09:00-12:00,13:00-18:00 or sun=closed.", input=spec)
            for d in _days(day):
                pairs[d] = value
        spec = pairs
    if not isinstance(spec, dict):
        raise InvalidValue(f"Business hours must be a dict per weekday, got {spec!r}.", input=spec)
    hours = {d: list(base.get(d, [])) if base else [] for d in WEEKDAYS}
    for key, value in spec.items():
        for day in _days(str(key)):
            hours[day] = _ranges(value, day)
    return hours


def is_open_at(hours: dict | None, zone: str, at: datetime) -> bool:
    """Whether a business with these ``hours`` in time zone ``zone`` is open at ``at``.

    No hours set means always open (nothing restricts it). A naive ``at`` is taken as UTC,
    like every timestamp in bizchat. Ranges are [start, end): 18:00 is already closed.
    """
    if not hours:
        return True
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    local = at.astimezone(ZoneInfo(zone))
    day = WEEKDAYS[local.weekday()]
    now = local.hour * 60 + local.minute + local.second / 60
    for start, end in hours.get(day) or []:
        if _minutes(start, day) <= now < _minutes(end, day):
            return True
    return False


def _check_text(field: str, value):
    if value is None:
        return None
    value = str(value).strip()
    if not value:
        return None
    limit = _MAX_LEN.get(field)
    if limit and len(value) > limit:
        raise InvalidValue(
            f"The {field} is {len(value)} characters long; WhatsApp allows at most {limit}. "
            "Shorten it.", input=value, field=field)
    if field == "email" and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        raise InvalidValue(f"{value!r} is not an e-mail address.", input=value, field=field)
    return value


def _check_websites(value) -> list[str] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    sites = []
    for item in items:
        for site in str(item).replace(",", " ").split():
            if not re.match(r"^https?://", site, re.I):
                site = "https://" + site
            if not re.fullmatch(r"https?://[^\s/]+\.[^\s]+", site, re.I) or len(site) > 256:
                raise InvalidValue(f"{site!r} is not a web address, e.g. https://example.de.",
                                   input=site)
            sites.append(site)
    if len(sites) > _MAX_WEBSITES:
        raise InvalidValue(f"WhatsApp shows at most {_MAX_WEBSITES} websites, got {len(sites)}.",
                           input=value)
    return sites or None


def _check_keywords(value) -> list[str] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    words = [str(w).strip() for w in items if str(w).strip()]
    return words or None


def _check_field(field: str, value):
    """The stored form of one profile field, or InvalidValue."""
    if field == "display_name":
        value = _check_text(field, value)
        if not value:
            raise InvalidValue("An account needs a display name (--name).", field=field)
        return value
    if field == "timezone":
        return check_timezone(value)
    if field == "business_hours":
        hours = parse_hours(value)
        return None if hours is None else json.dumps(hours)
    if field == "websites":
        return _check_websites(value)
    if field == "opt_out_keywords":
        return _check_keywords(value)
    if field in ("max_labels", "max_quick_replies"):
        try:
            number = int(value)
        except (TypeError, ValueError) as exc:
            raise InvalidValue(f"{field} must be a whole number, got {value!r}.",
                               input=value) from exc
        if number < 0:
            raise InvalidValue(f"{field} cannot be negative.", input=value)
        return number
    if field in ("phone_number_id", "waba_id"):
        return None if value is None or not str(value).strip() else str(value).strip()
    return _check_text(field, value)


def _canonical(fields: dict) -> dict:
    out = {}
    for key, value in fields.items():
        name = _ALIASES.get(key, key)
        if name not in _SETTABLE:
            raise InvalidValue(
                f"{key!r} is not an account field. Settable: {', '.join(_SETTABLE)}.", input=key)
        out[name] = value
    return out


# --- lookups that other modules call inside their own transaction ----------------------------

def _decoded(account: dict) -> dict:
    """An accounts row with its JSON and list columns as Python values."""
    if account.get("business_hours"):
        account["business_hours"] = json.loads(account["business_hours"])
    for key in ("websites", "opt_out_keywords"):
        if account.get(key) is not None:
            account[key] = list(account[key])
    return account


def find_account(con: duckdb.DuckDBPyConnection, ref) -> dict | None:
    """The account row for an account_id, a phone_number_id or any form of its number."""
    def one(where: str, param):
        cur = con.execute(f"SELECT {_COLUMNS} FROM accounts WHERE {where}", [param])
        account = store.one(cur)   # fetches all: fetchone would leave a pending result
        return None if account is None else _decoded(account)

    if isinstance(ref, dict) and "account_id" in ref:
        ref = ref["account_id"]
    if isinstance(ref, bool):
        return None
    if isinstance(ref, numbers.Integral):  # numpy ints from DataFrames too
        return one("account_id = ?", int(ref))
    if not isinstance(ref, str) or not ref.strip():
        return None
    text = ref.strip()
    found = one("phone_number_id = ?", text)
    if found:
        return found
    if text.isdigit() and len(text) < 7:  # no valid phone number is this short: an account_id
        return one("account_id = ?", int(text))
    try:
        e164 = phones.normalize(text)
    except InvalidPhoneNumber:
        return None
    return one("phone_e164 = ?", e164)


def get_account(con: duckdb.DuckDBPyConnection, ref) -> dict:
    """The account ``ref`` names (account_id, phone_number_id or its number in any
    written form); NotFound otherwise. Used by every service that takes an account."""
    account = find_account(con, ref)
    if account is None:
        raise NotFound(
            f"No account {ref!r} in this workspace. List them with `bizchat accounts list`, "
            "or add it with `bizchat accounts add PHONE --name NAME`.", input=ref)
    return account


def resolve_id(con: duckdb.DuckDBPyConnection, ref) -> int:
    """The account_id for ``ref`` (account_id, phone_number_id, any form of the number, or
    an account dict); NotFound if there is none."""
    return get_account(con, ref)["account_id"]


def default_region(account: dict) -> str:
    """The region used to read national numbers of this account's contacts."""
    region = account.get("region")
    return region if region and region.isalpha() else phones.DEFAULT_REGION


def _audit(con, action: str, details: dict, actor: str = "bizchat") -> None:
    con.execute(
        'INSERT INTO audit_log ("at", actor, action, subject_key, details) VALUES (?, ?, ?, NULL, ?)',
        [datetime.now(UTC), actor, action, json.dumps(details)])


# --- the service -------------------------------------------------------------------------------

class Accounts:
    """The business accounts of a workspace (``ws.accounts``)."""

    def __init__(self, ws):
        self.ws = ws

    def add(self, phone: str, name: str, *, phone_number_id: str | None = None,
            timezone: str = DEFAULT_TIMEZONE, **profile) -> dict:
        """Add a business number with its display name and profile; returns the account.

        ``profile`` takes about, description, category, address, email, websites,
        business_hours (or hours), waba_id, opt_out_keywords. Raises InvalidPhoneNumber,
        Conflict (number or phone_number_id already used) or InvalidValue.
        """
        number = phones.parse(phone)
        if not phones.is_mobile_capable(number):
            raise InvalidPhoneNumber(
                f"{phone!r} is a {number.number_type.replace('_', ' ')} number, which cannot "
                "be a WhatsApp Business number. Use a mobile or landline number.", input=phone)
        fields = _canonical({"display_name": name, "phone_number_id": phone_number_id,
                             "timezone": timezone, **profile})
        values = {k: _check_field(k, v) for k, v in fields.items()}
        with self.ws.transaction() as con:
            if con.execute("SELECT 1 FROM accounts WHERE phone_e164 = ?", [number.e164]).fetchall():
                raise Conflict(
                    f"The number {number.e164} is already an account in this workspace. "
                    f"Change it with `bizchat accounts set {number.e164} ...`.", input=phone)
            self._check_phone_number_id(con, values.get("phone_number_id"), None)
            account_id = store.next_id(con, "accounts", "account_id")
            values.update(account_id=account_id, phone_e164=number.e164,
                          number_type=number.number_type, region=number.region,
                          created_at=datetime.now(tz=UTC))
            values = {k: v for k, v in values.items() if v is not None}
            cols = ", ".join(values)
            marks = ", ".join("?" for _ in values)
            con.execute(f"INSERT INTO accounts ({cols}) VALUES ({marks})", list(values.values()))
            _audit(con, "accounts.add", {"account_id": account_id})
            return get_account(con, account_id)

    def get(self, ref) -> dict:
        """One account by any written form of its number, account_id or phone_number_id."""
        with self.ws.connect(read_only=True) as con:
            return get_account(con, ref)

    def resolve_id(self, ref) -> int:
        """The account_id of the account ``ref`` names (its number in any form, account_id or
        phone_number_id); NotFound otherwise."""
        with self.ws.connect(read_only=True) as con:
            return resolve_id(con, ref)

    def list(self) -> pd.DataFrame:
        """All accounts with their number, type, name, Cloud API id and contact count."""
        with self.ws.connect(read_only=True) as con:
            return con.execute("""
                SELECT a.account_id, a.phone_e164, a.number_type, a.region, a.display_name,
                       a.phone_number_id, a.timezone,
                       (SELECT count(*) FROM contacts c WHERE c.account_id = a.account_id)
                           AS contacts,
                       a.created_at
                FROM accounts a ORDER BY a.account_id""").df()

    def update(self, ref, *, actor: str = "bizchat", merge_hours: bool = False, **fields) -> dict:
        """Change profile fields (None clears an optional one); returns the account.

        With ``merge_hours`` the given business hours change only the days they name.
        """
        fields = _canonical(fields)
        if not fields:
            raise InvalidValue(f"Nothing to change. Settable: {', '.join(_SETTABLE)}.")
        with self.ws.transaction() as con:
            account = get_account(con, ref)
            values = {}
            for key, value in fields.items():
                if key == "business_hours" and merge_hours and value is not None:
                    hours = parse_hours(value, base=account.get("business_hours"))
                    values[key] = json.dumps(hours)
                elif key == "timezone" and value is None:
                    values[key] = DEFAULT_TIMEZONE
                else:
                    values[key] = _check_field(key, value)
            if "phone_number_id" in values:
                self._check_phone_number_id(con, values["phone_number_id"], account["account_id"])
            sets = ", ".join(f"{k} = ?" for k in values)
            con.execute(f"UPDATE accounts SET {sets} WHERE account_id = ?",
                        [*values.values(), account["account_id"]])
            _audit(con, "accounts.update",
                   {"account_id": account["account_id"], "fields": sorted(values)}, actor)
            return get_account(con, account["account_id"])

    def is_open(self, account, at: datetime | None = None) -> bool:
        """Whether ``account`` (ref or dict) is within its business hours at ``at`` (now)."""
        if not (isinstance(account, dict) and "business_hours" in account):
            account = self.get(account)
        at = at or datetime.now(tz=UTC)
        return is_open_at(account.get("business_hours"), account["timezone"], at)

    @staticmethod
    def _check_phone_number_id(con, value, account_id) -> None:
        if value is None:
            return
        row = con.execute("SELECT account_id FROM accounts WHERE phone_number_id = ?",
                          [value]).fetchall()
        row = row[0] if row else None
        if row and row[0] != account_id:
            raise Conflict(
                f"The phone_number_id {value} already belongs to account {row[0]}. Each "
                "Cloud API number id maps to one account.", input=value)


__all__ = ["Accounts", "InvalidValue", "WEEKDAYS", "check_timezone", "default_region",
           "is_open_at", "parse_hours", "resolve_id"]
