"""Compaction: deleted values leave the file; the data, views and constraints stay; an
interrupted or disturbed compaction never loses anything."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import duckdb
import pytest

import bizchat
from bizchat import store
from bizchat.errors import WorkspaceBusy
from bizchat.privacy import compaction

SECRET_ROW = "Geheimnis-Zeile-4711"


def _filled(path):
    ws = bizchat.open(path)
    with ws.transaction() as con:
        con.execute("""INSERT INTO settings SELECT 'k' || i, 'Wert-' || i FROM range(5000) t(i)""")
        con.execute("INSERT INTO settings VALUES ('secret', ?)", [SECRET_ROW])
        con.execute("INSERT INTO settings VALUES (?, 'x')", [compaction.PENDING])
    with ws.transaction() as con:
        con.execute("DELETE FROM settings WHERE key = 'secret'")
    with ws.connect() as con:
        con.execute("CHECKPOINT")
    return ws


def _snapshot(ws):
    return {t: ws.sql(f'SELECT * FROM "{t}" ORDER BY ALL') for t in ("settings", "schema_migrations")}


def test_deleted_values_leave_the_file_and_everything_else_stays(tmp_path):
    path = tmp_path / "ws.duckdb"
    ws = _filled(path)
    assert SECRET_ROW.encode() in path.read_bytes()          # DuckDB kept it after DELETE
    before = _snapshot(ws)
    done = ws.privacy.compact(actor="test")
    assert SECRET_ROW.encode() not in path.read_bytes()
    assert done.bytes_after <= done.bytes_before and done.rows > 5000
    after = _snapshot(ws)
    assert after["schema_migrations"].equals(before["schema_migrations"])
    pending = before["settings"][before["settings"]["key"] == compaction.PENDING]
    assert after["settings"].equals(before["settings"].drop(index=pending.index).reset_index(drop=True))
    assert ws.privacy.compaction_pending() is None
    assert not (tmp_path / "ws.duckdb.wal").exists() and not (tmp_path / "ws.duckdb.compact").exists()
    # Views and constraints came along.
    assert ws.sql("SELECT count(*) AS n FROM campaign_stats")["n"][0] == 0
    with ws.transaction() as con, pytest.raises(duckdb.ConstraintException):
        con.execute("INSERT INTO settings VALUES ('k1', 'again')")
    assert ws.sql("SELECT action FROM audit_log")["action"].tolist() == ["privacy.compact"]


@pytest.mark.slow
def test_a_crash_before_the_swap_loses_nothing(tmp_path):
    path = tmp_path / "ws.duckdb"
    ws = _filled(path)
    before = _snapshot(ws)
    script = textwrap.dedent(f"""
        import os
        from bizchat.privacy import compaction
        os.replace = lambda *a, **k: os._exit(9)      # die at the worst moment
        compaction.compact({str(path)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    assert (tmp_path / "ws.duckdb.compact").exists()      # the half-done copy is left over
    after = _snapshot(bizchat.open(path))
    assert all(after[t].equals(before[t]) for t in before)
    # The next compaction removes the leftover and completes.
    ws.privacy.compact()
    assert not (tmp_path / "ws.duckdb.compact").exists()
    assert SECRET_ROW.encode() not in path.read_bytes()


def test_a_write_between_copy_and_swap_is_not_lost(tmp_path, monkeypatch):
    path = tmp_path / "ws.duckdb"
    _filled(path)
    real_copy, calls = compaction._copy, []

    def copy_then_someone_writes(*args):
        result = real_copy(*args)
        calls.append(1)
        if len(calls) == 1:       # another process writes after our copy, before the swap
            con = store.connect(path)
            con.execute("INSERT INTO settings VALUES ('late', 'write')")
            con.close()
        return result

    monkeypatch.setattr(compaction, "_copy", copy_then_someone_writes)
    compaction.compact(path)
    assert len(calls) == 2
    ws = bizchat.open(path)
    assert ws.sql("SELECT value FROM settings WHERE key = 'late'")["value"].tolist() == ["write"]


@pytest.mark.slow
def test_a_held_workspace_is_busy_and_left_alone(tmp_path):
    path = tmp_path / "ws.duckdb"
    _filled(path)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import duckdb, sys, time
        con = duckdb.connect({str(path)!r})
        print("held", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(WorkspaceBusy):
            compaction.compact(path, timeout=1)
        assert SECRET_ROW.encode() in path.read_bytes()
        assert not (tmp_path / "ws.duckdb.compact").exists()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    compaction.compact(path, timeout=10)
    assert SECRET_ROW.encode() not in path.read_bytes()


def test_verification_refuses_a_copy_that_differs(tmp_path, monkeypatch):
    path = tmp_path / "ws.duckdb"
    ws = _filled(path)
    size = os.path.getsize(path)
    fingerprints = iter([{"data": {"settings": (1, 1)}}, {"data": {"settings": (1, 2)}}])
    monkeypatch.setattr(compaction, "_fingerprint", lambda con, db: next(fingerprints))
    with pytest.raises(compaction.CompactionError, match="differs"):
        compaction.compact(path)
    assert os.path.getsize(path) == size and not (tmp_path / "ws.duckdb.compact").exists()
    assert ws.privacy.compaction_pending() == "x"
