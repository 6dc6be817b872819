"""`bizchat stats ...`: campaign and chat analytics in the terminal (a shell over ws.stats)."""

from __future__ import annotations

import functools

import click
import pandas as pd

from ._common import current_workspace, echo_frame, workspace_mode, workspace_option

BY_CHOICES = ("broadcast", "variant", "account", "category", "template", "label", "day",
              "week", "month", "hour", "weekday")



by_option = click.option("--by", type=click.Choice(BY_CHOICES), default="broadcast",
                         show_default=True, help="Group the table by this.")
broadcast_option = click.option("--broadcast", "broadcasts", multiple=True, type=int, metavar="ID",
                                help="Only this broadcast (repeatable).")


def filter_options(func):
    """--account, --since, --until, --label, --category: the filters every command takes."""
    @click.option("--account", "-a", default=None, metavar="PHONE",
                  help="Only this business account (number, account_id or phone_number_id).")
    @click.option("--since", default=None, metavar="DATE",
                  help="From this date/time (UTC unless it names an offset), e.g. 2025-03-01.")
    @click.option("--until", default=None, metavar="DATE",
                  help="Before this date/time (exclusive).")
    @click.option("--label", "labels", multiple=True, metavar="NAME",
                  help="Only contacts with this label (repeat for any of several).")
    @click.option("--category", type=click.Choice(["marketing", "utility"]), default=None,
                  help="Only broadcasts of this template category.")
    @functools.wraps(func)
    def wrapper(*args, account, since, until, labels, category, **kwargs):
        filters = dict(account=account, start=since, end=until, labels=list(labels) or None,
                       category=category)
        return func(*args, filters=filters, **kwargs)
    return wrapper


class LakeReader:
    """What a stats command reads with ``--lake``: ``.stats`` is a LakeStats (the same
    methods as a workspace's ``ws.stats``), so each command stays one call."""

    def __init__(self, stats):
        self.stats = stats


def pass_stats(func):
    """Pass ``ws`` to a stats command: the workspace opened read-only, or with ``--lake DIR``
    one tenant of a Parquet lake read by DuckDB or Spark (``ws.stats`` either way)."""
    @click.option("--lake", default=None, metavar="DIR",
                  help="Read a Parquet lake (bizchat lake export) instead of the workspace.")
    @click.option("--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb",
                  show_default=True, help="With --lake: the engine that reads it.")
    @click.option("--tenant", default=None, metavar="NAME",
                  help="With --lake: the tenant to read (needed when the lake holds several).")
    @click.option("--spark-master", default=None, metavar="URL",
                  help="With --engine spark: the Spark master (default: the configured one, "
                       "else local[2]).")
    @functools.wraps(func)
    def wrapper(*args, lake, engine, tenant, spark_master, **kwargs):
        if lake is None:
            if engine != "duckdb" or tenant is not None or spark_master is not None:
                raise click.UsageError("--engine, --tenant and --spark-master go with --lake DIR.")
            return func(current_workspace(read_only=True), *args, **kwargs)
        from ..lake.stats import LakeStats

        if engine == "spark":  # the JVM takes seconds to start: say so
            click.echo(f"Starting Spark ({spark_master or 'local'}) for the lake {lake} ...",
                       err=True)
        with LakeStats(lake, tenant, engine=engine, spark_master=spark_master) as stats:
            return func(LakeReader(stats), *args, **kwargs)

    return workspace_option(workspace_mode("read")(wrapper))


csv_option = click.option("--csv", "as_csv", is_flag=True, help="Print CSV instead of a table.")
tz_option = click.option("--tz", default=None, metavar="ZONE",
                         help="Time zone of days, weeks, months, hours and weekdays "
                              "(default: the account's).")


PERCENT = ("share", "cum_share", "rate", "ci_low", "ci_high", "diff", "diff_ci_low",
           "diff_ci_high", "lift", "lift_ci_low", "lift_ci_high", "relative_lift")
P_VALUES = ("p_value", "p_adjusted")
DATES = ("day", "week", "month", "cohort")


