"""The workbench widget: what every bizchat widget is built on.

A widget is an ``ipywidgets.VBox`` holding a Workspace (never a connection: each action
calls one Workspace method, which connects and closes, so the webhook receiver keeps
ingesting while the widget is on screen), a status line and ``act``: run one service
call with the controls disabled and a busy note, then show the result or the error as one
sentence. Only ipywidgets, so the same classes work in JupyterLab, Voilà and headless
tests (set ``.value``, call ``.click()``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TypeVar

import ipywidgets as w

from .feedback import StatusLine

T = TypeVar("T")

# Shown while another process (the webhook receiver's ingest, a send, a report) holds the
# file and the action waits its turn; after the workspace's timeout it becomes an error.
BUSY_RETRYING = "The workspace is busy (another process is writing); retrying…"


def resolve_account(ws, account) -> dict:
    """The account a widget works on: ``account`` in any written form, or the workspace's
    only (else first) account when None. Raises the service's NotFound / InvalidValue."""
    from ..errors import NotFound

    if account is not None:
        return ws.accounts.get(account)
    accounts = ws.accounts.list()
    if accounts.empty:
        raise NotFound("The workspace has no account yet. Add one with `bizchat accounts add "
                       "PHONE --name NAME` (or build the demo with `make demo`).")
    return ws.accounts.get(int(accounts["account_id"].iloc[0]))


class Workbench(w.VBox):
    """Base class: ``ws``, ``status`` (a StatusLine) and ``act`` for service calls.
    ``actor`` names who acts in the audit log where a service records one (``notebook``;
    the web app passes ``web``)."""

    def __init__(self, ws, *, actor: str = "notebook", **kwargs):
        super().__init__(**kwargs)
        self.ws = ws
        self.actor = actor
        self.status = StatusLine()
        self.busy = False
        self._acting = threading.Lock()   # a timer thread and a click never act at once
        self.add_class("bizchat-widget")

    def controls(self) -> Iterable[w.Widget]:
        """Widgets to disable while an action runs (default: every button found)."""
        return [c for c in _walk(self) if isinstance(c, w.Button)]

    def act(self, action: Callable[[], T], *, busy: str = "Working…",
            done: Callable[[T], str | None] | None = None) -> T | None:
        """Run ``action`` (one Workspace call) with the controls disabled and ``busy``
        shown; then ``done(result)`` updates the view and may return a sentence to show.

        A BizchatError (WorkspaceBusy included) or any other exception is shown on the
        status line as one sentence and None is returned: nothing stored is lost, since
        each service call is one transaction.
        """
        if not self._acting.acquire(blocking=False):   # a second click while the first runs
            return None
        disabled = [c for c in self.controls() if not c.disabled]
        for c in disabled:
            c.disabled = True
        self.busy = True
        self.status.busy(busy)
        try:
            with self.ws.while_busy(lambda: self.status.busy(BUSY_RETRYING)):
                result = action()
            message = done(result) if done else None
        except Exception as exc:   # noqa: BLE001 - shown as one sentence, logged if a defect
            self.status.error(exc)
            return None
        finally:
            self.busy = False
            for c in disabled:
                c.disabled = False
            self._acting.release()
        if message:
            self.status.ok(message)
        elif self.status.kind == "busy":
            self.status.clear()
        return result

    def open_account(self, account) -> dict | None:
        """The widget's account (see ``resolve_account``); on an error (no such account, a
        busy workspace) the widget shows only its status line with the sentence, and None
        is returned: a widget never fails with a traceback while it is being built."""
        try:
            return resolve_account(self.ws, account)
        except Exception as exc:   # noqa: BLE001 - shown as one sentence
            self.status.error(exc)
            self.children = [self.status]
            return None

    def show_error(self, exc: BaseException | str) -> None:
        self.status.error(exc)


def _walk(widget: w.Widget) -> Iterable[w.Widget]:
    yield widget
    for child in getattr(widget, "children", ()) or ():
        yield from _walk(child)


def button(description: str, *, style: str = "", icon: str = "", tooltip: str = "",
           width: str | None = None) -> w.Button:
    """A button in the workbench's look (``style``: primary, danger, success, warning)."""
    b = w.Button(description=description, button_style=style, icon=icon,
                 tooltip=tooltip or description)
    if width:
        b.layout.width = width
    return b


__all__ = ["Workbench", "button", "resolve_account"]

