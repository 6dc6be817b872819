"""Business accounts: numbers, profiles, business hours, lookups."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bizchat.accounts import InvalidValue, is_open_at, parse_hours
from bizchat.errors import Conflict, InvalidPhoneNumber, NotFound


def test_add_and_get_by_any_form(ws):
    account = ws.accounts.add("0170 1234567", name="Blumen Meier", timezone="Europe/Berlin")
    assert account["phone_e164"] == "+491701234567"
    assert account["number_type"] == "mobile"
    assert account["region"] == "DE"
    for ref in ("+49 (170) 123-4567", "0049 170 1234567", "491701234567", account["account_id"]):
        assert ws.accounts.get(ref)["account_id"] == account["account_id"]


def test_landline_is_first_class(ws):
    account = ws.accounts.add("+49 30 1234567", name="Laden Berlin")
    assert account["number_type"] == "fixed_line"
    assert ws.accounts.get("030 1234567")["display_name"] == "Laden Berlin"


def test_invalid_and_duplicate_numbers(ws):
    with pytest.raises(InvalidPhoneNumber, match="12345"):
        ws.accounts.add("12345", name="x")
    ws.accounts.add("+43 664 1234567", name="Wien", timezone="Europe/Vienna")
    with pytest.raises(Conflict):
        ws.accounts.add("0043 664 1234567", name="again")
    with pytest.raises(NotFound):
        ws.accounts.get("+49 170 7654321")
