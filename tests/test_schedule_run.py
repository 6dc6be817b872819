"""The scheduler for real: notebooks run by papermill on a controlled clock, run-due from
the CLI and from two processes at once, serve stopped by SIGTERM, scheduled broadcasts
(issue 19, items 3, 5 and 7)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from schedule_helpers import SECRET, ensure_kernel, notebook, report_folder, schedule_file
from send_world import berlin, draft, shop

from bizchat.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture
def setup(ws, tmp_path, monkeypatch):
    ensure_kernel()
    monkeypatch.setenv("BIZCHAT_REPORTS_DIR", str(report_folder(tmp_path / "my_reports")))
    monkeypatch.setenv("BIZCHAT_ACCESS_TOKEN", SECRET)
    return ws


def cli(ws, *args, now: datetime):
    return CliRunner(env={"BIZCHAT_NOW": now.isoformat()}).invoke(
        main, ["--workspace", str(ws.path), "schedule", *args])


def slots(ws) -> dict:
    rows = ws.sql("SELECT entry, slot, status FROM schedule_slots ORDER BY entry, slot")
    out: dict = {}
    for r in rows.itertuples():
        out.setdefault(r.entry, []).append((r.slot.astimezone(UTC).day, r.status))
    return out


def test_run_due_runs_each_slot_once_catches_up_and_survives_a_broken_report(setup):
    ws = setup
    schedule_file(ws.path.parent / "schedule.toml",
                  {"name": "every", "notebook": "hello", "cron": "0 7 * * *",
                   "timezone": "Europe/Berlin", "catch_up": "all", "params": {"day": "today"}},
                  {"name": "newest", "notebook": "hello", "cron": "0 7 * * *",
                   "timezone": "Europe/Berlin", "catch_up": "latest", "params": {"day": "today"}},
                  {"name": "bad", "notebook": "broken", "cron": "0 7 * * *",
                   "timezone": "Europe/Berlin"})
    acc, _ = shop(ws, 3)
    bid = draft(ws, acc)
    ws.broadcasts.schedule(bid, berlin(2026, 12, 1, 8, 30), now=berlin(2026, 11, 30, 12, 0))
    listed = cli(ws, "list", now=berlin(2026, 12, 1, 6, 0))
    assert listed.exit_code == 0, listed.output
    assert "2026-12-01 07:00:00+01:00" in listed.output            # next slot, local time
    assert f"{bid}: Aktion" in listed.output and "2026-12-01 08:30:00+01:00" in listed.output

    first = cli(ws, "run-due", now=berlin(2026, 12, 1, 9, 0))
    # The broken report fails (exit 1) but the others ran, the broadcast went out.
    assert first.exit_code == 1, first.output
    assert slots(ws) == {"bad": [(1, "failed")], "every": [(1, "ok")], "newest": [(1, "ok")]}
    assert f"broadcast {bid}: " in first.output
    assert ws.broadcasts.get(bid)["status"] in ("sending", "done")
    sent = ws.sql("SELECT count(*) AS n FROM outbox_log WHERE event = 'simulated.accept'").n[0]
    assert sent == 3
    # The secret in the notebook's error never shows: not in the output, the record, the files.
    assert SECRET not in first.output and "[secret removed]" in first.output
    failed = ws.sql("SELECT * FROM report_runs WHERE report = 'broken'").iloc[0]
    assert failed.status == "failed" and "no luck" in failed.error and SECRET not in failed.error
    for path in (failed.output_path, failed.html_path):
        text = Path(path).read_text(encoding="utf-8")
        assert "no luck" in text and SECRET not in text
    ok = ws.sql("SELECT * FROM report_runs WHERE schedule = 'every'").iloc[0]
    assert "report for 2026-12-01" in Path(ok.output_path).read_text(encoding="utf-8")
    assert Path(ok.html_path).parent == ws.path.parent / "reports" / "hello" / ok.started_at.strftime("%Y-%m-%d")

    again = cli(ws, "run-due", now=berlin(2026, 12, 1, 9, 30))
    # No report again; the broadcast pass only releases receipts that came due meanwhile.
    assert again.exit_code == 0 and " report " not in again.output, again.output
    assert ws.sql("SELECT count(*) AS n FROM report_runs").n[0] == 3
    assert ws.sql("SELECT count(*) AS n FROM outbox_log WHERE event = 'simulated.accept'").n[0] == 3

    # Down for two days: "all" runs both missed slots, "latest" only the newest.
    later = cli(ws, "run-due", now=berlin(2026, 12, 3, 7, 5))
    assert later.exit_code == 1
    assert slots(ws) == {"bad": [(1, "failed"), (2, "skipped"), (3, "failed")],
                         "every": [(1, "ok"), (2, "ok"), (3, "ok")],
                         "newest": [(1, "ok"), (2, "skipped"), (3, "ok")]}
    days = ws.sql("SELECT params->>'day' AS day FROM report_runs WHERE schedule = 'every' ORDER BY slot")
    assert list(days.day) == ["2026-12-01", "2026-12-02", "2026-12-03"]
    index = (ws.path.parent / "reports" / "index.html").read_text(encoding="utf-8")
    assert index.count("<tr>") == 1 + 7                            # header + every run


def test_two_run_due_processes_at_once_run_each_slot_once(setup):
    ws = setup
    schedule_file(ws.path.parent / "schedule.toml",
                  {"name": "every", "notebook": "hello", "cron": "0 7 * * *",
                   "timezone": "Europe/Berlin", "catch_up": "all", "params": {"day": "today"}})
    ws.schedule.run_due(now=berlin(2026, 12, 1, 8, 0), broadcasts=False)   # history starts
    env = {**os.environ, "BIZCHAT_NOW": berlin(2026, 12, 3, 8, 0).isoformat()}
    procs = [subprocess.Popen([sys.executable, "-m", "bizchat.cli", "--workspace", str(ws.path),
                               "schedule", "run-due"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    runs = ws.sql("SELECT slot FROM report_runs ORDER BY slot")
    assert [s.astimezone(UTC).day for s in runs.slot] == [1, 2, 3]
    assert sum(o[0].count("report every") for o in outs) == 2


def test_serve_runs_on_time_and_stops_on_sigterm(setup):
    ws = setup
    schedule_file(ws.path.parent / "schedule.toml",
                  {"name": "minutely", "notebook": "hello", "cron": "* * * * *"})
    env = {**os.environ, "BIZCHAT_NOW": datetime(2026, 12, 1, 9, 0, 30, tzinfo=UTC).isoformat()}
    proc = subprocess.Popen([sys.executable, "-m", "bizchat.cli", "--workspace", str(ws.path),
                             "schedule", "serve", "--poll", "1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()          # one log line per run
        assert "report minutely (hello) slot 2026-12-01 09:00 UTC: ok" in line, line
        time.sleep(1.5)                        # a pass or two with nothing due
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Scheduler stopped (0 failed runs)." in err
    assert ws.sql("SELECT count(*) AS n FROM report_runs").n[0] == 1


def test_a_killed_run_due_leaves_its_claim_which_is_taken_again_once_stale(setup, tmp_path):
    """run-due killed while its report runs: the slot stays claimed ``running``, so a pass
    soon after does not run it a second time beside a possibly live run; once the claim is
    older than STALE_CLAIM, the next pass takes it and runs the report once."""
    from bizchat.scheduling.runner import STALE_CLAIM

    ws = setup
    hold = tmp_path / "hold"
    hold.touch()
    notebook(Path(os.environ["BIZCHAT_REPORTS_DIR"]), "sleepy",
             f"import os, time\nwhile os.path.exists({str(hold)!r}):\n    time.sleep(0.2)\n"
             "print('done', day)")
    schedule_file(ws.path.parent / "schedule.toml",
                  {"name": "nightly", "notebook": "sleepy", "cron": "0 2 * * *",
                   "timezone": "Europe/Berlin", "params": {"day": "today"}})
    at = berlin(2026, 12, 1, 3, 0)
    env = {**os.environ, "BIZCHAT_NOW": at.isoformat()}
    proc = subprocess.Popen([sys.executable, "-m", "bizchat.cli", "--workspace", str(ws.path),
                             "schedule", "run-due"], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while slots(ws).get("nightly") != [(1, "running")]:   # claimed, the report running
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.3)
        time.sleep(1.0)                                        # papermill well under way
    finally:
        os.killpg(proc.pid, signal.SIGKILL)                    # the process and its kernel
        proc.wait()
    hold.unlink()
    assert slots(ws) == {"nightly": [(1, "running")]}

    soon = ws.schedule.run_due(now=berlin(2026, 12, 1, 3, 5), broadcasts=False)
    assert soon.reports == [] and slots(ws) == {"nightly": [(1, "running")]}

    with ws.transaction() as con:     # the claim's age, as if STALE_CLAIM had passed
        con.execute("UPDATE schedule_slots SET claimed_at = claimed_at - ?",
                    [STALE_CLAIM + timedelta(minutes=1)])
    later = ws.schedule.run_due(now=berlin(2026, 12, 1, 5, 10), broadcasts=False)
    assert [r["status"] for r in later.reports] == ["ok"]
    assert slots(ws) == {"nightly": [(1, "ok")]}
    again = ws.schedule.run_due(now=berlin(2026, 12, 1, 5, 20), broadcasts=False)
    assert again.reports == []
    ok = ws.sql("SELECT output_path FROM report_runs WHERE status = 'ok'")
    assert len(ok) == 1 and "done 2026-12-01" in Path(ok.output_path[0]).read_text(encoding="utf-8")
