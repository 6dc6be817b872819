"""Timed work in one place (``ws.schedule``): scheduled reports and lake exports from
``schedule.toml`` and the broadcasts scheduled in the workspace.

``run_due`` is one pass (cron calls it every few minutes: ``bizchat schedule run-due``);
``serve`` stays up and makes the same pass on time. ``config`` reads the schedule file,
``slots`` does the cron arithmetic across DST, ``runner`` claims and runs, ``delivery``
mails the HTML.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from ..campaigns import clock
from . import config, runner
from .config import Entry, load
from .runner import Pass
from .slots import next_slot

__all__ = ["Entry", "Pass", "Schedule", "load"]
log = logging.getLogger("bizchat.scheduling")


class Schedule:
    """Scheduled reports and broadcasts of one workspace (``ws.schedule``)."""

    def __init__(self, ws):
        self.ws = ws

    def path(self, schedule_file=None) -> Path:
        """The schedule file: ``schedule_file``, else ``schedule.toml`` beside the workspace."""
        return Path(schedule_file) if schedule_file else config.default_path(self.ws)

    def entries(self, schedule_file=None) -> list[Entry]:
        """The scheduled reports of the schedule file (none when it does not exist)."""
        return load(self.path(schedule_file))

    def list(self, schedule_file=None, *, now=None) -> pd.DataFrame:
        """Every scheduled report and scheduled broadcast with its next time: kind, name,
        what (notebook or template), cron, timezone, next_run (local), last_slot,
        last_status, catch_up, mail_to."""
        current = clock.now(now)
        with self.ws.connect(read_only=True) as con:
            last = {r[0]: (r[1], r[2]) for r in con.execute("""
                SELECT entry, max(slot), arg_max(status, slot) FROM schedule_slots
                GROUP BY entry""").fetchall()}
            sent = con.execute("""
                SELECT b.broadcast_id, b.name, b.template, b.scheduled_for, a.timezone
                FROM broadcasts b JOIN accounts a USING (account_id)
                WHERE b.status = 'scheduled' ORDER BY b.scheduled_for, b.broadcast_id""").fetchall()
        rows: list[tuple] = []
        for e in self.entries(schedule_file):
            slot, status = last.get(e.name, (None, None))
            rows.append((e.kind, e.name, str(e.out) if e.kind == "lake_export" else e.notebook,
                         e.cron, e.timezone,
                         next_slot(e.cron, e.zone, current).astimezone(e.zone),
                         slot.astimezone(e.zone) if slot is not None else None, status,
                         e.catch_up, ", ".join(e.mail_to)))
        for bid, name, template, at, zone in sent:
            zone = zone or "UTC"
            rows.append(("broadcast", f"{bid}: {name}", template, None, zone,
                         pd.Timestamp(at).tz_convert(zone) if at is not None else None,
                         None, "scheduled", None, None))
        return pd.DataFrame(rows, columns=["kind", "name", "what", "cron", "timezone", "next_run",
                                           "last_slot", "last_status", "catch_up", "mail_to"])

    def run_due(self, schedule_file=None, *, now=None, broadcasts: bool = True, transport=None,
                seed: int | None = None, kernel_name: str | None = None,
                on_result: Callable[[str, dict], None] | None = None) -> Pass:
        """Run every report slot that is due (each once, also from two processes), retry
        failed mails, and send the broadcasts that are due (``ws.broadcasts.run_due``).
        ``now``: the clock (default ``$BIZCHAT_NOW``, else the wall clock). Failures are
        recorded and counted in ``.failed``; they do not stop the other due work."""
        path = self.path(schedule_file)
        return runner.run_due(self.ws, load(path), now=now, broadcasts=broadcasts,
                              transport=transport, seed=seed, kernel_name=kernel_name,
                              on_result=on_result)

    def serve(self, schedule_file=None, *, poll: float = 60.0, transport=None,
              seed: int | None = None, on_result: Callable[[str, dict], None] | None = None,
              stop: threading.Event | None = None) -> int:
        """Stay up and make the run-due pass on time: at each report slot and at least
        every ``poll`` seconds (deferred broadcast recipients). The schedule file is read
        again on every pass. Stops cleanly on SIGTERM or SIGINT (between runs: a report
        that is running finishes first). Returns how many runs failed."""
        stop = stop or threading.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
        failed = 0
        while not stop.is_set():
            done = self.run_due(schedule_file, transport=transport, seed=seed,
                                on_result=on_result)
            failed += done.failed
            now = datetime.now(UTC)
            wake = now + timedelta(seconds=poll)
            for entry in self.entries(schedule_file):
                wake = min(wake, next_slot(entry.cron, entry.zone, now))
            stop.wait(max(0.0, (wake - datetime.now(UTC)).total_seconds()))
        return failed
