"""Tombstones: an erased person stays erased when an old file is imported again.

Erasure keeps, per account, a keyed hash (pseudonym.erasure_hash) of the person's E.164
number, wa_id and user_id, with the time of erasure: enough to recognise them, not enough
to read the number back (without the workspace's pseudonymisation key the hash says
nothing, and the key is never stored with it). A contact import holds back every row whose
number matches a tombstone of its account, unless the row brings *new* consent: an opt-in
with evidence given after the erasure. The person coming back by writing to the business
is a new conversation and is not held back.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd

from .. import store
from ..errors import TombstoneKeyMismatch
from . import pseudonym


def add(con: duckdb.DuckDBPyConnection, contacts: list[dict], *, secret: bytes, reason: str,
        at: datetime) -> int:
    """Tombstones for the identifiers of ``contacts`` (call inside erasure's transaction)."""
    rows = []
    for c in contacts:
        values = {c.get("phone_e164"), c.get("wa_id"), c.get("user_id")}
        if c.get("phone_e164"):
            values.add(str(c["phone_e164"]).lstrip("+"))
        for value in sorted(str(v) for v in values if v):
            rows.append((int(c["account_id"]), pseudonym.erasure_hash(secret, c["account_id"], value)))
    if not rows:
        return 0
    frame = pd.DataFrame(rows, columns=["account_id", "subject_hash"]).drop_duplicates()
    con.register("_tomb_in", frame)
    try:
        con.execute("""
            INSERT INTO privacy_tombstones (account_id, subject_hash, key_id, erased_at, reason)
            SELECT account_id, subject_hash, ?, ?, ? FROM _tomb_in""",
                    [pseudonym.key_id(secret), at, reason])
    finally:
        con.unregister("_tomb_in")
    return len(frame)


def hold_back(con: duckdb.DuckDBPyConnection, account_id: int, rows: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """Split import rows into those that may be imported and those held back as erased.

    ``rows`` has line, phone_e164, wa_id, action and recorded_at (contact_import's validated
    rows). Returns (rows to import, [{line, reason}] held back). Call inside the import's
    transaction.
    """
    if rows.empty or not con.execute(
            "SELECT count(*) FROM privacy_tombstones WHERE account_id = ?", [account_id]).fetchall()[0][0]:
        return rows, []
    secret = pseudonym.workspace_secret(con)
    foreign = con.execute("SELECT count(*) FROM privacy_tombstones WHERE account_id = ? AND key_id <> ?",
                          [account_id, pseudonym.key_id(secret)]).fetchall()[0][0]
    if foreign:
        raise TombstoneKeyMismatch(
            f"{foreign} erasure record(s) of this account were made with another "
            f"pseudonymisation key than the current one (${pseudonym.ENV} or the workspace's "
            "key file), so this import cannot check whether it would bring erased people back. "
            f"Restore the key used for those erasures (the .key file beside the workspace, or "
            f"${pseudonym.ENV}) and import again.")
    probe = pd.DataFrame({
        "i": range(len(rows)),
        "e164": rows["phone_e164"].astype(object).to_numpy(),
        "wa_id": rows["wa_id"].astype(object).to_numpy(),
        "opt_in_at": pd.to_datetime(rows["recorded_at"].where(rows["action"] == "opt_in"), utc=True)
                      .astype("datetime64[us, UTC]").reset_index(drop=True),
    })
    message = "'erased:' || CAST(? AS VARCHAR) || ':' || {col}"
    outer, inner = pseudonym.pads(secret)
    with store.registered(con, "_tomb_probe", probe):
        found = con.execute(f"""
            WITH h AS (
                SELECT i, opt_in_at, {pseudonym.hmac_sql(message.format(col='e164'))} AS h1,
                       {pseudonym.hmac_sql(message.format(col='wa_id'))} AS h2
                FROM _tomb_probe)
            SELECT h.i, max(t.erased_at) AS erased_at,
                   coalesce(any_value(h.opt_in_at) > max(t.erased_at), false) AS renewed
            FROM h JOIN privacy_tombstones t
              ON t.account_id = ? AND t.subject_hash IN (h.h1, h.h2)
            GROUP BY h.i""", [outer, inner, account_id, outer, inner, account_id, account_id]).df()
    if found.empty:
        return rows, []
    held = found[~found["renewed"].astype(bool)]
    positions = held["i"].astype(int).tolist()
    lines = rows["line"].iloc[positions].tolist()
    notes = [{"line": int(line), "reason": (
        f"this person was erased on {at:%Y-%m-%d} (GDPR Art. 17); import them again only with "
        "consent given after that date (consent yes, evidence and consent_at)")}
        for line, at in zip(lines, held["erased_at"], strict=True)]
    keep = rows.drop(index=rows.index[positions])
    return keep, notes
