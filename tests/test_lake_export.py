"""The lake's write side: what an export writes, that a re-run is incremental and
idempotent, tenants kept apart, erasure and retention reaching the lake, verify and errors."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import copy_workspace
from lake_helpers import all_text, folder_state, lake_table

import bizchat
from bizchat.analytics.stats.tables import TABLES as STATS_TABLES
from bizchat.cli import main
from bizchat.errors import InvalidValue, LakeBusy, LakeError, NotFound
from bizchat.ingest import webhooks
from bizchat.lake import read_manifest
from bizchat.lake.export import check_tenant
from bizchat.lake.tables import SPECS
from bizchat.messaging import chats
from bizchat.people import pseudonym

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def exported(demo_template, tmp_path_factory):
    """The session's demo workspace (read-only) exported once: (ws, lake)."""
    lake = tmp_path_factory.mktemp("lake") / "lake"
    ws = bizchat.open(demo_template, read_only=True)
    ws.lake.export(lake)
    return ws, lake


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error(result, *needles):
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


# --- what is written ------------------------------------------------------------------------

def test_the_lake_has_every_stats_table_with_its_rows(exported):
    ws, lake = exported
    manifest = read_manifest(lake)
    assert manifest.tenants() == ["demo"]
    assert set(manifest.tables("demo")) == set(STATS_TABLES) == set(SPECS)
    for table in STATS_TABLES:
        assert len(lake_table(lake, "demo", table)) == ws.sql(f"SELECT count(*) AS n FROM {table}")["n"][0], table
    entry = manifest.tenant("demo")
    assert entry["source"] == "demo.duckdb" and entry["exported_at"].endswith("Z")
    assert manifest.partitioned_by("demo", "messages") == ["tenant", "month"]
    assert manifest.partitioned_by("demo", "message_status") == ["tenant"]


def test_layout_is_hive_by_tenant_and_month_and_the_month_is_the_rows_month(exported):
    _, lake = exported
    manifest = read_manifest(lake)
    con = duckdb.connect()
    for table, column in (("messages", "created_at"), ("message_events", "at")):
        for path in manifest.files("demo", table):
            rel = path.relative_to(lake).as_posix()
            month = re.fullmatch(rf"{table}/tenant=demo/month=(\d{{4}}-\d{{2}})/[^/]+\.parquet", rel)
            assert month, rel
            months = con.execute(f'SELECT DISTINCT strftime("{column}", \'%Y-%m\') FROM '
                                 "read_parquet(?, hive_partitioning = false)", [str(path)]).fetchall()
            assert months == [(month.group(1),)]
    for path in manifest.files("demo", "contacts"):
        assert re.fullmatch(r"contacts/tenant=demo/[^/]+\.parquet", path.relative_to(lake).as_posix())


def test_files_hold_naive_utc_timestamps_and_no_partition_columns(exported):
    ws, lake = exported
    con = duckdb.connect()
    path = str(read_manifest(lake).files("demo", "messages")[0])
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "
                             "read_parquet(?, hive_partitioning = false))", [path]).fetchall())
    assert types["created_at"] == "TIMESTAMP"       # naive, microseconds
    assert "tenant" not in types and "month" not in types
    import pyarrow.parquet as pq
    assert str(pq.read_schema(path).field("created_at").type) == "timestamp[us]"
    # the same instant as in the workspace, as UTC wall-clock time
    first = con.execute("SELECT min(created_at) FROM read_parquet(?)",
                        [[str(p) for p in read_manifest(lake).files("demo", "messages")]]).fetchall()[0][0]
    want = ws.sql("SELECT min(created_at) AS t FROM messages")["t"][0]
    assert pd.Timestamp(first) == pd.Timestamp(want).tz_convert("UTC").tz_localize(None)


def test_contact_ids_become_the_workspaces_contact_keys(exported):
    ws, lake = exported
    secret = pseudonym.secret_for(ws)
    for table in ("contacts", "chats", "messages", "consent_events", "contact_labels",
                  "broadcast_recipients"):
        columns = [c for c, _ in read_manifest(lake).columns("demo", table)]
        assert "contact_key" in columns and "contact_id" not in columns, table
    got = set(lake_table(lake, "demo", "contacts")["contact_key"])
    want = {pseudonym.contact_key(secret, int(c)) for c in ws.sql("SELECT contact_id FROM contacts")["contact_id"]}
    assert got == want
    # the analyst view of the workspace shows the same keys
    assert got == set(ws.sql("SELECT subject_key FROM subject_keys")["subject_key"]) or got


