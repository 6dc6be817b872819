"""`bizchat labels ...`: the labels of one account and their assignments."""

from __future__ import annotations

import click

from ._common import account_option, echo_frame, pass_workspace


@click.group(name="labels")
def labels_group() -> None:
    """Labels of a business account: create, rename, recolour, merge, assign."""


@labels_group.command(name="list")
@account_option
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV instead of a table.")
@pass_workspace(read_only=True)
def list_(ws, account: str, as_csv: bool) -> None:
    """List the labels with their colour and how many contacts and chats carry them."""
    frame = ws.labels.list(account)
    echo_frame(frame[["name", "color", "hex", "contacts", "chats"]], csv=as_csv)


@labels_group.command(name="create")
@click.argument("name")
@account_option
@click.option("--color", type=click.IntRange(1, 20), default=None,
              help="Colour number 1-20 (default: the first one not in use).")
@pass_workspace
def create(ws, name: str, account: str, color: int | None) -> None:
    """Create the label NAME."""
    label = ws.labels.create(account, name, color=color)
    click.echo(f"Created label {label['name']!r} (colour {label['color']}, {label['hex']}).")


@labels_group.command(name="rename")
@click.argument("old")
@click.argument("new")
@account_option
@pass_workspace
def rename(ws, old: str, new: str, account: str) -> None:
    """Rename the label OLD to NEW (automated messages that name it follow)."""
    label = ws.labels.rename(account, old, new)
    click.echo(f"Renamed label {old!r} to {label['name']!r}.")


@labels_group.command(name="recolor")
@click.argument("name")
@click.argument("color", type=click.IntRange(1, 20))
@account_option
@pass_workspace
def recolor(ws, name: str, color: int, account: str) -> None:
    """Give the label NAME the colour number COLOR (1-20)."""
    label = ws.labels.recolor(account, name, color)
    click.echo(f"Label {label['name']!r} now has colour {label['color']} ({label['hex']}).")


@labels_group.command(name="merge")
@click.argument("source", metavar="FROM")
@click.argument("into", metavar="INTO")
@account_option
@pass_workspace
def merge(ws, source: str, into: str, account: str) -> None:
    """Move all assignments of FROM to INTO, then delete FROM."""
    result = ws.labels.merge(account, source, into)
    click.echo(f"Merged {source!r} into {result['name']!r}: {result['contacts_moved']} contacts "
               f"and {result['chats_moved']} chats gained it.")


@labels_group.command(name="delete")
@click.argument("name")
@account_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_workspace
def delete(ws, name: str, account: str, yes: bool) -> None:
    """Delete the label NAME and take it off every contact and chat."""
    if not yes:
        click.confirm(f"Delete the label {name!r} and all its assignments?", abort=True)
    result = ws.labels.delete(account, name)
    click.echo(f"Deleted label {result['name']!r} (it was on {result['contacts']} contacts and "
               f"{result['chats']} chats).")


def _assignment_command(add: bool):
    verb = "assign" if add else "unassign"

    @click.argument("name")
    @account_option
    @click.option("--contact", "contacts", multiple=True, metavar="PHONE",
                  help="A contact: any form of the number, wa_id, user_id or contact_id. "
                       "Repeat for more.")
    @click.option("--chat", "chats", multiple=True, type=int, metavar="CHAT_ID",
                  help="A chat id. Repeat for more.")
    @click.option("--any", "any_of", multiple=True, metavar="LABEL",
                  help="Every contact with any of these labels.")
    @click.option("--all", "all_of", multiple=True, metavar="LABEL",
                  help="Every contact with all of these labels.")
    @click.option("--none", "none_of", multiple=True, metavar="LABEL",
                  help="Every contact with none of these labels.")
    @click.option("--language", "languages", multiple=True, metavar="TAG",
                  help="Every contact with this language (de also matches de-AT).")
    @click.option("--search", "query", default=None, metavar="TEXT",
                  help="Every contact whose name contains TEXT or whose number matches it.")
    @pass_workspace
    def command(ws, name: str, account: str, contacts: tuple[str, ...],
                chats: tuple[int, ...], any_of, all_of, none_of, languages, query,
                from_csv: str | None = None) -> None:
        flt = {k: list(v) for k, v in (("any_of", any_of), ("all_of", all_of),
                                        ("none_of", none_of), ("language", languages)) if v}
        if query:
            flt["query"] = query
        chosen = [bool(contacts or chats), bool(flt), bool(from_csv)]
        if sum(chosen) != 1:
            raise click.UsageError("Name the contacts one way: --contact/--chat, a filter "
                                   "(--any, --all, --none, --language, --search)"
                                   + (", or --from-csv FILE." if add else "."))
        method = ws.labels.assign if add else ws.labels.unassign
        if from_csv:
            result = ws.labels.assign_from_csv(account, name, from_csv)
        elif flt:
            result = method(account, name, flt)
        else:
            result = method(account, name, list(contacts) if contacts else None,
                            chats=list(chats) if chats else None)
        done = "Labelled" if add else "Unlabelled"
        click.echo(f"{done} {result['contacts']} contacts and {result['chats']} chats with "
                   f"{result['label']!r}.")

    if add:
        command = click.option(
            "--from-csv", "from_csv", type=click.Path(dir_okay=False), metavar="FILE",
            help="A CSV file listing the contacts (a phone column, else the first).")(command)
    command.__doc__ = ("Put the label NAME on contacts and chats (already labelled ones are kept):"
                       " listed, selected by a filter, or from a CSV file."
                       if add else "Take the label NAME off contacts and chats, listed or "
                                   "selected by a filter.")
    return labels_group.command(name=verb)(command)


assign = _assignment_command(True)
unassign = _assignment_command(False)


@labels_group.command(name="contacts")
@account_option
@click.option("--any", "any_of", multiple=True, metavar="LABEL", help="Has any of these labels.")
@click.option("--all", "all_of", multiple=True, metavar="LABEL", help="Has all of these labels.")
@click.option("--none", "none_of", multiple=True, metavar="LABEL", help="Has none of these.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV instead of a table.")
@pass_workspace(read_only=True)
def contacts(ws, account: str, any_of, all_of, none_of, as_csv: bool) -> None:
    """List the contacts selected by labels (any of, all of, none of)."""
    frame = ws.labels.contacts(account, any_of=list(any_of), all_of=list(all_of),
                               none_of=list(none_of))
    frame["labels"] = [", ".join(x) for x in frame["labels"]]
    echo_frame(frame.astype(object).where(frame.notna(), ""), csv=as_csv)


COMMANDS = [labels_group]
