"""The demo's clock: its fixed "today", time units in microseconds, Berlin's offsets and
opening hours, shared by the generator's parts (campaigns, chats, write).

Times in the generator are int64 microseconds since the epoch, so whole numpy arrays of
them are cheap; ``NEVER`` marks "did not happen".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa

from . import content as C

NOW = datetime(2026, 11, 1, tzinfo=UTC)   # the scenario's "today", fixed for determinism
S = 1_000_000                              # times are int64 microseconds since the epoch
MIN, HOUR, DAY = 60 * S, 3600 * S, 86400 * S
NOW_US = int(NOW.timestamp()) * S
NEVER = np.iinfo(np.int64).max             # "did not happen" in time arrays
BERLIN = ZoneInfo("Europe/Berlin")

def dst_bounds() -> np.ndarray:
    """UTC instants where Europe/Berlin switches (last Sundays of March and October)."""
    bounds = []
    for year in range(2023, 2028):
        for month in (3, 10):
            last = datetime(year, month, 31, 1, tzinfo=UTC)
            bounds.append(int((last - timedelta(days=(last.weekday() + 1) % 7)).timestamp()) * S)
    return np.array(bounds, dtype=np.int64)


BOUNDS = dst_bounds()


def offset(t: np.ndarray) -> np.ndarray:
    """Europe/Berlin's UTC offset at each instant: +1 h in winter, +2 h in summer."""
    return HOUR * (1 + np.searchsorted(BOUNDS, t, side="right") % 2)


def local_parts(t: np.ndarray):
    local = t + offset(t)
    day = local // DAY
    return day, local % DAY, (day + 3) % 7     # 1970-01-01 was a Thursday; Monday = 0


def next_open(t: np.ndarray) -> np.ndarray:
    """The first instant at or after t when the shop's staff answer (business hours)."""
    off = offset(t)
    day, tod = (t + off) // DAY, (t + off) % DAY
    for _ in range(3):   # at most: Saturday evening -> Sunday (closed) -> Monday morning
        wd = (day + 3) % 7
        start, end = C.OPEN_FROM[wd] * HOUR, C.OPEN_UNTIL[wd] * HOUR
        tod = np.where(tod < start, start, tod)
        late = tod >= end
        day, tod = np.where(late, day + 1, day), np.where(late, 0, tod)
    return day * DAY + tod - off


def ts(us) -> pa.Array:
    us = np.asarray(us, dtype=np.int64)
    return pa.array(us, mask=us == NEVER).cast(pa.timestamp("us", tz="UTC"))


def local_us(d: datetime, hour: int, minute: int) -> int:
    local = datetime(d.year, d.month, d.day, hour, minute, tzinfo=BERLIN)
    return int(local.timestamp()) * S
