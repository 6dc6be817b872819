"""`bizchat schedule ...`: one scheduler for timed work (reports, lake exports, broadcasts).

    bizchat schedule list                 # scheduled reports and broadcasts, next times
    bizchat schedule run-due              # from cron: */5 * * * * bizchat -w ... schedule run-due
    bizchat schedule serve                # or stay up (stops on SIGTERM)

Reports are entries in ``schedule.toml`` beside the workspace (``--schedule FILE`` for
another); broadcasts are scheduled with ``bizchat broadcast schedule``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import click

from ._common import echo_frame, pass_workspace

log = logging.getLogger("bizchat.scheduling")


def _schedule_option(func):
    return click.option("--schedule", "schedule_file", type=click.Path(dir_okay=False),
                        default=None,
                        help="The schedule file (default: schedule.toml beside the workspace).")(func)


def _line(kind: str, result: dict) -> str:
    """One log line per run."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind == "report":
        slot = f"{result['slot']:%Y-%m-%d %H:%M %Z}"
        tail = result["html"] if result["status"] == "ok" else f"error: {result['error']}"
        return f"{stamp} report {result['entry']} ({result['report']}) slot {slot}: {result['status']} {tail or ''}".rstrip()
    if kind == "delivery":
        slot = f"{result['slot']:%Y-%m-%d %H:%M %Z}"
        tail = (", ".join(result["to"]) if result["status"] == "sent"
                else f"error: {result['error']}")
        return f"{stamp} mail {result['entry']} slot {slot}: {result['status']} {tail}"
    if kind == "lake_export":
        slot = f"{result['slot']:%Y-%m-%d %H:%M %Z}"
        tail = result["summary"] if result["status"] == "ok" else f"error: {result['error']}"
        return f"{stamp} lake export {result['entry']} slot {slot}: {result['status']} {tail}"
    info = dict(result)
    bid = info.pop("broadcast_id", "?")
    return f"{stamp} broadcast {bid}: " + ", ".join(f"{k}: {v}" for k, v in info.items())


def _echo(kind: str, result: dict) -> None:
    click.echo(_line(kind, result))


@click.group(name="schedule")
def schedule_group() -> None:
    """One scheduler for reports (schedule.toml) and scheduled broadcasts."""


@schedule_group.command(name="list")
@_schedule_option
@click.option("--now", default=None, metavar="ISO",
              help="The clock (default $BIZCHAT_NOW, else the wall clock).")
@pass_workspace(read_only=True)
def list_(ws, schedule_file, now) -> None:
    """Every scheduled report and broadcast with its next time."""
    echo_frame(ws.schedule.list(schedule_file, now=now))


@schedule_group.command(name="run-due")
@_schedule_option
@click.option("--now", default=None, metavar="ISO",
              help="The clock (default $BIZCHAT_NOW, else the wall clock).")
@click.option("--transport", type=click.Choice(["simulated", "cloud"]), default="simulated",
              show_default=True, help="How due broadcasts are sent.")
@click.option("--seed", type=int, default=None, help="Seed of the simulated transport.")
@click.option("--kernel", default=None, help="Jupyter kernel for reports (default: the notebook's).")
@pass_workspace
def run_due(ws, schedule_file, now, transport, seed, kernel) -> None:
    """Run every due report slot once, retry failed mails, send due broadcasts (for cron).
    Exits 1 when any run failed (after doing all the others)."""
    done = ws.schedule.run_due(schedule_file, now=now, transport=transport, seed=seed,
                               kernel_name=kernel, on_result=_echo)
    if not (done.reports or done.deliveries or done.broadcasts or done.lake_exports):
        click.echo("Nothing is due.")
    if done.failed:
        raise SystemExit(1)


@schedule_group.command(name="serve")
@_schedule_option
@click.option("--poll", type=float, default=60.0, show_default=True,
              help="Seconds between passes at most (broadcast recipients deferred by time rules).")
@click.option("--transport", type=click.Choice(["simulated", "cloud"]), default="simulated",
              show_default=True, help="How due broadcasts are sent.")
@click.option("--seed", type=int, default=None, help="Seed of the simulated transport.")
@pass_workspace
def serve(ws, schedule_file, poll, transport, seed) -> None:
    """Stay up and run what is due on time, one log line per run; stops on SIGTERM."""
    click.echo(f"Scheduler up: {ws.schedule.path(schedule_file)} and scheduled broadcasts "
               f"of {ws.path}.", err=True)
    failed = ws.schedule.serve(schedule_file, poll=poll, transport=transport, seed=seed,
                               on_result=lambda kind, r: click.echo(_line(kind, r), nl=True))
    click.echo(f"Scheduler stopped ({failed} failed runs).", err=True)


COMMANDS = [schedule_group]
