"""The inbox: an account's chats and one conversation, answered from the notebook.

``Inbox(ws, account=...)`` lists the chats, unread first, with label chips, the last
message and the 24-hour window (time left, or closed); a search box filters them. The
open chat shows its messages with date separators, media placeholders, system lines and
receipts as ticks (✓ sent, ✓✓ delivered, blue ✓✓ read, ✗ failed). The reply box takes
quick replies (type ``/shortcut`` or pick one) and free text while the window is open;
when it is closed only the template picker sends. A chat can be labelled and marked
read; Refresh (or the timer) shows what the webhook receiver stored meanwhile. Every
action is one Workspace method (``ws.chats``, ``ws.conversations``, ``ws.labels``,
``ws.replies``, ``ws.templates``).
"""

from __future__ import annotations

import html
import re
import threading
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import ipywidgets as w
import pandas as pd

from .base import Workbench, button
from .paging import plain

TICKS = {"sent": ("✓", "#8696a0"), "delivered": ("✓✓", "#8696a0"),
         "read": ("✓✓", "#53bdeb"), "failed": ("✗", "#b3261e")}
MEDIA = {"image": "📷 Photo", "video": "🎥 Video", "audio": "🎤 Voice message",
         "document": "📄 Document", "sticker": "Sticker", "location": "📍 Location",
         "contacts": "👤 Contact card", "media": "📎 Media"}
SYSTEM_KINDS = {"system": "", "deleted": "🚫 This message was deleted",
                "unsupported": "A message WhatsApp could not show here",
                "reaction": "Reaction"}
_SHORTCUT = re.compile(r"^/(\S+)$")


