"""Quick replies: shortcuts, validation at save time, limit, rendering for a contact."""

from __future__ import annotations

import pytest

from bizchat.errors import Conflict, LimitExceeded, NotFound, TemplateError
from bizchat.people.accounts import InvalidValue

SHOP = "+49 30 1234567"
OTHER = "+43 1 2345678"
ANNA = "+49 170 1000001"


@pytest.fixture
def shop(ws):
    ws.accounts.add(SHOP, name="Blumen Berg")
    ws.accounts.add(OTHER, name="Wiener Blumen")
    anna = ws.contacts.add(SHOP, ANNA, name="Anna Maria Schmidt",
                           attributes={"city": "Graz", "points": 120})
    nameless = ws.contacts.add(SHOP, "+49 170 1000002")
    return {"anna": anna["contact_id"], "nameless": nameless["contact_id"]}


def test_add_list_get_remove(ws, shop):
    ws.replies.add(SHOP, "/danke", "Danke, {first_name}! Ihr Team von {business_name}")
    ws.replies.add(SHOP, "/Adresse_2", "Hauptstr. 1 {{Hinterhof}}")
    listed = ws.replies.list(SHOP)
    assert listed["shortcut"].tolist() == ["/Adresse_2", "/danke"]
    assert listed["placeholders"].tolist() == [[], ["first_name", "business_name"]]
    assert ws.replies.get(SHOP, "/DANKE")["shortcut"] == "/danke"
    assert ws.replies.get(SHOP, "danke")["shortcut"] == "/danke"  # slash optional on lookup
    ws.replies.update(SHOP, "/danke", "Vielen Dank!")
    assert ws.replies.get(SHOP, "/danke")["text"] == "Vielen Dank!"
    assert ws.replies.remove(SHOP, "/danke")["shortcut"] == "/danke"
    assert ws.replies.list(SHOP)["shortcut"].tolist() == ["/Adresse_2"]
    with pytest.raises(NotFound):
        ws.replies.remove(SHOP, "/danke")
    assert ws.replies.list(OTHER).empty


def test_shortcuts_are_unique_regardless_of_case(ws, shop):
    ws.replies.add(SHOP, "/danke", "Danke!")
    with pytest.raises(Conflict):
        ws.replies.add(SHOP, "/DANKE", "Danke!!")
    ws.replies.add(OTHER, "/danke", "Danke aus Wien")  # per account


@pytest.mark.parametrize("shortcut", ["danke", "/", "/dan ke", "/dänke", "//x", "/a.b",
                                      "/" + "x" * 25, "", None, "/x'; DROP TABLE quick_replies"])
def test_bad_shortcuts(ws, shop, shortcut):
    with pytest.raises(InvalidValue):
        ws.replies.add(SHOP, shortcut, "Text")


def test_text_is_checked_when_saved(ws, shop):
    with pytest.raises(TemplateError) as err:
        ws.replies.add(SHOP, "/x", "Hallo {first_name.__class__}")
    assert err.value.piece == "{first_name.__class__}"
    for bad in ("", "   ", "x" * 4097):
        with pytest.raises(InvalidValue):
            ws.replies.add(SHOP, "/x", bad)
    ws.replies.add(SHOP, "/x", "ok")
    with pytest.raises(TemplateError):
        ws.replies.update(SHOP, "/x", "{0}")
    assert ws.replies.get(SHOP, "/x")["text"] == "ok"


def test_limit(ws, shop):
    ws.accounts.update(SHOP, max_quick_replies=3)
    for i in range(3):
        ws.replies.add(SHOP, f"/r{i}", "x")
    with pytest.raises(LimitExceeded) as err:
        ws.replies.add(SHOP, "/r3", "x")
    assert err.value.limit == 3
    ws.replies.add(OTHER, "/r3", "x")  # the other account has its own 50


@pytest.mark.slow
def test_default_limit_is_fifty(ws, shop):
    for i in range(50):
        ws.replies.add(SHOP, f"/r{i}", "x")
    with pytest.raises(LimitExceeded):
        ws.replies.add(SHOP, "/r50", "x")


def test_render_for_a_contact(ws, shop):
    ws.replies.add(SHOP, "/danke", "Danke, {first_name} aus {city}! {points} Punkte. "
                   "{{{business_name}}}")
    expected = "Danke, Anna aus Graz! 120 Punkte. {Blumen Berg}"
    assert ws.replies.render("/danke", shop["anna"]) == expected
    assert ws.replies.render("/danke", ANNA, account=SHOP) == expected
    assert ws.replies.render("/danke", "0170 1000001", account=SHOP) == expected
    assert ws.replies.render("/danke", ws.contacts.get(SHOP, ANNA)) == expected
    assert ws.replies.render("/danke", shop["anna"], extra={"points": 7}).endswith(
        "7 Punkte. {Blumen Berg}")


def test_render_names_an_unknown_or_missing_placeholder(ws, shop):
    ws.replies.add(SHOP, "/bestellung", "Ihre Bestellung {order_no} ist da, {first_name}.",
                   extra_placeholders=["order_no"])
    with pytest.raises(TemplateError) as err:
        ws.replies.render("/bestellung", shop["anna"])
    assert err.value.placeholder == "order_no" and "/bestellung" in str(err.value)
    assert ws.replies.render("/bestellung", shop["anna"], extra={"order_no": "A-17"}) == \
        "Ihre Bestellung A-17 ist da, Anna."
    with pytest.raises(TemplateError) as err:  # this contact has no name
        ws.replies.render("/bestellung", shop["nameless"], extra={"order_no": "A-18"})
    assert err.value.placeholder == "first_name"


def test_render_never_crosses_accounts(ws, shop):
    ws.replies.add(OTHER, "/wien", "Servus {first_name}")
    with pytest.raises(NotFound):  # SHOP's contact, OTHER's shortcut
        ws.replies.render("/wien", shop["anna"])
    with pytest.raises(NotFound):  # the number is no contact of OTHER
        ws.replies.render("/wien", ANNA, account=OTHER)
    with pytest.raises(NotFound):
        ws.replies.render("/wien", shop["anna"], account=OTHER)
    with pytest.raises(InvalidValue):  # a number alone does not say which account
        ws.replies.render("/wien", ANNA)


def test_cli_replies(tmp_path):
    from click.testing import CliRunner

    from bizchat.cli import main

    def cli(*args, ok=True):
        result = CliRunner().invoke(main, ["--workspace", str(tmp_path / "c.duckdb"), *args])
        assert (result.exit_code == 0) == ok, result.output
        return result.output

    cli("init")  # only init creates a workspace
    cli("accounts", "add", SHOP, "--name", "Blumen Berg")
    cli("contacts", "add", ANNA, "--account", SHOP, "--name", "Anna Schmidt")
    assert "Saved quick reply /danke" in cli("replies", "add", "/danke",
                                             "Danke, {first_name}!", "--account", SHOP)
    assert cli("replies", "list", "--account", SHOP, "--csv").splitlines() == [
        "shortcut,text,placeholders", "/danke,\"Danke, {first_name}!\",first_name"]
    assert cli("replies", "render", "/danke", "--contact", "0170 1000001",
               "--account", SHOP) == "Danke, Anna!\n"
    out = cli("replies", "add", "/x", "Hallo {name.upper}", "--account", SHOP, ok=False)
    assert "attribute access" in out and "Traceback" not in out
    assert "Removed quick reply /danke" in cli("replies", "remove", "/DANKE", "--account", SHOP)
    assert "(no rows)" in cli("replies", "list", "--account", SHOP)
