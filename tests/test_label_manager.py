"""The label manager without a browser: values set, buttons clicked, the workspace and
the widget checked after each action."""

from __future__ import annotations

import subprocess
import sys

import pytest
from widget_helpers import ACCOUNT, PEOPLE, click, set_value, texts

from bizchat.widgets import LabelManager

BEN = PEOPLE[1][1]


@pytest.fixture
def world(tiny):
    return tiny


@pytest.fixture
def lm(world):
    return LabelManager(world[0], account=ACCOUNT, page_size=2)


def counts(ws) -> dict:
    return dict(ws.labels.list(ACCOUNT)[["name", "contacts"]].values.tolist())


def test_labels_show_with_swatch_and_counts(lm):
    shown = lm.labels_table.value
    assert "VIP" in shown and "Newsletter" in shown and "#ff9485" in shown
    assert lm.labels[["name", "contacts"]].values.tolist() == [["VIP", 2], ["Newsletter", 1]]


def test_create_with_quotes_and_emoji_then_a_duplicate_is_an_inline_error(world, lm):
    ws, _ = world
    set_value(lm.name_box, 'Stammkunde "Gold" 🌻 <i>')
    click(lm.create_btn)
    assert lm.status.kind == "ok"
    assert 'Stammkunde "Gold" 🌻 <i>' in ws.labels.list(ACCOUNT)["name"].tolist()
    assert "<i>" not in lm.labels_table.value   # shown as typed, not as markup
    set_value(lm.name_box, 'stammkunde "gold" 🌻 <i>')
    click(lm.create_btn)
    assert lm.status.kind == "error" and "already has a label" in lm.status.text
    assert "Traceback" not in texts(lm)
    assert len(ws.labels.list(ACCOUNT)) == 3


def test_the_21st_label_is_refused_inline(world, lm):
    ws, _ = world
    for n in range(18):
        ws.labels.create(ACCOUNT, f"L{n}")
    set_value(lm.name_box, "one too many")
    click(lm.create_btn)
    assert lm.status.kind == "error" and "20" in lm.status.text
    assert len(ws.labels.list(ACCOUNT)) == 20


def test_rename_and_recolour(world, lm):
    ws, _ = world
    set_value(lm.label_pick, "VIP")
    set_value(lm.name_box, "Very 'important'")
    click(lm.rename_btn)
    set_value(lm.color_pick, 7)
    click(lm.recolor_btn)
    label = ws.labels.get(ACCOUNT, "Very 'important'")
    assert label["color"] == 7 and lm.label_pick.value == "Very 'important'"
    assert counts(ws)["Very 'important'"] == 2


def test_delete_asks_with_the_count_and_cancel_keeps_it(world, lm):
    ws, _ = world
    set_value(lm.label_pick, "VIP")
    click(lm.delete_btn)
    assert "It is on 2 contacts and 0 chats" in lm.confirm.text
    click(lm.confirm.no)
    assert "VIP" in counts(ws)
    click(lm.delete_btn)
    click(lm.confirm.yes)
    assert "VIP" not in counts(ws) and "VIP" not in lm.labels_table.value
    assert lm.status.text.startswith("Deleted 'VIP' (it was on 2 contacts")


def test_merge_moves_contacts_after_confirmation(world, lm):
    ws, _ = world
    set_value(lm.label_pick, "Newsletter")
    set_value(lm.merge_into, "VIP")
    click(lm.merge_btn)
    assert "1 contacts" in lm.confirm.text
    click(lm.confirm.yes)
    assert counts(ws) == {"VIP": 3}
    assert lm.labels[["name", "contacts"]].values.tolist() == [["VIP", 3]]


def test_finder_by_name_number_and_labels_pages(lm):
    set_value(lm.search, "0151 2222")
    assert lm.total == 1 and BEN in lm.results.options[0][0]
    set_value(lm.search, "")
    assert lm.total == 5 and len(lm.results.options) == 2 and lm.pager.label.value == "1–2 of 5"
    click(lm.pager.next)
    click(lm.pager.next)
    assert len(lm.results.options) == 1 and lm.pager.next.disabled
    set_value(lm.none_of, ("VIP", "Newsletter"))
    assert lm.total == 2   # Dora and the nameless one
    set_value(lm.none_of, ())
    set_value(lm.all_of, ("VIP",))
    set_value(lm.search, "boss")
    assert lm.total == 1


