"""Cron slots across daylight-saving changes, and the schedule file (fast: no notebooks)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bizchat.errors import ScheduleError
from bizchat.scheduling import config
from bizchat.scheduling.slots import latest_slot, next_slot, slots_between

BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize("day, wall, expected_utc", [
    # spring forward 2026-03-29: 02:30 does not exist -> runs at 03:30 summer time
    (date(2026, 3, 29), "30 2 * * *", utc(2026, 3, 29, 1, 30)),
    # fall back 2026-10-25: 02:30 happens twice -> runs once, at the first (summer time)
    (date(2026, 10, 25), "30 2 * * *", utc(2026, 10, 25, 0, 30)),
    (date(2026, 3, 29), "0 7 * * *", utc(2026, 3, 29, 5, 0)),
    (date(2026, 10, 25), "0 7 * * *", utc(2026, 10, 25, 6, 0)),
])
def test_a_daily_slot_runs_exactly_once_on_dst_days(day, wall, expected_utc):
    before = datetime(day.year, day.month, day.day, tzinfo=BERLIN) - timedelta(days=1)
    after = before + timedelta(days=2)
    slots = slots_between(wall, BERLIN, before, after)
    on_day = [s for s in slots if s.astimezone(BERLIN).date() == day]
    assert on_day == [expected_utc]
    assert len(slots) == 2                       # the day before (or after) and the day


def test_hourly_slots_are_neither_skipped_nor_doubled_across_the_changes():
    for start in (utc(2026, 3, 28, 12), utc(2026, 10, 24, 12)):
        slots = slots_between("0 * * * *", BERLIN, start, start + timedelta(days=1))
        assert len(slots) == len(set(slots))
        walls = [s.astimezone(BERLIN).replace(tzinfo=None) for s in slots]
        assert len(walls) == len(set(walls))     # no wall hour twice (the repeated one once)
        assert all(b > a for a, b in zip(slots, slots[1:], strict=False))


@settings(max_examples=60, deadline=None)
@given(st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31)),
       st.sampled_from(["30 2 * * *", "0 7 * * MON", "15 */3 * * *", "0 0 1 * *"]),
       st.sampled_from(["Europe/Berlin", "America/New_York", "UTC", "Australia/Lord_Howe"]))
def test_splitting_a_range_gives_the_same_slots(at, cron, zone):
    """Running run-due at any moment in between (catch-up) never loses or repeats a slot."""
    tz = ZoneInfo(zone)
    start = at.replace(tzinfo=UTC)
    middle, end = start + timedelta(days=9, hours=5), start + timedelta(days=40)
    whole = slots_between(cron, tz, start, end)
    parts = slots_between(cron, tz, start, middle) + slots_between(cron, tz, middle, end)
    assert whole == parts
    if whole:
        assert latest_slot(cron, tz, end) == whole[-1]
        assert next_slot(cron, tz, whole[0] - timedelta(seconds=1)) == whole[0]


def test_relative_parameters_resolve_at_the_slot_in_its_zone():
    entry = config.Entry(name="w", notebook="weekly_campaign_report", cron="0 0 * * MON",
                         timezone="Europe/Berlin",
                         params={"start": "-7d", "end": "today", "month": "last",
                                 "labels": "Krimi", "n": 3, "back": "-2w", "y": "yesterday"})
    # Monday 00:00 in Berlin is still Sunday in UTC: the local day counts.
    slot = datetime(2026, 2, 1, 23, 0, tzinfo=UTC)
    assert entry.params_at(slot) == {"start": "2026-01-26", "end": "2026-02-02",
                                     "month": "2026-01", "labels": "Krimi", "n": 3,
                                     "back": "2026-01-19", "y": "2026-02-01"}


def test_a_schedule_file_is_read(tmp_path):
    path = tmp_path / "schedule.toml"
    path.write_text('''
[[report]]
name = "weekly campaigns"
notebook = "weekly_campaign_report"
cron = "0 7 * * MON"
timezone = "Europe/Berlin"
catch_up = "all"
mail_to = ["chefin@buchladen.example"]
output_dir = "out"
[report.params]
start = "-7d"
''', encoding="utf-8")
    (entry,) = config.load(path)
    assert (entry.name, entry.catch_up, entry.mail_to) == ("weekly campaigns", "all",
                                                           ("chefin@buchladen.example",))
    assert entry.output_dir == tmp_path / "out" and entry.params == {"start": "-7d"}
    assert config.load(tmp_path / "missing.toml") == []


@pytest.mark.parametrize("text, match", [
    ('[[report]]\nname = "a"\nnotebook = "x"\ncron = "every monday"\n', "not a cron expression"),
    ('[[report]]\nname = "a"\nnotebook = "x"\ncron = "0 7 * * *"\ntimezone = "Mars/Olympus"\n',
     "unknown time zone"),
    ('[[report]]\nname = "a"\nnotebook = "x"\ncron = "0 7 * * *"\ncatch_up = "some"\n', "catch_up"),
    ('[[report]]\nname = "a"\nnotebook = "x"\ncron = "0 7 * * *"\nmail_to = ["nobody"]\n', "mail_to"),
    ('[[report]]\nname = "a"\nnotebook = "x"\ncron = "0 7 * * *"\ncolour = 1\n', "unknown key colour"),
    ('[[report]]\nnotebook = "x"\ncron = "0 7 * * *"\n', "name is missing"),
    ('[[report]]\nname = "a"\nnotebook = "x"\ncron = "0 7 * * *"\n' * 2, "two entries"),
    ('[[report]\nname = "a"', "not valid TOML"),
    ('[broadcast]\nname = "a"', "unknown section"),
])
def test_a_bad_schedule_file_gets_a_clear_error(tmp_path, text, match):
    path = tmp_path / "schedule.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScheduleError, match=match) as info:
        config.load(path)
    assert str(path) in str(info.value)
