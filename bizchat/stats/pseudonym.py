"""Pseudonymous contact keys for contact-level analytics (interim home).

A contact's key is HMAC-SHA256(secret, "contact:<contact_id>") in hex: stable within a
workspace, so tables can be joined and counted per person, but without the secret nobody
can get back to the contact_id, let alone the phone number. The secret comes from the
environment variable ``BIZCHAT_PSEUDONYM_KEY``, else the ``settings`` row
``pseudonym_key``, which is created with 32 random bytes on first use (DESIGN.md: secrets
come from the environment or the workspace, never from the repo).

The data-protection work owns this key for good (rotation, audit_log.subject_key); until
then ``pseudonym_key`` / ``pseudonymize`` here are the one place that derives it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable

ENV_VAR = "BIZCHAT_PSEUDONYM_KEY"
SETTING = "pseudonym_key"


def _key_in(con) -> str | None:
    row = con.execute("SELECT value FROM settings WHERE key = ?", [SETTING]).fetchall()
    return row[0][0] if row else None


def ensure_pseudonym_key(con) -> str:
    """The workspace's secret inside the caller's write transaction (created if missing).
    The environment variable, when set, wins."""
    env = os.environ.get(ENV_VAR)
    if env:
        return env
    key = _key_in(con)
    if key is None:
        key = secrets.token_hex(32)
        con.execute("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                    [SETTING, key])
        key = _key_in(con)
    return key


def pseudonym_key(ws) -> str:
    """The secret for ``ws``: $BIZCHAT_PSEUDONYM_KEY, else the settings row (created with
    a random value on first use, in its own short write transaction)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return env
    with ws.connect(read_only=True) as con:
        key = _key_in(con)
    if key is None:
        with ws.transaction() as con:
            key = ensure_pseudonym_key(con)
    return key


def pseudonymize(contact_ids: Iterable, key: str) -> list[str | None]:
    """The pseudonymous key of each contact_id (None stays None)."""
    secret = key.encode("utf-8")
    out = []
    for cid in contact_ids:
        if cid is None or cid != cid:  # None or NaN
            out.append(None)
            continue
        message = f"contact:{int(cid)}".encode()
        out.append(hmac.new(secret, message, hashlib.sha256).hexdigest())
    return out


def pseudonym(ws, contact_id) -> str:
    """The pseudonymous key of one contact of ``ws``."""
    return pseudonymize([contact_id], pseudonym_key(ws))[0]
