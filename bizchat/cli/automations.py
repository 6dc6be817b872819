"""`bizchat automations ...`: greeting and away messages of one account."""

from __future__ import annotations

import click

from ..messaging.automations import SCHEDULES, SCOPES
from ._common import account_option, echo_frame, pass_workspace

scope_option = click.option(
    "--scope", type=click.Choice(SCOPES), default="everyone", show_default=True,
    help="Who gets it; only_labels / except_labels need --label.")
label_option = click.option("--label", "labels", multiple=True, metavar="NAME",
                            help="A label for the scope. Repeat for more.")
disabled_option = click.option("--disabled", is_flag=True, help="Save it switched off.")
kind_argument = click.argument("kind", type=click.Choice(["greeting", "away"]))


@click.group(name="automations")
def automations_group() -> None:
    """Automated messages: the greeting and the away message of an account."""


@automations_group.command(name="list")
@account_option
@pass_workspace(read_only=True)
def list_(ws, account: str) -> None:
    """Show the account's greeting and away message."""
    frame = ws.automations.list(account)
    echo_frame(frame.astype(object).where(frame.notna(), ""))


@automations_group.command(name="set-greeting")
@click.argument("text")
@account_option
@scope_option
@label_option
@click.option("--silence-days", type=click.IntRange(1, 3650), default=14, show_default=True,
              help="Greet again after this many days without messages.")
@disabled_option
@pass_workspace
def set_greeting(ws, text: str, account: str, scope: str, labels, silence_days: int,
                 disabled: bool) -> None:
    """Set the greeting TEXT, sent on a contact's first message (and after silence)."""
    rule = ws.automations.set_greeting(account, text, scope=scope, labels=list(labels) or None,
                                       silence_days=silence_days, enabled=not disabled)
    click.echo(f"Greeting saved ({'on' if rule['enabled'] else 'off'}, scope {rule['scope']}).")


@automations_group.command(name="set-away")
@click.argument("text")
@account_option
@click.option("--schedule", type=click.Choice(SCHEDULES), default="outside_hours",
              show_default=True, help="When it is active.")
@click.option("--spec", default=None,
              help="For --schedule custom: when it is active, e.g. 'mon-fri=18:00-24:00'.")
@scope_option
@label_option
@disabled_option
@pass_workspace
def set_away(ws, text: str, account: str, schedule: str, spec: str | None, scope: str, labels,
             disabled: bool) -> None:
    """Set the away TEXT, sent to contacts who write while you are away."""
    rule = ws.automations.set_away(account, text, schedule=schedule, spec=spec, scope=scope,
                                   labels=list(labels) or None, enabled=not disabled)
    click.echo(f"Away message saved ({'on' if rule['enabled'] else 'off'}, schedule "
               f"{rule['schedule']}, scope {rule['scope']}).")


@automations_group.command(name="enable")
@kind_argument
@account_option
@pass_workspace
def enable(ws, kind: str, account: str) -> None:
    """Switch the greeting or away message on."""
    ws.automations.enable(account, kind)
    click.echo(f"The {kind} message is on.")


@automations_group.command(name="disable")
@kind_argument
@account_option
@pass_workspace
def disable(ws, kind: str, account: str) -> None:
    """Switch the greeting or away message off."""
    ws.automations.disable(account, kind)
    click.echo(f"The {kind} message is off.")


COMMANDS = [automations_group]
