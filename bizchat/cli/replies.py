"""`bizchat replies ...`: quick replies (/shortcut -> text) of one account."""

from __future__ import annotations

import click

from ._common import account_option, echo_frame, pass_workspace


@click.group(name="replies")
def replies_group() -> None:
    """Quick replies: shortcuts like /danke for texts with {first_name} placeholders."""


@replies_group.command(name="list")
@account_option
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV instead of a table.")
@pass_workspace(read_only=True)
def list_(ws, account: str, as_csv: bool) -> None:
    """List the quick replies of an account."""
    frame = ws.replies.list(account)
    frame["placeholders"] = [", ".join(x) for x in frame["placeholders"]]
    echo_frame(frame[["shortcut", "text", "placeholders"]], csv=as_csv)


@replies_group.command(name="add")
@click.argument("shortcut")
@click.argument("text")
@account_option
@click.option("--placeholder", "extra", multiple=True, metavar="NAME",
              help="A placeholder you fill in when sending (e.g. order_no). Repeatable.")
@pass_workspace
def add(ws, shortcut: str, text: str, account: str, extra: tuple[str, ...]) -> None:
    """Save TEXT under SHORTCUT (e.g. /danke 'Danke, {first_name}!')."""
    reply = ws.replies.add(account, shortcut, text, extra_placeholders=list(extra))
    click.echo(f"Saved quick reply {reply['shortcut']}.")


@replies_group.command(name="remove")
@click.argument("shortcut")
@account_option
@pass_workspace
def remove(ws, shortcut: str, account: str) -> None:
    """Delete the quick reply SHORTCUT."""
    reply = ws.replies.remove(account, shortcut)
    click.echo(f"Removed quick reply {reply['shortcut']}.")


@replies_group.command(name="render")
@click.argument("shortcut")
@click.option("--contact", required=True, metavar="PHONE",
              help="The contact (any form of the number, wa_id, user_id or contact_id).")
@account_option
@pass_workspace(read_only=True)
def render(ws, shortcut: str, contact: str, account: str) -> None:
    """Print the text of SHORTCUT filled in for one contact."""
    click.echo(ws.replies.render(shortcut, contact, account=account))


COMMANDS = [replies_group]
