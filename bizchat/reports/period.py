"""A report's period from its parameters: local calendar days in the report's time zone.

``start`` and ``end`` are dates (``YYYY-MM-DD``) in ``timezone``; ``end`` is the first
day after the period. Empty ``end`` means up to now, today included (``now``: the notebooks pass the campaign
clock, so ``$BIZCHAT_NOW`` rehearses a report too), empty ``start`` ``days`` before
``end``; ``month`` (``YYYY-MM``) sets both to that calendar month. The previous period is
as long and ends where this one starts, for the comparison columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from ..errors import InvalidValue


@dataclass(frozen=True)
class Period:
    """A half-open period [start, end) as aware times, its previous one, and names."""

    start: datetime
    end: datetime
    previous_start: datetime
    timezone: str

    @property
    def label(self) -> str:
        """``2026-11-30 to 2026-12-06`` (the last day included)."""
        last = (self.end - timedelta(days=1)).date()
        return f"{self.start.date():%Y-%m-%d} to {last:%Y-%m-%d}"


def _day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidValue(f"{name}={value!r} is not a date; write YYYY-MM-DD.",
                           input=value, argument=name) from None


def report_period(start: str = "", end: str = "", timezone: str = "UTC", *, days: int = 7,
                  month: str = "", now: datetime | None = None) -> Period:
    """The period the parameters describe (see the module docstring)."""
    try:
        zone = ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidValue(f"Unknown time zone {timezone!r}; use an IANA name such as "
                           "Europe/Berlin.", input=timezone) from None
    if month:
        try:
            first = pd.Period(month.strip(), freq="M")
        except ValueError:
            raise InvalidValue(f"month={month!r} is not a month; write YYYY-MM.",
                               input=month) from None
        begin, stop = first.start_time.date(), (first + 1).start_time.date()
    else:
        stop = (_day(end, "end") if end
                else (now or datetime.now(zone)).astimezone(zone).date() + timedelta(days=1))
        begin = _day(start, "start") if start else stop - timedelta(days=days)
    if begin >= stop:
        raise InvalidValue(f"The report period starts ({begin}) on or after its end ({stop}).",
                           input=(start, end))

    def local(d: date) -> datetime:
        return datetime(d.year, d.month, d.day, tzinfo=zone)

    length = stop - begin
    return Period(local(begin), local(stop), local(begin - length), zone.key)
