"""The web app (a surface): the workbench widgets as token-protected browser pages.

``bizchat web`` serves the notebooks in ``pages/`` with Voilà, code hidden: a start page
linking the inbox, the broadcast composer, the label manager and the dashboard. Each page
is one cell, ``show("Inbox")``, that builds the widget of issue 17 with ``actor="web"``
against the workspace named by ``$BIZCHAT_WORKSPACE`` (the server sets it for its kernels;
the token never reaches them). ``server`` builds the Voilà configuration (token, kernel cap,
culling) and runs it; ``kernels`` caps concurrent kernels; ``page`` is what a page runs.
"""

from __future__ import annotations

from .page import PAGES, show

__all__ = ["PAGES", "show"]
