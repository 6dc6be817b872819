"""The workspace file: schema creation and upgrade, the connection policy, sharing a file
between processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import duckdb
import pytest

import bizchat
from bizchat import store
from bizchat.errors import ReadOnlyQuery, SchemaError, WorkspaceBusy


def test_open_creates_every_documented_table_and_view(tmp_path):
    ws = bizchat.open(tmp_path / "new.duckdb")
    info = ws.info()
    assert info["schema_version"] == store.latest_version()
    for table in ["accounts", "contacts", "consent_events", "chats", "messages",
                  "message_events", "labels", "contact_labels", "chat_labels",
                  "quick_replies", "automations", "broadcasts", "broadcast_recipients",
                  "report_runs", "audit_log"]:
        assert info["tables"][table] == 0, table
    views = set(ws.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal")["view_name"])
    assert {"current_consent", "latest_status", "campaign_stats"} <= views


def test_default_path_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BIZCHAT_WORKSPACE", str(tmp_path / "env.duckdb"))
    ws = bizchat.open()
    assert ws.path == tmp_path / "env.duckdb"
    assert ws.path.exists()
    monkeypatch.delenv("BIZCHAT_WORKSPACE")
    assert store.resolve_path(None).as_posix() == "data/bizchat.duckdb"


def test_upgrade_of_an_older_file_keeps_its_data(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    assert store.migrate(con, upto=1) == [1]          # a file written by an older bizchat
    con.execute("INSERT INTO accounts (account_id, phone_e164, number_type, display_name) "
                "VALUES (1, '+4930123456', 'fixed_line', 'Alt')")
    con.execute("INSERT INTO consent_events VALUES (1, 10, 1, 'marketing', 'opt_in', 'form', NULL, now())")
    con.close()

    ws = bizchat.open(path)
    assert ws.info()["schema_version"] == store.latest_version() > 1
    assert ws.sql("SELECT display_name FROM accounts")["display_name"].tolist() == ["Alt"]
    assert ws.sql("SELECT state FROM current_consent")["state"].tolist() == ["opt_in"]
    versions = ws.sql("SELECT version FROM schema_migrations ORDER BY version")["version"].tolist()
    assert versions == list(range(1, store.latest_version() + 1))


def test_reopening_applies_nothing_twice(tmp_path):
    bizchat.open(tmp_path / "w.duckdb")
    con = store.connect(tmp_path / "w.duckdb")
    try:
        assert store.migrate(con) == []
    finally:
        con.close()


def test_a_file_from_a_newer_bizchat_is_refused(tmp_path):
    path = tmp_path / "future.duckdb"
    bizchat.open(path)
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_migrations VALUES (999, 'future', now())")
    con.close()
    with pytest.raises(SchemaError, match="newer than this bizchat"):
        bizchat.open(path)


def test_migrations_are_numbered_without_gaps():
    versions = [v for v, _, _ in store.migrations()]
    assert versions == list(range(1, len(versions) + 1))


def test_connection_policy_utc_and_no_replacement_scans(ws):
    with ws.connect() as con:
        assert con.execute("SELECT current_setting('TimeZone')").fetchone()[0] == "UTC"
        messages = [1, 2, 3]  # noqa: F841 - a notebook variable that must not become a table
        assert con.execute("SELECT count(*) FROM messages").fetchone()[0] == 0


def test_sql_is_read_only_and_cannot_touch_other_files(ws, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    with pytest.raises(ReadOnlyQuery):
        ws.sql(f"SELECT * FROM read_csv('{secret}')")
    with pytest.raises(ReadOnlyQuery):
        ws.sql(f"COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'")
    with pytest.raises(ReadOnlyQuery):
        ws.sql("DELETE FROM accounts")
    assert not (tmp_path / "out.csv").exists()
    assert ws.sql("SELECT ? + 1 AS x", [41])["x"].tolist() == [42]


def test_a_failed_transaction_leaves_nothing(ws):
    with pytest.raises(RuntimeError), ws.transaction() as con:
        con.execute("INSERT INTO settings VALUES ('k', 'v')")
        raise RuntimeError("boom")
    assert ws.sql("SELECT count(*) AS n FROM settings")["n"][0] == 0


# --- two processes on one file --------------------------------------------------------

HOLDER = textwrap.dedent("""
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    con.execute("INSERT INTO settings VALUES ('holder', 'was here')")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
""")


def _hold(path, seconds):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    proc.stdout.close()  # it prints nothing more
    assert line == "locked"
    return proc


@pytest.mark.slow
def test_a_second_process_waits_for_the_holder_then_succeeds(tmp_path):
    path = tmp_path / "shared.duckdb"
    ws = bizchat.open(path, timeout=20)
    holder = _hold(path, 1.5)
    try:
        started = time.monotonic()
        with ws.transaction() as con:
            con.execute("INSERT INTO settings VALUES ('notebook', 'took its turn')")
        waited = time.monotonic() - started
    finally:
        holder.wait(timeout=30)
    assert waited > 0.5  # it really had to wait for the other process
    rows = dict(ws.sql("SELECT key, value FROM settings").values.tolist())
    assert rows == {"holder": "was here", "notebook": "took its turn"}


@pytest.mark.slow
def test_workspace_busy_after_the_timeout_names_the_file(tmp_path):
    path = tmp_path / "busy.duckdb"
    bizchat.open(path)
    holder = _hold(path, 30)
    try:
        ws = bizchat.Workspace.__new__(bizchat.Workspace)  # skip the migration connect
        ws.path, ws.timeout = path, 0.5
        with pytest.raises(WorkspaceBusy) as caught, ws.connect():
            pass
        assert str(path) in str(caught.value)
        assert "another process" in str(caught.value)
        assert isinstance(caught.value, TimeoutError)
        with pytest.raises(WorkspaceBusy):
            bizchat.open(path, timeout=0.3)
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
def test_two_processes_take_turns_writing(tmp_path):
    """Two writers in separate processes, each connecting per unit of work: every write lands."""
    path = tmp_path / "turns.duckdb"
    bizchat.open(path)
    writer = textwrap.dedent("""
        import sys, bizchat
        ws = bizchat.open(sys.argv[1], timeout=30)
        for i in range(25):
            with ws.transaction() as con:
                con.execute("INSERT INTO settings VALUES (?, 'x')", [f"{sys.argv[2]}-{i}"])
    """)
    procs = [subprocess.Popen([sys.executable, "-c", writer, str(path), name]) for name in "ab"]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    ws = bizchat.open(path)
    assert ws.sql("SELECT count(*) AS n FROM settings")["n"][0] == 50


def test_docs_schema_covers_every_table_and_column(ws):
    """docs/schema.md is the analysts' contract: it must name every live table and column."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "schema.md").read_text()
    columns = ws.sql("""SELECT table_name, column_name FROM information_schema.columns
                        WHERE table_schema = 'main' ORDER BY table_name, ordinal_position""")
    missing = []
    for table, group in columns.groupby("table_name"):
        if f"### {table}" not in doc and f", {table}" not in doc and f"{table}," not in doc:
            missing.append(table)
            continue
        for column in group["column_name"]:
            forms = [f"| {column} |", f"{table}.{column}", f"*.{column}", f"{column},", f", {column}"]
            if not any(form in doc for form in forms):
                missing.append(f"{table}.{column}")
    assert not missing, f"undocumented in docs/schema.md: {missing}"


