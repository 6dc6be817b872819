"""Contacts: one contact per person and account, found by any form of the number."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

import bizchat
from bizchat.cli import main
from bizchat.errors import Conflict, InvalidPhoneNumber, NotFound
from bizchat.people.accounts import InvalidValue


@pytest.fixture
def account(ws):
    return ws.accounts.add("+49 30 1234567", name="Laden Berlin")


def test_add_and_find_by_every_form(ws, account):
    contact = ws.contacts.add(account["phone_e164"], "0170 1234567", name="Anna",
                              language="de_at", attributes={"city": "Graz"})
    assert contact["phone_e164"] == "+491701234567"
    assert contact["wa_id"] == "491701234567"
    assert contact["language"] == "de-AT"
    assert contact["attributes"] == {"city": "Graz"}
    for ref in ("+49 (170) 123-4567", "0049 170 1234567", "491701234567", contact["contact_id"]):
        assert ws.contacts.get(account["account_id"], ref)["contact_id"] == contact["contact_id"]
    with pytest.raises(Conflict):
        ws.contacts.add(account["account_id"], "+49 170 123 4567")


def test_invalid_number_names_the_input(ws, account):
    with pytest.raises(InvalidPhoneNumber, match="0170 12"):
        ws.contacts.add(account["account_id"], "0170 12")
    with pytest.raises(NotFound):
        ws.contacts.get(account["account_id"], "+49 170 7654321")


def test_ensure_contacts_matches_wa_id_then_user_id(ws, account):
    known = ws.contacts.add(account["account_id"], "+49 170 1234567", name="Anna")
    frame = pd.DataFrame({
        "wa_id": ["491701234567", "491709999999", None, "491709999999", None],
        "user_id": [None, "DE.1", "DE.2", "DE.1", "DE.1"],
        "name": ["Profile Anna", "Bob", None, "Bob again", None],
    }, index=[10, 11, 12, 13, 14])
    ids = ws.contacts.ensure(account["account_id"], frame)
    assert list(ids.index) == [10, 11, 12, 13, 14]
    assert ids[10] == known["contact_id"]
    assert ids[11] == ids[13] == ids[14]
    assert len({ids[10], ids[11], ids[12]}) == 3
    again = ws.contacts.ensure(account["account_id"], frame)
    assert again.tolist() == ids.tolist()
    listed = ws.contacts.list(account["account_id"])
    assert len(listed) == 3
    bob = ws.contacts.get(account["account_id"], "DE.1")
    assert bob["name"] == "Bob" and bob["phone_e164"] == "+491709999999"
    # A stored name is not overwritten by a profile name.
    assert ws.contacts.get(account["account_id"], known["contact_id"])["name"] == "Anna"


def test_two_accounts_same_customer_are_two_contacts(ws):
    berlin = ws.accounts.add("+49 30 1234567", name="Berlin")["account_id"]
    vienna = ws.accounts.add("+43 1 5320000", name="Wien", timezone="Europe/Vienna")["account_id"]
    a = ws.contacts.add(berlin, "+49 170 1234567", name="Anna (Berlin)")
    b = ws.contacts.add(vienna, "0049 170 1234567", name="Anna (Wien)")
    assert a["contact_id"] != b["contact_id"]
    ws.contacts.add(vienna, "+43 664 1234567", name="Only Wien")
    assert ws.contacts.list(berlin)["name"].tolist() == ["Anna (Berlin)"]
    assert ws.contacts.list(vienna)["name"].tolist() == ["Anna (Wien)", "Only Wien"]
    # A contact_id of the other account is not found through this one.
    with pytest.raises(NotFound):
        ws.contacts.get(berlin, b["contact_id"])
    assert ws.contacts.find(berlin, "+43 664 1234567") is None
    with pytest.raises(NotFound):
        ws.contacts.update(berlin, b["contact_id"], name="hijack")
    # Bulk creation is scoped too: the same wa_id in the other account is a new contact.
    ids = ws.contacts.ensure(berlin, pd.DataFrame({"wa_id": ["436641234567"], "user_id": [None],
                                                   "name": ["x"]}))
    assert ids.iloc[0] not in set(ws.contacts.list(vienna)["contact_id"])


def test_contacts_by_user_id_without_phone(ws, account):
    contact = ws.contacts.add(account["account_id"], user_id="DE.1234567890", name="Username")
    assert contact["phone_e164"] is None and contact["wa_id"] is None
    assert ws.contacts.get(account["account_id"], "DE.1234567890")["contact_id"] == contact["contact_id"]
    with pytest.raises(Conflict):
        ws.contacts.add(account["account_id"], user_id="DE.1234567890")
    by_wa = ws.contacts.add(account["account_id"], wa_id="491701234567")
    assert by_wa["phone_e164"] == "+491701234567"


def test_update_fields_and_merge_attributes(ws, account):
    aid = account["account_id"]
    ws.contacts.add(aid, "0170 1234567", attributes='{"city": "Graz", "tier": "gold"}')
    updated = ws.contacts.update(aid, "0170 1234567", name="Anna", language="en",
                                 timezone="Europe/Vienna", attributes={"tier": None, "zip": "8010"})
    assert updated["name"] == "Anna" and updated["timezone"] == "Europe/Vienna"
    assert updated["attributes"] == {"city": "Graz", "zip": "8010"}
    replaced = ws.contacts.update(aid, updated["contact_id"], attributes={"a": 1},
                                  replace_attributes=True)
    assert replaced["attributes"] == {"a": 1}
    moved = ws.contacts.update(aid, updated["contact_id"], phone="0171 1111111")
    assert moved["wa_id"] == "491711111111"
    with pytest.raises(InvalidValue):
        ws.contacts.update(aid, moved["contact_id"], language="not a language")
    with pytest.raises(InvalidValue):
        ws.contacts.update(aid, moved["contact_id"], attributes="[1, 2]")
    with pytest.raises(InvalidValue):
        ws.contacts.update(aid, moved["contact_id"], shoe_size=44)


def test_hostile_text_is_stored_as_plain_text(ws, account):
    names = ["Robert'); DROP TABLE contacts;--", "=cmd|' /C calc'!A0", "😀 \"quoted\" Ünïcødé"]
    for i, name in enumerate(names):
        ws.contacts.add(account["account_id"], f"+49 170 123456{i}", name=name,
                        attributes={"note": name})
    stored = ws.contacts.list(account["account_id"])
    assert stored["name"].tolist() == names
    assert ws.contacts.get(account["account_id"], "+49 170 1234562")["attributes"]["note"] == names[2]


def test_ensure_contacts_is_vectorised_at_scale(ws, account):
    n = 20000
    frame = pd.DataFrame({"wa_id": [f"49170{i:07d}" for i in range(n)],
                          "user_id": [None] * n, "name": [f"n{i}" for i in range(n)]})
    ids = ws.contacts.ensure(account["account_id"], frame)
    assert ids.is_unique and ids.notna().all()
    assert ws.contacts.ensure(account["account_id"], frame).tolist() == ids.tolist()
    assert len(ws.contacts.list(account["account_id"])) == n


def test_rows_without_any_id_get_na(ws, account):
    ids = ws.contacts.ensure(account["account_id"], pd.DataFrame(
        {"wa_id": [None, ""], "user_id": [None, " "], "name": ["x", "y"]}))
    assert ids.isna().all()


# --- CLI --------------------------------------------------------------------------------------

def run(*args):
    return CliRunner().invoke(main, list(args))


def test_cli_contacts_list_and_show_with_consent_history(tmp_path):
    w = str(tmp_path / "cli.duckdb")
    assert run("-w", w, "init").exit_code == 0  # only init creates a workspace
    assert run("-w", w, "accounts", "add", "030 1234567", "--name", "L").exit_code == 0
    result = run("-w", w, "contacts", "add", "0170 1234567", "--account", "030 1234567",
                 "--name", "Anna")
    assert result.exit_code == 0, result.output
    ws = bizchat.open(w)
    ws.consent.opt_in(1, source="double_opt_in_form", evidence="confirmed 2025-05-01 10:00")
    ws.consent.opt_out(1, source="chat")
    result = run("-w", w, "contacts", "list", "--account", "+49 30 1234567")
    assert result.exit_code == 0
    assert "+491701234567" in result.output and "Anna" in result.output
    assert "opt_out" in result.output
    result = run("-w", w, "contacts", "show", "+49 170 1234567", "--account", "030 1234567")
    assert result.exit_code == 0, result.output
    assert "double_opt_in_form" in result.output and "chat" in result.output
    assert "marketing   not allowed (opted_out)" in result.output
    assert "service     allowed" in result.output


@pytest.mark.parametrize("args", [
    ["contacts", "list", "--account", "+49 40 999999"],
    ["contacts", "show", "+49 170 7654321", "--account", "030 1234567"],
    ["contacts", "add", "0170", "--account", "030 1234567"],
])
def test_cli_contact_errors(tmp_path, args):
    w = str(tmp_path / "cli.duckdb")
    assert run("-w", w, "init").exit_code == 0  # only init creates a workspace
    assert run("-w", w, "accounts", "add", "030 1234567", "--name", "L").exit_code == 0
    result = run("-w", w, *args)
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "Traceback" not in result.output
