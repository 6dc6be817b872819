"""Status receipts (sent, delivered, read, played, failed) into the store.

Receipts arrive at least once and in any order (webhooks are retried for up to 7 days),
so recording them is idempotent and order-free: ``message_events`` keeps the first
receipt of each status per message, and ``message_status`` keeps, per message, the first
time of each status and the status they imply. Merging with ``least()`` is commutative
and associative, so any order and any number of repeats give the same state.

``message_status.broadcast_id`` names the broadcast whose recipient this message is the
current message of (so the open-rate table needs no join on the text message id). A new
status row takes it from broadcast_recipients, by message id or, for a receipt that
arrives before the outbox recorded its send, by the idempotency key the receipt carries;
Which broadcast a message belongs to is campaigns' business (campaigns.settlement).

Everything works on whole batches (Arrow / DataFrames); there is no per-row Python.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import pyarrow as pa

from .. import store
from ..errors import InvalidValue

STATUSES = ("sent", "delivered", "read", "played", "failed")

# The columns of message_events, in order, with their Arrow types.
EVENT_SCHEMA = pa.schema([
    ("message_id", pa.string()),
    ("status", pa.string()),
    ("at", pa.timestamp("us", tz="UTC")),
    ("recipient_id", pa.string()),
    ("error_code", pa.int32()),
    ("error_title", pa.string()),
    ("errors", pa.string()),
    ("conversation_id", pa.string()),
    ("conversation_category", pa.string()),
    ("pricing_category", pa.string()),
    ("pricing_model", pa.string()),
    ("billable", pa.bool_()),
    ("callback_data", pa.string()),
    ("received_at", pa.timestamp("us", tz="UTC")),
])

_TIMES = ("sent_at", "delivered_at", "read_at", "played_at", "failed_at")


def status_case(t: dict[str, str]) -> str:
    """SQL for the status that first-arrival times imply (failed is final; read > delivered > sent).

    ``t`` maps each *_at column to the SQL expression that holds it.
    """
    return f"""CASE
        WHEN {t['failed_at']} IS NOT NULL THEN 'failed'
        WHEN {t['read_at']} IS NOT NULL OR {t['played_at']} IS NOT NULL THEN 'read'
        WHEN {t['delivered_at']} IS NOT NULL THEN 'delivered'
        ELSE 'sent' END"""


def as_event_table(events: pd.DataFrame | pa.Table) -> pa.Table:
    """Bring a batch of events to message_events' columns; missing ones become NULL and a
    missing received_at is now."""
    return store.conform(events, EVENT_SCHEMA, {"received_at": pd.Timestamp.now(tz="UTC")})


def record_status_events(con: duckdb.DuckDBPyConnection, events: pd.DataFrame | pa.Table) -> int:
    """Append the new receipts of ``events`` and merge them into message_status.

    Returns how many receipts were new. Call inside a transaction (the caller's unit of
    work), so events and status move together.
    """
    batch = as_event_table(events)
    if batch.num_rows == 0:
        return 0
    bad = set(batch.column("status").unique().to_pylist()) - set(STATUSES)
    if bad:
        raise InvalidValue(f"Unknown message statuses {sorted(map(str, bad))}; expected one of {STATUSES}.")
    con.register("_incoming_events", batch)
    try:
        # New = first receipt per (message, status) in the batch that message_status has
        # not seen yet. message_status is the dedupe index: one row per message, smaller
        # than message_events and exact, because both are written together.
        con.execute("""
            CREATE OR REPLACE TEMP TABLE _new_events AS
            SELECT i.* FROM (
                SELECT * FROM _incoming_events
                QUALIFY row_number() OVER (PARTITION BY message_id, status ORDER BY "at") = 1
            ) AS i
            LEFT JOIN message_status AS s USING (message_id)
            WHERE s.message_id IS NULL
               OR (i.status = 'sent' AND (s.sent_at IS NULL OR i."at" < s.sent_at))
               OR (i.status = 'delivered' AND (s.delivered_at IS NULL OR i."at" < s.delivered_at))
               OR (i.status = 'read' AND (s.read_at IS NULL OR i."at" < s.read_at))
               OR (i.status = 'played' AND (s.played_at IS NULL OR i."at" < s.played_at))
               OR (i.status = 'failed' AND (s.failed_at IS NULL OR i."at" < s.failed_at))
        """)
        new = con.execute("SELECT count(*) FROM _new_events").fetchall()[0][0]
        if new:
            # Of two copies of one receipt the earlier event time is kept, whatever the
            # arrival order: a copy that arrives later but happened earlier replaces it.
            replacing = con.execute("""
                SELECT count(*) FROM _new_events n JOIN message_status s USING (message_id)
                WHERE (n.status = 'sent' AND s.sent_at IS NOT NULL)
                   OR (n.status = 'delivered' AND s.delivered_at IS NOT NULL)
                   OR (n.status = 'read' AND s.read_at IS NOT NULL)
                   OR (n.status = 'played' AND s.played_at IS NOT NULL)
                   OR (n.status = 'failed' AND s.failed_at IS NOT NULL)""").fetchall()[0][0]
            if replacing:
                con.execute("""
                    DELETE FROM message_events e USING _new_events n
                    WHERE e.message_id = n.message_id AND e.status = n.status""")
            con.execute("INSERT INTO message_events SELECT * FROM _new_events")
            # Merge per message: update the rows that exist, append the others. (A plain
            # append plus an UPDATE beats INSERT ... ON CONFLICT, which needs a primary
            # key that makes bulk loads many times slower.)
            con.execute("""
                CREATE OR REPLACE TEMP TABLE _status_in AS
                SELECT message_id,
                    min("at") FILTER (WHERE status = 'sent') AS sent_at,
                    min("at") FILTER (WHERE status = 'delivered') AS delivered_at,
                    min("at") FILTER (WHERE status = 'read') AS read_at,
                    min("at") FILTER (WHERE status = 'played') AS played_at,
                    min("at") FILTER (WHERE status = 'failed') AS failed_at,
                    arg_min(error_code, "at") FILTER (WHERE status = 'failed') AS error_code,
                    any_value(callback_data) AS callback_data
                FROM _new_events GROUP BY message_id""")
            merged = {c: f"least(message_status.{c}, a.{c})" for c in _TIMES}
            con.execute(f"""
                UPDATE message_status SET
                    {", ".join(f"{c} = {expr}" for c, expr in merged.items())},
                    error_code = coalesce(message_status.error_code, a.error_code),
                    status = {status_case(merged)},
                    updated_at = now()
                FROM _status_in AS a WHERE message_status.message_id = a.message_id""")
            # New rows; their broadcast is filled in by campaigns (ingest.hooks listeners).
            con.execute(f"""
                INSERT INTO message_status (message_id, status, {", ".join(_TIMES)},
                                            error_code, updated_at)
                SELECT a.message_id, {status_case({c: f"a.{c}" for c in _TIMES})},
                       {", ".join(f"a.{c}" for c in _TIMES)}, a.error_code, now()
                FROM _status_in AS a
                WHERE NOT EXISTS (SELECT 1 FROM message_status s WHERE s.message_id = a.message_id)""")
            con.execute("DROP TABLE _status_in")
        con.execute("DROP TABLE _new_events")
        return new
    finally:
        con.unregister("_incoming_events")
