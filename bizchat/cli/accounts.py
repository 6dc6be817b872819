"""`bizchat accounts ...`: the business numbers of the workspace and their profiles."""

from __future__ import annotations

import click

from ._common import echo_frame, pass_workspace

# Options of `accounts set`: (option, account field, help).
_PROFILE_OPTIONS = [
    ("--name", "display_name", "Display name."),
    ("--about", "about", "The short 'about' text (at most 139 characters)."),
    ("--description", "description", "Business description (at most 512 characters)."),
    ("--category", "category", "Business category, e.g. RETAIL."),
    ("--address", "address", "Postal address."),
    ("--email", "email", "Contact e-mail address."),
    ("--timezone", "timezone", "IANA time zone of the business hours, e.g. Europe/Vienna."),
    ("--phone-number-id", "phone_number_id", "Cloud API phone_number_id of this number."),
    ("--waba-id", "waba_id", "WhatsApp Business Account id."),
    ("--opt-out-keywords", "opt_out_keywords",
     "Comma-separated opt-out keywords replacing the default list (STOP, STOPP, ...)."),
    ("--max-labels", "max_labels", "Most labels this account may have."),
    ("--max-quick-replies", "max_quick_replies", "Most quick replies this account may have."),
]


@click.group(name="accounts")
def accounts_group() -> None:
    """Business accounts: one WhatsApp Business number each (mobile or landline)."""


@accounts_group.command(name="add")
@click.argument("phone")
@click.option("--name", required=True, help="Display name of the business.")
@click.option("--phone-number-id", default=None, help="Cloud API phone_number_id of this number.")
@click.option("--timezone", default="Europe/Berlin", show_default=True,
              help="IANA time zone of the business hours.")
@pass_workspace
def add(ws, phone: str, name: str, phone_number_id: str | None, timezone: str) -> None:
    """Add the business number PHONE (any written form, e.g. '030 1234567')."""
    account = ws.accounts.add(phone, name=name, phone_number_id=phone_number_id, timezone=timezone)
    click.echo(f"Added account {account['account_id']}: {account['phone_e164']} "
               f"({account['number_type']}, {account['region']}) {account['display_name']!r}")


@accounts_group.command(name="list")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV instead of a table.")
@pass_workspace(read_only=True)
def list_(ws, as_csv: bool) -> None:
    """List the accounts of the workspace."""
    echo_frame(ws.accounts.list(), csv=as_csv)


def _format_hours(hours: dict | None) -> list[str]:
    if not hours:
        return ["  (not set: always open)"]
    return [f"  {day}  " + (", ".join(f"{a}-{b}" for a, b in ranges) or "closed")
            for day, ranges in hours.items()]


@accounts_group.command(name="show")
@click.argument("phone")
@pass_workspace(read_only=True)
def show(ws, phone: str) -> None:
    """Show the profile of the account PHONE (number, account_id or phone_number_id)."""
    account = ws.accounts.get(phone)
    for key in ("account_id", "phone_e164", "number_type", "region", "display_name",
                "phone_number_id", "waba_id", "about", "description", "category", "address",
                "email", "websites", "timezone", "opt_out_keywords", "max_labels",
                "max_quick_replies", "created_at"):
        value = account.get(key)
        if isinstance(value, list):
            value = ", ".join(value)
        click.echo(f"{key:<18}{'' if value is None else value}")
    click.echo("business_hours")
    for line in _format_hours(account.get("business_hours")):
        click.echo(line)


def _set_options(func):
    for option, field, help_text in reversed(_PROFILE_OPTIONS):
        func = click.option(option, field, default=None, help=help_text)(func)
    return func


@accounts_group.command(name="set")
@click.argument("phone")
@_set_options
@click.option("--website", "websites", multiple=True,
              help="A website (at most two; repeat the option). Replaces the stored ones.")
@click.option("--hours", "hours", multiple=True,
              help="Business hours of some days, e.g. 'mon-fri=09:00-18:00' or "
                   "'sat=10:00-14:00' or 'sun=closed' (repeatable; other days keep theirs).")
@click.option("--clear-hours", is_flag=True, help="Remove the business hours (always open).")
@pass_workspace
def set_(ws, phone: str, websites: tuple, hours: tuple, clear_hours: bool, **fields) -> None:
    """Change profile fields of the account PHONE. An empty value ('') clears a field."""
    changes = {k: v for k, v in fields.items() if v is not None}
    if websites:
        changes["websites"] = [w for w in websites if w.strip()] or None
    if clear_hours:
        changes["business_hours"] = None
    elif hours:
        changes["business_hours"] = ";".join(hours)
    if not changes:
        raise click.UsageError("Nothing to change: give at least one option (see --help).")
    account = ws.accounts.update(phone, merge_hours=True, **changes)
    click.echo(f"Updated account {account['account_id']} ({account['phone_e164']}): "
               f"{', '.join(sorted(changes))}")


COMMANDS = [accounts_group]
