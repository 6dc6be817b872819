"""Paging and tables: show one page of a long result, escaped.

The widget asks its service for one page (``limit``/``offset``) and the total count, so
20,000 contacts never travel to the browser at once. ``html_table`` renders a small
DataFrame with every cell escaped (names with quotes, emoji or markup are shown as typed).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping

import ipywidgets as w
import pandas as pd


class Pager(w.HBox):
    """Previous / next buttons and "51–100 of 20,000"; ``on_change`` is called with the
    new offset when the page changes."""

    def __init__(self, page_size: int = 50, **kwargs):
        self.page_size = page_size
        self.offset = 0
        self.total = 0
        self.prev = w.Button(description="‹ Previous", layout=w.Layout(width="auto"))
        self.next = w.Button(description="Next ›", layout=w.Layout(width="auto"))
        self.label = w.Label()
        super().__init__([self.prev, self.label, self.next], **kwargs)
        self._listeners: list[Callable[[int], object]] = []
        self.prev.on_click(lambda _: self.go(self.offset - self.page_size))
        self.next.on_click(lambda _: self.go(self.offset + self.page_size))
        self.set_total(0)

    def on_change(self, callback: Callable[[int], object]) -> None:
        self._listeners.append(callback)

    def go(self, offset: int) -> None:
        """Move to the page starting at ``offset`` (clamped) and tell the listeners."""
        last = max(0, (self.total - 1) // self.page_size * self.page_size)
        offset = min(max(0, offset), last)
        if offset == self.offset:
            return
        self.offset = offset
        self._update()
        for callback in self._listeners:
            callback(offset)

    def reset(self) -> None:
        """Back to the first page without telling the listeners (a new filter)."""
        self.offset = 0
        self._update()

    def set_total(self, total: int) -> None:
        self.total = int(total)
        if self.offset >= max(self.total, 1):
            self.offset = 0
        self._update()

    def _update(self) -> None:
        if self.total == 0:
            self.label.value = "none"
        else:
            end = min(self.offset + self.page_size, self.total)
            self.label.value = f"{self.offset + 1:,}–{end:,} of {self.total:,}"
        self.prev.disabled = self.offset == 0
        self.next.disabled = self.offset + self.page_size >= self.total


def html_table(frame: pd.DataFrame, columns: Mapping[str, str] | None = None, *,
               formatters: Mapping[str, Callable[[object], str]] | None = None,
               empty: str = "Nothing to show.") -> str:
    """An HTML table of ``frame`` (``columns``: column -> header). Cells are escaped;
    a formatter returns ready HTML and must escape what it embeds itself."""
    columns = dict(columns or {c: c for c in frame.columns})
    formatters = formatters or {}
    if frame.empty:
        return f"<i>{html.escape(empty)}</i>"
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{html.escape(h)}</th>"
                   for h in columns.values())
    body = []
    for row in frame.to_dict("records"):
        cells = []
        for col in columns:
            value = row.get(col)
            text = formatters[col](value) if col in formatters else html.escape(plain(value))
            cells.append(f"<td style='padding:2px 8px'>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<table class='bizchat-table'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def plain(value) -> str:
    """A cell as text: missing values empty, lists joined."""
    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, list | tuple) or hasattr(value, "tolist"):
        items = value.tolist() if hasattr(value, "tolist") else value
        if isinstance(items, list):
            return ", ".join(str(x) for x in items)
    if value is pd.NA:
        return ""
    return str(value)


__all__ = ["Pager", "html_table", "plain"]
