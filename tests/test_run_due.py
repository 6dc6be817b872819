"""Scheduled broadcasts go out when they are due, through one function (``run_due``),
safely from cron and from two processes at once; a simulated send never runs ahead of its
clock (issue 16, item 2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from send_world import berlin, draft, handed, shop, sim

from bizchat.cli import main
from bizchat.errors import Conflict, SendRefused

ROOT = Path(__file__).resolve().parents[1]


def cli(path, *args, now=None):
    env = {"BIZCHAT_NOW": now.isoformat()} if now is not None else {}
    return CliRunner(env=env).invoke(main, ["--workspace", str(path), *args])


def states(ws, bid) -> dict:
    return ws.sql("SELECT state, count(*) AS n FROM broadcast_recipients WHERE broadcast_id = ? "
                  "GROUP BY ALL", [bid]).set_index("state").n.to_dict()


@pytest.mark.slow
def test_a_broadcast_scheduled_for_tuesday_ten_goes_out_by_run_due_then(ws):
    acc, ids = shop(ws, 5)
    bid = draft(ws, acc)
    monday = berlin(2026, 12, 7, 15, 0)
    # A time without a zone is the account's (Berlin): 10:00 CET is 09:00 UTC.
    out = cli(ws.path, "broadcast", "schedule", str(bid), "--at", "2026-12-08T10:00", now=monday)
    assert out.exit_code == 0, out.output
    assert "2026-12-08 10:00 CET (Europe/Berlin)" in out.output
    assert ws.broadcasts.get(bid)["scheduled_for"] == datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
    assert ws.broadcasts.recipients(bid).empty            # frozen at its send time
    early = cli(ws.path, "broadcast", "run-due", now=berlin(2026, 12, 8, 9, 54))
    assert early.exit_code == 0 and "Nothing is due." in early.output
    due = cli(ws.path, "broadcast", "run-due", now=berlin(2026, 12, 8, 10, 1))
    assert due.exit_code == 0 and f"Broadcast {bid}: " in due.output, due.output
    assert states(ws, bid) == {"sent": 5}
    # Every message went at (or after) its time, never before; a second run sends nothing new.
    assert handed(ws, bid)["at"].min() >= pd.Timestamp(datetime(2026, 12, 8, 9, 0, tzinfo=UTC))
    again = cli(ws.path, "broadcast", "run-due", now=berlin(2026, 12, 8, 10, 2))
    assert again.exit_code == 0
    assert len(handed(ws, bid)) == 5


@pytest.mark.slow
def test_the_simulated_transport_never_produces_an_event_later_than_its_clock(ws):
    acc, ids = shop(ws, 30)
    bid = draft(ws, acc)
    now = berlin(2026, 3, 4, 10, 0)
    ws.broadcasts.schedule(bid, now + timedelta(hours=6), now=now)
    with pytest.raises(SendRefused, match="scheduled for"):
        ws.broadcasts.send(bid, transport=sim(), now=now)
    assert ws.broadcasts.run_due(now=now, transport=sim()) == []
    assert ws.sql("SELECT count(*) AS n FROM message_events").n[0] == 0
    sent_at = now + timedelta(hours=6, minutes=1)
    ws.broadcasts.run_due(now=sent_at, transport=sim())
    latest = ws.sql("SELECT max(\"at\") AS t, count(*) AS n FROM message_events")
    assert latest.t[0] <= pd.Timestamp(sent_at) and latest.n[0] > 0
    reads_then = ws.sql("SELECT count(*) AS n FROM message_events WHERE status = 'read'").n[0]
    # A day later the receipts whose time has come arrive: still none from the future.
    next_day = sent_at + timedelta(days=1)
    ws.broadcasts.run_due(now=next_day, transport=sim())
    latest = ws.sql("SELECT max(\"at\") AS t FROM message_events").t[0]
    assert latest <= pd.Timestamp(next_day)
    reads = ws.sql("SELECT count(*) AS n FROM message_events WHERE status = 'read'").n[0]
    assert reads > reads_then
    # Idempotent: the same receipts are not counted twice.
    ws.broadcasts.run_due(now=next_day, transport=sim())
    assert ws.sql("SELECT count(*) AS n FROM message_events WHERE status = 'read'").n[0] == reads


@pytest.mark.slow
def test_reschedule_and_pause_until_it_starts_sending(ws):
    acc, ids = shop(ws, 3)
    bid = draft(ws, acc)
    now = berlin(2026, 3, 4, 9, 0)
    ws.broadcasts.schedule(bid, berlin(2026, 3, 4, 10, 0), now=now)
    moved = ws.broadcasts.reschedule(bid, "2026-03-04T14:00")
    assert moved["scheduled_for"] == berlin(2026, 3, 4, 14, 0)
    assert ws.broadcasts.run_due(now=berlin(2026, 3, 4, 10, 30), transport=sim()) == []
    ws.broadcasts.pause(bid)
    assert ws.broadcasts.run_due(now=berlin(2026, 3, 4, 14, 30), transport=sim()) == []
    assert ws.broadcasts.recipients(bid).empty
    assert ws.broadcasts.unpause(bid)["status"] == "scheduled"
    ws.broadcasts.run_due(now=berlin(2026, 3, 4, 14, 30), transport=sim())
    assert states(ws, bid) == {"sent": 3}
    with pytest.raises(Conflict):
        ws.broadcasts.reschedule(bid, "2026-03-05T10:00")


def test_cli_reschedule_pause_unpause(ws):
    acc, ids = shop(ws, 2)
    bid = draft(ws, acc)
    now = berlin(2026, 3, 4, 9, 0)
    assert cli(ws.path, "broadcast", "schedule", str(bid), "--at", "2026-03-05T10:00",
               now=now).exit_code == 0
    out = cli(ws.path, "broadcast", "reschedule", str(bid), "--at", "2026-03-06T11:30")
    assert out.exit_code == 0 and "2026-03-06 11:30 CET" in out.output
    assert "paused" in cli(ws.path, "broadcast", "pause", str(bid)).output
    assert "scheduled again" in cli(ws.path, "broadcast", "unpause", str(bid)).output
    bad = cli(ws.path, "broadcast", "unpause", str(bid))
    assert bad.exit_code == 1 and bad.output.startswith("Error: ")


@pytest.mark.slow
def test_a_send_killed_while_freezing_is_continued_by_resume(ws):
    acc, ids = shop(ws, 4)
    bid = draft(ws, acc)
    env = {**os.environ, "BIZCHAT_FAULT": "broadcast.freeze",
           "BIZCHAT_NOW": berlin(2026, 3, 4, 10, 0).isoformat()}
    proc = subprocess.run([sys.executable, "-m", "bizchat.cli", "--workspace", str(ws.path),
                           "broadcast", "send", str(bid)], env=env, capture_output=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert ws.broadcasts.get(bid)["status"] == "scheduled"
    assert ws.broadcasts.recipients(bid).empty
    out = cli(ws.path, "broadcast", "resume", str(bid), now=berlin(2026, 3, 4, 10, 1))
    assert out.exit_code == 0, out.output
    assert states(ws, bid) == {"sent": 4}


CHILD = """
import sys
import bizchat
from bizchat.campaigns.transports import SimRates, SimulatedTransport
ws = bizchat.open(sys.argv[1], timeout=120)
print("started", flush=True)
sys.stdin.readline()
calm = SimRates(stopped_marketing=0, marketing_limit=0, undeliverable=0)
results = ws.broadcasts.run_due(now=sys.argv[2], batch_size=5,
                                transport=SimulatedTransport(5, rates=calm, batch_delay=0.02))
