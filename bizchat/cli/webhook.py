"""`bizchat webhook ...`: the Cloud API webhook receiver and saved-payload ingestion."""

from __future__ import annotations

from pathlib import Path

import click

from ._common import cli_state, pass_workspace, workspace_option


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
@click.option("--header-timeout", default=10.0, show_default=True, metavar="SECONDS",
              help="A request's headers must arrive within this time (408 and closed otherwise).")
@click.option("--max-unverified-mb", default=32, show_default=True, type=click.IntRange(4),
              metavar="MIB", help="Memory all bodies whose signature is not checked yet may "
                                  "hold together; past it a request gets 503 (Meta retries).")
@workspace_option
def serve(host: str, port: int, stall_after: float, flush_timeout: float,
          body_timeout: float, header_timeout: float, max_unverified_mb: int) -> None:
    """Run the receiver at /webhook (needs $BIZCHAT_APP_SECRET, $BIZCHAT_VERIFY_TOKEN).

    Accepted bodies are fsynced to a spool beside the workspace before the 200 and moved
    into the workspace in batches; SIGTERM or Ctrl-C flushes and exits 0 (1 if the flush
    failed: the spool keeps the bodies for the next start).
    """
    from ..receiver.server import serve as run

    state = cli_state()
    run(state.workspace, host=host, port=port, stall_after=stall_after,
        flush_timeout=flush_timeout, body_timeout=body_timeout, header_timeout=header_timeout,
        max_unverified=max_unverified_mb * 1024 * 1024)


@webhook.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@pass_workspace
def ingest(ws, files: tuple[Path, ...]) -> None:
    """Ingest saved webhook payloads (a JSON document or JSON lines per FILE).

    A body that cannot be stored is kept as rejected with its reason (see `webhook
    reprocess --rejected`); the others are stored all the same.
    """
    report = ws.webhooks.ingest_files(list(files), actor="cli")
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
    report = ws.webhooks.reprocess(rejected=rejected, actor="cli")
    click.echo(report.summary())
    for pid, reason in report.rejected.items():
        click.echo(f"  still rejected {pid[:12]}: {reason}", err=True)


COMMANDS = [webhook]
