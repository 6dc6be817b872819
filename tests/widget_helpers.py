"""Driving widgets without a browser: a small world, values set, buttons clicked.

``tiny_world(ws)`` adds one account with a handful of contacts (names with quotes and
emoji among them), two labels, consent and one chat; tests then set widget values and
call ``click`` like a user would, and assert what changed in the workspace and on screen.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import ipywidgets as w

ACCOUNT = "+49 30 23125480"
PNID = "109876543210"
PEOPLE = [   # (number, name, language)
    ("+49 151 11111111", "Anna Müller", "de"),
    ("+49 151 22222222", 'Ben "the Boss" O\'Neil', "en"),
    ("+49 151 33333333", "Çağla 🌻 Yılmaz", "de"),
    ("+43 660 4444444", "<b>Dora</b>", "de-AT"),
    ("+49 151 55555555", None, None),
]


def tiny_world(ws) -> dict:
    """One account, five contacts (two labelled VIP, one Newsletter, two opted in),
    one chat (Anna's) with an inbound message an hour ago. Returns the ids by name."""
    acc = ws.accounts.add(ACCOUNT, "Buchladen Kreuzberg", phone_number_id=PNID)
    ids = {}
    for phone, name, language in PEOPLE:
        c = ws.contacts.add(ACCOUNT, phone, name=name, language=language)
        ids[name or phone] = c["contact_id"]
    ws.labels.create(ACCOUNT, "VIP", color=1)
    ws.labels.create(ACCOUNT, "Newsletter", color=2)
    ws.labels.assign(ACCOUNT, "VIP", [PEOPLE[0][0], PEOPLE[1][0]])
    ws.labels.assign(ACCOUNT, "Newsletter", [PEOPLE[2][0]])
    ws.consent.opt_in(ids["Anna Müller"], source="in_store", evidence="Signed form 2026-01-02")
    ws.consent.opt_in(ids[PEOPLE[1][1]], source="double_opt_in_form", evidence="DOI mail")
    inbound(ws, "4915111111111", "Haben Sie das neue Buch?", hours_ago(1), "wamid.tiny.1")
    return {"account": acc, "contacts": ids}


def inbound(ws, wa_id: str, text: str, at: datetime, message_id: str) -> None:
    """A customer's text message arriving through the webhook ingest path."""
    from webhook_samples import dumps, text_message

    ws.webhooks.ingest([dumps(text_message(wa_id, message_id, text, int(at.timestamp()),
                                           pnid=PNID, display=ACCOUNT))])


def click(button: w.Button) -> None:
    """Press a button as the browser would (its on_click handlers run)."""
    assert not button.disabled, f"button {button.description!r} is disabled"
    button.click()


def set_value(widget: w.Widget, value) -> None:
    """Type or pick a value (observers run, as when a user changes it)."""
    widget.value = value


def texts(widget: w.Widget) -> str:
    """All the text a widget shows (HTML values, labels, descriptions), for assertions."""
    parts = []

    def walk(x):
        for attr in ("value", "description", "placeholder"):
            v = getattr(x, attr, None)
            if isinstance(v, str):
                parts.append(v)
        if isinstance(x, w.Select | w.SelectMultiple | w.Dropdown | w.ToggleButtons):
            parts.extend(str(o[0] if isinstance(o, tuple) else o) for o in x.options)
        for child in getattr(x, "children", ()) or ():
            walk(child)

    walk(widget)
    return "\n".join(parts)


def hours_ago(n: float) -> datetime:
    return datetime.now(UTC) - timedelta(hours=n)
