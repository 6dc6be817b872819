"""Pseudonymous contact keys for the contact-level stats tables.

The key and its derivation belong to the data-protection module, ``bizchat.people.pseudonym``:
HMAC-SHA256 of ``"contact:<contact_id>"`` with the workspace secret from
``$BIZCHAT_PSEUDONYM_KEY``, else the key file beside the workspace (``<workspace>.key``,
made with the workspace; never inside it). These helpers only adapt it to the stats API, so a stats table's ``contact_key``
is the same key as ``audit_log.subject_key`` and the analyst views use.
"""

from __future__ import annotations

from collections.abc import Iterable

from ...people import pseudonym as keys

ENV_VAR = keys.ENV
SETTING = keys.SETTING


def pseudonym_key(ws) -> str:
    """The workspace's secret (a workspace that never had one and may be written gets its
    key file now)."""
    return keys.secret_for(ws).decode("utf-8")


def pseudonymize(contact_ids: Iterable, key: str) -> list[str | None]:
    """The pseudonymous key of each contact_id (None and NaN stay None)."""
    secret = key.encode("utf-8")
    return [None if cid is None or cid != cid else keys.contact_key(secret, int(cid))
            for cid in contact_ids]


def pseudonym(ws, contact_id) -> str:
    """The pseudonymous key of one contact of ``ws``."""
    return keys.contact_key(keys.secret_for(ws), int(contact_id))
