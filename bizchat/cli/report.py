"""`bizchat report ...`: run papermill report notebooks and list them."""

from __future__ import annotations

import click

from ._common import echo_frame, pass_workspace


@click.group(name="report")
def report_group() -> None:
    """Report notebooks (notebooks/reports/): run them now or from cron."""


@report_group.command(name="run")
@click.argument("name")
@click.option("-p", "--param", "params", nargs=2, multiple=True, metavar="NAME VALUE",
              help="A report parameter (repeatable). Secrets are refused: notebooks read "
                   "them from the environment.")
@click.option("--output-dir", type=click.Path(file_okay=False), default=None,
              help="Where the executed notebook goes (default: reports/ beside the workspace).")
@click.option("--kernel", default=None, help="Jupyter kernel name (default: the notebook's).")
@pass_workspace
def run(ws, name: str, params: tuple, output_dir: str | None, kernel: str | None) -> None:
    """Execute the report NAME and print the path of the executed notebook."""
    path = ws.reports.run(name, dict(params), output_dir=output_dir, kernel_name=kernel,
                          actor="cli")
    click.echo(str(path))


@report_group.command(name="list")
def list_() -> None:
    """List the report notebooks and their parameters."""
    from ..reports import Reports  # no workspace needed to list them

    echo_frame(Reports.available())


@report_group.command(name="runs")
@click.option("--report", default=None, help="Only runs of this report.")
@pass_workspace(read_only=True)
def runs(ws, report: str | None) -> None:
    """Past report runs, newest first."""
    echo_frame(ws.reports.runs(report))


COMMANDS = [report_group]
