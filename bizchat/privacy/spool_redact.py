"""Erasure in the webhook spool (``<workspace>.spool``).

Lines before the spool offset are already in DuckDB (``raw_payloads``, which erasure
redacts), so they are dropped. Pending lines that mention the person are rewritten with
their parts taken out (payloads.redact) and a new id (sha256 of the new body). The new spool
replaces the old one atomically (temporary file, fsync, os.replace, fsync of the folder).

Crash safety: the offset is set to 0 *before* the swap. A crash in between leaves the old
spool with offset 0; replaying it is idempotent (every ingested body is skipped by its
payload id, which erasure keeps). A crash before that changes nothing.

Concurrency: call this while holding the workspace's write lock (inside erasure's
transaction), so the receiver's ingester cannot commit a batch meanwhile. Lines the
receiver appends while the spool is rewritten are carried over (redacted) after the swap.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from ..durable import write_atomic
from ..spool import Spool, decode_line, encode_line, spool_file
from ..webhook_ingest import payload_id
from .payloads import Redaction, redact_text


def _rewrite_lines(data: bytes, redaction: Redaction, in_scope) -> tuple[bytes, int, bytes]:
    """Whole lines of ``data`` redacted: (new bytes, lines changed, the unfinished last
    line). The caller puts the unfinished line in front of whatever is appended next."""
    out, changed = [], 0
    complete, _, torn = data.rpartition(b"\n") if b"\n" in data else (b"", b"", data)
    for raw in complete.split(b"\n") if complete else []:
        if not raw.strip():
            continue
        try:
            _, received_at, body = decode_line(raw)
        except (ValueError, KeyError, TypeError):
            out.append(raw + b"\n")      # not ours to judge; the ingester reports it
            continue
        new_body = redact_text(body, redaction, in_scope)
        if new_body != body:
            changed += 1
            out.append(encode_line(payload_id(new_body), received_at, new_body))
        else:
            out.append(raw + b"\n")
    return b"".join(out), changed, torn


def redact_spool(workspace_path: str | os.PathLike, redaction: Redaction,
                 in_scope: Callable[[dict], bool] = lambda meta: True, *,
                 settle: float = 0.05) -> dict:
    """Rewrite the spool without the person; returns counts (lines kept, changed, dropped).

    Holds the spool's lock throughout, so the receiver's appends wait for the swap."""
    if not spool_file(workspace_path).exists():
        return {"pending_lines": 0, "changed_lines": 0, "dropped_ingested_bytes": 0}
    spool = Spool(workspace_path, repair=False)
    try:
        with spool.locked():
            return _redact_spool(spool, redaction, in_scope, settle)
    finally:
        spool.close()


def _redact_spool(spool: Spool, redaction, in_scope, settle) -> dict:
    path, offset_path = spool.path, spool.offset_path
    with open(path, "rb") as old:
        start = spool.offset()
        data = old.read()
        pending = data[start:]
        new, changed, torn = _rewrite_lines(pending, redaction, in_scope)
        if start:
            # Replay from 0 is idempotent; a stale offset into the new file would not be.
            write_atomic(offset_path, b"0")
        # Lines the receiver appended while we worked, then the swap.
        grown = old.read()
        if grown:
            more, n, torn = _rewrite_lines(torn + grown, redaction, in_scope)
            new, changed = new + more, changed + n
        if not changed and not start and not torn:
            return {"pending_lines": new.count(b"\n"), "changed_lines": 0,
                    "dropped_ingested_bytes": 0}
        # An unfinished last line stays out of the new file until it is complete (a torn
        # line from a crash was never acknowledged, and Spool drops it too).
        write_atomic(path, new)
        # An append that opened the old file just before the swap lands in the old inode.
        time.sleep(settle)
        late = old.read()
        if late:
            more, _, rest = _rewrite_lines(torn + late, redaction, in_scope)
            with open(path, "ab") as f:
                f.write(more + rest)
                f.flush()
                os.fsync(f.fileno())
    lines = new.count(b"\n")
    return {"pending_lines": lines, "changed_lines": changed, "dropped_ingested_bytes": start}
