"""Business accounts: numbers, profiles, business hours, lookups, the accounts CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from bizchat.cli import main
from bizchat.errors import Conflict, InvalidPhoneNumber, NotFound
from bizchat.people.accounts import WEEKDAYS, InvalidValue, is_open_at, parse_hours


def test_add_and_get_by_any_form(ws):
    account = ws.accounts.add("0170 1234567", name="Blumen Meier", timezone="Europe/Berlin")
    assert account["phone_e164"] == "+491701234567"
    assert account["number_type"] == "mobile"
    assert account["region"] == "DE"
    for ref in ("+49 (170) 123-4567", "0049 170 1234567", "491701234567",
                account["account_id"], str(account["account_id"]), account):
        assert ws.accounts.get(ref)["account_id"] == account["account_id"]


def test_landline_is_first_class(ws):
    account = ws.accounts.add("+49 30 1234567", name="Laden Berlin")
    assert account["number_type"] == "fixed_line"
    assert ws.accounts.get("030 1234567")["display_name"] == "Laden Berlin"
    contact = ws.contacts.add("030 1234567", "0170 7654321")
    assert contact["account_id"] == account["account_id"]


def test_invalid_and_duplicate_numbers(ws):
    with pytest.raises(InvalidPhoneNumber, match="12345"):
        ws.accounts.add("12345", name="x")
    ws.accounts.add("+43 664 1234567", name="Wien", timezone="Europe/Vienna")
    with pytest.raises(Conflict, match=r"\+436641234567"):
        ws.accounts.add("0043 664 1234567", name="again")
    with pytest.raises(NotFound, match="7654321"):
        ws.accounts.get("+49 170 7654321")
    assert len(ws.accounts.list()) == 1


def test_phone_number_id_lookup_and_uniqueness(ws):
    account = ws.accounts.add("+41 44 668 18 00", name="Zürich", phone_number_id="106540352242922",
                              timezone="Europe/Zurich")
    assert account["region"] == "CH"
    assert ws.accounts.get("106540352242922")["account_id"] == account["account_id"]
    with pytest.raises(Conflict, match="106540352242922"):
        ws.accounts.add("+49 30 1234567", name="other", phone_number_id="106540352242922")
    other = ws.accounts.add("+49 30 1234567", name="other")
    with pytest.raises(Conflict):
        ws.accounts.update(other["account_id"], phone_number_id="106540352242922")


def test_profile_fields_are_validated_and_stored(ws):
    ws.accounts.add("+49 30 1234567", name="Laden", about="Blumen & mehr",
                    email="info@laden.de", websites=["laden.de", "https://shop.laden.de"],
                    hours={"mon-fri": "09:00-12:00,13:00-18:00", "sat": "10:00-14:00"})
    account = ws.accounts.get("030 1234567")
    assert account["about"] == "Blumen & mehr"
    assert account["websites"] == ["https://laden.de", "https://shop.laden.de"]
    assert account["business_hours"]["wed"] == [["09:00", "12:00"], ["13:00", "18:00"]]
    assert account["business_hours"]["sun"] == []
    bad = [{"timezone": "Mars/Olympus"}, {"email": "no-at-sign"}, {"about": "x" * 140},
           {"websites": ["a.de", "b.de", "c.de"]}, {"hours": "mon=18:00-09:00"},
           {"hours": "mon=25:00-26:00"}, {"hours": "funday=09:00-10:00"},
           {"hours": "mon=09:00-12:00,11:00-13:00"}, {"colour": "red"}, {"name": ""}]
    for fields in bad:
        with pytest.raises(InvalidValue):
            ws.accounts.update("030 1234567", **fields)
    # Nothing of the refused updates landed.
    assert ws.accounts.get("030 1234567")["about"] == "Blumen & mehr"
    updated = ws.accounts.update("030 1234567", about=None, timezone="Europe/Vienna")
    assert updated["about"] is None and updated["timezone"] == "Europe/Vienna"


def test_update_writes_audit_without_numbers(ws):
    ws.accounts.add("+49 30 1234567", name="Laden")
    ws.accounts.update("+49 30 1234567", email="a@b.de", actor="anna")
    log = ws.sql("SELECT actor, action, details FROM audit_log ORDER BY \"at\"")
    assert log["action"].tolist() == ["accounts.add", "accounts.update"]
    assert log["actor"].tolist()[-1] == "anna"
    assert json.loads(log["details"].iloc[-1])["fields"] == ["email"]
    assert not log["details"].str.contains("1234567").any()


def test_accounts_are_listed_in_order(ws):
    ws.accounts.add("+49 30 1234567", name="Berlin")
    ws.accounts.add("+43 1 5320000", name="Wien", timezone="Europe/Vienna")
    listed = ws.accounts.list()
    assert listed["display_name"].tolist() == ["Berlin", "Wien"]
    assert listed["number_type"].tolist() == ["fixed_line", "fixed_line"]


# --- business hours ------------------------------------------------------------------------

HOURS = parse_hours("mon-fri=09:00-18:00; sat=10:00-14:00")


@pytest.mark.parametrize(("utc", "expected"), [
    (datetime(2025, 6, 2, 6, 59, tzinfo=UTC), False),   # Mon 08:59 CEST
    (datetime(2025, 6, 2, 7, 0, tzinfo=UTC), True),     # Mon 09:00
    (datetime(2025, 6, 2, 15, 59, tzinfo=UTC), True),   # Mon 17:59
    (datetime(2025, 6, 2, 16, 0, tzinfo=UTC), False),   # Mon 18:00: end is exclusive
    (datetime(2025, 1, 6, 8, 30, tzinfo=UTC), True),    # Mon 09:30 CET (winter: UTC+1)
    (datetime(2025, 1, 6, 7, 30, tzinfo=UTC), False),   # Mon 08:30 CET
    (datetime(2025, 6, 7, 9, 0, tzinfo=UTC), True),     # Sat 11:00
    (datetime(2025, 6, 8, 9, 0, tzinfo=UTC), False),    # Sun closed
    (datetime(2025, 6, 2, 7, 0), True),                 # naive means UTC
])
def test_is_open_at_uses_the_account_zone(utc, expected):
    assert is_open_at(HOURS, "Europe/Berlin", utc) is expected


def test_no_hours_means_always_open_and_24h():
    assert is_open_at(None, "Europe/Berlin", datetime(2025, 6, 8, 3, 0, tzinfo=UTC))
    all_day = parse_hours({"daily": "24h"})
    assert all(all_day[d] == [["00:00", "24:00"]] for d in WEEKDAYS)
    assert is_open_at(all_day, "Europe/Berlin", datetime(2025, 6, 8, 21, 59, tzinfo=UTC))


def test_is_open_method_and_set_hours_merge(ws):
    ws.accounts.add("+43 1 5320000", name="Wien", timezone="Europe/Vienna",
                    hours="mon-sun=08:00-20:00")
    ws.accounts.update("+43 1 5320000", hours="sun=closed", merge_hours=True)
    account = ws.accounts.get("+43 1 5320000")
    assert account["business_hours"]["sat"] == [["08:00", "20:00"]]
    assert account["business_hours"]["sun"] == []
    assert ws.accounts.is_open("+43 1 5320000", datetime(2025, 6, 7, 10, 0, tzinfo=UTC))
    assert not ws.accounts.is_open(account, datetime(2025, 6, 8, 10, 0, tzinfo=UTC))


@given(st.integers(0, 23 * 60), st.integers(1, 60), st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)))
@settings(max_examples=200)
def test_open_exactly_inside_a_daily_range(start, length, at):
    end = min(start + length, 24 * 60)
    text = f"daily={start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
    local = at.astimezone(ZoneInfo("Europe/Berlin"))
    minute = local.hour * 60 + local.minute + local.second / 60 + local.microsecond / 6e7
    assert is_open_at(parse_hours(text), "Europe/Berlin", at) == (start <= minute < end)


# --- CLI --------------------------------------------------------------------------------------

def run(*args):
    return CliRunner().invoke(main, list(args))


def test_cli_add_list_show_set(tmp_path):
    w = str(tmp_path / "cli.duckdb")
    assert run("-w", w, "init").exit_code == 0  # only init creates a workspace
    result = run("--workspace", w, "accounts", "add", "030 1234567", "--name", "Laden Berlin",
                 "--phone-number-id", "1065", "--timezone", "Europe/Berlin")
    assert result.exit_code == 0, result.output
    assert "+49301234567" in result.output and "fixed_line" in result.output
    result = run("accounts", "set", "+49 30 1234567", "--about", "Blumen", "--email",
                 "info@laden.de", "--hours", "mon-fri=09:00-18:00", "--hours", "sat=closed",
                 "--website", "laden.de", "--workspace", w)
    assert result.exit_code == 0, result.output
    result = run("-w", w, "accounts", "show", "1065")
    assert result.exit_code == 0, result.output
    assert "Blumen" in result.output and "https://laden.de" in result.output
    assert "mon  09:00-18:00" in result.output and "sat  closed" in result.output
    result = run("-w", w, "accounts", "list")
    assert "Laden Berlin" in result.output and "+49301234567" in result.output


@pytest.mark.parametrize("args", [
    ["accounts", "add", "12345", "--name", "x"],
    ["accounts", "show", "+49 170 7654321"],
    ["accounts", "set", "030 1234567", "--timezone", "Nowhere/City"],
    ["accounts", "set", "030 1234567", "--hours", "mon=9-18"],
    ["accounts", "add", "030 1234567", "--name", "dup"],
])
def test_cli_errors_are_one_line_exit_1(tmp_path, args):
    w = str(tmp_path / "cli.duckdb")
    assert run("-w", w, "init").exit_code == 0  # only init creates a workspace
    assert run("-w", w, "accounts", "add", "030 1234567", "--name", "L").exit_code == 0
    result = run("-w", w, *args)
    assert result.exit_code == 1
    assert result.output.startswith("Error: ")
    assert "Traceback" not in result.output
