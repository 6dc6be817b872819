"""One pass of the scheduler: claim the due report and lake export slots, run them,
deliver, send the due broadcasts.

Claiming is an insert into ``schedule_slots`` inside one write transaction; DuckDB lets
one process write at a time and the key (entry, slot) refuses a second claim, so two
``run-due`` processes that overlap run each slot once. A claim left ``running`` by a
killed process is taken again after ``STALE_CLAIM``. Which slots are due: for an entry
never run, its latest slot; after that every slot since the last one claimed, all of
them or only the latest (``catch_up``; the others are recorded ``skipped``). A failing
report is recorded (the partial notebook and the error) and the pass goes on; a mail
that fails is retried at the next pass without running the notebook again.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..campaigns import clock
from ..errors import BizchatError
from ..reports import known_secrets, run_report, scrub
from . import delivery
from .config import Entry
from .slots import latest_slot, slots_between

log = logging.getLogger("bizchat.scheduling")
STALE_CLAIM = timedelta(hours=2)
MAX_DELIVERY_ATTEMPTS = 10


@dataclass
class Pass:
    """What one run-due did: ``reports`` and ``deliveries`` (one dict each), the
    broadcasts' results, and how many of them failed."""

    reports: list[dict] = field(default_factory=list)
    deliveries: list[dict] = field(default_factory=list)
    broadcasts: list[dict] = field(default_factory=list)
    lake_exports: list[dict] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return (sum(r["status"] == "failed" for r in self.reports)
                + sum(r["status"] == "failed" for r in self.lake_exports)
                + sum(d["status"] in ("failed", "gave_up") for d in self.deliveries)
                + sum("error" in b for b in self.broadcasts))


def _me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def due_slots(con, entry: Entry, now: datetime) -> tuple[list[datetime], list[datetime]]:
    """(slots to run, missed slots to record as skipped) for ``entry`` at ``now``."""
    row = con.execute("SELECT max(slot) FROM schedule_slots WHERE entry = ?",
                      [entry.name]).fetchone()
    last = row[0] if row else None
    if last is None:
        latest = latest_slot(entry.cron, entry.zone, now)
        return ([latest] if latest else []), []
    missed = slots_between(entry.cron, entry.zone, last, now)
    if entry.catch_up == "latest" and len(missed) > 1:
        return missed[-1:], missed[:-1]
    return missed, []


def claim(ws, entry: Entry, now: datetime) -> list[datetime]:
    """Claim the entry's due slots (and stale claims) in one write transaction."""
    wall = datetime.now(UTC)
    with ws.transaction() as con:
        run, skipped = due_slots(con, entry, now)
        for slot in skipped:
            con.execute("""INSERT INTO schedule_slots (entry, slot, claimed_at, claimed_by, status)
                           VALUES (?, ?, ?, ?, 'skipped') ON CONFLICT DO NOTHING""",
                        [entry.name, slot, wall, _me()])
        for slot in run:
            con.execute("""INSERT INTO schedule_slots (entry, slot, claimed_at, claimed_by, status)
                           VALUES (?, ?, ?, ?, 'running') ON CONFLICT DO NOTHING""",
                        [entry.name, slot, wall, _me()])
        stale = con.execute("""
            UPDATE schedule_slots SET claimed_at = ?, claimed_by = ?
            WHERE entry = ? AND status = 'running' AND claimed_at < ? AND slot <= ?
            RETURNING slot""", [wall, _me(), entry.name, wall - STALE_CLAIM, now]).fetchall()
    return sorted(set(run) | {r[0].astimezone(UTC) for r in stale})


def run_slot(ws, entry: Entry, slot: datetime, *, kernel_name: str | None = None) -> dict:
    """Run one claimed slot's report and record the outcome on the slot."""
    local = slot.astimezone(entry.zone)
    result = {"entry": entry.name, "report": entry.notebook, "slot": local, "status": "ok",
              "run_id": None, "html": None, "error": None}
    try:
        params = entry.params_at(slot)
        run_report(ws, entry.notebook, params, output_dir=entry.output_dir,
                   kernel_name=kernel_name, actor="scheduler", schedule=entry.name, slot=slot)
    except BizchatError as exc:      # recorded; the other due work goes on
        result.update(status="failed", error=scrub(str(exc), known_secrets(ws))[:500],
                      run_id=getattr(exc, "run_id", None))
    with ws.transaction() as con:
        row = con.execute("""SELECT run_id, html_path FROM report_runs
                             WHERE schedule = ? AND slot = ? ORDER BY run_id DESC LIMIT 1""",
                          [entry.name, slot]).fetchone()
        if row:
            result["run_id"], result["html"] = row
        mail = "pending" if entry.mail_to and result["status"] == "ok" else None
        con.execute("""UPDATE schedule_slots SET status = ?, run_id = ?, error = ?, delivery = ?
                       WHERE entry = ? AND slot = ?""",
                    [result["status"], result["run_id"], result["error"], mail, entry.name, slot])
    return result


