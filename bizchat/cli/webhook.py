"""`bizchat webhook ...`: the Cloud API webhook receiver and saved-payload ingestion."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from ..errors import ImportFormatError
from ._common import CliState, pass_workspace, workspace_option


@click.group()
def webhook() -> None:
    """Receive WhatsApp Cloud API webhooks, or ingest saved payloads."""


@webhook.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, help="Port to listen on.")
@click.option("--stall-after", default=120.0, show_default=True, metavar="SECONDS",
              help="/health answers 503 when bodies wait and ingestion has not advanced this long.")
@click.option("--flush-timeout", default=30.0, show_default=True, metavar="SECONDS",
              help="At shutdown, how long to wait for a busy workspace before giving up the flush.")
@click.option("--body-timeout", default=20.0, show_default=True, metavar="SECONDS",
              help="A request body must arrive within this time (408 otherwise).")
@workspace_option
def serve(host: str, port: int, stall_after: float, flush_timeout: float,
          body_timeout: float) -> None:
    """Run the receiver at /webhook (needs $BIZCHAT_APP_SECRET, $BIZCHAT_VERIFY_TOKEN).

    Accepted bodies are fsynced to a spool beside the workspace before the 200 and moved
    into the workspace in batches; SIGTERM or Ctrl-C flushes and exits 0 (1 if the flush
    failed: the spool keeps the bodies for the next start).
    """
    from ..receiver.server import serve as run

    state = click.get_current_context().find_object(CliState)
    run(state.workspace, host=host, port=port, stall_after=stall_after,
        flush_timeout=flush_timeout, body_timeout=body_timeout)


def read_payload_file(path: Path) -> list[tuple[str, datetime, str]]:
    """A saved payload file: one JSON document, or JSON lines (one body per line)."""
    from ..ingest.webhooks import payload_id

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


@webhook.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@pass_workspace
def ingest(ws, files: tuple[Path, ...]) -> None:
    """Ingest saved webhook payloads (a JSON document or JSON lines per FILE).

    A body that cannot be stored is kept as rejected with its reason (see `webhook
    reprocess --rejected`); the others are stored all the same.
    """
    from ..ingest.batches import ingest_isolated

    items = [item for path in files for item in read_payload_file(path)]
    with ws.connect() as con:
        report = ingest_isolated(con, items, actor="cli")
    click.echo(report.summary())
    for pid, reason in report.rejected.items():
        click.echo(f"  rejected {pid[:12]}: {reason}", err=True)


@webhook.command()
@click.option("--rejected", is_flag=True,
              help="Also ingest again the payloads kept as rejected (after a bizchat upgrade "
                   "that can read them).")
@pass_workspace
def reprocess(ws, rejected: bool) -> None:
    """Ingest again the payloads kept for an unknown business number (after adding it)."""
    from ..ingest.batches import ingest_isolated

    states = ["unknown_account", "rejected"] if rejected else ["unknown_account"]

    def forget(con, part) -> None:   # in the same transaction as the new rows
        con.execute("DELETE FROM raw_payloads WHERE payload_id IN (SELECT unnest(?)) "
                    "AND state IN (SELECT unnest(?))", [[pid for pid, _, _ in part], states])

    with ws.connect() as con:
        rows = con.execute("SELECT payload_id, received_at, body FROM raw_payloads "
                           "WHERE state IN (SELECT unnest(?)) ORDER BY received_at",
                           [states]).fetchall()
        report = ingest_isolated(con, rows, actor="cli", before=forget)
    click.echo(report.summary())
    for pid, reason in report.rejected.items():
        click.echo(f"  still rejected {pid[:12]}: {reason}", err=True)


COMMANDS = [webhook]
