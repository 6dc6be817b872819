"""`bizchat import export`: a WhatsApp "Export chat" file as a chat of an account."""

from __future__ import annotations

from pathlib import Path

import click

from ._common import pass_workspace
from .imports import import_group


@import_group.command(name="export")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--account", required=True, help="The business account (its number).")
@click.option("--contact-phone", help="The customer's number, if the export shows a saved name.")
@click.option("--business-name", help="The business's name in the export (default: the account's display name).")
@click.option("--dayfirst/--monthfirst", default=None, help="Force the date order (default: detected).")
@pass_workspace
def export(ws, file: Path, account: str, contact_phone: str | None, business_name: str | None,
           dayfirst: bool | None) -> None:
    """Import a chat export FILE (.txt or .zip) as a chat of ACCOUNT, idempotently."""
    result = ws.imports.chat_export(file, account, contact_phone=contact_phone,
                                    business_name=business_name, dayfirst=dayfirst, actor="cli")
    click.echo(result.summary())


COMMANDS: list = []  # attached to `bizchat import` above
