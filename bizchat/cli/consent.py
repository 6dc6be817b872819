"""`bizchat consent ...`: recording consent given or withdrawn outside a chat."""

from __future__ import annotations

import click

from ._common import account_option, pass_workspace


@click.group(name="consent")
def consent_group() -> None:
    """The consent ledger: record an opt-in or opt-out with its source and evidence."""


@consent_group.command(name="record")
@click.argument("phone")
@account_option
@click.option("--purpose", type=click.Choice(["marketing", "service"]), default="marketing",
              show_default=True, help="What the consent is for.")
@click.option("--action", type=click.Choice(["opt_in", "opt_out"]), required=True,
              help="Consent given (opt_in) or withdrawn (opt_out).")
@click.option("--source", required=True,
              help="Where it was given, e.g. phone, in_store, double_opt_in_form.")
@click.option("--evidence", default=None, metavar="TEXT",
              help="How to prove it, e.g. 'Call 2026-03-02 10:14, agent Jana'.")
@pass_workspace
def record(ws, phone: str, account: str, purpose: str, action: str, source: str,
           evidence: str | None) -> None:
    """Record that the contact PHONE opted in or out (e.g. on the phone, at the counter)."""
    event = ws.consent.record(phone, account=account, purpose=purpose, action=action,
                              source=source, evidence=evidence)
    what = "opted in to" if action == "opt_in" else "opted out of"
    click.echo(f"Recorded: contact {event['contact_id']} {what} {purpose} messages "
               f"(source {event['source']}).")


COMMANDS = [consent_group]
