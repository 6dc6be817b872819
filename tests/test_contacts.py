"""Contacts: one contact per person and account, found by any form of the number."""

from __future__ import annotations

import pandas as pd
import pytest

from bizchat.errors import Conflict, InvalidPhoneNumber, NotFound


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
