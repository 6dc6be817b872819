"""Cron slots in a time zone, across daylight-saving changes, without skipping or doubling.

croniter iterates the *local wall clock* as naive times; each wall time is then placed in
the zone. A wall time the spring change skips (02:30 on the last Sunday of March in
Berlin) becomes the same moment an hour later by the clock (03:30 summer time), so the
slot still runs; a wall time the autumn change repeats is taken once, at its first
occurrence. (Iterating croniter with aware times instead doubles the repeated hour.)
Slots are UTC datetimes; two wall times that land on the same instant count once.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

# Catch-up never walks further back than this many slots (a minutely entry after a year).
MAX_CATCH_UP = 1000


def _place(wall: datetime, zone: ZoneInfo) -> datetime:
    """A naive local wall time as a UTC instant (fold 0: the first of a repeated hour;
    a skipped wall time maps to the instant an hour later by the clock)."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _wall(at: datetime, zone: ZoneInfo) -> datetime:
    return at.astimezone(zone).replace(tzinfo=None)


def slots_after(cron: str, zone: ZoneInfo, after: datetime) -> Iterator[datetime]:
    """The slots strictly after ``after`` (aware), in order, as UTC datetimes."""
    # Start an hour early by the wall clock: after the autumn change the wall clock
    # repeats an hour, and a slot in it must not be skipped when ``after`` is the
    # repeated hour's first pass.
    it = croniter(cron, _wall(after, zone) - timedelta(hours=1))
    last: datetime | None = None
    while True:
        slot = _place(it.get_next(datetime), zone)
        if slot <= after or slot == last:
            continue
        last = slot
        yield slot


def slots_between(cron: str, zone: ZoneInfo, after: datetime, until: datetime,
                  limit: int = MAX_CATCH_UP) -> list[datetime]:
    """Slots in (after, until], at most the latest ``limit`` of them."""
    found: list[datetime] = []
    for slot in slots_after(cron, zone, after):
        if slot > until:
            break
        found.append(slot)
        if len(found) > limit:
            found.pop(0)
    return found


def latest_slot(cron: str, zone: ZoneInfo, now: datetime) -> datetime | None:
    """The last slot at or before ``now`` (None if there is none within a year)."""
    it = croniter(cron, _wall(now, zone) + timedelta(hours=1))
    for _ in range(MAX_CATCH_UP * 10):
        wall = it.get_prev(datetime)
        slot = _place(wall, zone)
        if slot <= now:
            return slot
        if now - slot > timedelta(days=366):
            break
    return None


def next_slot(cron: str, zone: ZoneInfo, now: datetime) -> datetime:
    """The first slot after ``now``."""
    return next(slots_after(cron, zone, now))


def valid(cron: str) -> bool:
    """Whether croniter accepts the expression."""
    return bool(croniter.is_valid(cron))
