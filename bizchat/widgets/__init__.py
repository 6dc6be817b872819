"""Widgets: the JupyterLab (and Voilà) workbench, one module per widget.

Each widget is a class that takes the Workspace (``LabelManager(ws, account=...)``,
``Inbox(ws, account=...)`` ...), displays itself, and calls only Workspace methods. The
shared pieces: ``base.Workbench`` (status line, ``act`` for one service call with a busy
note), ``feedback`` (errors as one sentence), ``confirm.Confirm`` (destructive actions),
``paging`` (pages and escaped tables), ``progress.ProgressBar``.
"""

from __future__ import annotations

from .base import Workbench, resolve_account
from .confirm import Confirm
from .feedback import StatusLine, error_sentence
from .paging import Pager, html_table
from .progress import ProgressBar

__all__ = ["Confirm", "Pager", "ProgressBar", "StatusLine", "Workbench", "error_sentence",
           "html_table", "resolve_account"]


# widget class -> module; the colleague's widgets are named here already, so adding
# their modules needs no edit of this file.
WIDGETS = {"LabelManager": "label_manager", "Inbox": "inbox",
           "BroadcastComposer": "broadcast_composer", "Dashboard": "dashboard"}


def __getattr__(name: str):
    """The widgets themselves load on first use (``from bizchat.widgets import Inbox``)."""
    if name in WIDGETS:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{WIDGETS[name]}"), name)
    raise AttributeError(f"module 'bizchat.widgets' has no attribute {name!r}")
