"""Labels: CRUD, limits, merge/delete, bulk assignment, any/all/none queries, isolation."""

from __future__ import annotations

import pandas as pd
import pytest

from bizchat.errors import Conflict, LimitExceeded, NotFound
from bizchat.messaging.chats import ensure_chats
from bizchat.people.accounts import InvalidValue
from bizchat.people.labels import PALETTE

SHOP = "+49 30 1234567"
OTHER = "+43 1 2345678"
PHONES = ["+49 170 1000001", "+49 170 1000002", "+49 170 1000003", "+49 170 1000004",
          "+49 170 1000005"]


@pytest.fixture
def shop(ws):
    """Account SHOP with five contacts (languages de, de-AT, en, de, none) and their chats;
    account OTHER with one contact that shares a number with SHOP's first."""
    ws.accounts.add(SHOP, name="Blumen Berg")
    ws.accounts.add(OTHER, name="Wiener Blumen", timezone="Europe/Vienna")
    langs = ["de", "de-AT", "en", "de", None]
    cities = ["Graz", "Wien", "Graz", "Berlin", None]
    ids = [ws.contacts.add(SHOP, p, name=f"Kunde {i}", language=lang,
                           attributes={"city": c} if c else None)["contact_id"]
           for i, (p, lang, c) in enumerate(zip(PHONES, langs, cities, strict=True))]
    other = ws.contacts.add(OTHER, PHONES[0], name="Fremd")["contact_id"]
    with ws.transaction() as con:
        aid = con.execute("SELECT account_id FROM accounts WHERE phone_e164 = '+49301234567'"
                          ).fetchall()[0][0]
        oid = con.execute("SELECT account_id FROM accounts WHERE phone_e164 = '+4312345678'"
                          ).fetchall()[0][0]
        pairs = pd.DataFrame({"account_id": [aid] * 5 + [oid], "contact_id": ids + [other],
                              "started_at": [pd.Timestamp("2025-01-01", tz="UTC")] * 6})
        chats = ensure_chats(con, pairs).tolist()
    return {"contacts": ids, "chats": chats[:5], "other_contact": other,
            "other_chat": chats[5]}


def names(frame) -> list:
    return sorted(frame["contact_id"].tolist())


# --- CRUD ------------------------------------------------------------------------------------------

def test_create_list_and_default_colours(ws, shop):
    vip = ws.labels.create(SHOP, "VIP")
    new = ws.labels.create(SHOP, "Neukunde", color=5)
    third = ws.labels.create(SHOP, "Bestellt")
    assert (vip["color"], new["color"], third["color"]) == (1, 5, 2)  # first free colours
    assert vip["hex"] == PALETTE[0] and len(PALETTE) == 20
    listed = ws.labels.list(SHOP)
    assert listed["name"].tolist() == ["VIP", "Neukunde", "Bestellt"]
    assert listed["hex"].tolist() == [PALETTE[0], PALETTE[4], PALETTE[1]]
    assert listed["contacts"].tolist() == [0, 0, 0]
    assert ws.labels.get(SHOP, "vip")["label_id"] == vip["label_id"]


def test_names_are_unique_per_account_regardless_of_case(ws, shop):
    ws.labels.create(SHOP, "VIP")
    for clash in ("vip", " Vip ", "VIP"):
        with pytest.raises(Conflict):
            ws.labels.create(SHOP, clash)
    ws.labels.create(OTHER, "vip")  # another account may use the name
    ws.labels.create(SHOP, "Stammkunde")
    with pytest.raises(Conflict):
        ws.labels.rename(SHOP, "Stammkunde", "vIp")
    assert ws.labels.rename(SHOP, "VIP", "vip")["name"] == "vip"  # a change of case is fine


def test_bad_names_and_colours(ws, shop):
    for bad in ("", "   ", "a\nb", "x" * 101, None):
        with pytest.raises(InvalidValue):
            ws.labels.create(SHOP, bad)
    for bad in (0, 21, -1, "lila", True):
        with pytest.raises(InvalidValue):
            ws.labels.create(SHOP, "X", color=bad)
    assert ws.labels.create(SHOP, "Hex", color=PALETTE[3])["color"] == 4


def test_label_limit(ws, shop):
    for i in range(20):
        ws.labels.create(SHOP, f"L{i}")
    with pytest.raises(LimitExceeded) as err:
        ws.labels.create(SHOP, "one too many")
    assert err.value.limit == 20
    # colours wrapped around after twenty, each used once
    assert sorted(ws.labels.list(SHOP)["color"]) == list(range(1, 21))
    ws.accounts.update(SHOP, max_labels=21)
    ws.labels.create(SHOP, "one more")
    ws.labels.create(OTHER, "unaffected")


