"""The campaign clock: what "now" is for scheduling and sending, and how times are read.

Sending decides against one "now": the wall clock, or a controlled one for rehearsals,
tests and the demo: an explicit ``now=`` argument, else ``$BIZCHAT_NOW`` (ISO 8601), else
the wall clock. A time written without a zone is read in the account's time zone (a
German shop's "10:00" is 10:00 in Berlin), never silently as UTC.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from ..errors import InvalidValue

ENV = "BIZCHAT_NOW"


def zone(name: str | None, fallback: str | None = None) -> ZoneInfo:
    """The ZoneInfo for ``name``, else ``fallback``, else UTC (an unknown name falls back)."""
    for candidate in (name, fallback, "UTC"):
        try:
            if candidate:
                return ZoneInfo(str(candidate))
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo("UTC")  # pragma: no cover


def parse(at, tz: str | None = None) -> datetime:
    """``at`` (ISO text, datetime or Timestamp) as an aware UTC datetime; a time without a
    zone is read in ``tz`` (default UTC)."""
    original = at
    if isinstance(at, str):
        try:
            at = datetime.fromisoformat(at.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidValue(f"{original!r} is not a time; write ISO 8601, e.g. "
                               "2026-12-08T10:00 (read in the account's time zone) or "
                               "2026-12-08T10:00+01:00.", input=original) from exc
    if isinstance(at, pd.Timestamp):
        at = at.to_pydatetime()
    if not isinstance(at, datetime):
        raise InvalidValue(f"{original!r} is not a time.", input=original)
    if at.tzinfo is None:
        at = at.replace(tzinfo=zone(tz))
    return at.astimezone(UTC)


def now(at=None, tz: str | None = None) -> datetime:
    """The campaign "now": ``at`` if given, else ``$BIZCHAT_NOW``, else the wall clock."""
    if at is not None:
        return parse(at, tz)
    fixed = os.environ.get(ENV, "").strip()
    if fixed:
        return parse(fixed, tz)
    return datetime.now(UTC)


def local(at: datetime | None, tz: str | None) -> str:
    """``at`` written in the zone ``tz`` with the zone's name, e.g. 2026-12-08 10:00 CET."""
    if at is None:
        return "-"
    shown = pd.Timestamp(at).to_pydatetime().astimezone(zone(tz))
    return f"{shown:%Y-%m-%d %H:%M} {shown.tzname()} ({shown.tzinfo})"


__all__ = ["ENV", "local", "now", "parse", "zone"]
