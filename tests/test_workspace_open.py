"""Opening a workspace: a mistyped path is an error, not a new file; other formats, other
applications' databases, damaged files and newer schemas are refused and left as they
were; commands that only read open read-only and never create, migrate or change a file."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import click
import duckdb
import pytest
from click.testing import CliRunner

import bizchat
from bizchat import store
from bizchat.cli import main
from bizchat.errors import NotAWorkspace, NoWorkspace, ReadOnlyWorkspace, SchemaError

SHOP, ANNA = "+49 30 1234567", "0170 1000001"


def cli(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def fingerprint(path: Path) -> tuple:
    """The file's bytes and mtime, and what else lies in its folder."""
    return (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns,
            sorted(p.name for p in path.parent.iterdir()))


def one_error_line(result, *parts: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for part in parts:
        assert part in lines[0], (part, lines[0])


# --- a mistyped path ----------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["info"], ["sql", "SELECT 1"], ["stats", "open-rates"], ["contacts", "list", "-a", SHOP],
    ["accounts", "add", SHOP, "--name", "Laden"], ["privacy", "purge", "--dry-run"],
])
def test_a_mistyped_workspace_is_an_error_not_a_new_file(tmp_path, args):
    typo = tmp_path / "typo" / "x.duckdb"
    result = cli("-w", typo, *args)
    one_error_line(result, f"Error: no workspace at {typo} (create one with bizchat init)")
    assert not (tmp_path / "typo").exists()


