"""Listeners for the receipts ingestion stored: ingest reports, the packages above react.

Ingestion knows nothing of campaigns. After it stores a batch of status receipts (from
webhook bodies or as rows), it calls every listener registered here with the batch, in
the same transaction, so that what reacts lands together with the receipts or not at
all. ``bizchat.campaigns`` registers the one that settles broadcast recipients.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pyarrow as pa

Listener = Callable[[duckdb.DuckDBPyConnection, pa.Table], None]

_RECEIPT_LISTENERS: list[Listener] = []


def on_receipts(listener: Listener) -> Listener:
    """Register ``listener(con, events)`` to run after each stored batch of receipts
    (``events`` has message_events' columns plus ``callback_data``). A decorator."""
    if listener not in _RECEIPT_LISTENERS:
        _RECEIPT_LISTENERS.append(listener)
    return listener


def receipts_stored(con: duckdb.DuckDBPyConnection, events: pa.Table) -> None:
    """Tell every listener about a batch of receipts just stored (inside its transaction)."""
    if events.num_rows:
        for listener in _RECEIPT_LISTENERS:
            listener(con, events)
