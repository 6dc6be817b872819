"""The schedule file: ``schedule.toml`` beside the workspace, one ``[[report]]`` per entry.

    [[report]]
    name = "weekly-campaigns"              # unique; the key of its slots
    notebook = "weekly_campaign_report"    # a report (`bizchat report list`)
    cron = "0 7 * * MON"                   # croniter syntax, in `timezone`
    timezone = "Europe/Berlin"             # default: UTC
    catch_up = "latest"                    # after downtime: "all" missed slots or the "latest"
    mail_to = ["chefin@buchladen.example"] # optional: mail the HTML (BIZCHAT_SMTP_URL)
    output_dir = "reports"                 # optional, relative to the schedule file
    [report.params]
    start = "-7d"                          # relative dates, resolved at the slot
    end = "today"
    account = "+49 30 901820"

A nightly lake export (docs/lake.md) is a ``[[lake_export]]`` entry with the same name,
cron, timezone and catch_up keys, and ``out`` (the lake folder, relative to the schedule
file), optionally ``tenant`` and ``with_bodies``::

    [[lake_export]]
    name = "nightly-lake"
    out = "/data/lake"
    tenant = "verlag-nord"                 # default: the workspace file's name
    cron = "30 2 * * *"
    timezone = "Europe/Berlin"

Relative parameter values, in the entry's time zone at the slot time: ``today``,
``yesterday``, ``tomorrow``, ``-7d`` / ``+1d`` / ``-2w`` (days or weeks from the slot's
day), and for a parameter named ``month``: ``last``, ``this`` (``YYYY-MM``). Dates come
out as ``YYYY-MM-DD``. Secrets are never parameters (checked when the report runs).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import ScheduleError
from .slots import valid

FILE_NAME = "schedule.toml"
POLICIES = ("all", "latest")
_KEYS = {"name", "notebook", "cron", "timezone", "catch_up", "mail_to", "params", "output_dir"}
_LAKE_KEYS = {"name", "out", "tenant", "with_bodies", "cron", "timezone", "catch_up"}
SECTIONS = {"report": "report", "lake_export": "lake_export"}
_OFFSET = re.compile(r"^([+-]\d{1,4})([dw])$")
_ADDRESS = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")


@dataclass(frozen=True)
class Entry:
    """One scheduled report, or (``kind == "lake_export"``) one lake export."""

    name: str
    notebook: str
    cron: str
    timezone: str = "UTC"
    catch_up: str = "latest"
    params: dict = field(default_factory=dict)
    mail_to: tuple[str, ...] = ()
    output_dir: Path | None = None
    kind: str = "report"
    out: Path | None = None
    tenant: str | None = None
    bodies: bool = False

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def params_at(self, slot: datetime) -> dict:
        """The parameters with relative dates resolved at ``slot`` (in the entry's zone)."""
        day = slot.astimezone(self.zone).date()
        return {k: resolve(k, v, day) for k, v in self.params.items()}


def resolve(name: str, value, day):
    """One parameter value: relative dates against ``day``, anything else unchanged."""
    if not isinstance(value, str):
        return value
    text = value.strip().lower()
    if name == "month" and text in ("last", "this", "current"):
        first = day.replace(day=1)
        if text == "last":
            first = (first - timedelta(days=1)).replace(day=1)
        return f"{first:%Y-%m}"
    named = {"today": 0, "yesterday": -1, "tomorrow": 1}
    if text in named:
        return f"{day + timedelta(days=named[text]):%Y-%m-%d}"
    match = _OFFSET.match(text)
    if match:
        amount = int(match.group(1)) * (7 if match.group(2) == "w" else 1)
        return f"{day + timedelta(days=amount):%Y-%m-%d}"
    return value


def default_path(ws) -> Path:
    """``schedule.toml`` beside the workspace file."""
    return Path(ws.path).parent / FILE_NAME


def load(path: str | os.PathLike) -> list[Entry]:
    """The entries of a schedule file; a missing file is an empty schedule."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ScheduleError(f"{path} is not valid TOML: {exc}. Fix the file.",
                            path=str(path), input=str(path)) from None
    unknown_sections = sorted(set(data) - set(SECTIONS))
    if unknown_sections:
        raise ScheduleError(f"{path}: unknown section {', '.join(unknown_sections)}; "
                            "scheduled reports are [[report]] entries, lake exports "
                            "[[lake_export]] (broadcasts are scheduled with `bizchat broadcast "
                            "schedule`).", path=str(path), input=unknown_sections)
    items = []
    for section in SECTIONS:
        raw = data.get(section, [])
        if not isinstance(raw, list):
            raise ScheduleError(f"{path}: write [[{section}]] (a list of entries), not [{section}].",
                                path=str(path), input=section)
        items += [(section, item) for item in raw]
    entries, seen = [], set()
    for number, (section, item) in enumerate(items, 1):
        entry = _lake_entry(path, number, item) if section == "lake_export" else \
            _entry(path, number, item)
        if entry.name in seen:
            raise ScheduleError(f"{path}: two entries are named {entry.name!r}; names must "
                                "be unique.", path=str(path), entry=entry.name, input=entry.name)
        seen.add(entry.name)
        entries.append(entry)
    return entries


def _entry(path: Path, number: int, item: dict) -> Entry:
    where = f"{path}, entry {number}"

    def fail(message: str, value) -> ScheduleError:
        return ScheduleError(f"{where}: {message}", path=str(path), entry=item.get("name"),
                             input=value)

    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise fail(f"unknown key {', '.join(unknown)} (known: {', '.join(sorted(_KEYS))}).",
                   unknown)
    for key in ("name", "notebook", "cron"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise fail(f"{key} is missing (a text).", item.get(key))
    name = item["name"].strip()
    if not re.fullmatch(r"[\w\-. ]{1,80}", name):
        raise fail(f"name {name!r}: letters, digits, space, _ - . only.", name)
    if not valid(item["cron"]):
        raise fail(f"cron {item['cron']!r} is not a cron expression "
                   "(minute hour day month weekday, e.g. \"0 7 * * MON\").", item["cron"])
    zone = item.get("timezone", "UTC")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise fail(f"unknown time zone {zone!r}; use an IANA name such as Europe/Berlin.",
                   zone) from None
    policy = item.get("catch_up", "latest")
    if policy not in POLICIES:
        raise fail(f"catch_up is \"all\" (every missed slot) or \"latest\", not {policy!r}.",
                   policy)
    mail = item.get("mail_to", [])
    mail = [mail] if isinstance(mail, str) else mail
    if not isinstance(mail, list) or not all(isinstance(a, str) and _ADDRESS.match(a.strip())
                                             for a in mail):
        raise fail(f"mail_to must be a list of mail addresses, not {mail!r}.", mail)
    params = item.get("params", {})
    if not isinstance(params, dict):
        raise fail("params is a table: [report.params] with key = value lines.", params)
    out = item.get("output_dir")
    return Entry(name=name, notebook=item["notebook"].strip(), cron=item["cron"].strip(),
                 timezone=zone, catch_up=policy, params=dict(params),
                 mail_to=tuple(a.strip() for a in mail),
                 output_dir=(path.parent / out) if out else None)


def _lake_entry(path: Path, number: int, item: dict) -> Entry:
    """A [[lake_export]] entry: the timing keys of a report, and out / tenant / with_bodies."""
    where = f"{path}, lake_export entry {number}"

    def fail(message: str, value) -> ScheduleError:
        return ScheduleError(f"{where}: {message}", path=str(path), entry=item.get("name"),
                             input=value)

    if not isinstance(item, dict):
        raise fail("write key = value lines under [[lake_export]].", item)
    unknown = sorted(set(item) - _LAKE_KEYS)
    if unknown:
        raise fail(f"unknown key {', '.join(unknown)} (known: {', '.join(sorted(_LAKE_KEYS))}).",
                   unknown)
    if not isinstance(item.get("out"), str) or not item["out"].strip():
        raise fail("out is missing (the lake folder).", item.get("out"))
    tenant = item.get("tenant")
    if tenant is not None and not (isinstance(tenant, str) and re.fullmatch(r"[a-z0-9_-]{1,40}", tenant)):
        raise fail(f"tenant {tenant!r}: 1-40 of a-z, 0-9, _ and -.", tenant)
    bodies = item.get("with_bodies", False)
    if not isinstance(bodies, bool):
        raise fail("with_bodies is true or false.", bodies)
    timing = _entry(path, number, {k: v for k, v in item.items()
                                   if k in {"name", "cron", "timezone", "catch_up"}}
                    | {"notebook": "lake export"})
    return Entry(name=timing.name, notebook="", cron=timing.cron, timezone=timing.timezone,
                 catch_up=timing.catch_up, kind="lake_export",
                 out=path.parent / item["out"].strip(), tenant=tenant, bodies=bodies)