@pytest.mark.parametrize("name", [
    "Robert'); DROP TABLE labels;--", 'Say "hi"', "🌸 Frühling 🌸", "' OR 1=1 --",
    "100% {first_name} \\n", "Ümlaut-ß",
])
def test_hostile_names_are_just_names(ws, shop, name):
    label = ws.labels.create(SHOP, name)
    assert label["name"] == name
    assert ws.labels.assign(SHOP, name, [PHONES[0]])["contacts"] == 1
    assert ws.labels.contacts(SHOP, any_of=[name])["labels"].tolist() == [[name]]
    renamed = ws.labels.rename(SHOP, name, name + "2")
    assert renamed["name"] == name + "2"
    ws.labels.delete(SHOP, name + "2")
    assert ws.sql("SELECT count(*) AS n FROM labels")["n"][0] == 0
    assert ws.sql("SELECT count(*) AS n FROM contacts")["n"][0] == 6


def test_recolor(ws, shop):
    ws.labels.create(SHOP, "VIP")
    assert ws.labels.recolor(SHOP, "vip", 14)["hex"] == PALETTE[13]
    assert ws.labels.list(SHOP)["color"].tolist() == [14]
    with pytest.raises(NotFound):
        ws.labels.recolor(SHOP, "nope", 3)


# --- assignments ------------------------------------------------------------------------------------

def test_assign_by_any_written_form_and_ids(ws, shop):
    ws.labels.create(SHOP, "VIP")
    c = shop["contacts"]
    refs = ["0170 1000001", "+49 (170) 100-0002", "0049 170 1000003", "491701000004", c[4]]
    result = ws.labels.assign(SHOP, "VIP", refs)
    assert result == {"label": "VIP", "label_id": 1, "contacts": 5, "chats": 0}
    # assigning again adds nothing and keeps the first assignment
    assert ws.labels.assign(SHOP, "vip", refs + refs)["contacts"] == 0
    assert ws.sql("SELECT count(*) AS n FROM contact_labels")["n"][0] == 5
    assert ws.labels.unassign(SHOP, "VIP", [PHONES[0], c[1]])["contacts"] == 2
    assert names(ws.labels.contacts(SHOP, any_of=["VIP"])) == c[2:]


def test_assign_to_chats(ws, shop):
    ws.labels.create(SHOP, "Offen")
    result = ws.labels.assign(SHOP, "Offen", chats=[shop["chats"][0], PHONES[1]])
    assert result["chats"] == 2 and result["contacts"] == 0
    chats = ws.labels.chats(SHOP, any_of=["offen"])
    assert chats["chat_id"].tolist() == shop["chats"][:2]
    assert ws.labels.list(SHOP)["chats"].tolist() == [2]
    assert ws.labels.unassign(SHOP, "Offen", chats={"any_of": ["Offen"]})["chats"] == 2


def test_unknown_reference_changes_nothing(ws, shop):
    ws.labels.create(SHOP, "VIP")
    with pytest.raises(NotFound) as err:
        ws.labels.assign(SHOP, "VIP", [PHONES[0], "+49 170 9999999", "nobody"])
    assert err.value.input == ["+49 170 9999999", "nobody"]
    assert ws.sql("SELECT count(*) AS n FROM contact_labels")["n"][0] == 0
    with pytest.raises(NotFound):
        ws.labels.assign(SHOP, "no such label", [PHONES[0]])


def test_assignments_stay_inside_one_account(ws, shop):
    ws.labels.create(SHOP, "VIP")
    ws.labels.create(OTHER, "VIP")
    # OTHER's contact by id, or its chat, is not visible from SHOP
    with pytest.raises(NotFound):
        ws.labels.assign(SHOP, "VIP", [shop["other_contact"]])
    with pytest.raises(NotFound):
        ws.labels.assign(SHOP, "VIP", chats=[shop["other_chat"]])
    # the same number names a different contact in each account
    ws.labels.assign(OTHER, "VIP", [PHONES[0]])
    assert ws.labels.contacts(OTHER, any_of=["VIP"])["contact_id"].tolist() == \
        [shop["other_contact"]]
    assert ws.labels.contacts(SHOP, any_of=["VIP"]).empty
    # a filter never reaches across either
    ws.labels.assign(SHOP, "VIP", {"language": ["de", "en"]})
    assert ws.labels.contacts(OTHER, any_of=["VIP"])["contact_id"].tolist() == \
        [shop["other_contact"]]
    rows = ws.sql("""SELECT count(*) AS n FROM contact_labels x JOIN labels l USING (label_id)
                     JOIN contacts c USING (contact_id) WHERE c.account_id <> l.account_id""")
    assert rows["n"][0] == 0
    # SHOP's label names can't be used on OTHER's data by id either
    shop_label = ws.labels.get(SHOP, "VIP")["label_id"]
    with pytest.raises(NotFound):
        ws.labels.assign(OTHER, shop_label, [PHONES[0]])


