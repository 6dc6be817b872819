"""The `bizchat` command: a thin shell over the Python API.

Each command opens the workspace, calls the API and prints. Errors that bizchat raises
on purpose are printed as one clear message (no traceback) with exit status 1.
"""

from __future__ import annotations

import logging
import re
import sys

import click

from ..errors import BizchatError
from ._common import CliState


class _Group(click.Group):
    def main(self, *args, **kwargs):
        # standalone_mode=False lets us print BizchatError ourselves.
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except BizchatError as exc:
            click.echo(f"Error: {cli_message(str(exc), self)}", err=True)
            sys.exit(1)
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)


# Python arguments a message may name whose command-line option is not found by name.
_OPTIONS = {"start": "--since", "end": "--until", "dayfirst=True": "--dayfirst",
            "dayfirst=False": "--monthfirst"}


def cli_message(message: str, group: click.Group) -> str:
    """An API error as the command line says it: on one line, and with the Python
    arguments it names (``baseline_rate=``) as the options that set them (``--baseline``)."""
    message = " ".join(line.strip() for line in message.splitlines() if line.strip())
    names = dict(_OPTIONS)
    for command in _commands(group):
        for param in command.params:
            if isinstance(param, click.Option) and param.name:
                names.setdefault(param.name, param.opts[0])
    for name in sorted(names, key=len, reverse=True):
        pattern = re.escape(name) if "=" in name else rf"(?<![\w-]){re.escape(name)}="
        message = re.sub(pattern, names[name] + ("" if "=" in name else " "), message)
    return message


def _commands(group: click.Group):
    for command in group.commands.values():
        yield command
        if isinstance(command, click.Group):
            yield from _commands(command)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--workspace", "-w", "workspace", metavar="PATH", envvar="BIZCHAT_WORKSPACE",
    help="The workspace file (default: $BIZCHAT_WORKSPACE, else data/bizchat.duckdb).",
)
@click.option(
    "--timeout", type=float, default=30.0, show_default=True,
    help="Seconds to wait while another process holds the workspace.",
)
@click.version_option(package_name="bizchat")
@click.pass_context
def main(ctx: click.Context, workspace: str | None, timeout: float) -> None:
    """bizchat: business messaging workbench on one DuckDB file."""
    # Long work (sends, ingestion) reports progress as log lines on stderr.
    logging.basicConfig(format="%(asctime)s %(name)s %(message)s", level=logging.WARNING)
    logging.getLogger("bizchat").setLevel(logging.INFO)
    ctx.obj = CliState(workspace=workspace, timeout=timeout)


def _register() -> None:
    """Add the COMMANDS of every module in this package (one module per domain)."""
    import importlib
    import pkgutil

    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for command in getattr(module, "COMMANDS", []):
            main.add_command(command)


_register()