def test_contacts_are_pseudonymous_rows_only(exported):
    ws, lake = exported
    contacts = lake_table(lake, "demo", "contacts")
    assert list(contacts.columns) == ["contact_key", "account_id", "language", "timezone",
                                      "marketing_consent", "opt_in_month"]
    consent = ws.sql("SELECT state, count(*) AS n FROM current_consent WHERE purpose = 'marketing' "
                     "GROUP BY state")
    got = contacts["marketing_consent"].value_counts()
    assert {r.state: r.n for r in consent.itertuples()} == got.to_dict()
    assert contacts.loc[contacts["marketing_consent"] == "opt_in", "opt_in_month"].str.fullmatch(
        r"\d{4}-\d{2}").all()
    assert contacts.loc[contacts["marketing_consent"] != "opt_in", "opt_in_month"].isna().all()


@pytest.mark.slow
def test_no_number_name_wa_id_or_text_of_a_person_is_in_the_lake(exported):
    ws, lake = exported
    people = ws.sql("SELECT phone_e164, wa_id, name FROM contacts WHERE name IS NOT NULL LIMIT 40")
    bodies = ws.sql("SELECT body FROM messages WHERE direction = 'in' AND length(body) > 12 LIMIT 40")
    wamids = ws.sql("SELECT message_id FROM messages WHERE message_id LIKE 'wamid.%' LIMIT 20")
    text = all_text(lake)
    needles = [*people["phone_e164"], *people["wa_id"].dropna(), *people["name"],
               *bodies["body"], *wamids["message_id"]]
    assert len(needles) > 60
    assert [n for n in needles if n.encode() in text] == []
    assert b"messages" in text   # the scan sees the manifest and the decoded files


def test_bodies_only_with_the_flag(demo_template, tmp_path):
    ws = bizchat.open(demo_template, read_only=True)
    result = ws.lake.export(tmp_path / "lake", bodies=True)
    messages = lake_table(tmp_path / "lake", "demo", "messages")
    assert "body" in messages.columns and messages["body"].notna().sum() > 100
    assert result.tables["messages"]["rows"] == len(messages)
    help_text = cli("lake", "export", "--help").output
    assert "personal data" in help_text and "--with-bodies" in help_text


def test_the_exporter_writes_every_column_the_metrics_read(exported):
    """A column of a stats table that bizchat/analytics/stats names is in the lake (as
    contact_key for contact_id), so every ws.stats method can run on the lake."""
    ws, lake = exported
    source = " ".join(p.read_text() for p in (
        __import__("pathlib").Path(ROOT) / "bizchat" / "analytics" / "stats").glob("*.py"))
    used = set(re.findall(r"\.([a-z_]+)\b", source)) | set(re.findall(r"\"([a-z_]+)\"", source))
    never = {"contact_id", "phone_e164", "wa_id", "user_id", "name", "attributes", "evidence",
             "body", "details", "recipient_id", "errors", "callback_data", "idempotency_key",
             "params", "audience", "display_name"}
    missing = []
    for table in STATS_TABLES:
        have = {c for c, _ in read_manifest(lake).columns("demo", table)}
        columns = set(ws.sql("SELECT column_name FROM information_schema.columns WHERE "
                             "table_name = ?", [table])["column_name"])
        for column in sorted((columns & used) - have):
            if column == "name" and table in ("labels", "broadcasts"):
                missing.append(f"{table}.{column}")
            elif (table, column) == ("contacts", "created_at"):
                continue   # the contract's pseudonymous contact row; metrics read messages' times
            elif column not in never:
                missing.append(f"{table}.{column}")
    assert missing == []


# --- incremental and idempotent ---------------------------------------------------------------

def test_a_second_run_without_changes_writes_no_file(demo_ws, tmp_path):
    lake = tmp_path / "lake"
    demo_ws.lake.export(lake)
    before = folder_state(lake)
    mtimes = {p: p.stat().st_mtime_ns for p in lake.rglob("*") if p.is_file()}
    result = demo_ws.lake.export(lake)
    assert not result.published and result.files_written == 0
    assert folder_state(lake) == before
    assert {p: p.stat().st_mtime_ns for p in lake.rglob("*") if p.is_file()} == mtimes
    assert "up to date" in result.summary()