def test_assign_by_filter(ws, shop):
    c = shop["contacts"]
    for name in ("VIP", "Graz", "Deutsch", "Newsletter"):
        ws.labels.create(SHOP, name)
    ws.labels.assign(SHOP, "VIP", [c[0], c[2]])
    assert ws.labels.assign(SHOP, "Graz", {"attributes": {"city": "Graz"}})["contacts"] == 2
    assert names(ws.labels.contacts(SHOP, any_of=["Graz"])) == [c[0], c[2]]
    # 'de' also matches de-AT; the contact without a language is left out
    assert ws.labels.assign(SHOP, "Deutsch", {"language": "de"})["contacts"] == 3
    assert names(ws.labels.contacts(SHOP, any_of=["Deutsch"])) == [c[0], c[1], c[3]]
    # by other labels: German speakers that are not VIPs
    result = ws.labels.assign(SHOP, "Newsletter", {"any_of": ["Deutsch"], "none_of": ["VIP"]})
    assert result["contacts"] == 2
    assert names(ws.labels.contacts(SHOP, any_of=["Newsletter"])) == [c[1], c[3]]
    # attribute lists match any value; unfiltered keys are refused
    assert names(ws.labels.contacts(SHOP, attributes={"city": ["Wien", "Berlin"]})) == [c[1], c[3]]
    with pytest.raises(InvalidValue):
        ws.labels.assign(SHOP, "VIP", {"city": "Graz"})
    with pytest.raises(InvalidValue):
        ws.labels.contacts(SHOP, attributes={"city') OR 1=1 --": "x"})


def test_any_all_none_queries_match_a_hand_computed_truth(ws, shop):
    c = shop["contacts"]
    for name in ("A", "B", "C"):
        ws.labels.create(SHOP, name)
    plan = {"A": [c[0], c[1], c[2]], "B": [c[1], c[2], c[3]], "C": [c[2]]}
    for label, ids in plan.items():
        ws.labels.assign(SHOP, label, ids)
    has = {cid: {lab for lab, ids in plan.items() if cid in ids} for cid in c}

    def truth(any_of=(), all_of=(), none_of=()):
        return sorted(cid for cid, labs in has.items()
                      if (not any_of or labs & set(any_of)) and set(all_of) <= labs
                      and not labs & set(none_of))

    cases = [dict(any_of=["A"]), dict(any_of=["A", "C"]), dict(all_of=["A", "B"]),
             dict(all_of=["A", "B", "C"]), dict(none_of=["A"]), dict(none_of=["A", "B"]),
             dict(any_of=["B"], none_of=["C"]), dict(all_of=["a", "b"], none_of=["c"]), dict()]
    for case in cases:
        got = names(ws.labels.contacts(SHOP, **case))
        want = truth(**{k: [x.upper() for x in v] for k, v in case.items()})
        assert got == want, case
    row = ws.labels.contacts(SHOP, all_of=["C"]).iloc[0]
    assert list(row["labels"]) == ["A", "B", "C"]


# --- merge and delete ---------------------------------------------------------------------------------

def test_merge_moves_assignments_without_duplicates(ws, shop):
    c, h = shop["contacts"], shop["chats"]
    ws.labels.create(SHOP, "Stammkunde")
    ws.labels.create(SHOP, "VIP")
    ws.labels.assign(SHOP, "Stammkunde", [c[0], c[1]], chats=[h[0]])
    ws.labels.assign(SHOP, "VIP", [c[1], c[2]], chats=[h[0], h[1]])
    merged = ws.labels.merge(SHOP, "stammkunde", "vip")
    assert (merged["name"], merged["contacts_moved"], merged["chats_moved"]) == ("VIP", 1, 0)
    assert ws.labels.list(SHOP)["name"].tolist() == ["VIP"]
    assert names(ws.labels.contacts(SHOP, any_of=["VIP"])) == [c[0], c[1], c[2]]
    assert ws.sql("SELECT count(*) AS n FROM contact_labels")["n"][0] == 3
    assert ws.sql("SELECT count(*) AS n FROM chat_labels")["n"][0] == 2
    with pytest.raises(InvalidValue):
        ws.labels.merge(SHOP, "VIP", "vip")
    with pytest.raises(NotFound):
        ws.labels.get(SHOP, "Stammkunde")


