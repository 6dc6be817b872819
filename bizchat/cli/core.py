"""Workspace-level commands: init, info, sql, demo."""

from __future__ import annotations

import click

from ._common import cli_state, echo_frame, pass_workspace, workspace_mode, workspace_option


@click.command()
@click.option("--yes", "-y", is_flag=True,
              help="Add bizchat's tables to a DuckDB file that holds other tables without asking.")
@workspace_option
@workspace_mode("create")
def init(yes: bool) -> None:
    """Create the workspace (or upgrade its schema) and print where it is.

    The only command besides `demo` that creates a workspace. A DuckDB file that already
    holds other tables (another application's database) becomes a workspace only after
    you confirm (or with --yes).
    """
    from ..errors import NotAWorkspace

    state = cli_state()
    try:
        ws = state.open(create=True)
    except NotAWorkspace as exc:
        tables = getattr(exc, "tables", None)
        if not tables:
            raise
        if not yes:
            listed = ", ".join(tables[:10]) + (", ..." if len(tables) > 10 else "")
            click.confirm(f"{exc.fields['path']} is a DuckDB database holding {len(tables)} other "
                          f"table(s) ({listed}). Add bizchat's tables beside them?", abort=True)
        ws = state.open(create=True, adopt=True)
    info = ws.info()
    click.echo(f"Workspace {info['path']} is ready (schema version {info['schema_version']}).")


@click.command()
@pass_workspace(read_only=True)
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
@pass_workspace(read_only=True)
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
@workspace_mode("create")
def demo(contacts: int, seed: int, replace: bool) -> None:
    """Build the demo workspace: a publisher with two accounts and a year of campaigns."""
    from .. import demo as demo_module

    state = cli_state()
    summary = demo_module.build(state.workspace, contacts=contacts, seed=seed, replace=replace,
                                progress=True)
    click.echo(demo_module.format_summary(summary))
    click.echo("\n" + demo_module.next_steps(summary), err=True)


COMMANDS = [init, info, sql, demo]
