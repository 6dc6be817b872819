"""The inbox without a browser: chats unread first, a conversation with ticks, replies in
the window, templates outside it, labels, mark read, refresh after the receiver wrote."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta

import pytest
from widget_helpers import ACCOUNT, click, hours_ago, inbound, set_value, texts

from bizchat.widgets import Inbox

BEN_WA = "4915122222222"


@pytest.fixture
def world(tiny):
    ws, w = tiny
    ws.replies.add(ACCOUNT, "/danke", "Danke, {name}! 🌻")
    ws.templates.create(ACCOUNT, "wieder_da", "Hallo {name}, Ihr Buch ist da.", category="utility")
    ws.templates.create(ACCOUNT, "rabatt", "Hallo {name}, 10% auf alles!", category="marketing")
    # Ben wrote two days ago: his window is closed.
    inbound(ws, BEN_WA, "Gibt es <b>Gutscheine</b>?", hours_ago(49), "wamid.ben.1")
    return ws, w


@pytest.fixture
def inbox(world):
    return Inbox(world[0], account=ACCOUNT)


def chat_of(ws, phone) -> int:
    frame = ws.chats.inbox(ACCOUNT)
    return int(frame.loc[frame["phone_e164"] == phone, "chat_id"].iloc[0])


def test_chats_unread_first_with_window_and_last_message(world, inbox):
    ws, _ = world
    anna, ben = chat_of(ws, "+4915111111111"), chat_of(ws, "+4915122222222")
    ws.chats.mark_read(ben)
    inbox.refresh()
    assert [v for _, v in inbox.chat_list.options] == [anna, ben]
    first, second = (t for t, _ in inbox.chat_list.options)
    # pickers start on a real choice (a reassigned Dropdown would otherwise show nothing)
    assert inbox.label_pick.value == "VIP" and inbox.template_pick.value is not None
    assert first.startswith("● 1  Anna Müller") and "h left" in first
    assert "Gutscheine" in second and second.endswith("closed")


def test_open_chat_shows_messages_escaped_with_day_separator(world, inbox):
    ws, _ = world
    inbox.open_chat(chat_of(ws, "+4915122222222"))
    shown = inbox.conversation.value
    assert "&lt;b&gt;Gutscheine&lt;/b&gt;" in shown and "<b>Gutscheine" not in shown
    assert "bizchat-day" in shown
    assert "window closed" in inbox.header.value
    assert inbox.reply_row.layout.display == "none"   # free text hidden: templates only


def test_quick_reply_by_typing_and_sending_in_the_window(world, inbox):
    ws, _ = world
    anna = chat_of(ws, "+4915111111111")
    inbox.open_chat(anna)
    set_value(inbox.reply_box, "/danke")
    assert inbox.reply_box.value == "Danke, Anna Müller! 🌻"
    click(inbox.send_btn)
    assert inbox.status.kind == "ok", inbox.status.text
    messages = ws.chats.open(anna).messages
    last = messages.iloc[-1]
    assert (last["direction"], last["body"]) == ("out", "Danke, Anna Müller! 🌻")
    assert last["status"] in ("sent", "delivered", "read", "failed")
    assert inbox.reply_box.value == ""
    # the simulated platform decides the outcome (free text fails now and then, as on
    # WhatsApp); the tick shown is the stored status's
    assert f"title='{last['status']}'" in inbox.conversation.value.rsplit("bizchat-out", 1)[1]
    assert ws.chats.open(anna).chat["unread"] == 0   # answering reads the chat
    audit = ws.sql("SELECT actor, action FROM audit_log WHERE action LIKE 'inbox.%'")
    assert audit.values.tolist() == [["notebook", "inbox.text"]]


def test_a_closed_window_refuses_free_text_inline_and_keeps_it(world, inbox):
    ws, _ = world
    ben = chat_of(ws, "+4915122222222")
    inbox.open_chat(ben)
    set_value(inbox.reply_box, 'Ja, "Gutscheine" 🎁')
    inbox.send()   # the button is hidden, but the rule is the service's
    assert inbox.status.kind == "error" and "24-hour window" in inbox.status.text
    assert inbox.reply_box.value == 'Ja, "Gutscheine" 🎁'   # nothing lost
    assert len(ws.chats.open(ben).messages) == 1


def test_templates_outside_the_window_respect_consent(world, inbox):
    ws, _ = world
    ben = chat_of(ws, "+4915122222222")
    inbox.open_chat(ben)
    set_value(inbox.template_pick, int(ws.templates.get(ACCOUNT, "wieder_da")["template_id"]))
    click(inbox.template_btn)
    assert inbox.status.kind == "ok", inbox.status.text
    last = ws.chats.open(ben).messages.iloc[-1]
    assert (last["kind"], last["body"]) == ("template", 'Hallo Ben "the Boss" O\'Neil, Ihr Buch ist da.')
    ws.consent.opt_out(ws.contacts.get(ACCOUNT, "+4915122222222")["contact_id"], source="chat")
    set_value(inbox.template_pick, int(ws.templates.get(ACCOUNT, "rabatt")["template_id"]))
    click(inbox.template_btn)
    assert inbox.status.kind == "error" and "opted out" in inbox.status.text
    assert len(ws.chats.open(ben).messages) == 2


def test_label_and_mark_read(world, inbox):
    ws, _ = world
    anna = chat_of(ws, "+4915111111111")
    inbox.open_chat(anna)
    set_value(inbox.label_pick, "VIP")
    click(inbox.label_btn)
    assert ws.labels.chats(ACCOUNT, any_of=["VIP"])["chat_id"].tolist() == [anna]
    assert "[VIP]" in inbox.chat_list.options[0][0] and "VIP" in inbox.header.value
    click(inbox.read_btn)
    assert ws.chats.open(anna).chat["unread"] == 0
    line = dict((v, t) for t, v in inbox.chat_list.options)[anna]
    assert line.startswith("Anna Müller") and inbox.chat_list.options[0][0].startswith("● 1  Ben")
    click(inbox.unlabel_btn)
    assert ws.labels.chats(ACCOUNT, any_of=["VIP"]).empty


def test_refresh_shows_what_arrived_meanwhile(world, inbox):
    ws, _ = world
    anna = chat_of(ws, "+4915111111111")
    inbox.open_chat(anna)
    inbound(ws, "4915111111111", "Und noch eine Frage 🙂", hours_ago(0.01), "wamid.tiny.2")
    assert "noch eine Frage" not in inbox.conversation.value
    click(inbox.refresh_btn)
    assert "noch eine Frage" in inbox.conversation.value
    assert inbox.chat_list.options[0][0].startswith("● 2  Anna")


@pytest.mark.slow
def test_the_timer_refreshes_by_itself(world):
    ws, _ = world
    inbox = Inbox(ws, account=ACCOUNT, refresh_every=0.2)
    try:
        inbound(ws, "4915155555555", "Hallo?", hours_ago(0.01), "wamid.new.1")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(inbox.chat_list.options) < 3:
            time.sleep(0.1)
        assert len(inbox.chat_list.options) == 3
        assert inbox.chat_list.options[0][0].startswith("● 1  Kundin")   # its profile name
    finally:
        inbox.stop_timer()
        inbox.close()


def test_search_by_name_number_or_text(world, inbox):
    set_value(inbox.search, "gutschein")
    assert len(inbox.chat_list.options) == 1 and "Ben" in inbox.chat_list.options[0][0]
    set_value(inbox.search, "0151 1111")
    assert len(inbox.chat_list.options) == 1 and "Anna" in inbox.chat_list.options[0][0]


HOLD = "import duckdb, sys\ncon = duckdb.connect(sys.argv[1])\nprint('held', flush=True)\nsys.stdin.readline()\n"


@pytest.mark.slow
def test_a_held_workspace_is_an_inline_message_and_the_reply_stays(world, inbox):
    ws, _ = world
    anna = chat_of(ws, "+4915111111111")
    inbox.open_chat(anna)
    set_value(inbox.reply_box, "Bis gleich!")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(ws.path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        click(inbox.send_btn)
        assert inbox.status.kind == "error" and "busy" in inbox.status.text
        assert inbox.reply_box.value == "Bis gleich!" and "Traceback" not in texts(inbox)
    finally:
        holder.communicate("\n", timeout=10)
    click(inbox.send_btn)
    assert inbox.status.kind == "ok" and ws.chats.open(anna).messages.iloc[-1]["body"] == "Bis gleich!"


def test_an_imported_export_shows_days_media_and_deleted_lines(world, tmp_path):
    ws, _ = world
    (tmp_path / "chat.txt").write_text(
        "14.02.26, 09:58 - Jana: Guten Morgen!\n"
        "14.02.26, 10:05 - Jana: <Medien ausgeschlossen>\n"
        "15.02.26, 17:41 - Laden: Gern <3\n"
        "15.02.26, 17:42 - Jana: Diese Nachricht wurde gelöscht\n", encoding="utf-8")
    chat = ws.imports.chat_export(tmp_path / "chat.txt", ACCOUNT, contact_phone="+49 176 55501234",
                                  business_name="Laden").chat_id
    inbox = Inbox(ws, account=ACCOUNT)
    inbox.open_chat(chat)
    shown = inbox.conversation.value
    assert shown.count("bizchat-day") == 2 and "Sat 14 Feb 2026" in shown
    assert "[📎 Media]" in shown and "Medien ausgeschlossen" not in shown
    assert "This message was deleted" in shown and "Gern &lt;3" in shown


def test_window_text():
    from datetime import UTC, datetime

    from bizchat.widgets.inbox import window_text

    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert window_text(True, now + timedelta(hours=3, minutes=7), now) == "window open, 3 h 07 min left"
    assert window_text(False, now - timedelta(hours=1), now) == "window closed: templates only"
