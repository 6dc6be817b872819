"""`bizchat privacy ...`: consent proof, access exports, erasure, retention, compaction."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from ..errors import BizchatError
from ._common import (
    current_workspace,
    echo_frame,
    pass_workspace,
    workspace_mode,
    workspace_option,
)

account_option = click.option(
    "--account", "-a", default=None, metavar="PHONE",
    help="The business account (number, account_id or phone_number_id); default: every "
         "account the person is a contact of.")
actor_option = click.option(
    "--actor", default=None, metavar="NAME",
    help="Who does this, for the audit log (default: $USER via the CLI).")



def _interactive() -> bool:
    return sys.stdin.isatty()


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@click.group(name="privacy")
def privacy_group() -> None:
    """Data protection: consent proof, access exports, erasure, retention (docs/privacy.md)."""


@privacy_group.command(name="consent")
@click.argument("phone")
@click.option("--account", "-a", required=True, metavar="PHONE", help="The business account.")
@pass_workspace(read_only=True)
def consent(ws, phone: str, account: str) -> None:
    """Show the consent proof of PHONE: current state and full history with evidence."""
    proof = ws.privacy.consent_proof(phone, account=account)
    click.echo(proof.summary())
    click.echo("history")
    echo_frame(proof.history)


@privacy_group.command(name="coverage")
@click.option("--account", "-a", default=None, metavar="PHONE", help="Only this account.")
@click.option("--by-source", is_flag=True, help="Current opt-ins per consent source instead.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV instead of a table.")
@pass_workspace(read_only=True)
def coverage(ws, account: str | None, by_source: bool, as_csv: bool) -> None:
    """Consent coverage per account: opt-ins, with evidence, opt-outs, never asked."""
    service = ws.privacy
    frame = service.coverage_by_source(account) if by_source else service.coverage(account)
    echo_frame(frame, csv=as_csv)


@privacy_group.command(name="export")
@click.argument("phone")
@account_option
@click.option("--out", "-o", type=click.Path(dir_okay=False), default=None,
              help="The JSON file to write (default: exports/ beside the workspace).")
@click.option("--csv-dir", type=click.Path(file_okay=False), default=None,
              help="Also (or only, without --out) write one CSV per table into this folder.")
@actor_option
@pass_workspace
def export(ws, phone: str, account: str | None, out: str | None, csv_dir: str | None,
           actor: str | None) -> None:
    """Write every row stored about PHONE (Art. 15/20 access and portability)."""
    result = ws.privacy.export(phone, account=account, out=out, csv_dir=csv_dir,
                                 actor=_actor(actor))
    click.echo(result.summary())


@privacy_group.command(name="erase")
@click.argument("phone")
@account_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--no-compact", is_flag=True,
              help="Skip compacting the file now (old bytes stay until `bizchat privacy compact`).")
@actor_option
@pass_workspace
def erase(ws, phone: str, account: str | None, yes: bool, no_compact: bool, actor: str | None) -> None:
    """Erase PHONE everywhere (Art. 17): contact, message texts, spool, report outputs.

    Anonymous statistics stay. Asks for confirmation on a terminal; --yes skips that
    (and is required when not on a terminal).
    """
    service = ws.privacy
    preview = service.preview_erasure(phone, account=account)
    if not yes:
        if not _interactive():
            raise BizchatError("Erasure cannot be undone: confirm it with --yes when not on a "
                               "terminal (e.g. `bizchat privacy erase PHONE --yes`).")
        echo_frame(preview.drop(columns=["name"]))
        click.confirm(f"Erase these {len(preview)} contact(s) and all their data? This cannot be "
                      "undone", abort=True)
    result = service.erase(phone, account=account, actor=_actor(actor), compact=not no_compact)
    click.echo(result.summary())


@privacy_group.command(name="purge")
@click.option("--dry-run", is_flag=True, help="Only list what the policies would remove.")
@click.option("--as-of", default=None, metavar="DATE",
              help="With --dry-run: look ahead, as if today were DATE (ISO 8601).")
@actor_option
@workspace_option
@workspace_mode("read unless changing")
def purge(dry_run: bool, as_of: str | None, actor: str | None) -> None:
    """Apply the retention policies (schedule it, e.g. weekly from cron)."""
    when = None
    if as_of:
        if not dry_run:
            raise click.UsageError("--as-of only works with --dry-run.")
        try:
            when = datetime.fromisoformat(as_of)
        except ValueError:
            raise click.BadParameter(f"{as_of!r} is not a date like 2026-01-31.",
                                     param_hint="--as-of") from None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
    ws = current_workspace(read_only=dry_run)
    result = ws.privacy.purge(dry_run=dry_run, as_of=when, actor=_actor(actor))
    click.echo(result.summary())
    if dry_run and len(result.contacts):
        click.echo("inactive contacts that would be erased:")
        echo_frame(result.contacts[["account_id", "subject_key", "last_activity"]])


@privacy_group.group(name="retention")
def retention_group() -> None:
    """Retention policies: how long message texts, raw bodies and inactive contacts stay."""


@retention_group.command(name="show")
@pass_workspace(read_only=True)
def retention_show(ws) -> None:
    """Show the effective policy per account and kind, and where it comes from."""
    frame = ws.privacy.retention()
    frame["days"] = frame["days"].astype(object).where(frame["days"].notna(), "forever")
    echo_frame(frame)


@retention_group.command(name="set")
@click.argument("kind", type=click.Choice(["message_bodies", "raw_payloads", "inactive_contacts"]))
@click.argument("days")
@click.option("--account", "-a", default=None, metavar="PHONE",
              help="Only for this account (default: the workspace default).")
@actor_option
@pass_workspace
def retention_set(ws, kind: str, days: str, account: str | None, actor: str | None) -> None:
    """Keep KIND for DAYS days (a number, or 'forever')."""
    if days.strip().lower() in ("forever", "never", "none"):
        value = None
    elif days.strip().isdigit():
        value = int(days)
    else:
        raise click.BadParameter(f"{days!r}: give a number of days or 'forever'.", param_hint="DAYS")
    frame = ws.privacy.set_retention(kind, value, account=account, actor=_actor(actor))
    frame["days"] = frame["days"].astype(object).where(frame["days"].notna(), "forever")
    echo_frame(frame[frame["kind"] == kind])


@privacy_group.command(name="compact")
@actor_option
@pass_workspace
def compact(ws, actor: str | None) -> None:
    """Rewrite the workspace file so erased and purged values are physically gone."""
    done = ws.privacy.compact(actor=_actor(actor))
    click.echo(f"Compacted {done.path}: {done.bytes_before:,} -> {done.bytes_after:,} bytes "
               f"({done.tables} tables, {done.rows:,} rows verified).")


@privacy_group.command(name="keys")
@click.option("--new-key", is_flag=True,
              help="The key file is lost: start a new key (every pseudonymous key changes).")
@pass_workspace
def keys(ws, new_key: bool) -> None:
    """Refresh the pseudonymous keys behind analyst_contacts and analyst_messages.

    The secret behind them is $BIZCHAT_PSEUDONYM_KEY, else the key file beside the
    workspace (<workspace>.key); it is never inside the workspace.
    """
    if new_key:
        ws.privacy.new_key()
        click.echo(f"Started a new pseudonymisation key in {ws.path}.key; every pseudonymous "
                   "key changed.")
    added = ws.privacy.refresh_keys()
    click.echo(f"{added} new pseudonymous key(s).")


COMMANDS = [privacy_group]
