"""`bizchat contacts ...`: the contacts of one account, with their consent."""

from __future__ import annotations

import json

import click

from ._common import account_option, echo_frame, pass_workspace


@click.group(name="contacts")
def contacts_group() -> None:
    """Contacts of a business account (no address-book upload: see `import contacts`)."""


@contacts_group.command(name="list")
@account_option
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV instead of a table.")
@pass_workspace(read_only=True)
def list_(ws, account: str, as_csv: bool) -> None:
    """List the contacts of one account with their current consent."""
    frame = ws.contacts.list(account)
    echo_frame(frame.astype(object).where(frame.notna(), ""), csv=as_csv)


@contacts_group.command(name="add")
@click.argument("phone")
@account_option
@click.option("--name", default=None, help="The contact's name.")
@click.option("--language", default=None, help="Language tag, e.g. de or de-AT.")
@pass_workspace
def add(ws, phone: str, account: str, name: str | None, language: str | None) -> None:
    """Add the contact PHONE to an account (without consent: record it separately)."""
    contact = ws.contacts.add(account, phone, name=name, language=language)
    click.echo(f"Added contact {contact['contact_id']}: {contact['phone_e164']}")


@contacts_group.command(name="show")
@click.argument("phone")
@account_option
@pass_workspace(read_only=True)
def show(ws, phone: str, account: str) -> None:
    """Show one contact (number, wa_id, user_id or contact_id) and its consent history."""
    ref = account
    contact = ws.contacts.get(ref, phone)
    for key in ("contact_id", "phone_e164", "wa_id", "user_id", "name", "language", "timezone",
                "created_at"):
        value = contact.get(key)
        click.echo(f"{key:<12}{'' if value is None else value}")
    attributes = contact.get("attributes")
    click.echo(f"{'attributes':<12}{json.dumps(attributes, ensure_ascii=False) if attributes else ''}")
    for purpose in ("marketing", "service"):
        decision = ws.consent.may_send(ref, contact["contact_id"], purpose)
        state = "allowed" if decision else f"not allowed ({decision.reason})"
        click.echo(f"{purpose:<12}{state}")
    click.echo("consent history")
    echo_frame(ws.consent.history(contact["contact_id"]).drop(columns=["event_id"]))



COMMANDS = [contacts_group]
