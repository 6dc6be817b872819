"""Pseudonymous contact keys: the one place that turns a contact into an analyst-facing key.

A plain hash of a phone number is not anonymous: the number space is small enough to hash
every number in it. So the key is a keyed hash, HMAC-SHA256 with a per-workspace secret:

* the secret comes from ``$BIZCHAT_PSEUDONYM_KEY`` when set, else from the key file beside
  the workspace (``<workspace>.key``, owner-only; see keyfile.py), generated when the
  workspace is created. It is never inside the workspace (``bizchat sql`` cannot read it),
  never in the repo, never a report parameter, never printed. Workspaces that kept it in
  ``settings`` (``pseudonym_key``) have it moved to the file by migration 0006;
* ``contact_key`` is the hex HMAC of ``"contact:<contact_id>"`` (64 hex digits); it is what ``subject_key`` means in ``audit_log``, exports and the analyst
  views (``analyst_contacts``, ``analyst_messages``);
* ``erasure_hash`` keys the tombstones of erased people by account and identifier, so a
  re-import can be recognised without keeping the number.

Bulk paths compute the same HMAC inside DuckDB: ``sha256`` is built in, and HMAC is two
nested hashes over the key padded with 0x36 / 0x5c bytes (RFC 2104). Python computes those
two pads and passes them as BLOB parameters, so the secret never appears in SQL text or in
a view definition stored in the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os

import duckdb
import pandas as pd

from .. import store
from ..errors import BizchatError, MissingPseudonymKey
from ..store import keyfile

ENV = "BIZCHAT_PSEUDONYM_KEY"
SETTING = "pseudonym_key"          # where workspaces before migration 0006 kept it
KEY_ID_SETTING = "pseudonym_key_id"
_BLOCK = 64                        # SHA-256 block size in bytes


# --- the secret ------------------------------------------------------------------------------

def stored_secret(workspace) -> bytes | None:
    """``$BIZCHAT_PSEUDONYM_KEY``, else the key file of the workspace at ``workspace``
    (a path), else None. Never creates one."""
    env = os.environ.get(ENV)
    if env:
        return env.encode("utf-8")
    return keyfile.read_key(keyfile.key_path(workspace)) if workspace is not None else None


def _missing(path, why: str) -> MissingPseudonymKey:
    return MissingPseudonymKey(
        f"No pseudonymisation key: {why}. Copy the key file that belongs to this workspace "
        f"to {path} (copies of a workspace need its .key file beside them), or set ${ENV}. "
        "If the key is lost, `bizchat privacy keys --new-key` starts a new one (every "
        "pseudonymous key changes).", path=str(path))


def workspace_secret(con: duckdb.DuckDBPyConnection, *, create: bool = True) -> bytes:
    """The pseudonymisation secret of the workspace ``con`` is connected to.

    ``$BIZCHAT_PSEUDONYM_KEY``, else the key file. With ``create`` (and a connection that
    may write) a missing key file is generated, but only for a workspace that never had a
    key: once keys were handed out
    (a fingerprint in settings, tombstones), a silent new key would change every one of
    them, so that is MissingPseudonymKey instead.
    """
    where, read_only = keyfile.database_file(con)
    secret = stored_secret(where)
    if secret:
        return secret
    path = keyfile.key_path(where) if where is not None else "<workspace>.key"
    if not create or where is None or read_only:
        raise _missing(path, f"there is no key file {path}")
    if had_key(con):
        raise _missing(path, f"this workspace's key file {path} is missing")
    return keyfile.create_key(path)


def had_key(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether keys made with some secret are stored (fingerprint or tombstones)."""
    return bool(con.execute(
        "SELECT (SELECT count(*) FROM settings WHERE key = ?) "
        "+ (SELECT count(*) FROM privacy_tombstones)", [KEY_ID_SETTING]).fetchall()[0][0])


def secret_for(ws) -> bytes:
    """``workspace_secret`` as its own unit of work: reads only, unless the key must be
    made (a workspace opened read-only never makes one)."""
    secret = stored_secret(ws.path)
    if secret:
        return secret
    if ws.read_only:
        raise _missing(keyfile.key_path(ws.path), f"there is no key file {keyfile.key_path(ws.path)}")
    with ws.transaction() as con:
        return workspace_secret(con)


def ensure_key(ws) -> None:
    """Make the key file of a new (or just upgraded) workspace now, so that commands which
    only read find it; nothing to do when the environment gives the key."""
    if not os.environ.get(ENV) and keyfile.read_key(keyfile.key_path(ws.path)) is None:
        with ws.connect() as con, contextlib.suppress(MissingPseudonymKey):
            workspace_secret(con)  # a workspace keyed from the environment before: left so


