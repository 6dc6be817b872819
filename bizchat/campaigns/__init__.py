"""Campaigns: templates, audiences, planning, broadcasts, the outbox and its transports."""

from . import settlement  # noqa: F401, E402 - registers the receipt listener (ingest.hooks)