def run_lake_slot(ws, entry: Entry, slot: datetime) -> dict:
    """Run one claimed slot's lake export and record the outcome on the slot."""
    result = {"entry": entry.name, "out": str(entry.out), "slot": slot.astimezone(entry.zone),
              "status": "ok", "tenant": entry.tenant, "summary": None, "error": None}
    try:
        done = ws.lake.export(entry.out, tenant=entry.tenant, bodies=entry.bodies,
                              progress=log.info)
        result.update(tenant=done.tenant, summary=done.summary().splitlines()[0])
    except BizchatError as exc:      # recorded; the other due work goes on
        result.update(status="failed", error=str(exc)[:500])
    with ws.transaction() as con:
        con.execute("UPDATE schedule_slots SET status = ?, error = ? WHERE entry = ? AND slot = ?",
                    [result["status"], result["error"], entry.name, slot])
    return result


def deliver_pending(ws, entries: list[Entry]) -> list[dict]:
    """Mail every ok run whose delivery is pending or failed (attempts left). The last
    allowed attempt that fails marks the delivery ``gave_up``: a mail server down for ten
    passes is a problem for a person, not for more retries."""
    by_name = {e.name: e for e in entries}
    with ws.connect(read_only=True) as con:
        rows = con.execute(f"""
            SELECT s.entry, s.slot, s.run_id, r.html_path, r.report, s.delivery_attempts
            FROM schedule_slots s
            JOIN report_runs r USING (run_id)
            WHERE s.delivery IN ('pending', 'failed') AND s.delivery_attempts < {MAX_DELIVERY_ATTEMPTS}
            ORDER BY s.slot""").fetchall()
    done = []
    for name, slot, run_id, html_path, report, attempts in rows:
        entry = by_name.get(name)
        if entry is None or not entry.mail_to or not html_path:
            continue
        outcome = {"entry": name, "slot": slot.astimezone(entry.zone), "run_id": run_id,
                   "to": list(entry.mail_to), "status": "sent", "error": None}
        secrets = known_secrets(ws)
        try:
            cfg = delivery.settings()
            local = slot.astimezone(entry.zone)
            text = scrub(f"The report {report!r} ({entry.name}) for {local:%Y-%m-%d %H:%M %Z} "
                         "is attached as HTML; open it in a browser (it needs no network).\n",
                         secrets)
            msg = delivery.build_message(cfg, list(entry.mail_to),
                                         f"bizchat report: {entry.name}, {local:%Y-%m-%d}",
                                         text, Path(html_path))
            delivery.send(cfg, msg)
        except (BizchatError, OSError) as exc:
            outcome.update(status="failed", error=scrub(str(exc), secrets)[:500])
            if attempts + 1 >= MAX_DELIVERY_ATTEMPTS:
                outcome.update(status="gave_up", error=(
                    f"{outcome['error']} Gave up after {attempts + 1} attempts; the report "
                    f"is at {html_path}.")[-700:])
        with ws.transaction() as con:
            con.execute("""UPDATE schedule_slots SET delivery = ?, delivery_error = ?,
                                  delivery_attempts = delivery_attempts + 1,
                                  delivered_at = CASE WHEN ? = 'sent' THEN ? END
                           WHERE entry = ? AND slot = ?""",
                        [outcome["status"], outcome["error"], outcome["status"],
                         datetime.now(UTC), name, slot])
        done.append(outcome)
    return done


def run_due(ws, entries: list[Entry], *, now=None, broadcasts: bool = True,
            transport=None, seed: int | None = None, kernel_name: str | None = None,
            on_result=None) -> Pass:
    """One pass (see the module docstring). ``on_result`` is called with each report,
    delivery and broadcast result as it happens (for log lines)."""
    current = clock.now(now)
    done = Pass()
    for entry in entries:
        for slot in claim(ws, entry, current):
            if entry.kind == "lake_export":
                result = run_lake_slot(ws, entry, slot)
                done.lake_exports.append(result)
                if on_result:
                    on_result("lake_export", result)
                continue
            result = run_slot(ws, entry, slot, kernel_name=kernel_name)
            done.reports.append(result)
            if on_result:
                on_result("report", result)
    for outcome in deliver_pending(ws, entries):
        done.deliveries.append(outcome)
        if on_result:
            on_result("delivery", outcome)
    if broadcasts:
        for result in ws.broadcasts.run_due(now=current, transport=transport, seed=seed,
                                            actor="scheduler"):
            done.broadcasts.append(result)
            if on_result:
                on_result("broadcast", result)
    return done
