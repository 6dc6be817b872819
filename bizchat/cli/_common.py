"""What every CLI command shares: the workspace option and table output."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import click
import pandas as pd


@dataclass
class CliState:
    workspace: str | None = None
    timeout: float = 30.0
    _ws: object = None

    def open(self):
        if self._ws is None:
            from ..workspace import open as open_workspace

            self._ws = open_workspace(self.workspace, timeout=self.timeout)
        return self._ws


# The business account a command works on, in any written form of its number.
account_option = click.option(
    "--account", "-a", required=True, metavar="PHONE",
    help="The business account (its number, account_id or phone_number_id).")


def workspace_option(func):
    """Accept ``--workspace`` after the command too (``bizchat demo --workspace P``)."""

    @click.option("--workspace", "-w", "workspace_here", metavar="PATH", default=None,
                  help="The workspace file (overrides the global option).")
    @click.pass_context
    @functools.wraps(func)
    def wrapper(ctx, *args, workspace_here=None, **kwargs):
        state = ctx.find_object(CliState) or CliState()
        if workspace_here:
            state.workspace = workspace_here
            state._ws = None
        ctx.obj = state
        return ctx.invoke(func, *args, **kwargs)

    return wrapper


def pass_workspace(func):
    """Open the workspace (after the options are read) and pass it as ``ws``."""

    @workspace_option
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        state = click.get_current_context().find_object(CliState)
        return func(state.open(), *args, **kwargs)

    return wrapper


def echo_frame(df: pd.DataFrame, csv: bool = False) -> None:
    """Print a DataFrame as an aligned table, or as CSV for other tools.

    CSV goes through ``safe_csv``: it is opened in spreadsheets, where a customer's name
    like ``=cmd|' /C calc'!A0`` must stay text (a leading apostrophe), never a formula.
    Quoting stays minimal, as other tools reading the output expect.
    """
    if csv:
        import csv as csv_module

        from ..safe_export import safe_csv

        click.echo(safe_csv(df, quoting=csv_module.QUOTE_MINIMAL), nl=False)
    elif df.empty:
        click.echo("(no rows)")
    else:
        with pd.option_context("display.max_rows", 500, "display.max_columns", 50,
                               "display.width", 200, "display.max_colwidth", 60):
            click.echo(df.to_string(index=False))
