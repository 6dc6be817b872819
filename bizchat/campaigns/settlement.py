"""What a receipt means for a broadcast: its recipient is settled and its message linked.

Registered with ``ingest.hooks`` (so ingestion never touches campaign tables itself):

* a receipt carrying an outbox idempotency key (``biz_opaque_callback_data``) settles a
  recipient whose send a crash hid (``sending``/``unknown`` becomes ``sent`` with the
  message id). The platform's word wins over an operator's guess: a recipient given up
  on (``resolve --decision give_up``: failed, no message id) whose receipt arrives after
  all becomes ``sent`` too, and the trail keeps both the decision and the settlement
  (``outbox_log`` event ``settled.by_receipt``), so per-broadcast totals and
  per-recipient tables never contradict each other;
* a message's latest status row (``message_status``) gets the broadcast it belongs to:
  the recipient whose message it is, or whose unrecorded send carried the receipt's key.

``link_broadcast`` repairs the links of one broadcast after the outbox changed its
recipients (an attempt a deferral replaced no longer counts).
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from ..ingest import hooks
from ..store import registered


@hooks.on_receipts
def settle(con: duckdb.DuckDBPyConnection, events: pa.Table) -> None:
    """Settle keyed recipients and link new status rows to their broadcast."""
    batch = events.select(["message_id", "callback_data"])
    with registered(con, "_receipts", batch):
        con.execute("""
            INSERT INTO outbox_log (broadcast_id, idempotency_key, event, "at", detail)
            SELECT r.broadcast_id, r.idempotency_key, 'settled.by_receipt', now(),
                   json_object('message_id', k.message_id, 'was', 'resolved.give_up')
            FROM broadcast_recipients r
            JOIN (SELECT callback_data, first(message_id) AS message_id FROM _receipts
                  WHERE callback_data IS NOT NULL GROUP BY callback_data) AS k
              ON r.idempotency_key = k.callback_data
            WHERE r.state = 'failed' AND r.message_id IS NULL AND r.error_code IS NULL""")
        con.execute("""
            UPDATE broadcast_recipients SET state = 'sent', message_id = k.message_id,
                   error_title = NULL, updated_at = now()
            FROM (SELECT callback_data, first(message_id) AS message_id FROM _receipts
                  WHERE callback_data IS NOT NULL GROUP BY callback_data) AS k
            WHERE broadcast_recipients.idempotency_key = k.callback_data
              AND (broadcast_recipients.state IN ('sending', 'unknown')
                   OR (broadcast_recipients.state = 'failed'
                       AND broadcast_recipients.message_id IS NULL
                       AND broadcast_recipients.error_code IS NULL))""")
        con.execute("""
            UPDATE message_status SET broadcast_id = k.broadcast_id
            FROM (SELECT e.message_id, coalesce(
                         min(r.broadcast_id),
                         min(q.broadcast_id)) AS broadcast_id
                  FROM (SELECT DISTINCT message_id, callback_data FROM _receipts) AS e
                  LEFT JOIN broadcast_recipients r ON r.message_id = e.message_id
                  LEFT JOIN broadcast_recipients q
                         ON q.idempotency_key = e.callback_data AND q.message_id IS NULL
                  GROUP BY e.message_id) AS k
            WHERE message_status.message_id = k.message_id
              AND message_status.broadcast_id IS NULL AND k.broadcast_id IS NOT NULL""")


def link_broadcast(con: duckdb.DuckDBPyConnection, broadcast_id: int) -> None:
    """Make message_status.broadcast_id agree with the broadcast's recipients: set it on
    every recipient's current message, clear it on messages no recipient points to any
    more (an attempt a deferral replaced). Run by the outbox after it changed recipients."""
    con.execute("""
        UPDATE message_status SET broadcast_id = NULL
        WHERE broadcast_id = ? AND message_id NOT IN (
            SELECT message_id FROM broadcast_recipients
            WHERE broadcast_id = ? AND message_id IS NOT NULL)""", [broadcast_id, broadcast_id])
    con.execute("""
        UPDATE message_status SET broadcast_id = r.broadcast_id
        FROM broadcast_recipients AS r
        WHERE r.broadcast_id = ? AND r.message_id = message_status.message_id
          AND message_status.broadcast_id IS DISTINCT FROM r.broadcast_id""", [broadcast_id])
