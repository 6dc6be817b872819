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
    _mode: tuple | None = None

    def open(self, *, read_only: bool = False, create: bool = False, adopt: bool = False):
        """The workspace, opened once per mode. Only ``init`` and ``demo`` create one; a
        command that only reads opens it read-only (never created, migrated or changed)."""
        mode = (read_only, create, adopt)
        if self._ws is None or self._mode != mode:
            from ..workspace import open as open_workspace

            self._ws = open_workspace(self.workspace, timeout=self.timeout, create=create,
                                      read_only=read_only, adopt=adopt)
            self._mode = mode
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


def workspace_mode(mode: str):
    """Mark how a command that opens the workspace itself uses it: "create" (init, demo)
    or "read unless changing" (it opens read-only when its options change nothing)."""
    def mark(func):
        func.workspace_mode = mode
        return func
    return mark


def cli_state() -> CliState:
    """The running command's state (its workspace path), set by ``workspace_option``."""
    return click.get_current_context().ensure_object(CliState)


def current_workspace(*, read_only: bool = False):
    """The workspace of the running command, for commands that decide their mode from
    their options (``broadcast limits`` only reads without them)."""
    return cli_state().open(read_only=read_only)


def pass_workspace(func=None, *, read_only: bool = False):
    """Open the workspace (after the options are read) and pass it as ``ws``.

    ``@pass_workspace`` for commands that change it (an existing workspace; its schema is
    upgraded if needed), ``@pass_workspace(read_only=True)`` for commands that only read.
    The mode is kept on the command (``workspace_mode``) so a test can list the readers.
    """
    if func is None:
        return functools.partial(pass_workspace, read_only=read_only)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(current_workspace(read_only=read_only), *args, **kwargs)

    return workspace_option(workspace_mode("read" if read_only else "write")(wrapper))


def local_time(at, zone) -> str:
    """A UTC time as the account reads it, with its zone."""
    from ..campaigns.clock import local

    return local(at, zone)


def echo_frame(df: pd.DataFrame, csv: bool = False) -> None:
    """Print a DataFrame as an aligned table, or as CSV for other tools.

    CSV goes through ``safe_csv``: it is opened in spreadsheets, where a customer's name
    like ``=cmd|' /C calc'!A0`` must stay text (a leading apostrophe), never a formula.
    Quoting stays minimal, as other tools reading the output expect.
    """
    if csv:
        import csv as csv_module

        from ..privacy.safe_export import safe_csv

        click.echo(safe_csv(df, quoting=csv_module.QUOTE_MINIMAL), nl=False)
    elif df.empty:
        click.echo("(no rows)")
    else:
        with pd.option_context("display.max_rows", 500, "display.max_columns", 50,
                               "display.width", 200, "display.max_colwidth", 60):
            click.echo(df.to_string(index=False))
