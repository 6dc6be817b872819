"""`bizchat import ...`: the ways data comes in from files."""

from __future__ import annotations

import json

import click

from ._common import pass_workspace


@click.group(name="import")
def import_group() -> None:
    """Import contacts (CSV with consent evidence) and chat exports."""


@import_group.command(name="contacts")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--account", "-a", required=True, metavar="PHONE",
              help="The business account the contacts belong to.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_workspace
def contacts(ws, file: str, account: str, as_json: bool) -> None:
    """Import contacts from a CSV FILE into one account.

    Columns: phone (required), name, consent (yes/no), consent_source, consent_at,
    evidence, purpose, language, timezone, attributes (JSON). Marketing consent is only
    recorded with evidence and consent_at. Bad rows are listed with their line and
    skipped; the good rows are imported in one transaction. Importing again changes
    nothing.
    """
    result = ws.imports.contacts(file, account, actor="cli")
    if as_json:
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(result.summary())


COMMANDS = [import_group]
