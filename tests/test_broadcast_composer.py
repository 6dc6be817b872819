"""The broadcast composer without a browser: values set and buttons clicked as a marketer
would, then the workspace and the widget checked."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from conftest import copy_workspace
from widget_helpers import ACCOUNT, PEOPLE, click, set_value, texts, tiny_world

import bizchat
from bizchat.widgets import BroadcastComposer

ANNA, BEN = PEOPLE[0][0], PEOPLE[1][0]


@pytest.fixture
def world(tiny_template, tmp_path):
    """tiny_world's ids; its workspace (a copy of the session's, built once per worker) is
    the ``ws`` fixture here."""
    return tiny_template[1]


@pytest.fixture
def ws(tiny_template, tmp_path):
    return bizchat.open(copy_workspace(tiny_template[0], tmp_path))


def composer(ws, **kwargs) -> BroadcastComposer:
    c = BroadcastComposer(ws, account=ACCOUNT, background=False, seed=3, **kwargs)
    assert c.status.kind != "error", c.status.text
    return c


def test_text_is_checked_as_typed_naming_an_unknown_placeholder_and_its_position(ws, world):
    c = composer(ws)
    set_value(c.body, "Hallo {vorname}, schön!")
    assert "{vorname}" in c.check.value and "character 7" in c.check.value
    assert "{first_name}" in c.check.value   # what is available instead
    assert c.count.value == ""               # nothing counted for a text that cannot render
    for hostile in ("{__class__}", "Hi {0}", "{a.b}", "Hallo {first_name"):
        set_value(c.body, hostile)
        assert "data-kind='error'" in c.check.value, hostile
    set_value(c.body, "")
    click(next(b for b in c.placeholder_buttons.children if b.description == "{first_name}"))
    assert c.body.value == "{first_name}"
    assert "✓ Placeholders: {first_name}" in c.check.value
    assert ws.broadcasts.list().empty   # typing stores nothing


def test_live_count_and_exclusions_follow_the_audience(ws, world):
    c = composer(ws)
    set_value(c.body, "Hallo {first_name}! Neue Bücher 📚 sind da.")
    # everyone: five contacts, two opted in, three without consent
    assert c.estimate.counts["candidates"] == 5 and c.estimate.queued == 2
    assert "<b>2</b> of 5" in c.count.value and "no consent 3" in c.exclusions.value
    set_value(c.audience.labels_any, ("Newsletter",))
    assert c.estimate.counts["candidates"] == 1 and c.estimate.queued == 0
    assert "no consent 1" in c.exclusions.value
    assert "Nobody in this audience" in c.previews.value
    set_value(c.audience.labels_any, ("VIP",))
    assert c.estimate.queued == 2 and "Nobody excluded" in c.exclusions.value
    # the same numbers as the service, for the same definition
    direct = ws.broadcasts.estimate(ACCOUNT, **c.definition())
    assert direct.counts == c.estimate.counts
    # previews: the exact text, names as typed (escaped in HTML)
    assert "Hallo Anna! Neue Bücher 📚 sind da." in c.previews.value
    assert "Ben &quot;the Boss&quot; O&#x27;Neil" in c.previews.value
    set_value(c.audience.labels_none, ("VIP",))
    assert c.estimate.counts["candidates"] == 0


def test_variants_control_and_plan(ws, world):
    c = composer(ws)
    set_value(c.body, "Hallo {first_name}!")
    click(c.add_variant)
    set_value(c.variant_boxes[0], "Hi {name}, {business_name} hat Neues.")
    assert c.estimate.counts["by_variant"] == {"A": 1, "B": 1}
    set_value(c.variant_boxes[0], "Hi {nachname}")
    assert "Variant B" in c.check.value and "{nachname}" in c.check.value
    set_value(c.variant_boxes[0], "Hi {name}!")
    click(c.plan_button)
    assert "Cost:" in c.plan.value and "EUR" in c.plan.value, c.status.text
    set_value(c.control, 0.5)
    assert c.estimate.counts["skipped"].get("control") == 1 and c.plan.value == ""


def test_send_confirms_counts_and_cost_then_sends_only_to_consenting_and_shows_the_funnel(ws, world):
    c = composer(ws)
    set_value(c.name, 'Herbst "Lese" 🍂')
    set_value(c.body, "Hallo {first_name}, wir haben Neues für Sie.")
    click(c.review)
    question = c.confirm.text
    assert "to 2 recipients" in question and "3 excluded" in question and "EUR" in question
    assert ws.broadcasts.list().empty   # nothing stored before "Send"
    # consent changes between the count and the send: the send-time check wins
    ws.consent.opt_out(world["contacts"][PEOPLE[1][1]], source="whatsapp_keyword",
                       evidence="STOP")
    click(c.confirm.yes)
    assert c.status.kind == "ok", c.status.text
    bid = c.broadcast_id
    rec = ws.broadcasts.recipients(bid).set_index("contact_id")
    anna, ben = world["contacts"]["Anna Müller"], world["contacts"][PEOPLE[1][1]]
    assert rec.loc[anna, "state"] == "sent"
    assert rec.loc[ben, "state"] == "skipped" and rec.loc[ben, "skip_reason"] == "opted_out"
    assert (rec["state"] == "sent").sum() == 1
    assert ws.broadcasts.get(bid)["name"] == 'Herbst "Lese" 🍂'
    assert "Funnel of broadcast" in c.funnel.value and "Delivered" in c.funnel.value
    assert c.progress.bar.value == c.progress.bar.max


def test_schedule_at_a_time_and_cancel(ws, world):
    c = composer(ws)
    set_value(c.name, "Später")
    set_value(c.body, "Hallo {first_name}!")
    set_value(c.when, "at")
    set_value(c.at, "2099-01-05T10:00+01:00")
    click(c.review)
    assert "at 2099-01-05T10:00+01:00" in c.confirm.text
    click(c.confirm.yes)
    bid = c.broadcast_id
    found = ws.broadcasts.get(bid)
    assert found["status"] == "scheduled" and "09:00 UTC" in c.status.text
    c.cancel_sending()
    assert ws.broadcasts.get(bid)["status"] == "cancelled"
    # A broadcast is frozen at its send time (issue 16): cancelled before it, nobody was
    # frozen, so nobody can be sent to later.
    assert len(ws.broadcasts.recipients(bid)) == 0
    due = ws.broadcasts.run_due(now="2099-01-05T10:05+01:00")
    assert all(r.get("broadcast_id") != bid for r in due)
    assert ws.broadcasts.get(bid)["status"] == "cancelled"


def test_bad_input_is_one_inline_sentence_and_stores_nothing(ws, world):
    c = composer(ws)
    click(c.review)   # no name
    assert c.status.kind == "error" and "name" in c.status.text
    set_value(c.name, "Leer")
    set_value(c.body, "Hallo!")
    set_value(c.audience.labels_all, ("VIP", "Newsletter"))   # nobody has both
    click(c.review)
    assert c.status.kind == "error" and "Nobody" in c.status.text and not c.confirm.pending
    set_value(c.audience.labels_all, ())
    set_value(c.when, "at")
    set_value(c.at, "next tuesday")
    click(c.review)
    assert c.status.kind == "error" and "next tuesday" in c.status.text
    assert "Traceback" not in texts(c)
    assert ws.broadcasts.list().empty


@pytest.mark.slow
def test_a_busy_workspace_is_an_inline_sentence(tmp_path):
    path = tmp_path / "busy.duckdb"
    ws = bizchat.open(path, timeout=0.5)
    tiny_world(ws)
    c = composer(ws)
    set_value(c.body, "Hallo {first_name}!")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('held', flush=True); "
        "time.sleep(30)"), str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        set_value(c.audience.labels_any, ("VIP",))
        assert c.status.kind == "error" and "Nothing was changed" in c.status.text
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    time.sleep(0.1)
    set_value(c.audience.labels_any, ("Newsletter",))
    assert c.status.kind != "error" and c.estimate.counts["candidates"] == 1


@pytest.mark.slow
def test_cancel_while_sending_in_the_background_stops_the_send(demo_ws):
    ws = demo_ws
    account = ws.accounts.list()["phone_e164"].iloc[0]
    c = BroadcastComposer(ws, account=account, background=True, seed=1)
    set_value(c.name, "Abbrechen")
    set_value(c.body, "Hallo {first_name}!")
    click(c.review)
    queued = c.estimate.queued
    click(c.confirm.yes)
    assert c.cancel.layout.display == "flex"
    click(c.cancel)   # while freezing or sending: the sender's kernel thread is busy
    c.wait(120)
    assert c.status.kind == "ok" and "cancelled" in c.status.text.lower(), c.status.text
    assert ws.broadcasts.get(c.broadcast_id)["status"] == "cancelled"
    states = ws.broadcasts.recipients(c.broadcast_id)["state"].value_counts()
    assert states.get("sent", 0) < queued and c.cancel.layout.display == "none"