def test_delete_removes_assignments_only_of_that_label(ws, shop):
    c, h = shop["contacts"], shop["chats"]
    ws.labels.create(SHOP, "Alt")
    ws.labels.create(SHOP, "Bleibt")
    ws.labels.assign(SHOP, "Alt", c, chats=h)
    ws.labels.assign(SHOP, "Bleibt", c[:2])
    deleted = ws.labels.delete(SHOP, "ALT")
    assert (deleted["contacts"], deleted["chats"]) == (5, 5)
    assert ws.sql("SELECT count(*) AS n FROM chat_labels")["n"][0] == 0
    assert ws.sql("SELECT count(*) AS n FROM contact_labels")["n"][0] == 2
    assert ws.labels.list(SHOP)["contacts"].tolist() == [2]


def test_rename_merge_delete_keep_automation_scopes_in_step(ws, shop):
    ws.accounts.update(SHOP, business_hours="mon-fri=09:00-18:00")
    for name in ("VIP", "Stamm", "Alt"):
        ws.labels.create(SHOP, name)
    ws.automations.set_greeting(SHOP, "Hallo!", scope="only_labels", labels=["vip", "Alt"])
    ws.automations.set_away(SHOP, "Weg.", scope="except_labels", labels=["Stamm"])
    ws.labels.rename(SHOP, "VIP", "Premium")
    assert sorted(ws.automations.get(SHOP, "greeting")["scope_labels"]) == ["Alt", "Premium"]
    ws.labels.merge(SHOP, "Stamm", "Premium")
    assert ws.automations.get(SHOP, "away")["scope_labels"] == ["Premium"]
    ws.labels.delete(SHOP, "alt")
    assert ws.automations.get(SHOP, "greeting")["scope_labels"] == ["Premium"]


# --- CLI ------------------------------------------------------------------------------------------

def cli(path, *args, ok=True):
    from click.testing import CliRunner

    from bizchat.cli import main

    result = CliRunner().invoke(main, ["--workspace", str(path), *args])
    assert (result.exit_code == 0) == ok, result.output
    return result.output


def test_cli_labels(tmp_path):
    path = tmp_path / "cli.duckdb"
    cli(path, "init")  # only init creates a workspace
    cli(path, "accounts", "add", SHOP, "--name", "Blumen Berg")
    for phone in PHONES[:3]:
        cli(path, "contacts", "add", phone, "--account", SHOP)
    assert "colour 7" in cli(path, "labels", "create", "VIP", "--account", SHOP, "--color", "7")
    cli(path, "labels", "create", "Robert'); DROP TABLE labels;--", "--account", SHOP)
    out = cli(path, "labels", "assign", "vip", "--account", SHOP, "--contact", "0170 1000001",
              "--contact", "+49 170 1000002")
    assert "Labelled 2 contacts" in out
    listing = cli(path, "labels", "list", "--account", SHOP, "--csv")
    assert listing.splitlines()[0] == "name,color,hex,contacts,chats"
    assert "VIP,7,#ff9dff,2,0" in listing
    assert "Unlabelled 1 contacts" in cli(path, "labels", "unassign", "VIP", "--account", SHOP,
                                          "--contact", "491701000002")
    cli(path, "labels", "rename", "VIP", "Premium", "--account", SHOP)
    cli(path, "labels", "recolor", "premium", "3", "--account", SHOP)
    cli(path, "labels", "assign", "Robert'); DROP TABLE labels;--", "--account", SHOP,
        "--contact", PHONES[2])
    out = cli(path, "labels", "merge", "Robert'); DROP TABLE labels;--", "Premium",
              "--account", SHOP)
    assert "1 contacts" in out
    out = cli(path, "labels", "contacts", "--account", SHOP, "--any", "Premium", "--csv")
    assert out.count("+49170100000") == 2
    assert "Deleted label 'Premium'" in cli(path, "labels", "delete", "Premium", "--account",
                                            SHOP, "--yes")
    assert "(no rows)" in cli(path, "labels", "list", "--account", SHOP)
    # errors are one clear line, no traceback
    out = cli(path, "labels", "recolor", "nope", "3", "--account", SHOP, ok=False)
    assert "has no label 'nope'" in out and "Traceback" not in out
    out = cli(path, "labels", "assign", "x", "--account", SHOP, ok=False)
    assert "--contact" in out
    out = cli(path, "labels", "create", "X", "--account", SHOP, "--color", "21", ok=False)
    assert "21" in out