def show(df: pd.DataFrame, as_csv: bool) -> None:
    """CSV as computed; for the terminal rates as percentages, dates without a time."""
    if as_csv:
        echo_frame(df, csv=True)
        return
    out = df.copy()
    for column in out.columns:
        values = out[column]
        if column.endswith(("_rate", "_share")) or column.startswith("share") or column in PERCENT:
            out[column] = values.map(lambda v: "" if pd.isna(v) else f"{v:.1%}")
        elif column in P_VALUES:
            out[column] = values.map(lambda v: "" if pd.isna(v) else f"{v:.3g}")
        elif column.endswith(("_min", "incremental", "cost", "cost_per_incremental_reply", "z")):
            out[column] = values.map(lambda v: "" if pd.isna(v) else f"{v:,.2f}")
        elif column in DATES:
            out[column] = pd.to_datetime(values).dt.strftime("%Y-%m-%d")
    echo_frame(out.astype(object).where(out.notna(), ""))


def _lower_bound_note(df: pd.DataFrame, as_csv: bool) -> None:
    if not as_csv and ("open_rate" in df.columns or "cum_open_rate" in df.columns):
        click.echo("Open rates are lower bounds: recipients can switch read receipts off.")


@click.group(name="stats")
def stats_group() -> None:
    """Campaign and chat analytics: open rates, funnels, timing, A/B tests."""


@stats_group.command(name="open-rates")
@by_option
@broadcast_option
@filter_options
@tz_option
@csv_option
@pass_stats
def open_rates(ws, by: str, broadcasts, filters: dict, tz: str, as_csv: bool) -> None:
    """Delivery and open rates (read / delivered, a lower bound) per broadcast, label, ..."""
    df = ws.stats.open_rates(by, tz=tz, broadcasts=list(broadcasts) or None, **filters)
    if by in ("broadcast", "variant") and not as_csv:
        df = df.drop(columns=["category", "template"], errors="ignore")
    show(df, as_csv)
    _lower_bound_note(df, as_csv)


@stats_group.command(name="funnel")
@by_option
@broadcast_option
@filter_options
@tz_option
@csv_option
@pass_stats
def funnel(ws, by: str, broadcasts, filters: dict, tz: str, as_csv: bool) -> None:
    """The whole funnel: sent, delivered, read, replied (72 h), opted out (7 days)."""
    df = ws.stats.funnel(by, tz=tz, broadcasts=list(broadcasts) or None, **filters)
    if not as_csv:
        df = df.drop(columns=["name", "category", "template", "scheduled_for", "first_sent_at"], errors="ignore")
    show(df, as_csv)
    _lower_bound_note(df, as_csv)


@stats_group.command(name="failures")
@click.option("--by", type=click.Choice(BY_CHOICES), default=None,
              help="Group by this as well as the error code.")
@filter_options
@csv_option
@pass_stats
def failures(ws, by: str | None, filters: dict, as_csv: bool) -> None:
    """Failed messages by error code, with the platform's error title."""
    show(ws.stats.failures(by, **filters), as_csv)


@stats_group.command(name="time-to-read")
@by_option
@filter_options
@tz_option
@csv_option
@pass_stats
def time_to_read(ws, by: str, filters: dict, tz: str, as_csv: bool) -> None:
    """Median and p90 minutes from send to read."""
    df = ws.stats.time_to_read(by, tz=tz, **filters)
    if not as_csv:
        df = df.drop(columns=["category", "template", "scheduled_for"], errors="ignore")
    show(df, as_csv)


@stats_group.command(name="send-time")
@click.option("--tz", default=None, metavar="ZONE",
              help="Time zone of weekday and hour (default: the account's).")
@click.option("--min-delivered", default=100, show_default=True,
              help="Slots with fewer delivered messages are not recommended.")
@filter_options
@csv_option
@pass_stats
def send_time(ws, tz: str, min_delivered: int, filters: dict, as_csv: bool) -> None:
    """The best weekday and hour to send, accounting for sample size."""
    stats = ws.stats
    if as_csv:
        show(stats.send_times(tz, **filters), True)
        return
    advice = stats.best_send_time(tz, min_delivered=min_delivered, **filters)
    click.echo(advice.verdict)
    if not advice.candidates.empty:
        click.echo("\nBest slots (ranked by the low end of their 95% interval):")
        show(advice.candidates, False)


