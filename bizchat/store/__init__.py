"""The connection policy and the schema migrations: the only place that opens DuckDB.

DuckDB lets one process write a file at a time, and a writer locks every other process
out (read-only opens included). So bizchat never keeps a connection between calls: each
unit of work connects, does its work in one transaction and closes. While another
process holds the file we retry with backoff and give up with ``WorkspaceBusy``.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from ..errors import InvalidValue, NotAWorkspace, SchemaError, WorkspaceBusy
from . import keyfile

DEFAULT_TIMEOUT = 30.0

_LOCK_MESSAGES = ("Could not set lock", "Conflicting lock")


def _is_lock_error(exc: Exception) -> bool:
    return isinstance(exc, duckdb.IOException) and any(m in str(exc) for m in _LOCK_MESSAGES)


def _holder(exc: Exception) -> str:
    """The 'PID 1234' part of DuckDB's lock message, to tell the user who holds the file."""
    match = re.search(r"held in (.+?) \(PID (\d+)\)", str(exc))
    return f" (held by PID {match.group(2)}, {match.group(1)})" if match else ""


# What a file is, from its first bytes. DuckDB itself would try to download its SQLite
# extension for a SQLite file, and write its own tables into anything it can open.
_DUCKDB_MAGIC = (8, b"DUCK")
_FOREIGN = (
    (b"SQLite format 3\x00", "a SQLite database"),
    (b"PAR1", "a Parquet file"),
    (b"ARROW1", "an Arrow file"),
    (b"PK\x03\x04", "a zip archive (an .xlsx, .docx or a zipped export?)"),
    (b"\x1f\x8b", "a gzip file"),
    (b"%PDF", "a PDF document"),
    (b"\x89HDF", "an HDF5 file"),
)


def file_kind(path: str | os.PathLike) -> str:
    """"missing", "empty", "duckdb", or what else the file is ("a SQLite database", "a
    text file" ...), judged from its first bytes before DuckDB touches it."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except FileNotFoundError:
        return "missing"
    if not head:
        return "empty"
    at, magic = _DUCKDB_MAGIC
    if head[at:at + len(magic)] == magic:
        return "duckdb"
    for start, what in _FOREIGN:
        if head.startswith(start):
            return what
    try:
        head.decode("utf-8")
        text = b"\x00" not in head
    except UnicodeDecodeError as exc:
        text = exc.start >= len(head) - 3  # only a character cut at byte 64
    return "a text file" if text else "a binary file that is not a DuckDB database"


def check_duckdb(path: str | os.PathLike) -> str:
    """``file_kind(path)``; NotAWorkspace when the file holds another format than DuckDB."""
    kind = file_kind(path)
    if kind not in ("missing", "empty", "duckdb"):
        raise NotAWorkspace(
            f"{path} is {kind}, not a bizchat workspace (a DuckDB file). Check the path "
            "(--workspace or $BIZCHAT_WORKSPACE).", path=str(path), kind=kind)
    return kind


def connect(
    path: str | os.PathLike,
    *,
    read_only: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    external_access: bool = True,
    on_wait: Callable[[], object] | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open ``path`` with bizchat's connection policy, retrying while it is locked.

    ``on_wait`` is called once, when the file is found locked and the retries begin (a
    widget says "busy, retrying" instead of looking frozen).

    Policy: UTC session time zone; ``python_enable_replacements`` off, so a notebook
    variable called ``messages`` is never silently read as a table; optionally no
    external access (no reading or writing of other files), for user-typed SQL.
    """
    if Path(path).is_file():
        check_duckdb(path)
    # Never download extensions: a file DuckDB reads through one (SQLite) is refused above.
    config: dict[str, str | bool | int | float | list[str]] = {
        "python_enable_replacements": False, "autoinstall_known_extensions": False}
    if not external_access:
        config["enable_external_access"] = False
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only, config=config)
            break
        except duckdb.IOException as exc:
            if not _is_lock_error(exc):
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkspaceBusy(
                    f"The workspace {path} is in use by another process{_holder(exc)} and "
                    f"stayed locked for {timeout:g} s. Wait for that process (a running "
                    "import, send or report) to finish, or stop it, then try again; "
                    "a longer timeout can be set with bizchat.open(path, timeout=...).",
                    path=str(path),
                    timeout=timeout,
                ) from exc
            if on_wait is not None:
                on_wait()
                on_wait = None
            # Jitter keeps two waiting processes from retrying in lockstep.
            time.sleep(min(delay * (0.5 + random.random()), left))
            delay = min(delay * 2, 0.25)
    # ICU is built in but loads lazily, so the time zone is set after connecting.
    con.execute("SET TimeZone = 'UTC'")
    return con


# --- migrations -----------------------------------------------------------------------

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def migrations() -> list[tuple[int, str, str]]:
    """All migrations shipped with the package: (version, name, sql), in order."""
    found = []
    for entry in resources.files("bizchat.store.schema").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(versions) + 1)):
        raise SchemaError(f"Migrations must be numbered 1..n without gaps, found {versions}.")
    return found


def latest_version() -> int:
    return len(migrations())


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The highest applied migration, 0 for an empty file."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchall()[0][0]
    if not exists:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchall()[0][0]


def user_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Tables and views in the file's own schemas (what another application left there)."""
    return [r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_catalog = current_database() AND table_schema NOT IN "
        "('information_schema', 'pg_catalog') ORDER BY table_name").fetchall()]


def refuse_newer(version: int) -> None:
    """SchemaError for a file written by a newer bizchat: it is refused, not guessed at."""
    if version > latest_version():
        raise SchemaError(
            f"This workspace has schema version {version}, newer than this bizchat "
            f"understands ({latest_version()}). Upgrade bizchat (pip install -U bizchat).",
            version=version,
        )


