"""Workspace-level commands: init, info, sql, demo."""

from __future__ import annotations

import click

from ._common import echo_frame, pass_workspace, workspace_option


@click.command()
@pass_workspace
def init(ws) -> None:
    """Create the workspace (or upgrade its schema) and print where it is."""
    info = ws.info()
    click.echo(f"Workspace {info['path']} is ready (schema version {info['schema_version']}).")


@click.command()
@pass_workspace
def info(ws) -> None:
    """Print the schema version and the row count of every table."""
    data = ws.info()
    click.echo(f"workspace       {data['path']}")
    click.echo(f"schema version  {data['schema_version']}")
    for table, count in data["tables"].items():
        click.echo(f"{table:<22}{count:>12,}")


@click.command()
@click.argument("query")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV instead of a table.")
@pass_workspace
def sql(ws, query: str, as_csv: bool) -> None:
    """Run a read-only SQL QUERY against the workspace and print the result.

    The connection is read-only with external access off: a query can read the
    workspace's tables and views, but cannot change them or touch other files.
    """
    echo_frame(ws.sql(query), csv=as_csv)


@click.command()
@click.option("--contacts", default=20000, show_default=True, help="How many contacts.")
@click.option("--seed", default=7, show_default=True, help="Random seed; same seed, same workspace.")
@click.option("--replace", is_flag=True, help="Delete an existing workspace file first.")
@workspace_option
def demo(contacts: int, seed: int, replace: bool) -> None:
    """Build the demo workspace: a publisher with two accounts and a year of campaigns."""
    from .. import demo as demo_module
    from ._common import CliState

    state = click.get_current_context().find_object(CliState)
    summary = demo_module.build(state.workspace, contacts=contacts, seed=seed, replace=replace,
                                progress=True)
    click.echo(demo_module.format_summary(summary))


COMMANDS = [init, info, sql, demo]