def test_ids_of_deleted_rows_are_not_handed_out_again(ws):
    with ws.transaction() as con:
        con.execute("INSERT INTO contacts (contact_id, account_id, created_at) VALUES (1, 1, now()), (2, 1, now())")
        store.raise_id_floor(con, "contacts", "contact_id")
        con.execute("DELETE FROM contacts WHERE contact_id = 2")
        assert store.next_id(con, "contacts", "contact_id") == 3
        assert store.next_id(con, "contacts", "contact_id", 5) == 4   # an allocation is never repeated
        assert store.next_id(con, "contacts", "contact_id") == 9


def test_every_table_allocates_through_the_floor(ws):
    """A deleted label, template or automation does not give its id to the next one."""
    ws.accounts.add("+49 30 901820", name="Laden")
    first = ws.labels.create("+49 30 901820", "A")
    second = ws.labels.create("+49 30 901820", "B")
    ws.labels.delete("+49 30 901820", "B")
    third = ws.labels.create("+49 30 901820", "C")
    assert (first["label_id"], second["label_id"], third["label_id"]) == (1, 2, 3)
    one = ws.templates.create("+49 30 901820", "eins", "Hallo")
    ws.templates.delete("+49 30 901820", "eins")
    two = ws.templates.create("+49 30 901820", "zwei", "Hallo")
    assert two["template_id"] == one["template_id"] + 1


def test_docs_schema_lists_every_migration():
    """A new migration is documented in docs/schema.md's table of migrations."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "schema.md").read_text()
    missing = [f"{v:04d} {name}" for v, name, _ in store.migrations()
               if f"| {v:04d} | {name} |" not in doc]
    assert not missing, f"migrations not in docs/schema.md: {missing}"
