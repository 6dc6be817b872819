"""Progress for long actions inside a widget: a bar, a count and a sentence.

Long work (a send to thousands, an import) reports through ``update(done, total)``; the
bar is hidden when idle. In the CLI the same work shows tqdm bars; here a widget's own
bar, since tqdm output in a widget callback lands in the log, not next to the button.
"""

from __future__ import annotations

import ipywidgets as w


class ProgressBar(w.HBox):
    """``start(total, text)``, ``update(done)``, ``finish(text)``; hidden until started."""

    def __init__(self, **kwargs):
        self.bar = w.IntProgress(min=0, max=1, value=0)
        self.label = w.Label()
        super().__init__([self.bar, self.label], **kwargs)
        self.layout.display = "none"
        self.text = ""

    def start(self, total: int, text: str = "") -> None:
        self.bar.max = max(int(total), 1)
        self.bar.value = 0
        self.text = text
        self.label.value = f"{text} 0 of {int(total):,}".strip()
        self.layout.display = "flex"

    def update(self, done: int, total: int | None = None) -> None:
        if total is not None:
            self.bar.max = max(int(total), 1)
        self.bar.value = min(int(done), self.bar.max)
        self.label.value = f"{self.text} {int(done):,} of {self.bar.max:,}".strip()

    def finish(self, text: str = "") -> None:
        self.bar.value = self.bar.max
        self.label.value = text
        if not text:
            self.layout.display = "none"


__all__ = ["ProgressBar"]
