"""Confirmation for destructive actions: a sentence and two buttons, inline.

A delete or merge first says what it will do and how many contacts it touches
("Delete the label 'VIP'? It is on 1,204 contacts and 3 chats."); only "Yes" runs it.
Inline rather than a dialog, so it works the same in JupyterLab, Voilà and tests.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import ipywidgets as w


class Confirm(w.HBox):
    """Hidden until ``ask``; ``yes.click()`` runs the pending action once, ``no`` drops it."""

    def __init__(self, **kwargs) -> None:
        self.question = w.HTML()
        self.yes = w.Button(description="Yes", button_style="danger")
        self.no = w.Button(description="Cancel")
        super().__init__([self.question, self.yes, self.no], **kwargs)
        self.layout.display = "none"
        self.text = ""
        self._pending: Callable[[], object] | None = None
        self.yes.on_click(lambda _: self._answer(True))
        self.no.on_click(lambda _: self._answer(False))
        self.add_class("bizchat-confirm")

    @property
    def pending(self) -> bool:
        return self._pending is not None

    def ask(self, question: str, on_yes: Callable[[], object], *, yes: str = "Yes") -> None:
        """Show ``question`` (plain text, escaped) and wait for an answer."""
        self.text = question
        self.question.value = f"<b>{html.escape(question)}</b>"
        self.yes.description = yes
        self._pending = on_yes
        self.layout.display = "flex"

    def _answer(self, agreed: bool) -> None:
        action, self._pending = self._pending, None
        self.layout.display = "none"
        self.text = ""
        if agreed and action is not None:
            action()


__all__ = ["Confirm"]
