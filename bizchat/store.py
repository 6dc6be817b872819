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
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from .errors import SchemaError, WorkspaceBusy

DEFAULT_TIMEOUT = 30.0

_LOCK_MESSAGES = ("Could not set lock", "Conflicting lock")


def _is_lock_error(exc: Exception) -> bool:
    return isinstance(exc, duckdb.IOException) and any(m in str(exc) for m in _LOCK_MESSAGES)


def _holder(exc: Exception) -> str:
    """The 'PID 1234' part of DuckDB's lock message, to tell the user who holds the file."""
    match = re.search(r"held in (.+?) \(PID (\d+)\)", str(exc))
    return f" (held by PID {match.group(2)}, {match.group(1)})" if match else ""


def connect(
    path: str | os.PathLike,
    *,
    read_only: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    external_access: bool = True,
) -> duckdb.DuckDBPyConnection:
    """Open ``path`` with bizchat's connection policy, retrying while it is locked.

    Policy: UTC session time zone; ``python_enable_replacements`` off, so a notebook
    variable called ``messages`` is never silently read as a table; optionally no
    external access (no reading or writing of other files), for user-typed SQL.
    """
    config = {"python_enable_replacements": False}
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
    for entry in resources.files("bizchat.schema").iterdir():
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


def migrate(con: duckdb.DuckDBPyConnection, upto: int | None = None) -> list[int]:
    """Apply pending migrations, each with its record in one transaction.

    Forward only: a file whose schema is newer than this package is refused rather
    than guessed at. Returns the versions applied.
    """
    available = migrations()
    target = len(available) if upto is None else upto
    current = schema_version(con)
    if current > len(available):
        raise SchemaError(
            f"This workspace has schema version {current}, newer than this bizchat "
            f"understands ({len(available)}). Upgrade bizchat (pip install -U bizchat).",
            version=current,
        )
    applied = []
    for version, name, sql in available:
        if version <= current or version > target:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
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


def resolve_path(path: str | os.PathLike | None) -> Path:
    """The workspace path: the argument, else $BIZCHAT_WORKSPACE, else data/bizchat.duckdb."""
    if path is None:
        path = os.environ.get("BIZCHAT_WORKSPACE") or Path("data") / "bizchat.duckdb"
    return Path(path).expanduser()


def next_id(con: duckdb.DuckDBPyConnection, table: str, column: str, count: int = 1) -> int:
    """The first of ``count`` fresh ids for ``table.column``: max + 1, but never below the
    floor left by deletions (an erased contact's id is not handed to a new person).

    Safe because DuckDB has one writer per file and callers allocate inside their
    transaction; bulk paths allocate a whole range at once.
    """
    if not (table.isidentifier() and column.isidentifier()):
        raise ValueError(f"not an identifier: {table}.{column}")
    top = con.execute(f'SELECT coalesce(max("{column}"), 0) + 1 FROM "{table}"').fetchall()[0][0]
    floor = con.execute("SELECT value FROM settings WHERE key = ?",
                        [f"id_floor.{table}.{column}"]).fetchall()
    return max(top, int(floor[0][0])) if floor else top


def raise_id_floor(con: duckdb.DuckDBPyConnection, table: str, column: str) -> None:
    """Before deleting rows: remember max + 1, so their ids are never allocated again."""
    top = next_id(con, table, column)
    con.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                [f"id_floor.{table}.{column}", str(top)])


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
