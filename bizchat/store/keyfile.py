"""The pseudonymisation key's file: beside the workspace, owner-only, never inside it.

The key that keeps analyst views pseudonymous must not sit in the file whose data it
protects (GDPR Art. 4(5): kept separately), and nothing a read-only query can reach may
hold it: ``ws.sql`` and ``bizchat sql`` read the workspace's tables with external access
off, so they can read neither this file nor the environment.

``<workspace>.key`` (``data/shop.duckdb.key``) holds 64 hex digits and a newline, mode
0600. It is created atomically (written under a temporary name, then linked into place,
which fails if another process won the race) so a reader never sees half a key.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

import duckdb

from ..errors import BizchatError
from .durable import fsync_path

SUFFIX = ".key"
log = logging.getLogger("bizchat.store.keyfile")


def key_path(workspace: str | os.PathLike) -> Path:
    """Where the key of the workspace at ``workspace`` lives."""
    workspace = Path(workspace)
    return workspace.with_name(workspace.name + SUFFIX)


def database_file(con: duckdb.DuckDBPyConnection) -> tuple[Path | None, bool]:
    """The file behind ``con``'s database (None in memory), and whether ``con`` may only
    read it (then no key file is made either: reading never creates a file)."""
    rows = con.execute("SELECT path, readonly FROM duckdb_databases() WHERE database_name = "
                       "current_database()").fetchall()
    if not rows:
        return None, False
    return (Path(rows[0][0]) if rows[0][0] else None), bool(rows[0][1])


def read_key(path: str | os.PathLike) -> bytes | None:
    """The key in ``path``, or None when there is no such file."""
    path = Path(path)
    try:
        data = path.read_bytes().strip()
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BizchatError(f"Cannot read the pseudonymisation key {path}: {exc.strerror}. "
                           "Check that you may read it.", path=str(path)) from None
    if not data:
        raise BizchatError(f"The pseudonymisation key file {path} is empty. Restore it from "
                           "where you keep it, or set $BIZCHAT_PSEUDONYM_KEY.", path=str(path))
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s can be read by other users (mode %o); run: chmod 600 %s",
                    path, stat.S_IMODE(mode), path)
    return data


def create_key(path: str | os.PathLike, value: bytes | None = None) -> bytes:
    """Write ``value`` (default: 64 fresh random hex digits) to ``path`` unless a key is
    there already; returns the key the file holds afterwards."""
    path = Path(path)
    value = value if value is not None else secrets.token_hex(32).encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise BizchatError(
            f"Cannot write the pseudonymisation key {path}: {exc.strerror}. The key is kept "
            "beside the workspace; make its folder writable, or set $BIZCHAT_PSEUDONYM_KEY.",
            path=str(path)) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(value + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)       # atomic, and never replaces another process's key
        except FileExistsError:
            pass
        else:
            fsync_path(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    key = read_key(path)
    if key is None:   # removed between the link and the read, by someone else
        raise BizchatError(f"The pseudonymisation key {path} vanished while it was written. "
                           "Try again.", path=str(path))
    return key


__all__ = ["SUFFIX", "create_key", "database_file", "key_path", "read_key"]