print(results, flush=True)
"""


@pytest.mark.slow
def test_two_run_due_processes_at_once_never_send_a_recipient_twice(ws):
    acc, ids = shop(ws, 60)
    first, second = draft(ws, acc, "Eins"), draft(ws, acc, "Zwei")
    now = berlin(2026, 3, 4, 9, 0)
    for bid in (first, second):
        ws.broadcasts.schedule(bid, berlin(2026, 3, 4, 10, 0), now=now)
    ws.broadcasts.set_limits(acc["account_id"], marketing_cap_days=0)
    due = berlin(2026, 3, 4, 10, 5).isoformat()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(ws.path), due], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "started"
        for proc in procs:          # release both at once
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert all(proc.returncode == 0 for proc in procs), outputs
    ledger = ws.sql("SELECT broadcast_id, idempotency_key, count(*) AS n FROM outbox_log "
                    "WHERE event = 'simulated.accept' GROUP BY ALL")
    assert len(ledger) == 120 and (ledger.n == 1).all()
    per_contact = ws.sql("SELECT broadcast_id, contact_id, count(*) AS n FROM messages "
                         "WHERE direction = 'out' GROUP BY ALL")
    assert len(per_contact) == 120 and (per_contact.n == 1).all()
    assert states(ws, first) == {"sent": 60} and states(ws, second) == {"sent": 60}