def migrate(con: duckdb.DuckDBPyConnection, upto: int | None = None) -> list[int]:
    """Apply pending migrations, each with its record in one transaction.

    Forward only: a file whose schema is newer than this package is refused rather
    than guessed at. Returns the versions applied.
    """
    available = migrations()
    target = len(available) if upto is None else upto
    current = schema_version(con)
    refuse_newer(current)
    applied = []
    for version, name, sql in available:
        if version <= current or version > target:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            if version in _BEFORE:
                _BEFORE[version](con)
            con.execute(sql)
            con.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, now())",
                [version, name],
            )
            con.execute("COMMIT")
        except Exception as exc:
            con.execute("ROLLBACK")
            raise SchemaError(
                f"Migration {version:04d}_{name} failed: {exc}. The workspace is unchanged "
                "at its previous version; please report this with the message above.",
                version=version,
            ) from exc
        applied.append(version)
    return applied


def _key_to_its_file(con: duckdb.DuckDBPyConnection) -> None:
    """Before 0006 deletes it: the key kept in settings goes to the key file beside the
    workspace (a file that already holds another key is a conflict to settle by hand)."""
    rows = con.execute("SELECT value FROM settings WHERE key = 'pseudonym_key'").fetchall()
    where, _ = keyfile.database_file(con)
    if not rows or where is None:
        return
    path, stored = keyfile.key_path(where), rows[0][0].encode("utf-8")
    held = keyfile.read_key(path)
    if held is None:
        keyfile.create_key(path, stored)
    elif held != stored:
        raise SchemaError(
            f"{path} holds another pseudonymisation key than the one stored in the workspace "
            f"{where}. Move that file away (it belongs to another workspace), then open the "
            "workspace again: its own key is moved there.", path=str(path))


# Python steps that run inside a migration's transaction, before its SQL.
_BEFORE = {6: _key_to_its_file}


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All or nothing: commit on success, roll back on any exception."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@contextlib.contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, frame) -> Iterator[str]:
    """``frame`` (a DataFrame or Arrow table) visible to SQL as ``name`` for the block,
    unregistered afterwards. DuckDB refuses to register while the connection still has
    an open result (after ``.arrow()`` or a partly fetched cursor), so the open result is
    finished first with a trivial query: the one place that knows this workaround."""
    con.execute("SELECT NULL").fetchall()
    con.register(name, frame)
    try:
        yield name
    finally:
        con.unregister(name)


def rows(cursor: duckdb.DuckDBPyConnection) -> list[dict]:
    """The rows of an executed query as dicts (column name -> value)."""
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def one(cursor: duckdb.DuckDBPyConnection) -> dict | None:
    """The first row of an executed query as a dict, or None when there is none."""
    found = rows(cursor)
    return found[0] if found else None


def resolve_path(path: str | os.PathLike | None) -> Path:
    """The workspace path: the argument, else $BIZCHAT_WORKSPACE, else data/bizchat.duckdb."""
    if path is None:
        path = os.environ.get("BIZCHAT_WORKSPACE") or Path("data") / "bizchat.duckdb"
    return Path(path).expanduser()


def next_id(con: duckdb.DuckDBPyConnection, table: str, column: str, count: int = 1) -> int:
    """The first of ``count`` fresh ids for ``table.column``, the one id allocator of
    every table: max + 1, but never below the floor left by earlier allocations and
    deletions, so an id is never handed out twice (a deleted label's id does not come
    back; an erased contact's id is not given to a new person).

    Safe because DuckDB has one writer per file and callers allocate inside their
    transaction (the floor moves with it); bulk paths allocate a whole range at once.
    """
    first = _top(con, table, column)
    con.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                [f"id_floor.{table}.{column}", str(first + count)])
    return first


def _top(con: duckdb.DuckDBPyConnection, table: str, column: str) -> int:
    """max + 1 of ``table.column``, or its floor when that is higher."""
    if not (table.isidentifier() and column.isidentifier()):
        raise InvalidValue(f"not an identifier: {table}.{column}", input=f"{table}.{column}")
    top = con.execute(f'SELECT coalesce(max("{column}"), 0) + 1 FROM "{table}"').fetchall()[0][0]
    floor = con.execute("SELECT value FROM settings WHERE key = ?",
                        [f"id_floor.{table}.{column}"]).fetchall()
    return max(top, int(floor[0][0])) if floor else top


def raise_id_floor(con: duckdb.DuckDBPyConnection, table: str, column: str) -> None:
    """Before deleting rows: remember max + 1, so their ids are never allocated again."""
    next_id(con, table, column, count=0)


def conform(frame: pd.DataFrame | pa.Table, schema: pa.Schema, defaults: dict | None = None) -> pa.Table:
    """``frame`` as an Arrow table with exactly ``schema``'s columns, in order and cast to
    its types; a missing column takes its value from ``defaults`` (a scalar), else NULL.
    Bulk inserts go through this, so callers may pass only the columns they know."""
    if isinstance(frame, pd.DataFrame):
        frame = pa.Table.from_pandas(frame, preserve_index=False)
    n, defaults = frame.num_rows, defaults or {}
    columns = []
    for field in schema:
        if field.name in frame.column_names:
            columns.append(frame.column(field.name).cast(field.type))
        elif field.name in defaults:
            columns.append(pa.repeat(pa.scalar(defaults[field.name], field.type), n))
        else:
            columns.append(pa.nulls(n, field.type))
    return pa.Table.from_arrays(columns, schema=schema)
