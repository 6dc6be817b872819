"""Campaigns: templates, audiences, planning, broadcasts, the outbox and its transports."""