def new_key(ws) -> bytes:
    """Start a new key after the old one was lost (every pseudonymous key changes; the
    stored ones are recomputed). Refused while a key exists."""
    if os.environ.get(ENV):
        raise BizchatError(f"The key comes from ${ENV}; change it there.")
    path = keyfile.key_path(ws.path)
    if keyfile.read_key(path) is not None:
        raise BizchatError(f"The workspace has its key ({path}); a new one would change every "
                           "pseudonymous key. Delete that file first if you really mean it.",
                           path=str(path))
    secret = keyfile.create_key(path)
    with ws.transaction() as con:
        refresh(con, secret=secret)
    return secret


def key_id(secret: bytes) -> str:
    """A fingerprint of the secret (not the secret): tells which key made a stored hash."""
    return hmac.new(secret, b"bizchat key id", hashlib.sha256).hexdigest()[:16]


# --- keys in Python ----------------------------------------------------------------------------

def contact_key(secret: bytes, contact_id: int) -> str:
    """The pseudonymous key of one contact (64 hex digits)."""
    return hmac.new(secret, f"contact:{int(contact_id)}".encode(), hashlib.sha256).hexdigest()


def erasure_hash(secret: bytes, account_id: int, identifier: str) -> str:
    """The tombstone hash of one identifier (E.164 number, wa_id or user_id) in an account."""
    message = f"erased:{int(account_id)}:{identifier}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


# --- keys in SQL (bulk) ------------------------------------------------------------------------

def pads(secret: bytes) -> tuple[bytes, bytes]:
    """(outer, inner) padded keys of RFC 2104, the parameters of ``hmac_sql``."""
    key = hashlib.sha256(secret).digest() if len(secret) > _BLOCK else secret
    key = key.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x5C for b in key), bytes(b ^ 0x36 for b in key)


def hmac_sql(message_sql: str) -> str:
    """SQL for the hex HMAC-SHA256 of the VARCHAR expression ``message_sql``.

    It has two ``?`` placeholders, bound to ``pads(secret)`` in that order. The expression
    must come from code, never from user input.
    """
    return f"sha256(?::BLOB || unhex(sha256(?::BLOB || encode({message_sql}))))"


def contact_key_sql(column: str = "contact_id") -> str:
    """SQL for ``contact_key`` of an integer column (two ``?``: ``pads(secret)``)."""
    return hmac_sql("'contact:' || CAST(" + column + " AS VARCHAR)")


def contact_keys(con: duckdb.DuckDBPyConnection, contact_ids, *, secret: bytes | None = None) -> pd.Series:
    """The keys of many contact_ids, in order (vectorised in DuckDB)."""
    secret = secret or workspace_secret(con)
    ids = pd.DataFrame({"pos": range(len(contact_ids)),
                        "contact_id": pd.array(list(contact_ids), dtype="Int64")})
    with store.registered(con, "_key_ids", ids):
        keys = con.execute(
            f"SELECT CASE WHEN contact_id IS NOT NULL THEN {contact_key_sql()} END AS k "
            "FROM _key_ids ORDER BY pos", list(pads(secret))).df()["k"]
    return keys.astype(object).where(keys.notna(), None)


def refresh(con: duckdb.DuckDBPyConnection, *, secret: bytes | None = None) -> int:
    """Bring ``subject_keys`` (contact_id -> key, behind the analyst views) up to date.

    Adds keys of new contacts and drops those of deleted ones; recomputes all when the
    secret changed. Returns how many keys were written. Call inside a transaction.
    """
    secret = secret or workspace_secret(con)
    current = key_id(secret)
    stored = con.execute("SELECT value FROM settings WHERE key = ?", [KEY_ID_SETTING]).fetchall()
    if not stored or stored[0][0] != current:
        con.execute("DELETE FROM subject_keys")
        con.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                    [KEY_ID_SETTING, current])
    con.execute("DELETE FROM subject_keys WHERE contact_id NOT IN (SELECT contact_id FROM contacts)")
    added = con.execute(f"""
        INSERT INTO subject_keys (contact_id, subject_key)
        SELECT contact_id, {contact_key_sql()} FROM contacts
        WHERE contact_id NOT IN (SELECT contact_id FROM subject_keys)""", list(pads(secret))).fetchall()
    return int(added[0][0]) if added else 0


__all__ = ["ENV", "MissingPseudonymKey", "contact_key", "contact_key_sql", "contact_keys",
           "ensure_key", "erasure_hash", "had_key", "hmac_sql", "key_id", "new_key", "pads",
           "refresh", "secret_for", "stored_secret", "workspace_secret"]