@pytest.mark.slow
def test_the_real_command_line_says_so_too(tmp_path):
    typo = tmp_path / "typo" / "x.duckdb"
    proc = subprocess.run([sys.executable, "-m", "bizchat.cli", "-w", str(typo), "info"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == f"Error: no workspace at {typo} (create one with bizchat init)\n"
    assert not (tmp_path / "typo").exists()


def test_init_creates_and_the_api_keeps_creating(tmp_path):
    path = tmp_path / "new" / "shop.duckdb"
    result = cli("-w", path, "init")
    assert result.exit_code == 0 and path.exists(), result.output
    assert bizchat.open(tmp_path / "api.duckdb").info()["schema_version"] == store.latest_version()
    with pytest.raises(NoWorkspace, match="create one with bizchat init"):
        bizchat.open(tmp_path / "missing.duckdb", create=False)
    with pytest.raises(NoWorkspace):
        bizchat.open(tmp_path / "missing.duckdb", read_only=True)
    assert not (tmp_path / "missing.duckdb").exists()


# --- files that are something else ---------------------------------------------------------

def _sqlite(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers (name TEXT)")
    con.commit()
    con.close()


def _zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a.txt", "x")


@pytest.mark.parametrize(("make", "what"), [
    (_sqlite, "is a SQLite database"),
    (_zip, "is a zip archive"),
    (lambda p: p.write_text("name,phone\nAnna,0170\n"), "is a text file"),
    (lambda p: p.write_bytes(bytes(range(256)) * 4), "binary file that is not a DuckDB database"),
])
def test_other_formats_are_named_and_left_alone(tmp_path, make, what):
    """DuckDB would try to download its SQLite extension for a SQLite file: the format is
    told from the first bytes before DuckDB touches the file."""
    path = tmp_path / "data.duckdb"
    make(path)
    before = fingerprint(path)
    for args in (["info"], ["sql", "SELECT 1"], ["accounts", "add", SHOP, "--name", "L"],
                 ["init"], ["init", "--yes"]):
        one_error_line(cli("-w", path, *args), str(path), what, "not a bizchat workspace")
    assert fingerprint(path) == before


def test_an_empty_file_is_no_workspace_until_init(tmp_path):
    path = tmp_path / "touched.duckdb"
    path.touch()
    one_error_line(cli("-w", path, "info"),
                   f"{path} is an empty file, not a workspace (create one with bizchat init)")
    assert path.stat().st_size == 0
    assert cli("-w", path, "init").exit_code == 0
    assert cli("-w", path, "info").exit_code == 0


@pytest.fixture
def foreign(tmp_path) -> Path:
    """Another application's DuckDB database."""
    path = tmp_path / "shop.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE orders (id INTEGER, total DECIMAL(9, 2))")
    con.execute("INSERT INTO orders VALUES (1, 9.99)")
    con.close()
    return path


def _tables(path: Path) -> list[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return sorted(r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall())
    finally:
        con.close()


def test_another_applications_database_gets_no_bizchat_tables(foreign):
    before = fingerprint(foreign)
    for args in (["info"], ["sql", "SELECT 1"], ["stats", "open-rates"],
                 ["accounts", "add", SHOP, "--name", "L"]):
        one_error_line(cli("-w", foreign, *args), "is a DuckDB database but not a bizchat "
                       "workspace", "1 other table(s) (orders)")
    with pytest.raises(NotAWorkspace) as caught:
        bizchat.open(foreign)
    assert caught.value.tables == ["orders"] and "adopt=True" in str(caught.value)
    assert fingerprint(foreign) == before and _tables(foreign) == ["orders"]


def test_init_asks_before_adding_its_tables_to_a_database_with_tables(foreign):
    before = fingerprint(foreign)
    refused = cli("-w", foreign, "init", input="n\n")
    assert refused.exit_code == 1 and "holding 1 other table(s) (orders)" in refused.output
    assert "Aborted" in refused.output and fingerprint(foreign) == before
    agreed = cli("-w", foreign, "init", input="y\n")
    assert agreed.exit_code == 0, agreed.output
    assert {"orders", "accounts", "schema_migrations"} <= set(_tables(foreign))
    assert cli("-w", foreign, "info").exit_code == 0


def test_init_yes_skips_the_question(foreign):
    assert cli("-w", foreign, "init", "--yes").exit_code == 0
    assert bizchat.open(foreign, read_only=True).sql("SELECT total FROM orders")["total"].tolist() == [9.99]


# --- damaged files, newer schemas, unwritable folders: one line, the file as it was -------------

@pytest.fixture
def workspace(tmp_path) -> Path:
    path = tmp_path / "ws.duckdb"
    ws = bizchat.open(path)
    ws.accounts.add(SHOP, name="Laden")
    return path


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[3 * 4096:3 * 4096 + 64] = b"\xa5" * 64      # inside a checksummed block
    path.write_bytes(bytes(data))


def _cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:8192])


def _newer(path: Path) -> None:
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_migrations VALUES (999, 'from_the_future', now())")
    con.close()


@pytest.mark.parametrize(("damage", "says"), [
    (_corrupt, "Cannot read the workspace"), (_cut, "Cannot read the workspace"),
    (_newer, "newer than this bizchat"),
])
def test_a_damaged_or_newer_file_is_one_line_and_left_as_it_was(workspace, damage, says):
    damage(workspace)
    before = fingerprint(workspace)
    for args in (["info"], ["sql", "SELECT 1"], ["accounts", "add", "030 7654321", "--name", "B"],
                 ["init"]):
        one_error_line(cli("-w", workspace, *args), says)
    assert fingerprint(workspace) == before


def _unwritable_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    if not os.access(folder, os.W_OK):      # not root: the mode holds
        return folder
    if os.path.isdir("/sys") and not os.access("/sys", os.W_OK) or _refuses("/sys"):
        return Path("/sys")                 # root in a container: sysfs refuses new files
    pytest.skip("no folder here refuses writes to this user")


def _refuses(folder: str) -> bool:
    try:
        Path(folder, "bizchat-probe").mkdir()
    except OSError:
        return True
    Path(folder, "bizchat-probe").rmdir()
    return False


def test_init_in_an_unwritable_folder_is_one_line(tmp_path):
    folder = _unwritable_folder(tmp_path)
    for path in (folder / "ws.duckdb", folder / "new" / "ws.duckdb"):
        one_error_line(cli("-w", path, "init"), f"Cannot create the workspace {path}")
        assert not path.exists()


# --- commands that only read open read-only ----------------------------------------------------

# Every command that only reads, with the arguments it needs here. The test below fails
# when a command's declared mode and this list disagree.
READERS = {
    "info": [], "sql": ["SELECT count(*) FROM contacts"],
    "accounts list": [], "accounts show": [SHOP],
    "contacts list": ["-a", SHOP], "contacts show": [ANNA, "-a", SHOP],
    "labels list": ["-a", SHOP], "labels contacts": ["-a", SHOP, "--any", "VIP"],
    "replies list": ["-a", SHOP], "replies render": ["/danke", "--contact", ANNA, "-a", SHOP],
    "automations list": ["-a", SHOP],
    "broadcast list": [], "broadcast show": ["{b}"], "broadcast plan": ["{b}"],
    "broadcast preview": ["{b}", "--contact", ANNA],
    "stats open-rates": [], "stats funnel": [], "stats failures": [], "stats time-to-read": [],
    "stats send-time": [], "stats ab": ["{b}"], "stats lift": ["{b}"],
    "stats sample-size": ["--mde", "0.1", "--baseline", "0.5"], "stats cohorts": [],
    "stats chats": [],
    "privacy consent": [ANNA, "-a", SHOP], "privacy coverage": [],
    "privacy retention show": [], "report runs": [], "schedule list": [],
    "lake export": ["--out", "{lake}"], "lake erase-pending": ["{lake}"],
}
# Commands that only read unless an option asks for a change.
READ_UNLESS_CHANGING = {"broadcast limits": ["-a", SHOP], "privacy purge": ["--dry-run"]}
# Commands that open no workspace, or open it themselves.
NO_WORKSPACE = {"report list", "webhook serve", "lake show", "lake verify"}  # serve: the receiver opens it itself (server.py)


def _commands(group: click.Group, prefix: str = ""):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", getattr(command.callback, "workspace_mode", None)


def test_every_command_declares_how_it_uses_the_workspace():
    modes = dict(_commands(main))
    assert {c for c, m in modes.items() if m == "read"} == set(READERS)
    assert {c for c, m in modes.items() if m == "read unless changing"} == set(READ_UNLESS_CHANGING)
    assert {c for c, m in modes.items() if m == "create"} == {"init", "demo"}
    assert {c for c, m in modes.items() if m is None} == NO_WORKSPACE


@pytest.fixture(scope="module")
def filled(tmp_path_factory) -> tuple[Path, int]:
    from bizchat.campaigns import outbox

    path = tmp_path_factory.mktemp("readers") / "shop.duckdb"
    ws = bizchat.open(path)
    ws.accounts.add(SHOP, name="Laden")
    for n in range(12):
        contact = ws.contacts.add(SHOP, f"0170 10000{n + 1:02d}", name=f"Kundin {n}")
        ws.consent.opt_in(contact["contact_id"], source="form", evidence="DOI")
    ws.labels.create(SHOP, "VIP")
    ws.labels.assign(SHOP, "VIP", [ANNA])
    ws.replies.add(SHOP, "/danke", "Danke, {first_name}!")
    ws.automations.set_greeting(SHOP, "Hallo!")
    broadcast = ws.broadcasts.create(SHOP, "Sommer", body="Hallo {first_name}!",
                                     variants=["Hi {first_name}!"], control=0.2, seed=3,
                                     category="marketing", missing="fallback",
                                     fallbacks={"first_name": "du"})
    ws.broadcasts.schedule(broadcast["broadcast_id"], at="2025-06-02T10:00:00+00:00")
    outbox.send(ws, broadcast["broadcast_id"], transport="simulated", seed=3)
    return path, broadcast["broadcast_id"]


HOLDER = textwrap.dedent("""
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    print("holding", flush=True)
    time.sleep(600)
""")


@pytest.fixture
def held(filled):
    """Another process reads the workspace: readers may share the file, writers may not."""
    path, broadcast = filled
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline().strip()
    proc.stdout.close()  # it prints nothing more
    assert line == "holding"
    yield path, broadcast
    proc.kill()
    proc.wait()


@pytest.mark.slow
def test_commands_that_only_read_share_the_file_and_change_nothing(held):
    path, broadcast = held
    before = fingerprint(path)
    for command, args in {**READERS, **READ_UNLESS_CHANGING}.items():
        lake = path.parent.with_name(path.parent.name + "-lake")   # beside, not in, its folder
        args = [a.format(b=broadcast, lake=lake) for a in args]
        result = cli("-w", path, "--timeout", "0.5", *command.split(), *args)
        assert result.exit_code == 0, (command, result.output)
    assert fingerprint(path) == before
    # A writer is locked out by the reading process (so the readers above really read-only).
    one_error_line(cli("-w", path, "--timeout", "0.5", "labels", "create", "Neu", "-a", SHOP),
                   "in use by another process")


def test_reading_never_migrates_an_older_workspace(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    store.migrate(con, upto=4)
    con.close()
    before = fingerprint(path)
    for args in (["info"], ["sql", "SELECT 1"], ["stats", "open-rates"]):
        one_error_line(cli("-w", path, *args), "schema version 4", "bizchat init")
    with pytest.raises(SchemaError):
        bizchat.open(path, read_only=True)
    assert fingerprint(path) == before
    assert cli("-w", path, "init").exit_code == 0          # writing upgrades it
    assert bizchat.open(path, read_only=True).schema_version == store.latest_version()


def test_a_read_only_workspace_refuses_changes_clearly(workspace):
    ws = bizchat.open(workspace, read_only=True)
    before = fingerprint(workspace)
    with pytest.raises(ReadOnlyWorkspace, match="opened read-only"):
        ws.accounts.add("030 7654321", name="Zweiter")
    with pytest.raises(ReadOnlyWorkspace), ws.connect() as con:
        con.execute("DELETE FROM accounts")
    assert ws.accounts.list()["display_name"].tolist() == ["Laden"]
    assert fingerprint(workspace) == before


@pytest.mark.slow
def test_python_readers_share_the_file_with_other_readers(held):
    """A notebook's ``bizchat.open(path)`` (read-write) opens and reads while another process
    reads the file: the services' reads use read-only connections. Only a change waits."""
    from bizchat.errors import WorkspaceBusy

    path, broadcast = held
    before = fingerprint(path)
    ws = bizchat.open(path, timeout=0.5)
    assert ws.accounts.list()["display_name"].tolist() == ["Laden"]
    assert len(ws.contacts.list(SHOP)) == 12
    assert ws.contacts.get(SHOP, ANNA)["name"] == "Kundin 0"
    assert ws.labels.list(SHOP)["name"].tolist() == ["VIP"]
    assert len(ws.labels.contacts(SHOP, any_of=["VIP"])) == 1
    assert ws.replies.list(SHOP)["shortcut"].tolist() == ["/danke"]
    assert ws.replies.render("/danke", ANNA, account=SHOP) == "Danke, Kundin!"
    assert len(ws.automations.list(SHOP)) == 1
    assert ws.consent.may_send(SHOP, ANNA, "marketing")
    assert ws.broadcasts.list()["broadcast_id"].tolist() == [broadcast]
    assert ws.broadcasts.show(broadcast)["broadcast"]["name"] == "Sommer"
    counts = ws.broadcasts.counts(broadcast)
    assert counts["sent"] + counts["skipped"] == len(ws.broadcasts.recipients(broadcast)) == 12
    assert ws.broadcasts.preview(broadcast, contact=ANNA)
    assert ws.broadcasts.limits(SHOP)["account"] == "+49301234567"
    assert len(ws.chats.list(SHOP)) >= 1
    assert ws.stats.open_rates()["recipients"].tolist() == [12]
    assert len(ws.privacy.coverage()) >= 1
    assert len(ws.privacy.retention()) >= 1
    assert ws.templates.list(SHOP)["name"].tolist() == ["sommer", "sommer_b"]
    with pytest.raises(WorkspaceBusy, match="in use by another process"):
        ws.labels.create(SHOP, "Neu")
    assert fingerprint(path) == before
