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


def _attribute_pairs(pairs: tuple[str, ...]) -> dict:
    """KEY=VALUE options as a dict (an empty VALUE removes the attribute)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE.", param_hint="--attr")
        out[key.strip()] = value if value != "" else None
    return out


@contacts_group.command(name="set")
@click.argument("phone")
@account_option
@click.option("--name", default=None, help="The contact's name.")
@click.option("--language", default=None, help="Language tag, e.g. de or de-AT.")
@click.option("--timezone", default=None, help="Time zone, e.g. Europe/Vienna.")
@click.option("--attr", "attrs", multiple=True, metavar="KEY=VALUE",
              help="Set an attribute (an empty VALUE removes it). Repeat for more.")
@click.option("--attributes", default=None, metavar="JSON",
              help='Attributes as a JSON object, merged into the stored ones, e.g. {"city": "Graz"}.')
@pass_workspace
def set_(ws, phone: str, account: str, name, language, timezone, attrs, attributes) -> None:
    """Change a contact's name, language, time zone or attributes."""
    fields = {k: v for k, v in (("name", name), ("language", language),
                                ("timezone", timezone)) if v is not None}
    if attributes is not None or attrs:
        fields["attributes"] = attributes if not attrs else {
            **({} if attributes is None else _json_object(attributes)), **_attribute_pairs(attrs)}
    if not fields:
        raise click.UsageError("Name something to change: --name, --language, --timezone, "
                               "--attr or --attributes.")
    contact = ws.contacts.update(account, phone, **fields)
    click.echo(f"Updated contact {contact['contact_id']} ({contact['phone_e164'] or contact['name']}).")


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise click.BadParameter("not a JSON object", param_hint="--attributes") from None
    if not isinstance(value, dict):
        raise click.BadParameter("not a JSON object", param_hint="--attributes")
    return value


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