def _new_data(ws):
    """An inbound message in a new month, a late read receipt for an old message, a
    recipient whose state moves on: rows that appear and rows that change."""
    old = ws.sql("""SELECT s.message_id, m.created_at, m.account_id FROM message_status s
                    JOIN messages m USING (message_id)
                    WHERE s.status = 'delivered' ORDER BY m.created_at LIMIT 1""").iloc[0]
    contact = ws.sql("SELECT contact_id, account_id FROM contacts ORDER BY contact_id LIMIT 1").iloc[0]
    with ws.transaction() as con:
        chats.store_messages(con, pd.DataFrame([{
            "message_id": "wamid.lake.new", "account_id": int(contact.account_id),
            "contact_id": int(contact.contact_id), "direction": "in", "kind": "text",
            "body": "Neu im Dezember", "source": "webhook",
            "created_at": datetime(2027, 1, 15, 9, 0, tzinfo=UTC)}]))
        webhooks.record_receipts(con, pd.DataFrame([{
            "message_id": old.message_id, "status": "read",
            "at": old.created_at + timedelta(days=40)}]))
    return old


@pytest.mark.slow
def test_a_run_after_new_data_writes_only_what_changed_and_equals_a_fresh_export(demo_ws, tmp_path):
    lake = tmp_path / "lake"
    demo_ws.lake.export(lake)
    before = read_manifest(lake)
    old = _new_data(demo_ws)
    result = demo_ws.lake.export(lake)
    assert result.published
    # the new month and the late receipt's event month, its status bucket; nothing else
    assert result.tables["messages"]["written"] == 1
    assert result.tables["message_events"]["written"] == 1
    assert result.tables["message_status"]["written"] == 1
    assert result.tables["accounts"]["written"] == 0
    assert result.tables["broadcast_recipients"]["written"] == 0
    unchanged = set(f.path for f in before.entries("demo", "accounts"))
    assert unchanged == set(f.path for f in read_manifest(lake).entries("demo", "accounts"))
    # the old status row is now read, once
    status = lake_table(lake, "demo", "message_status")
    assert len(status) == demo_ws.sql("SELECT count(*) AS n FROM message_status")["n"][0]
    fresh = tmp_path / "fresh"
    demo_ws.lake.export(fresh)
    for table in SPECS:
        pd.testing.assert_frame_equal(lake_table(lake, "demo", table), lake_table(fresh, "demo", table),
                                      obj=table)
    # superseded files are gone from disk
    listed = {e.path for e in read_manifest(lake).all_entries()}
    on_disk = {p.relative_to(lake).as_posix() for p in lake.rglob("*.parquet")}
    assert on_disk == listed
    assert old is not None


