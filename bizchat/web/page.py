"""One web page: the workbench widget it shows, built for the web app's kernel.

A page notebook runs ``show("Inbox")``: the workspace comes from ``$BIZCHAT_WORKSPACE``
(set by ``bizchat web``), the widget acts as ``web`` in the audit log. Opening the
workspace can fail (busy with an import, missing); the page then shows that as one
sentence, as the widgets do, never a traceback.
"""

from __future__ import annotations

import os

# page notebook -> (widget class, title); the start page links them in this order.
PAGES = {
    "inbox": ("Inbox", "Inbox"),
    "composer": ("BroadcastComposer", "Broadcast composer"),
    "labels": ("LabelManager", "Labels and contacts"),
    "dashboard": ("Dashboard", "Dashboard"),
}


def show(widget: str, **options):
    """The widget ``widget`` (a name in ``bizchat.widgets.WIDGETS``) on the workspace at
    ``$BIZCHAT_WORKSPACE``, acting as ``web``; a status line with the reason when the
    workspace cannot be opened."""
    from .. import widgets
    from ..widgets import StatusLine
    from ..workspace import open as open_workspace

    if widget not in widgets.WIDGETS:
        raise ValueError(f"no widget {widget!r}; known: {', '.join(sorted(widgets.WIDGETS))}")
    try:
        # create=False: a mistyped path must not become an empty workspace
        ws = open_workspace(os.environ.get("BIZCHAT_WORKSPACE") or None, create=False,
                            timeout=float(os.environ.get("BIZCHAT_WEB_TIMEOUT") or 30.0))
    except Exception as exc:   # noqa: BLE001 - shown as one sentence, like the widgets do
        status = StatusLine()
        status.error(exc)
        return status
    return getattr(widgets, widget)(ws, actor="web", **options)
