"""The command line of the workbench: change a contact, record consent given outside a
chat, label many contacts from a file or a filter; each is one Workspace call."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import copy_workspace
from widget_helpers import ACCOUNT, PEOPLE

import bizchat
from bizchat.cli import main


@pytest.fixture
def world(tiny_template, tmp_path):
    """(ws, ids): a copy of the session's tiny_world (built once per worker)."""
    path, ids = tiny_template
    return bizchat.open(copy_workspace(path, tmp_path)), ids


def run(ws, *args):
    result = CliRunner().invoke(main, ["-w", str(ws.path), *args])
    return result.exit_code, result.output


def test_contacts_set_changes_fields_and_merges_attributes(world):
    ws, _ = world
    code, out = run(ws, "contacts", "set", "0151 33333333", "--account", ACCOUNT,
                    "--name", "Çağla 🌻 \"Y\"", "--language", "tr", "--timezone", "Europe/Istanbul",
                    "--attr", "city=Köln", "--attr", "vip=yes")
    assert code == 0, out
    c = ws.contacts.get(ACCOUNT, "+49 151 33333333")
    assert (c["name"], c["language"], c["timezone"]) == ('Çağla 🌻 "Y"', "tr", "Europe/Istanbul")
    assert c["attributes"] == {"city": "Köln", "vip": "yes"}
    code, out = run(ws, "contacts", "set", "+4915133333333", "--account", ACCOUNT,
                    "--attr", "vip=", "--attributes", json.dumps({"shoe": 42}))
    assert code == 0, out
    assert ws.contacts.get(ACCOUNT, "+49 151 33333333")["attributes"] == {"city": "Köln", "shoe": 42}


def test_consent_record_writes_the_ledger_with_source_and_evidence(world):
    ws, w = world
    code, out = run(ws, "consent", "record", "+49 151 33333333", "--account", ACCOUNT,
                    "--purpose", "marketing", "--action", "opt_in", "--source", "phone",
                    "--evidence", "Call 2026-03-02 10:14, agent Jana")
    assert code == 0 and "opted in" in out, out
    cid = w["contacts"][PEOPLE[2][1]]
    history = ws.consent.history(cid)
    assert history[["action", "source", "evidence"]].values.tolist() == [
        ["opt_in", "phone", "Call 2026-03-02 10:14, agent Jana"]]
    assert ws.consent.may_send(ACCOUNT, cid)
    code, out = run(ws, "consent", "record", "0151 33333333", "--account", ACCOUNT,
                    "--action", "opt_out", "--source", "in_store")
    assert code == 0, out
    assert ws.consent.current(cid) == "opt_out" and not ws.consent.may_send(ACCOUNT, cid)


def test_labels_assign_from_csv_labels_every_listed_contact(world, tmp_path):
    ws, _ = world
    (tmp_path / "list.csv").write_text("name;phone\nÇağla;0151 33333333\nDora;+43 660 4444444\n"
                                       "Anna;4915111111111\n", encoding="utf-8")
    code, out = run(ws, "labels", "assign", "VIP", "--account", ACCOUNT,
                    "--from-csv", str(tmp_path / "list.csv"))
    assert code == 0 and "Labelled 2 contacts" in out, out   # Anna had it already
    vip = ws.labels.contacts(ACCOUNT, any_of=["VIP"])
    assert len(vip) == 4


def test_labels_assign_from_csv_with_an_unknown_number_changes_nothing(world, tmp_path):
    ws, _ = world
    (tmp_path / "list.csv").write_text("phone\n0151 33333333\n0170 9999999\n", encoding="utf-8")
    code, out = run(ws, "labels", "assign", "VIP", "--account", ACCOUNT,
                    "--from-csv", str(tmp_path / "list.csv"))
    assert code == 1 and out.startswith("Error: ") and "'0170 9999999'" in out, out
    assert "Nothing was changed" in out
    assert len(ws.labels.contacts(ACCOUNT, any_of=["VIP"])) == 2


def test_labels_assign_and_unassign_by_filter(world):
    ws, _ = world
    code, out = run(ws, "labels", "assign", "Newsletter", "--account", ACCOUNT, "--none", "VIP",
                    "--language", "de")
    assert code == 0 and "Labelled 1 contacts" in out, out   # Dora (de-AT); Çağla had it
    assert sorted(ws.labels.contacts(ACCOUNT, any_of=["Newsletter"])["name"]) == [
        "<b>Dora</b>", "Çağla 🌻 Yılmaz"]
    code, out = run(ws, "labels", "unassign", "Newsletter", "--account", ACCOUNT,
                    "--search", "dora")
    assert code == 0 and "Unlabelled 1 contacts" in out, out
    assert ws.labels.contacts(ACCOUNT, any_of=["Newsletter"])["name"].tolist() == ["Çağla 🌻 Yılmaz"]