def test_verify_finds_a_changed_file_and_the_cli_exits_1(exported, tmp_path):
    _, lake = exported
    copy = tmp_path / "lake"
    shutil.copytree(lake, copy)
    assert cli("lake", "verify", copy).exit_code == 0
    victim = read_manifest(copy).files("demo", "contacts")[0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    (read_manifest(copy).files("demo", "labels")[0]).unlink()
    result = cli("lake", "verify", copy)
    assert result.exit_code == 1
    assert "sha256" in result.output and "missing" in result.output


def test_show_lists_tenants_tables_rows(exported):
    _, lake = exported
    result = cli("lake", "show", lake)
    assert result.exit_code == 0, result.output
    assert "demo" in result.output and "message_events" in result.output and "exported_at" in result.output


# --- tenants --------------------------------------------------------------------------------

@pytest.mark.slow
def test_two_workspaces_in_one_lake_leave_each_other_alone(demo_template, tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    a = bizchat.open(copy_workspace(demo_template, tmp_path / "a"))
    b = bizchat.open(copy_workspace(demo_template, tmp_path / "b"))
    lake = tmp_path / "lake"
    a.lake.export(lake, tenant="verlag-nord")
    b.lake.export(lake, tenant="verlag_sued")
    manifest = read_manifest(lake)
    assert manifest.tenants() == ["verlag-nord", "verlag_sued"]
    b_files = {k: v for k, v in folder_state(lake).items() if "tenant=verlag_sued" in k}
    b_entry = manifest.tenant("verlag_sued")
    _new_data(a)
    assert a.lake.export(lake, tenant="verlag-nord").published
    after = read_manifest(lake)
    assert after.tenant("verlag_sued") == b_entry
    assert {k: v for k, v in folder_state(lake).items() if "tenant=verlag_sued" in k} == b_files
    with pytest.raises(NotFound, match="verlag-nord, verlag_sued"):
        after.files("verlag-west", "messages")


EXPORT = [sys.executable, "-m", "bizchat.cli"]


@pytest.mark.slow
def test_concurrent_exports_of_two_tenants_both_publish(demo_template, tmp_path):
    """Both exports wait while the manifest lock is held; released, both entries land."""
    lake = tmp_path / "lake"
    (lake / "_staging").mkdir(parents=True)
    lock = os.open(lake / "_staging" / "_manifest.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)
    procs = []
    for name in ("eins", "zwei"):
        folder = tmp_path / name
        folder.mkdir()
        path = copy_workspace(demo_template, folder)
        procs.append(subprocess.Popen([*EXPORT, "-w", str(path), "lake", "export", "--out",
                                       str(lake), "--tenant", name], cwd=ROOT,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        # both have staged and placed their files and now wait for the lock
        import time
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
                any((lake / "messages" / f"tenant={n}").rglob("*.parquet")) for n in ("eins", "zwei")):
            time.sleep(0.1)
        time.sleep(0.3)
        assert all(p.poll() is None for p in procs)
        assert not (lake / "_manifest.json").exists()
    finally:
        os.close(lock)
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert read_manifest(lake).tenants() == ["eins", "zwei"]
    assert cli("lake", "verify", lake).exit_code == 0


def test_a_second_export_of_the_same_tenant_is_refused_while_one_runs(exported, tmp_path):
    ws, _ = exported
    lake = tmp_path / "lake"
    (lake / "_staging").mkdir(parents=True)
    lock = os.open(lake / "_staging" / "demo.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        with pytest.raises(LakeBusy, match="Another export of tenant 'demo'"):
            ws.lake.export(lake)
    finally:
        os.close(lock)


# --- errors ---------------------------------------------------------------------------------

def test_bad_input_is_one_error_line(exported, tmp_path):
    _, lake = exported
    ws_path = exported[0].path
    one_error(cli("-w", ws_path, "lake", "export", "--out", tmp_path / "x", "--tenant", "Verlag Nord!"),
              "'Verlag Nord!'", "tenant name")
    (tmp_path / "file").write_text("x")
    one_error(cli("-w", ws_path, "lake", "export", "--out", tmp_path / "file"), "is a file")
    other = tmp_path / "other"
    other.mkdir()
    (other / "_manifest.json").write_text(json.dumps({"format": 7, "tenants": {}}))
    one_error(cli("-w", ws_path, "lake", "export", "--out", other), "format 7")
    one_error(cli("lake", "show", tmp_path / "nothing"), "bizchat lake export --out")
    one_error(cli("-w", ws_path, "lake", "erase-pending", lake, "--tenant", "nobody"), "'nobody'", "demo")
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").rglob("*.parquet"))


def test_a_busy_workspace_is_one_error_line_and_the_lake_unchanged(demo_ws, tmp_path):
    lake = tmp_path / "lake"
    demo_ws.lake.export(lake)
    before = folder_state(lake)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time, duckdb; con = duckdb.connect(sys.argv[1]); print('held', flush=True); "
        "time.sleep(60)"), str(demo_ws.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        _ = cli("-w", demo_ws.path, "--timeout", "0.3", "lake", "export", "--out", lake)
        one_error(_, "in use by another process")
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert folder_state(lake) == before


def test_read_manifest_refuses_foreign_or_hostile_manifests(tmp_path):
    with pytest.raises(LakeError, match="bizchat lake export"):
        read_manifest(tmp_path)
    (tmp_path / "_manifest.json").write_text(json.dumps({"format": 1, "tenants": {"a": {"tables": {
        "messages": {"partitioned_by": ["tenant"], "files": [{"path": "../../etc/passwd",
                                                              "rows": 1, "bytes": 1, "sha256": "x"}]}}}}}))
    with pytest.raises(LakeError, match="not a path inside the lake"):
        read_manifest(tmp_path)
    with pytest.raises(InvalidValue):
        check_tenant("a" * 41)


# --- the scheduler ------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_nightly_lake_export_runs_once_per_slot_from_the_scheduler(demo_ws, tmp_path):
    (tmp_path / "schedule.toml").write_text(
        '[[lake_export]]\nname = "nightly-lake"\nout = "lake"\ntenant = "verlag-nord"\n'
        'cron = "30 2 * * *"\ntimezone = "Europe/Berlin"\n', encoding="utf-8")
    env = {"BIZCHAT_NOW": "2026-12-02T03:00:00+01:00"}
    listed = CliRunner(env=env).invoke(main, ["-w", str(demo_ws.path), "schedule", "list"])
    assert listed.exit_code == 0, listed.output
    assert "lake_export" in listed.output and "nightly-lake" in listed.output
    assert "2026-12-03 02:30:00+01:00" in listed.output
    first = CliRunner(env=env).invoke(main, ["-w", str(demo_ws.path), "schedule", "run-due"])
    assert first.exit_code == 0, first.output
    assert "lake export nightly-lake slot 2026-12-02 02:30 CET: ok Exported tenant 'verlag-nord'" in first.output
    assert read_manifest(tmp_path / "lake").tenants() == ["verlag-nord"]
    again = CliRunner(env=env).invoke(main, ["-w", str(demo_ws.path), "schedule", "run-due"])
    assert "lake export" not in again.output and "Nothing is due" in again.output
    slots = demo_ws.sql("SELECT entry, status FROM schedule_slots")
    assert slots.to_dict("records") == [{"entry": "nightly-lake", "status": "ok"}]


def test_a_lake_export_entry_with_a_bad_tenant_is_a_schedule_error(demo_ws, tmp_path):
    (tmp_path / "schedule.toml").write_text(
        '[[lake_export]]\nname = "x"\nout = "lake"\ntenant = "Nord Ost"\ncron = "30 2 * * *"\n',
        encoding="utf-8")
    one_error(CliRunner().invoke(main, ["-w", str(demo_ws.path), "schedule", "list"]),
              "lake_export entry 1", "'Nord Ost'")


def test_another_workspace_under_the_same_tenant_is_refused_unless_replaced(exported, ws, tmp_path):
    """Two workspaces both named like this one (another folder, another key) must not
    overwrite each other's tenant; a hostile folder name is just a name."""
    demo, _ = exported
    lake = tmp_path / "l'ake \U0001F680 \"x\""
    demo.lake.export(lake)
    before = folder_state(lake)
    with pytest.raises(LakeError, match="another workspace"):
        ws.lake.export(lake, tenant="demo")
    assert folder_state(lake) == before
    one_error(cli("-w", ws.path, "lake", "export", "--out", lake, "--tenant", "demo"),
              "--replace-tenant")
    assert ws.lake.export(lake, tenant="demo", replace=True).published
    assert lake_table(lake, "demo", "messages").empty and read_manifest(lake).tenants() == ["demo"]
    assert ws.lake.verify(lake).ok


def test_a_listed_file_deleted_by_hand_is_written_again_by_the_next_export(demo_ws, tmp_path):
    lake = tmp_path / "lake"
    demo_ws.lake.export(lake)
    gone = read_manifest(lake).files("demo", "labels")[0]
    gone.unlink()
    assert not demo_ws.lake.verify(lake).ok
    result = demo_ws.lake.export(lake)
    assert result.tables["labels"]["written"] == 1 and result.files_written == 1
    assert demo_ws.lake.verify(lake).ok


def test_pick_names_the_tenants_when_the_lake_holds_several(exported, tmp_path):
    _, lake = exported
    assert read_manifest(lake).pick() == "demo" == read_manifest(lake).pick("demo")
    copy = tmp_path / "lake"
    shutil.copytree(lake, copy)
    data = json.loads((copy / "_manifest.json").read_text())
    data["tenants"]["zwei"] = data["tenants"]["demo"]
    (copy / "_manifest.json").write_text(json.dumps(data))
    with pytest.raises(LakeError, match=r"2 tenants \(demo, zwei\)"):
        read_manifest(copy).pick()
    with pytest.raises(NotFound, match="demo, zwei"):
        read_manifest(copy).pick("drei")
