"""Placeholders are checked when a text is saved, against one list of what the account
provides; automations can be previewed (issue 16, item 4)."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from bizchat.cli import main
from bizchat.errors import TemplateError

SHOP = "+49 30 901820"


@pytest.fixture
def shop(ws):
    acc = ws.accounts.add(SHOP, "Buchladen Linde")
    anna = ws.contacts.add(acc["account_id"], "+49 170 1000001", name="Anna Schmidt",
                           attributes={"kundennummer": "K-17", "bad key": "x"})
    nameless = ws.contacts.add(acc["account_id"], "+49 170 1000002")
    return acc, anna, nameless


def test_one_list_of_available_names(ws, shop):
    acc, _, _ = shop
    expected = ["first_name", "name", "business_name", "kundennummer"]
    assert ws.templates.available_placeholders(acc["account_id"]) == expected
    assert ws.replies.available_placeholders(acc["account_id"]) == expected


def test_a_quick_reply_with_an_unknown_placeholder_is_refused_on_save(ws, shop):
    acc, _, _ = shop
    with pytest.raises(TemplateError) as err:
        ws.replies.add(acc["account_id"], "/hallo", "Hallo {vorname}, schön!")
    message = str(err.value)
    assert err.value.placeholder == "vorname" and "character 7" in message
    assert "{first_name}" in message and "{kundennummer}" in message
    assert ws.replies.list(acc["account_id"]).empty          # nothing half-saved
    ws.replies.add(acc["account_id"], "/hallo", "Hallo {first_name} ({kundennummer})")
    with pytest.raises(TemplateError, match="vorname"):
        ws.replies.update(acc["account_id"], "/hallo", "Hi {vorname}")
    assert ws.replies.get(acc["account_id"], "/hallo")["text"] == \
        "Hallo {first_name} ({kundennummer})"


def test_automations_are_checked_and_can_be_previewed(ws, shop):
    acc, anna, nameless = shop
    with pytest.raises(TemplateError) as err:
        ws.automations.set_greeting(acc["account_id"], "Willkommen! Wir öffnen {next_open}.")
    assert err.value.placeholder == "next_open" and "character 24" in str(err.value)
    assert ws.automations.list(acc["account_id"]).empty
    ws.automations.set_greeting(acc["account_id"], "Hallo {first_name}, willkommen bei "
                                "{business_name}!")
    shown = ws.automations.preview(acc["account_id"], "greeting", anna["contact_id"])
    assert shown["text"] == "Hallo Anna, willkommen bei Buchladen Linde!"
    blank = ws.automations.preview(acc["account_id"], "greeting", nameless["contact_id"])
    assert blank["text"] == "Hallo, willkommen bei Buchladen Linde!"
    assert blank["missing"] == ["first_name"] and "kundennummer" in blank["available"]


def test_broadcast_templates_are_checked_unless_the_composer_supplies_the_value(ws, shop):
    acc, anna, _ = shop
    with pytest.raises(TemplateError) as err:
        ws.broadcasts.create(acc["account_id"], "Sommer", body="Hallo {vorname}!")
    assert err.value.placeholder == "vorname" and "{first_name}" in str(err.value)
    assert ws.sql("SELECT count(*) AS n FROM broadcasts").n[0] == 0
    assert ws.sql("SELECT count(*) AS n FROM templates").n[0] == 0
    made = ws.broadcasts.create(acc["account_id"], "Sommer", body="Hallo {first_name}, "
                                "{angebot}!", values={"angebot": "20 % auf Krimis"})
    text = ws.broadcasts.preview(made["broadcast_id"], anna["contact_id"]).text
    assert text == "Hallo Anna, 20 % auf Krimis!"


def test_preview_names_what_is_available_not_none(ws, shop):
    acc, _, nameless = shop
    ws.templates.create(acc["account_id"], "gruss", "Hallo {first_name}!")
    with pytest.raises(TemplateError) as err:
        ws.templates.preview(acc["account_id"], "gruss", nameless["contact_id"])
    message = str(err.value)
    assert "none" not in message and "{first_name}" in message and "{kundennummer}" in message


def test_cli_refuses_with_one_error_line(ws, shop):
    acc, _, _ = shop
    out = CliRunner().invoke(main, ["--workspace", str(ws.path), "replies", "add", "/x",
                                    "Hallo {vorname}", "--account", SHOP])
    assert out.exit_code == 1
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "{vorname}" in lines[0]
    assert isinstance(ws.replies.list(acc["account_id"]), pd.DataFrame)


def test_the_composer_can_check_as_you_type(ws, shop):
    acc, _, _ = shop
    assert ws.templates.check_text(acc["account_id"], "Hi {first_name} {kundennummer}") == [
        "first_name", "kundennummer"]
    with pytest.raises(TemplateError) as err:
        ws.templates.check_text(acc["account_id"], "Hi {vorname}")
    assert err.value.position == 3 and "kundennummer" in err.value.available
