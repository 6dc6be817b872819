"""Compaction: rewrite the workspace file so deleted and overwritten values are gone.

DuckDB keeps deleted values in the file after DELETE and CHECKPOINT (the blocks are only
marked free), so an erasure is physical only once the file is rewritten:

1. connect with bizchat's policy (waits while another process holds the file) and
   CHECKPOINT, so the write-ahead log is empty;
2. ATTACH a fresh file beside it (``<workspace>.compact``) and ``COPY FROM DATABASE``
   into it: tables, constraints, views and data, written anew;
3. verify: the same tables, views and constraints, and per table the same row count and
   the same order-independent hash of all rows; then clear the "compaction pending" mark
   in the copy and DETACH it (which checkpoints it);
4. swap: take the lock DuckDB itself uses (fcntl on the file) so no other process opens
   the workspace meanwhile, check nobody wrote to it since step 1 (size, mtime, no .wal),
   fsync the copy, ``os.replace`` it over the workspace and fsync the folder.

Interrupted before the swap, the workspace is untouched (a leftover ``.compact`` file is
removed next time); the swap itself is atomic. A write by another process between
steps 1 and 4 is never lost: the swap is abandoned and the copy made again.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from .. import store
from ..errors import CompactionError, WorkspaceBusy
from ..store.durable import fsync_path

PENDING = "privacy.compaction_pending"
_ALIAS = "bizchat_compact"


@dataclass
class CompactionResult:
    path: str
    bytes_before: int
    bytes_after: int
    tables: int
    rows: int


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _fingerprint(con: duckdb.DuckDBPyConnection, database: str) -> dict:
    """Tables, views and constraints of ``database``, and per table (rows, hash of rows)."""
    def listing(sql: str) -> list:
        return con.execute(sql, [database]).fetchall()

    tables = [r[0] for r in listing(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? ORDER BY table_name")]
    data = {}
    for table in tables:
        data[table] = tuple(con.execute(
            f'SELECT count(*), coalesce(bit_xor(hash(t)), 0) FROM "{database}".main."{table}" AS t'
        ).fetchall()[0])
    return {
        "tables": listing("SELECT table_name, sql FROM duckdb_tables() WHERE database_name = ? ORDER BY ALL"),
        "views": listing("SELECT view_name, sql FROM duckdb_views() WHERE database_name = ? "
                         "AND NOT internal ORDER BY ALL"),
        "constraints": listing("SELECT table_name, constraint_type, constraint_text "
                               "FROM duckdb_constraints() WHERE database_name = ? ORDER BY ALL"),
        "data": data,
    }


def _stat(path: Path) -> tuple:
    st = path.stat()
    return st.st_size, st.st_mtime_ns, Path(f"{path}.wal").exists()


def _copy(path: Path, tmp: Path, timeout: float) -> tuple[tuple, int, int]:
    """Steps 1-3; returns the workspace's stat after closing, tables and rows copied."""
    for leftover in (tmp, Path(f"{tmp}.wal")):
        leftover.unlink(missing_ok=True)
    con = store.connect(path, timeout=timeout)
    try:
        con.execute("CHECKPOINT")
        source = con.execute("SELECT current_database()").fetchall()[0][0]
        con.execute(f"ATTACH {_quote(tmp)} AS {_ALIAS}")
        try:
            con.execute(f'COPY FROM DATABASE "{source}" TO {_ALIAS}')
            before, after = _fingerprint(con, source), _fingerprint(con, _ALIAS)
            if before != after:
                differs = [k for k in before if before[k] != after[k]]
                raise CompactionError(
                    f"The compacted copy of {path} differs from it ({', '.join(differs)}); the "
                    "workspace was left unchanged. Please report this; the erasure itself is "
                    "committed, only the old bytes are still in the file.", path=str(path))
            con.execute(f"DELETE FROM {_ALIAS}.main.settings WHERE key = ?", [PENDING])
        finally:
            con.execute(f"DETACH {_ALIAS}")
    except BaseException:
        con.close()
        tmp.unlink(missing_ok=True)
        raise
    con.close()
    rows = sum(n for n, _ in before["data"].values())
    return _stat(path), len(before["data"]), rows


def _lock(fd: int, timeout: float, path: Path) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise WorkspaceBusy(
                    f"The workspace {path} stayed in use by another process, so it could not be "
                    "compacted. Stop that process (a notebook, the webhook receiver, a report) "
                    "and run `bizchat privacy compact`.", path=str(path), timeout=timeout) from None
            time.sleep(0.05)


def compact(path: str | os.PathLike, *, timeout: float = store.DEFAULT_TIMEOUT,
            attempts: int = 3) -> CompactionResult:
    """Rewrite the workspace at ``path`` into a fresh file and swap it in (see above).
    No connection to the workspace may be open in this process."""
    path = Path(path)
    tmp = path.with_name(path.name + ".compact")
    bytes_before = path.stat().st_size
    for _ in range(attempts):
        seen, tables, rows = _copy(path, tmp, timeout)
        if Path(f"{tmp}.wal").exists():
            tmp.unlink(missing_ok=True)
            raise CompactionError(f"The compacted copy of {path} kept a write-ahead log; the "
                                  "workspace was left unchanged.", path=str(path))
        fd = os.open(path, os.O_RDWR)
        try:
            _lock(fd, timeout, path)
            if _stat(path) != seen:
                continue          # someone wrote meanwhile: copy again
            fsync_path(tmp)
            os.replace(tmp, path)
            fsync_path(path.parent)
        finally:
            os.close(fd)          # releases the lock
        return CompactionResult(str(path), bytes_before, path.stat().st_size, tables, rows)
    tmp.unlink(missing_ok=True)
    raise WorkspaceBusy(f"The workspace {path} kept changing while it was compacted ({attempts} "
                        "tries). Run `bizchat privacy compact` when it is quieter.",
                        path=str(path), timeout=timeout)


def pending(con: duckdb.DuckDBPyConnection) -> str | None:
    """When an erasure or purge last left old values in the file, or None."""
    rows = con.execute("SELECT value FROM settings WHERE key = ?", [PENDING]).fetchall()
    return rows[0][0] if rows else None
