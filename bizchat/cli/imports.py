"""`bizchat import ...`: the ways data comes in from files."""

from __future__ import annotations

import click


@click.group(name="import")
def import_group() -> None:
    """Import contacts (CSV with consent evidence) and chat exports."""


COMMANDS = [import_group]
