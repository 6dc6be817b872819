"""Feedback lines: what a widget tells its user after an action, as one sentence.

A service error (``BizchatError``: a duplicate label name, the 21st label, a closed
window, ``WorkspaceBusy``) is shown as its message, which already says what to do.
Anything else is a defect: the user sees one line naming it, the traceback goes to the
``bizchat.widgets`` logger, never onto the page.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path

import ipywidgets as w

from ..errors import BizchatError, WorkspaceBusy

log = logging.getLogger("bizchat.widgets")

# kind -> (icon, colour); colours readable on light and dark themes
_STYLES = {
    "error": ("⚠", "#b3261e"),
    "busy": ("⏳", "#555555"),
    "ok": ("✓", "#1b7f3b"),
    "info": ("", "#555555"),
}


def error_sentence(exc: BaseException) -> str:
    """The one sentence a user sees for ``exc``: the service's own message, first line."""
    if isinstance(exc, WorkspaceBusy):
        # The service's text advises Python callers (a timeout argument); here the user
        # can only wait and click again.
        name = Path(str(getattr(exc, "path", "") or "")).name or "the workspace"
        return (f"The workspace is busy: another process (an import, a send or a report) is "
                f"writing to {name}. Nothing was changed; try again in a moment.")
    if isinstance(exc, BizchatError):
        return _first_line(str(exc)) or type(exc).__name__
    log.error("unexpected error in a widget action", exc_info=exc)
    detail = _first_line(str(exc))
    return (f"Unexpected error ({type(exc).__name__}{': ' + detail if detail else ''}). "
            "Nothing more was done; the details are in the log.")


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


class StatusLine(w.HTML):
    """One line under a widget's controls: an error, a busy note, a result.

    ``kind`` and ``text`` hold what is shown (tests read them); the HTML is escaped, so a
    label name with quotes, emoji or markup is shown as typed.
    """

    def __init__(self, **kwargs):
        super().__init__(value="", **kwargs)
        self.kind = ""
        self.text = ""
        self.add_class("bizchat-status")

    def show(self, kind: str, text: str) -> None:
        icon, colour = _STYLES.get(kind, _STYLES["info"])
        self.kind, self.text = kind, text
        shown = html.escape(text)
        self.value = (f'<span style="color:{colour}" data-kind="{kind}">'
                      f'{icon + " " if icon else ""}{shown}</span>') if text else ""

    def error(self, exc: BaseException | str) -> None:
        self.show("error", exc if isinstance(exc, str) else error_sentence(exc))

    def ok(self, text: str) -> None:
        self.show("ok", text)

    def info(self, text: str) -> None:
        self.show("info", text)

    def busy(self, text: str = "Working…") -> None:
        self.show("busy", text)

    def clear(self) -> None:
        self.show("info", "")


__all__ = ["StatusLine", "error_sentence"]