def test_bulk_assign_to_selection_and_to_the_whole_filter(world, lm):
    ws, w = world
    set_value(lm.bulk_label, "Newsletter")
    set_value(lm.search, "a")   # Anna, Çağla, Dora, Ben (O'Neil has no a... "Boss" neither)
    selected = tuple(v for _, v in lm.results.options)
    set_value(lm.results, selected)
    click(lm.assign_btn)
    assert lm.status.text.startswith("Labelled ")
    assert set(ws.labels.contacts(ACCOUNT, any_of=["Newsletter"])["contact_id"]) >= set(selected)
    set_value(lm.search, "")
    set_value(lm.any_of, ("VIP",))
    set_value(lm.scope, "filter")
    set_value(lm.bulk_label, "Newsletter")
    click(lm.unassign_btn)
    assert "every contact found (2)" in lm.confirm.text
    click(lm.confirm.yes)
    assert set(ws.labels.contacts(ACCOUNT, any_of=["Newsletter"])["contact_id"]).isdisjoint(
        {w["contacts"]["Anna Müller"], w["contacts"][BEN]})
    # the counts on screen are the workspace's, at once
    assert lm.labels[["name", "contacts"]].values.tolist() == ws.labels.list(ACCOUNT)[
        ["name", "contacts"]].values.tolist()


def test_contact_card_edits_and_records_consent(world, lm):
    ws, w = world
    cid = w["contacts"][PEOPLE[2][1]]
    lm.open_contact(cid)
    assert "Çağla 🌻 Yılmaz" in lm.card_title.value
    assert "No consent recorded" in lm.consent_history.value
    set_value(lm.card_name, 'Çağla "Ç" 🌻')
    set_value(lm.card_language, "tr")
    set_value(lm.card_timezone, "Europe/Istanbul")
    set_value(lm.card_attributes, '{"city": "Köln"}')
    click(lm.save_btn)
    c = ws.contacts.get(ACCOUNT, cid)
    assert (c["name"], c["language"], c["timezone"], c["attributes"]) == (
        'Çağla "Ç" 🌻', "tr", "Europe/Istanbul", {"city": "Köln"})
    set_value(lm.consent_action, "opt_in")
    set_value(lm.consent_source, "in_store")
    set_value(lm.consent_evidence, "Signed at the counter, 2026-03-02, Jana")
    click(lm.record_btn)
    assert lm.status.kind == "ok"
    assert ws.consent.history(cid)[["action", "source", "evidence"]].values.tolist() == [
        ["opt_in", "in_store", "Signed at the counter, 2026-03-02, Jana"]]
    assert "Signed at the counter" in lm.consent_history.value


def test_card_errors_are_inline_and_lose_nothing(world, lm):
    ws, w = world
    cid = w["contacts"]["Anna Müller"]
    lm.open_contact(cid)
    set_value(lm.card_timezone, "Mars/Base")
    set_value(lm.card_name, "changed")
    click(lm.save_btn)
    assert lm.status.kind == "error" and "Mars/Base" in lm.status.text
    assert ws.contacts.get(ACCOUNT, cid)["name"] == "Anna Müller"
    set_value(lm.consent_source, "  ")
    click(lm.record_btn)
    assert lm.status.kind == "error" and "source" in lm.status.text
    assert len(ws.consent.history(cid)) == 1


HOLD = """
import duckdb, sys, time
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
sys.stdin.readline()
"""


@pytest.mark.slow
def test_a_workspace_held_by_another_process_is_an_inline_message(world, lm):
    ws, _ = world
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(ws.path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        set_value(lm.name_box, "Busy day")
        click(lm.create_btn)
        assert lm.status.kind == "error" and "busy" in lm.status.text.lower()
        assert "Nothing was changed" in lm.status.text
        assert not lm.create_btn.disabled
    finally:
        holder.communicate("\n", timeout=10)
    click(lm.create_btn)   # the name is still typed; now it works
    assert lm.status.kind == "ok" and "Busy day" in counts(ws)
    assert counts(ws)["VIP"] == 2


def test_an_unknown_account_is_one_sentence_not_a_traceback(world):
    lm = LabelManager(world[0], account="+49 30 999999")
    assert lm.status.kind == "error" and list(lm.children) == [lm.status]
