"""Erasure in the webhook spool (``<workspace>.spool``) and its quarantine file.

A line whose body is already in DuckDB (its payload id is in ``raw_payloads``, which
erasure redacts in the same transaction) is dropped. Every other line is a body not yet
ingested and is kept: rewritten without the person (payloads.redact, with a new id: the
sha256 of the new body) when it mentions them, else byte for byte. A line that cannot be
read is kept too (the ingester quarantines it). The workspace decides, not the spool
offset, so erasure never removes a body that has not reached it, whatever the offset
file says.

The new spool gets a new generation and replaces the old one atomically (temporary
file, fsync, os.replace, fsync of the folder), so the offset of the old file no longer
applies and ingestion reads the new one from the top. A crash before the swap leaves the
old spool and its offset as they were; a crash after it leaves the new one. Lines in the
quarantine file that mention the person are scrubbed the same way (as text).

Concurrency: call this while holding the workspace's write lock (inside erasure's
transaction), so the receiver's ingester cannot commit a batch meanwhile. The spool lock
is held throughout, so the receiver's appends wait for the swap (they open the file only
once they hold the lock, so none lands in the old file).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ..ingest.payloads import payload_id
from ..ingest.spool import Spool, decode_line, encode_line, header_line, new_generation, spool_file
from ..store import faults
from ..store.durable import write_atomic
from .payloads import Redaction, redact_text


def redact_spool(workspace_path: str | os.PathLike, redaction: Redaction,
                 in_scope: Callable[[dict], bool] = lambda meta: True, *, con=None) -> dict:
    """Rewrite the spool without the person; returns counts (lines kept, changed, and the
    bytes of ingested lines dropped). ``con``: the erasure's connection, to see which
    bodies are stored already (without it, only the lines before the spool offset count
    as stored)."""
    if not spool_file(workspace_path).exists():
        return {"pending_lines": 0, "changed_lines": 0, "dropped_ingested_bytes": 0}
    spool = Spool(workspace_path, repair=False)
    try:
        with spool.locked():
            counts = _redact_spool(spool, redaction, in_scope, con)
            _redact_quarantine(spool, redaction)
            return counts
    finally:
        spool.close()


def _redact_spool(spool: Spool, redaction, in_scope, con) -> dict:
    generation, first = spool.head()
    offset = spool.offset() if con is None else first
    data = spool.path.read_bytes()
    # An unfinished last line stays out (a torn line from a crash was never acknowledged,
    # and the receiver drops it too at its next start).
    lines = data[first:data.rfind(b"\n") + 1].split(b"\n")[:-1] if b"\n" in data[first:] else []
    decoded = []
    position = first
    for raw in lines:
        try:
            item = decode_line(raw) if raw.strip() else None
        except (ValueError, KeyError, TypeError):
            item = None
        decoded.append((position, raw, item))
        position += len(raw) + 1
    whole = len(data) == position         # no unfinished last line
    stored = _stored(con, [item[0] for _, _, item in decoded if item])
    faults.point("erase.spool.read")
    out, changed, kept, dropped = [], 0, 0, 0
    for position, raw, item in decoded:
        if item is None:
            if raw.strip():
                out.append(raw + b"\n")      # not ours to judge; the ingester quarantines it
                kept += 1
            continue
        pid, received_at, body = item
        if position < offset or pid in stored:
            dropped += len(raw) + 1          # in DuckDB, where erasure redacts it
            continue
        kept += 1
        new_body = redact_text(body, redaction, in_scope)
        if new_body != body:
            changed += 1
            out.append(encode_line(payload_id(new_body), received_at, new_body))
        else:
            out.append(raw + b"\n")
    if not changed and not dropped and generation and whole:
        return {"pending_lines": kept, "changed_lines": 0, "dropped_ingested_bytes": 0}
    write_atomic(spool.path, header_line(new_generation()) + b"".join(out), step="erase.spool")
    return {"pending_lines": kept, "changed_lines": changed, "dropped_ingested_bytes": dropped}


def _stored(con, ids: list[str]) -> set[str]:
    """Which of ``ids`` are in raw_payloads (erasure's own transaction sees them)."""
    if con is None or not ids:
        return set()
    return {r[0] for r in con.execute(
        "SELECT payload_id FROM raw_payloads WHERE payload_id IN (SELECT unnest(?))",
        [ids]).fetchall()}


def _redact_quarantine(spool: Spool, redaction: Redaction) -> None:
    """Damaged lines are not JSON we can take apart: scrub the identifiers as text."""
    path = spool.quarantine_path
    if redaction.pattern is None or not path.exists():
        return
    data = path.read_bytes()
    text = data.decode("utf-8", "surrogateescape")
    new = redaction.text(text)
    if new != text:
        write_atomic(path, new.encode("utf-8", "surrogateescape"), step="erase.quarantine")
