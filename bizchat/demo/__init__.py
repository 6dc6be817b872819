"""The demo workspace: a year of a publisher on WhatsApp Business (``build``).

The parts: ``build`` (the generator and its stages), ``clock`` (the scenario's fixed
time and Berlin's hours), ``content`` (the words), ``campaigns`` and ``chats`` (what
happened), ``write`` (Arrow tables into the workspace).
"""

from .build import LIVE_CAMPAIGNS, STAGES, build, format_summary, next_steps

__all__ = ["LIVE_CAMPAIGNS", "STAGES", "build", "format_summary", "next_steps"]