def window_text(open_: bool, until, now: datetime) -> str:
    """'open, 3 h 12 min left' or 'closed'."""
    if not open_ or until is None or pd.isna(until):
        return "window closed: templates only"
    left = pd.Timestamp(until).to_pydatetime() - now
    minutes = max(int(left.total_seconds() // 60), 0)
    return f"window open, {minutes // 60} h {minutes % 60:02d} min left"


def chip(name: str, colour: str = "#e0e0e0") -> str:
    return (f"<span style='background:{colour};border-radius:8px;padding:0 6px;margin-right:3px;"
            f"font-size:85%'>{html.escape(name)}</span>")


def tick(status) -> str:
    mark, colour = TICKS.get(plain(status), ("🕓", "#8696a0"))
    return f"<span title='{html.escape(plain(status) or 'pending')}' style='color:{colour}'>{mark}</span>"


def message_html(row: dict, zone: ZoneInfo) -> str:
    """One message as a bubble (or a centred system line); every text escaped."""
    local = pd.Timestamp(row["created_at"]).tz_convert(zone)
    kind = plain(row.get("kind")) or "text"
    body = html.escape(plain(row.get("body")))
    if kind in SYSTEM_KINDS:
        text = html.escape(SYSTEM_KINDS[kind]) + (" " if SYSTEM_KINDS[kind] and body else "")
        if kind != "deleted":
            text += body
        return (f"<div class='bizchat-system' style='text-align:center;color:#667781;"
                f"font-style:italic;margin:4px'>{text or html.escape(kind)}</div>")
    if kind in MEDIA:
        # an export's "<Media omitted>" says no more than the placeholder does
        caption = "" if re.fullmatch(r"&lt;[^&]*&gt;", body) else body
        body = f"<i>[{MEDIA[kind]}]</i>" + (f" {caption}" if caption else "")
    elif kind == "template":
        body = (f"<span style='color:#667781;font-size:85%'>template "
                f"{html.escape(plain(row.get('template_name')))}</span><br>{body}")
    out = row.get("direction") == "out"
    foot = local.strftime("%H:%M") + (" " + tick(row.get("status")) if out else "")
    if out and row.get("automatic") is True:
        foot = "automatic · " + foot
    side = "flex-end" if out else "flex-start"
    colour = "#d9fdd3" if out else "#ffffff"
    return (f"<div style='display:flex;justify-content:{side};margin:2px 0'>"
            f"<div class='bizchat-msg bizchat-{'out' if out else 'in'}' "
            f"style='background:{colour};border:1px solid #e9edef;border-radius:8px;"
            f"padding:4px 8px;max-width:70%;white-space:pre-wrap'>{body}"
            f"<div style='text-align:right;font-size:75%;color:#667781'>{foot}</div></div></div>")


def conversation_html(messages: pd.DataFrame, zone: ZoneInfo, more: bool) -> str:
    parts = []
    if more:
        parts.append("<div style='text-align:center;color:#667781'>(older messages not shown)</div>")
    day = None
    for row in messages.to_dict("records"):
        local_day = pd.Timestamp(row["created_at"]).tz_convert(zone).date()
        if local_day != day:
            day = local_day
            parts.append(f"<div class='bizchat-day' style='text-align:center;margin:8px 0'>"
                         f"{chip(local_day.strftime('%a %d %b %Y'))}</div>")
        parts.append(message_html(row, zone))
    if not parts:
        parts.append("<i>No messages yet.</i>")
    # column-reverse: the scroll box opens at its end, on the latest message, as chat
    # apps do (an HTML widget cannot run script to scroll)
    return ("<div class='bizchat-conversation' style='background:#efeae2;padding:8px;"
            "max-height:420px;overflow-y:auto;display:flex;flex-direction:column-reverse'>"
            "<div>" + "".join(parts) + "</div></div>")


class Inbox(Workbench):
    """The chats of one account and the open conversation, with replies."""

    def __init__(self, ws, account=None, *, refresh_every: float | None = None,
                 transport=None, limit: int = 200, actor: str = "notebook"):
        super().__init__(ws, actor=actor)
        self._timer: threading.Thread | None = None
        self._stop = threading.Event()
        found = self.open_account(account)
        if found is None:
            return
        self.account = found
        self.account_ref = found["account_id"]
        self.zone = ZoneInfo(found.get("timezone") or "UTC")
        self.transport = transport
        self.limit = limit
        self.chats = pd.DataFrame()
        self.view = None
        self.chat_id: int | None = None
        self._colours: dict[str, str] = {}
        self._replies: dict[str, str] = {}

        self.search = w.Text(placeholder="search name, number or text", continuous_update=False)
        self.refresh_btn = button("Refresh", icon="refresh")
        self.auto = w.Checkbox(description="refresh every 10 s", value=False, indent=False)
        self.interval = float(refresh_every or 10.0)
        self.auto.description = f"refresh every {self.interval:g} s"
        self.chat_list = w.Select(options=[], rows=18, layout=w.Layout(width="340px"))
        self.header = w.HTML()
        self.conversation = w.HTML()
        self.quick = w.Dropdown(description="Quick reply", options=[])
        self.reply_box = w.Textarea(placeholder="Type a reply, or /shortcut for a quick reply",
                                    layout=w.Layout(width="100%", height="70px"))
        self.send_btn = button("Send", style="primary", icon="paper-plane")
        self.template_pick = w.Dropdown(description="Template", options=[])
        self.template_btn = button("Send template", icon="file-text")
        self.label_pick = w.Dropdown(description="Label", options=[])
        self.label_btn = button("Label chat", icon="tag")
        self.unlabel_btn = button("Remove label", icon="times")
        self.read_btn = button("Mark read", icon="check")
        self.reply_row = w.VBox([w.HBox([self.quick]), self.reply_box, self.send_btn])
        self.template_row = w.HBox([self.template_pick, self.template_btn])
        self.chat_panel = w.VBox([
            self.header, self.conversation, self.reply_row, self.template_row,
            w.HBox([self.label_pick, self.label_btn, self.unlabel_btn, self.read_btn]),
            self.status],   # the same line again next to the reply buttons
            layout=w.Layout(flex="1", display="none"))
        self.children = [
            w.HTML(f"<h3>Inbox of {html.escape(found['display_name'] or '')} "
                   f"({html.escape(found['phone_e164'])})</h3>"),
            w.HBox([self.search, self.refresh_btn, self.auto]),
            self.status,
            w.HBox([self.chat_list, self.chat_panel]),
        ]

        self.search.observe(lambda _: self.refresh(), "value")
        self.refresh_btn.on_click(lambda _: self.refresh())
        self.chat_list.observe(self._picked, "value")
        self.quick.observe(self._quick_picked, "value")
        self.reply_box.observe(self._typed, "value")
        self.send_btn.on_click(lambda _: self.send())
        self.template_btn.on_click(lambda _: self.send_template())
        self.label_btn.on_click(lambda _: self.label(add=True))
        self.unlabel_btn.on_click(lambda _: self.label(add=False))
        self.read_btn.on_click(lambda _: self.mark_read())
        self.auto.observe(lambda c: self.start_timer() if c["new"] else self.stop_timer(), "value")
        self.act(self._load_choices, busy="Loading…")
        self.refresh()
        if refresh_every:
            self.auto.value = True

    # --- lists ------------------------------------------------------------------------

    def _load_choices(self) -> None:
        labels = self.ws.labels.list(self.account_ref)
        self._colours = dict(zip(labels["name"], labels["hex"], strict=True))
        self.label_pick.options = labels["name"].tolist()
        self.label_pick.value = self.label_pick.options[0] if self.label_pick.options else None
        replies = self.ws.replies.list(self.account_ref)
        self._replies = {s.lstrip("/").lower(): t for s, t in
                         zip(replies["shortcut"], replies["text"], strict=True)}
        self.quick.options = [("", None)] + [
            (f"{s}  {t[:40]}", s) for s, t in zip(replies["shortcut"], replies["text"], strict=True)]
        templates = self.ws.templates.list(self.account_ref)
        self.template_pick.options = [
            (f"{r['name']} ({r['language']}, {r['category']})", int(r["template_id"]))
            for r in templates.to_dict("records")]
        if self.template_pick.options:
            self.template_pick.value = self.template_pick.options[0][1]

    def refresh(self) -> None:
        """Read the chats (and the open one) again: new messages from the receiver appear."""
        self.act(self._load, busy="Refreshing…")

    def _load(self) -> None:
        self.chats = self.ws.chats.inbox(self.account_ref, search=self.search.value or None,
                                         limit=self.limit)
        now = datetime.now(UTC)
        options = []
        for r in self.chats.to_dict("records"):
            unread = f"● {r['unread']}  " if r["unread"] else ""
            labels = "".join(f"[{n}]" for n in (r["labels"] if r["labels"] is not None else []))
            last = plain(r["last_body"]) or MEDIA.get(plain(r["last_kind"]), plain(r["last_kind"]))
            last = ("You: " if r["last_direction"] == "out" else "") + last.replace("\n", " ")
            state = "open" if r["window_open"] else "closed"
            if r["window_open"]:
                left = int((pd.Timestamp(r["window_until"]).to_pydatetime() - now).total_seconds() // 3600)
                state = f"{left} h left"
            name = plain(r["name"]) or plain(r["phone_e164"]) or f"chat {r['chat_id']}"
            options.append((f"{unread}{name} {labels} · {last[:40]} · {state}",
                            int(r["chat_id"])))
        keep = self.chat_id
        self.chat_list.options = options
        if keep is not None and keep in {v for _, v in options}:
            self.chat_list.value = keep
            self._load_chat(keep)

    # --- one chat ---------------------------------------------------------------------

    def _picked(self, change) -> None:
        if change["new"] is not None and change["new"] != self.chat_id:
            self.open_chat(change["new"])

    def open_chat(self, chat_id: int) -> None:
        """Show one chat (as when picked in the list)."""
        self.act(lambda: self._load_chat(int(chat_id)), busy="Opening…")

    def _load_chat(self, chat_id: int) -> None:
        view = self.ws.chats.open(chat_id)
        self.view, self.chat_id = view, chat_id
        chat = view.chat
        chips = "".join(chip(n, self._colours.get(n, "#e0e0e0")) for n in chat["labels"])
        window = window_text(chat["window_open"], chat["window_until"], datetime.now(UTC))
        self.header.value = (
            f"<b>{html.escape(chat['name'] or chat['phone_e164'] or '')}</b> "
            f"{html.escape(chat['phone_e164'] or '')} {chips}<br>"
            f"<span class='bizchat-window' style='color:{'#1b7f3b' if chat['window_open'] else '#b3261e'}'>"
            f"{html.escape(window)}</span>"
            + (f" · {chat['unread']} unread" if chat["unread"] else ""))
        self.conversation.value = conversation_html(view.messages, self.zone, view.more)
        self.reply_row.layout.display = "flex" if chat["window_open"] else "none"
        self.chat_panel.layout.display = "flex"

    @property
    def window_open(self) -> bool:
        return bool(self.view and self.view.chat["window_open"])

    # --- replying ---------------------------------------------------------------------

    def _typed(self, change) -> None:
        """``/shortcut`` typed alone becomes the quick reply's text, rendered for the contact."""
        match = _SHORTCUT.match((change["new"] or "").strip())
        if match and match.group(1).lower() in self._replies:
            self._insert(match.group(1))

    def _quick_picked(self, change) -> None:
        if change["new"]:
            self._insert(change["new"])
            self.quick.value = None

    def _insert(self, shortcut: str) -> None:
        if self.view is None:
            self.status.error("Open a chat first.")
            return
        contact = self.view.chat["contact_id"]
        text = self.act(lambda: self.ws.replies.render(shortcut, contact, account=self.account_ref),
                        busy="Inserting…")
        if text is not None:
            current = self.reply_box.value.strip()
            typed = "" if _SHORTCUT.match(current) else current
            self.reply_box.value = (typed + " " + text).strip() if typed else text

    def send(self) -> None:
        """Send the reply box's text (only while the window is open; the text stays in the
        box when sending fails)."""
        if self.view is None:
            self.status.error("Open a chat first.")
            return
        chat_id, text = self.view.chat["chat_id"], self.reply_box.value

        def done(sent):
            self.reply_box.value = ""
            self._load()
            return f"Sent ({sent['status']})."

        self.act(lambda: self.ws.conversations.reply(chat_id, text, transport=self.transport,
                                                             actor=self.actor),
                 busy="Sending…", done=done)

    def send_template(self) -> None:
        if self.view is None or self.template_pick.value is None:
            self.status.error("Open a chat and pick a template first.")
            return
        chat_id, template = self.view.chat["chat_id"], self.template_pick.value

        def done(sent):
            self._load()
            return f"Template sent ({sent['status']})."

        self.act(lambda: self.ws.conversations.send_template(chat_id, template,
                                                             transport=self.transport,
                                                             actor=self.actor),
                 busy="Sending…", done=done)

    def label(self, *, add: bool) -> None:
        if self.view is None or not self.label_pick.value:
            self.status.error("Open a chat and pick a label first.")
            return
        chat_id, name = self.view.chat["chat_id"], self.label_pick.value
        method = self.ws.labels.assign if add else self.ws.labels.unassign

        def done(result):
            self._load()
            return (f"Labelled the chat {name!r}." if add else f"Removed {name!r} from the chat.")

        self.act(lambda: method(self.account_ref, name, chats=[chat_id]), busy="Labelling…",
                 done=done)

    def mark_read(self) -> None:
        if self.view is None:
            self.status.error("Open a chat first.")
            return
        chat_id = self.view.chat["chat_id"]
        self.act(lambda: self.ws.chats.mark_read(chat_id), busy="Marking…",
                 done=lambda _: (self._load(), "Marked read.")[1])

    # --- the timer --------------------------------------------------------------------

    def start_timer(self) -> None:
        """Refresh every ``interval`` seconds until ``stop_timer`` (or the box unticked)."""
        if self._timer is not None and self._timer.is_alive():
            return
        self._stop.clear()

        def loop():
            while not self._stop.wait(self.interval):
                if not self.busy:
                    self.refresh()

        self._timer = threading.Thread(target=loop, name="bizchat-inbox-refresh", daemon=True)
        self._timer.start()

    def stop_timer(self) -> None:
        self._stop.set()
        if self.auto.value:
            self.auto.value = False
        timer = self._timer
        if timer is not None and timer is not threading.current_thread():
            timer.join(timeout=10)

    def close(self) -> None:
        self.stop_timer() if hasattr(self, "auto") else self._stop.set()
        super().close()


__all__ = ["Inbox", "conversation_html", "message_html", "window_text"]
