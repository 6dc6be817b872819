"""Health tells the truth, and the ingest process is managed (issue 13, item 4). Real
receiver processes on 127.0.0.1, real signals."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import duckdb
import httpx
import pytest
from receiver_helpers import (
    Holder,
    alive,
    children,
    free_port,
    health,
    post,
    start_receiver,
    stop,
    wait_for,
)
from webhook_samples import PNID, dumps, status, text_message

import bizchat

T0 = 1_790_000_000
BAD = dumps(text_message("491701234567", "wamid.BAD", "x", T0)).replace(b'"1790000000"', b"1e400")


@pytest.fixture
def workspace(tmp_path):
    ws = bizchat.open(tmp_path / "recv.duckdb")
    ws.accounts.add("+49 30 901820", name="Lindenblatt Verlag", phone_number_id=PNID)
    return ws


def messages(ws) -> int:
    try:
        return int(ws.sql("SELECT count(*) AS n FROM messages")["n"][0])
    except bizchat.WorkspaceBusy:
        return -1


def bodies(first: int, n: int) -> list[bytes]:
    return [dumps(text_message("491701234567", f"wamid.P{i}", f"Nachricht {i}", T0 + i))
            for i in range(first, first + n)]


@pytest.mark.slow
def test_health_reports_rejections_errors_and_503_while_ingestion_is_stalled(workspace):
    port = free_port()
    proc, url = start_receiver(workspace.path, port, "--stall-after", "1.5")
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            # A bad body among good ones: rejected (kept with its reason), counted.
            assert [post(client, b).status_code for b in [*bodies(0, 2), BAD, *bodies(2, 2)]] == [200] * 5
            # The counters are published just after the spool moves on: wait for both.
            assert wait_for(lambda: health(url)["ingested"] == 5, 30)
            shown = health(url)
            assert (shown["status"], shown["rejected"], shown["pending_bytes"]) == ("ok", 1, 0)
            # Another process holds the workspace: bodies wait, and after --stall-after
            # seconds without progress /health says 503.
            with Holder(workspace.path):
                assert all(post(client, b).status_code == 200 for b in bodies(10, 3))
                time.sleep(0.5)
                early = client.get("/health")
                assert early.status_code == 200 and early.json()["pending_bytes"] > 0
                assert wait_for(lambda: client.get("/health").status_code == 503, 15)
                stalled = client.get("/health").json()
                assert stalled["status"] == "stalled" and stalled["workspace_busy"] is True
                assert stalled["oldest_pending_age_s"] >= 1.5
            assert wait_for(lambda: client.get("/health").status_code == 200, 30)
            assert wait_for(lambda: health(url)["pending_bytes"] == 0, 30)
            # An error in the ingest process itself is reported, not hidden: the quarantine
            # file cannot be written (a folder stands in its way) when a damaged line comes.
            quarantine = Path(f"{workspace.path}.spool.quarantine")
            quarantine.mkdir()
            with open(f"{workspace.path}.spool", "ab") as f:
                f.write(b'{"id":"x","received_at":"2026-01-01T00:00:00+00:00","raw":{"obj\n')
            assert post(client, bodies(20, 1)[0]).status_code == 200
            assert wait_for(lambda: client.get("/health").status_code == 503, 20)
            failing = health(url)
            assert "IsADirectoryError" in failing["last_error"] and failing["last_error_at"]
            quarantine.rmdir()
            assert wait_for(lambda: health(url)["pending_bytes"] == 0, 60)
            assert health(url)["quarantined"] == 1
    finally:
        code, log = stop(proc)
    assert code == 0, log
    assert messages(workspace) == 8
    assert workspace.sql("SELECT state FROM raw_payloads WHERE state <> 'ingested'")["state"].tolist() == [
        "rejected"]


@pytest.mark.slow
def test_a_killed_ingest_process_is_restarted_and_sigterm_always_stops(workspace):
    port = free_port()
    proc, url = start_receiver(workspace.path, port)
    try:
        first = health(url)["ingest_pid"]
        assert first in children(proc.pid)
        os.kill(first, signal.SIGKILL)
        assert wait_for(lambda: health(url)["ingest_restarts"] == 1 and health(url)["ingest_running"], 20)
        shown = health(url)
        assert shown["ingest_pid"] != first and f"pid {first}" in shown["last_error"]
        with httpx.Client(base_url=url, timeout=10) as client:
            assert all(post(client, b).status_code == 200 for b in bodies(0, 5))
        assert wait_for(lambda: messages(workspace) == 5, 30)
        # Killed again, and SIGTERM right away: the receiver flushes anyway and stops.
        with httpx.Client(base_url=url, timeout=10) as client:
            assert all(post(client, b).status_code == 200 for b in bodies(5, 5))
        os.kill(health(url)["ingest_pid"], signal.SIGKILL)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        code, log = stop(proc)
    assert code == 0, log
    assert messages(workspace) == 10


@pytest.mark.slow
def test_a_killed_receiver_leaves_no_ingest_process_and_a_restart_carries_on(workspace):
    port = free_port()
    proc, url = start_receiver(workspace.path, port)
    try:
        # Killed at once, before the ingest process has even finished starting.
        kids = children(proc.pid)
        assert kids
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert wait_for(lambda: not any(alive(k) for k in kids), 15), "orphaned ingest process"
    finally:
        stop(proc)
    proc, url = start_receiver(workspace.path, port)
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            assert all(post(client, b).status_code == 200 for b in bodies(0, 5))
        kids = children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert wait_for(lambda: not any(alive(k) for k in kids), 15), "orphaned ingest process"
    finally:
        stop(proc)
    proc, url = start_receiver(workspace.path, port)
    try:
        assert wait_for(lambda: health(url)["pending_bytes"] == 0, 30)
    finally:
        code, log = stop(proc)
    assert code == 0, log
    assert messages(workspace) == 5


@pytest.mark.slow
def test_a_failed_final_flush_exits_non_zero_and_the_spool_keeps_the_bodies(workspace):
    port = free_port()
    proc, url = start_receiver(workspace.path, port, "--flush-timeout", "1")
    with Holder(workspace.path):
        with httpx.Client(base_url=url, timeout=10) as client:
            assert all(post(client, b).status_code == 200 for b in bodies(0, 3))
        code, log = stop(proc)
        assert code == 1, log
        assert "could not be flushed" in log and log.strip().splitlines()[-1].startswith("Error: ")
    assert messages(workspace) == 0
    proc, url = start_receiver(workspace.path, port)
    assert wait_for(lambda: messages(workspace) == 3, 30)
    assert stop(proc)[0] == 0


def test_a_workspace_the_ingester_could_never_write_is_refused_at_start(tmp_path):
    newer = tmp_path / "newer.duckdb"
    bizchat.open(newer)
    con = duckdb.connect(str(newer))
    con.execute("INSERT INTO schema_migrations VALUES (99, 'from_the_future', now())")
    con.close()
    corrupt = tmp_path / "corrupt.duckdb"
    corrupt.write_bytes(b"this is not a DuckDB database " * 500)
    for path, words in ((newer, "schema version 99"), (corrupt, "not a bizchat workspace")):
        proc, _ = start_receiver(path, free_port(), ready=False)
        try:
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        lines = proc.stderr.read().strip().splitlines()
        proc.stderr.close()
        assert code == 1 and len(lines) == 1, lines
        assert lines[0].startswith("Error: The webhook receiver cannot store into") and words in lines[0]
    assert not Path(f"{newer}.spool").exists() and not Path(f"{corrupt}.spool").exists()


@pytest.mark.slow
def test_health_names_the_oldest_pending_body(workspace):
    """In-process: the oldest body not yet ingested and how long it has waited."""
    from starlette.testclient import TestClient

    from bizchat.ingest.spool import Spool
    from bizchat.receiver.server import create_app

    spool = Spool(workspace.path)
    from datetime import UTC, datetime, timedelta

    spool.append([Spool.record(dumps(status("wamid.O", "sent", T0)),
                               datetime.now(UTC) - timedelta(minutes=5))])
    with Holder(workspace.path):
        app = create_app(workspace.path, app_secret="s", stall_after=1, flush_timeout=0.5)
        with TestClient(app) as client:
            fresh = client.get("/health")        # just started: not stalled yet
            # Stalled once the ingest process has met the held file (later on a loaded machine).
            assert wait_for(lambda: client.get("/health").json().get("workspace_busy"), 30)
            time.sleep(1.0)
            response = client.get("/health")
            shown = response.json()
    assert fresh.status_code == 200 and fresh.json()["oldest_pending_age_s"] >= 295
    assert response.status_code == 503 and shown["status"] == "stalled"
    assert 295 <= shown["oldest_pending_age_s"] < 400 and shown["pending_bytes"] > 0
    assert shown["stalled_for_s"] >= 1 and shown["workspace_busy"]
