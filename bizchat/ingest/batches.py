"""Batches of webhook bodies into the store, so that one bad body never blocks the others.

``ingest_bodies`` stores a batch in one transaction and already rejects the bodies it can
tell are bad. A body that still makes the batch fail (a case nobody foresaw) must not
hold up the bodies around it, nor be retried forever: ``ingest_isolated`` then splits the
batch in halves and tries each in its own transaction, down to the single body, which is
stored as ``rejected`` in raw_payloads with its error (kept, and ingested again by
``bizchat webhook reprocess --rejected`` once bizchat can read it). k bad bodies in n cost
about 2k log2(n) extra transactions, not n.

Not every failure is the body's fault. The workspace busy, the disk full, a file of a
newer schema: the same body would be stored fine a minute later, so rejecting it would
lose it for no reason. Those errors (``is_transient``) stop the batch and propagate; the
caller keeps the bodies (in the spool, or the file given on the command line) and tries
again later. Bodies are order-free and idempotent (webhook_ingest), so a batch may be
split, and parts that committed before a transient error are skipped on the retry.

The receiver's ingester and ``bizchat webhook ingest|reprocess`` all go through here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import duckdb

from .. import store
from ..errors import SchemaError, WorkspaceBusy
from ..store import faults
from .webhooks import IngestReport, ingest_bodies

log = logging.getLogger("bizchat.webhook")

Items = list[tuple[str, datetime, str]]

# The environment's fault, not the body's: retry later, never reject. DuckDB's
# OperationalError covers its IOException (disk full, I/O errors), OutOfMemoryException,
# ConnectionException and TransactionException.
_TRANSIENT = (WorkspaceBusy, SchemaError, OSError, MemoryError, duckdb.OperationalError,
              duckdb.FatalException, duckdb.InterruptException, duckdb.PermissionException)


def cause(exc: BaseException) -> BaseException:
    """The error that counts: after a failed statement, DuckDB answers every further call
    in the transaction (an ``unregister`` in a ``finally``, say) with "transaction is
    aborted", which would hide the body's own error behind an operational one."""
    while (isinstance(exc, duckdb.TransactionException) and "aborted" in str(exc)
           and exc.__context__ is not None):
        exc = exc.__context__
    return exc


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` says nothing about the body: the workspace busy or of a newer
    schema, the disk full or failing (OSError, DuckDB's IOException), memory, a closed or
    invalidated connection. Everything else a body makes happen is the body's."""
    return isinstance(cause(exc), _TRANSIENT)


def ingest_isolated(con: duckdb.DuckDBPyConnection, items: Items, *, actor: str = "webhook",
                    before: Callable[[duckdb.DuckDBPyConnection, Items], None] | None = None
                    ) -> IngestReport:
    """Store ``[(payload_id, received_at, body_text), ...]`` in transactions of their own
    (``con`` must not be inside one). ``before(con, part)`` runs first inside each
    transaction (e.g. to delete the rows being reprocessed, so that both land together).

    Returns the combined report; raises only transient errors (see ``is_transient``),
    after which the parts already committed stay committed.
    """
    report = IngestReport()
    parts = [items] if items else []
    while parts:
        part = parts.pop()
        try:
            with store.transaction(con):
                if before:
                    before(con, part)
                done = ingest_bodies(con, part, actor=actor)
                faults.point("ingest.before_commit")
            report.add(done)
            continue
        except Exception as exc:  # noqa: BLE001 - sorted out right here
            if is_transient(exc):
                raise
            error = cause(exc)
        if len(part) > 1:
            log.warning("a batch of %d bodies failed (%s: %s); trying its halves apart",
                        len(part), type(error).__name__, _line(error))
            middle = len(part) // 2
            parts += [part[middle:], part[:middle]]    # the first half next
            continue
        pid, received_at, text = part[0]
        reason = f"Payload {pid[:12]} could not be stored ({type(error).__name__}: {_line(error)})"
        log.warning("rejected body %s: %s", pid[:12], reason)
        with store.transaction(con):
            if before:
                before(con, part)
            store_rejected(con, pid, received_at, text, reason)
        report.payloads += 1
        report.rejected[pid] = reason
    return report


def store_rejected(con: duckdb.DuckDBPyConnection, pid: str, received_at: datetime | None,
                   text: str, reason: str) -> None:
    """Keep a body that could not be stored as ``rejected`` with its reason (unless a row
    for it exists already). Call inside a transaction."""
    con.execute("""
        INSERT INTO raw_payloads (payload_id, received_at, account_id, state, note, body)
        SELECT ?, ?, NULL, 'rejected', ?, ?
        WHERE NOT EXISTS (SELECT 1 FROM raw_payloads WHERE payload_id = ?)""",
                [pid, received_at or datetime.now(UTC), reason, text, pid])


def _line(exc: BaseException) -> str:
    """An exception's text on one line, not too long for a log line or a note."""
    text = " ".join(str(exc).split())
    return text if len(text) <= 500 else text[:497] + "..."


__all__ = ["cause", "ingest_isolated", "is_transient", "store_rejected"]
