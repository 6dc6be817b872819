"""The Workspace's ways in: ``ws.webhooks`` (saved and kept webhook bodies) and
``ws.imports`` (contact CSVs, WhatsApp chat exports).

Each method is one unit of work on the workspace, with the same rules whichever surface
calls it (the CLI, a notebook, a widget). Receipts stored on the way are reported to the
listeners registered with ``ingest.hooks`` (campaigns settles its recipients there).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from ..errors import ImportFormatError
from .batches import Items, ingest_isolated
from .payloads import payload_id
from .webhooks import IngestReport


def read_payload_file(path: str | os.PathLike) -> Items:
    """A saved payload file: one JSON document, or JSON lines (one body per line), as
    ``[(payload_id, received_at, body), ...]``. A line that is not JSON refuses the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportFormatError(f"Cannot read {path}: {exc}. Give a UTF-8 JSON or JSON-lines file.",
                                source=str(path)) from exc
    now = datetime.now(UTC)
    try:
        json.loads(text)
        return [(payload_id(text), now, text)]
    except (ValueError, RecursionError):
        pass
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise ImportFormatError(
                f"{path}, line {number}: not JSON ({exc}). The file must hold one JSON "
                "document or one JSON document per line; nothing was ingested.",
                source=str(path), line=number) from exc
        items.append((payload_id(line), now, line))
    return items


class Webhooks:
    """Webhook bodies into the workspace (``ws.webhooks``): what the receiver does with
    its spool, for bodies saved in files or kept in ``raw_payloads``."""

    def __init__(self, ws):
        self.ws = ws

    def ingest(self, bodies: list[str | bytes] | Items, *, actor: str = "bizchat") -> IngestReport:
        """Store webhook bodies (texts, or ``(payload_id, received_at, text)`` tuples).
        Idempotent; a body that cannot be stored is kept as rejected with its reason while
        the others are stored."""
        now = datetime.now(UTC)
        items = [b if isinstance(b, tuple) else
                 (payload_id(b), now, b.decode("utf-8") if isinstance(b, bytes) else b)
                 for b in bodies]
        with self.ws.connect() as con:
            return ingest_isolated(con, items, actor=actor)

    def ingest_files(self, paths: list[str | os.PathLike], *, actor: str = "bizchat") -> IngestReport:
        """Store the bodies of saved payload files (JSON, or JSON lines); every file is
        read before anything is stored."""
        items = [item for path in paths for item in read_payload_file(path)]
        return self.ingest(items, actor=actor)

    def reprocess(self, *, rejected: bool = False, actor: str = "bizchat") -> IngestReport:
        """Ingest again the bodies kept for a number that was not an account yet (and, with
        ``rejected``, those kept as rejected, e.g. after an upgrade). Each body's old row
        goes in the same transaction as its new rows."""
        states = ["unknown_account", "rejected"] if rejected else ["unknown_account"]

        def forget(con, part) -> None:
            con.execute("DELETE FROM raw_payloads WHERE payload_id IN (SELECT unnest(?)) "
                        "AND state IN (SELECT unnest(?))", [[pid for pid, _, _ in part], states])

        with self.ws.connect() as con:
            rows = con.execute("SELECT payload_id, received_at, body FROM raw_payloads "
                               "WHERE state IN (SELECT unnest(?)) ORDER BY received_at",
                               [states]).fetchall()
            return ingest_isolated(con, rows, actor=actor, before=forget)


class Imports:
    """Files a user brings (``ws.imports``): contacts with consent evidence, chat exports."""

    def __init__(self, ws):
        self.ws = ws

    def contacts(self, path: str | os.PathLike, account, *, actor: str = "bizchat"):
        """Contacts of a CSV file into ``account``, with the consent each row evidences;
        bad rows are reported by line and skipped (see ``people.contact_import``)."""
        from ..people.contact_import import import_contacts

        return import_contacts(self.ws, path, account, actor=actor)

    def chat_export(self, source: str | os.PathLike | IO, account, *,
                    contact_phone: str | None = None, business_name: str | None = None,
                    dayfirst: bool | None = None, actor: str = "bizchat"):
        """A WhatsApp "Export chat" file (.txt or .zip) as a chat of ``account``, in one
        transaction and idempotently (see ``ingest.export_import``)."""
        from .export_import import import_export

        with self.ws.transaction() as con:
            return import_export(con, account, source, contact_phone=contact_phone,
                                 business_name=business_name, dayfirst=dayfirst, actor=actor)