@stats_group.command(name="ab")
@click.argument("broadcast_id", type=int)
@click.option("--metric", type=click.Choice(["open", "reply", "opt_out"]), default="open",
              show_default=True, help="Compare the variants on this rate.")
@click.option("--baseline", default=None, help="The variant to compare against (default: the first).")
@click.option("--mde", type=float, default=None,
              help="Smallest difference worth finding, in rate points (0.05 = 5 points).")
@csv_option
@pass_stats
def ab(ws, broadcast_id: int, metric: str, baseline: str | None, mde: float | None,
       as_csv: bool) -> None:
    """Compare the variants of a broadcast (two-proportion test, Holm, sample-ratio check)."""
    result = ws.stats.ab_test(broadcast_id, metric, baseline=baseline, mde=mde)
    show(result.table, as_csv)
    if not as_csv:
        click.echo("\n" + str(result.srm))
        click.echo(result.verdict)


@stats_group.command(name="lift")
@click.argument("broadcast_id", type=int)
@click.option("--cost-per-delivered", type=float, default=None,
              help="What one delivered message costs, for the cost per incremental reply.")
@click.option("--by-variant", is_flag=True, help="One row per variant instead of all together.")
@csv_option
@pass_stats
def lift(ws, broadcast_id: int, cost_per_delivered: float | None, by_variant: bool,
         as_csv: bool) -> None:
    """Lift over the hold-out control group on replies and opt-outs (never reads)."""
    result = ws.stats.control_lift(broadcast_id, cost_per_delivered=cost_per_delivered,
                                     by_variant=by_variant)
    df = result.table if as_csv else result.table.drop(columns=["description"])
    show(df, as_csv)
    if not as_csv:
        click.echo("\n" + result.verdict)


@stats_group.command(name="sample-size")
@click.option("--mde", type=float, required=True,
              help="Smallest difference worth finding, in rate points (0.05 = 5 points).")
@click.option("--metric", type=click.Choice(["open", "reply"]), default="open", show_default=True)
@click.option("--baseline", "baseline_rate", type=float, default=None,
              help="The rate today (default: from the account's history).")
@click.option("--audience", type=int, default=None, help="Recipients you plan to send to.")
@click.option("--variants", type=int, default=2, show_default=True)
@click.option("--control-fraction", type=float, default=0.0, show_default=True)
@filter_options
@pass_stats
def sample_size(ws, mde: float, metric: str, baseline_rate: float | None, audience: int | None,
                variants: int, control_fraction: float, filters: dict) -> None:
    """How many recipients an A/B test needs to find a given difference, before sending."""
    result = ws.stats.plan_ab(mde, metric=metric, audience=audience, variants=variants,
                                control_fraction=control_fraction, baseline_rate=baseline_rate,
                                **filters)
    click.echo(result.verdict)


@stats_group.command(name="cohorts")
@filter_options
@tz_option
@click.option("--months", default=12, show_default=True, help="Months after the opt-in to show.")
@csv_option
@pass_stats
def cohorts(ws, filters: dict, tz: str, months: int, as_csv: bool) -> None:
    """Open rate of opt-in cohorts over the months after they opted in."""
    df = ws.stats.cohorts(tz, months=months, **filters)
    show(df, as_csv)
    _lower_bound_note(df, as_csv)


@stats_group.command(name="chats")
@click.option("--by", type=click.Choice(["account", "day", "week", "month", "hour", "weekday"]),
              default="account", show_default=True, help="Group the table by this.")
@filter_options
@tz_option
@csv_option
@pass_stats
def chats(ws, by: str, filters: dict, tz: str, as_csv: bool) -> None:
    """First response time and share of customer messages answered within 24 hours."""
    show(ws.stats.response_times(by, tz=tz, **filters), as_csv)


COMMANDS = [stats_group]
