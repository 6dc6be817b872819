"""`bizchat report ...`: run papermill report notebooks and list them."""

from __future__ import annotations

import click

from ._common import echo_frame, pass_workspace


@click.group(name="report")
def report_group() -> None:
    """Report notebooks (built in, plus $BIZCHAT_REPORTS_DIR): run them now; `bizchat
    schedule` runs them on time."""


@report_group.command(name="run")
@click.argument("name")
@click.option("-p", "--param", "params", nargs=2, multiple=True, metavar="NAME VALUE",
              help="A report parameter (repeatable). Secrets are refused: notebooks read "
                   "them from the environment.")
@click.option("--output-dir", type=click.Path(file_okay=False), default=None,
              help="Where outputs go, in NAME/DATE/ (default: reports/ beside the workspace); "
                   "its index.html lists every run.")
@click.option("--kernel", default=None, help="Jupyter kernel name (default: the notebook's).")
@pass_workspace
def run(ws, name: str, params: tuple, output_dir: str | None, kernel: str | None) -> None:
    """Execute the report NAME; print the executed notebook's path and its HTML's."""
    path = ws.reports.run(name, dict(params), output_dir=output_dir, kernel_name=kernel,
                          actor="cli")
    click.echo(f"notebook: {path}")
    click.echo(f"html: {path.with_suffix('.html')}")


@report_group.command(name="list")
def list_() -> None:
    """List the report notebooks and their parameters."""
    from ..reports import Reports  # no workspace needed to list them

    echo_frame(Reports.available())


@report_group.command(name="runs")
@click.option("--report", default=None, help="Only runs of this report.")
@pass_workspace(read_only=True)
def runs(ws, report: str | None) -> None:
    """Past report runs, newest first, with the HTML and notebook of each."""
    echo_frame(ws.reports.runs(report))


COMMANDS = [report_group]
