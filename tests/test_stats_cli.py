"""`bizchat stats ...` in the terminal, on the hand-built workspace (test_stats_world)."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from click.testing import CliRunner
from stats_world import build_ab_world, build_campaigns

from bizchat.cli import main


@pytest.fixture
def path(ws):
    build_campaigns(ws)
    return str(ws.path)


def run(path, *args):
    return CliRunner().invoke(main, ["-w", path, "stats", *args], catch_exceptions=False)


def test_open_rates_table_and_csv(path):
    result = run(path, "open-rates")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:2] == ["broadcast_id", "name"]
    assert "80.0%" in lines[1] and "71.4%" in lines[1]  # open 4/5, delivery 5/7
    assert "lower bound" in result.output
    csv = run(path, "open-rates", "--csv")
    df = pd.read_csv(io.StringIO(csv.output))
    assert df["open_rate"].iloc[0] == pytest.approx(0.8)
    assert pd.isna(df.set_index("broadcast_id").loc[3, "open_rate"])
    assert "lower bound" not in csv.output  # CSV stays machine-readable


@pytest.mark.parametrize("by,key", [("label", "label"), ("day", "day"), ("hour", "hour")])
def test_open_rates_by(path, by, key):
    result = run(path, "open-rates", "--by", by, "--csv", "--tz", "Europe/Berlin")
    assert result.exit_code == 0, result.output
    df = pd.read_csv(io.StringIO(result.output))
    assert key in df.columns and df["recipients"].sum() >= (11 if by == "label" else 9)
    if by in ("day", "hour"):   # a time of sending: only attempted sends have one
        assert (df["skipped"] == 0).all()


def test_open_rates_filters(path):
    result = run(path, "open-rates", "--csv", "--account", "1", "--label", "VIP", "--label", "Krimi",
                 "--category", "marketing", "--since", "2025-01-01", "--until", "2025-02-01")
    df = pd.read_csv(io.StringIO(result.output))
    assert df[["broadcast_id", "recipients"]].values.tolist() == [[1, 4]]


def csv_frame(path, *args) -> pd.DataFrame:
    result = run(path, *args, "--csv")
    assert result.exit_code == 0, (args, result.output)
    return pd.read_csv(io.StringIO(result.output))


def same_numbers(printed: pd.DataFrame, computed: pd.DataFrame) -> None:
    """The CSV holds the API's rows, number for number (and is not empty)."""
    assert len(printed) == len(computed) > 0
    numbers = [c for c in computed.columns if pd.api.types.is_numeric_dtype(computed[c])
               and not pd.api.types.is_bool_dtype(computed[c])]
    assert numbers
    for column in numbers:
        assert printed[column].to_numpy(dtype=float) == pytest.approx(
            computed[column].to_numpy(dtype=float), nan_ok=True), column


def test_funnel_prints_the_counts(path, ws):
    df = csv_frame(path, "funnel", "--by", "broadcast").set_index("broadcast_id")
    assert df.loc[1, ["sent", "delivered", "read"]].tolist() == [7, 5, 4]
    assert df.loc[1, "open_rate"] == pytest.approx(0.8)
    same_numbers(df.reset_index(), ws.stats.funnel(by="broadcast"))


def test_failures_print_codes_and_shares(path, ws):
    overall = csv_frame(path, "failures")   # by error code only
    same_numbers(overall, ws.stats.failures(None))
    assert overall.set_index("error_code")["failed"].to_dict() == {131026: 2, 131049: 1}
    df = csv_frame(path, "failures", "--by", "broadcast")
    same_numbers(df, ws.stats.failures("broadcast"))
    first = df[df.broadcast_id == 1].iloc[0]
    assert first["share_of_sent"] == pytest.approx(1 / 7) and first["share_of_failed"] == 1.0


def test_time_to_read_prints_the_minutes(path, ws):
    df = csv_frame(path, "time-to-read", "--by", "label")
    same_numbers(df, ws.stats.time_to_read(by="label"))
    assert df["read_24h_share"].between(0, 1).all() and df["read_24h_share"].sum() > 0


@pytest.mark.slow
def test_cohorts_and_chats_print_the_demo_numbers(demo_ws):
    path = str(demo_ws.path)
    cohorts = csv_frame(path, "cohorts", "--tz", "Europe/Berlin")
    same_numbers(cohorts, demo_ws.stats.cohorts("Europe/Berlin"))
    assert cohorts["delivered"].sum() > 0 and cohorts["open_rate"].between(0, 1).all()
    chats = csv_frame(path, "chats", "--by", "month")
    same_numbers(chats, demo_ws.stats.response_times("month"))


@pytest.mark.slow
def test_send_time_and_sample_size_print_their_advice(path):
    assert "Best send time: Sat 00:00-01:00 (Europe/Berlin)" in run(
        path, "send-time", "--tz", "Europe/Berlin", "--min-delivered", "1").output
    assert "each variant needs about" in run(path, "sample-size", "--mde", "0.1",
                                             "--baseline", "0.5").output


@pytest.mark.slow
def test_errors_are_one_clear_line(path):
    result = CliRunner().invoke(main, ["-w", path, "stats", "open-rates", "--label", "Nope"])
    assert result.exit_code == 1
    assert "No label named 'nope'" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["-w", path, "stats", "lift", "1"])
    assert result.exit_code == 1 and "no control group" in result.output
    result = CliRunner().invoke(main, ["-w", path, "stats", "ab", "1"])
    assert result.exit_code == 1 and "at least two" in result.output


@pytest.mark.slow
def test_ab_and_lift_print_verdicts(ws):
    path = str(build_ab_world(ws).path)
    ab = run(path, "ab", "9", "--metric", "reply")
    assert ab.exit_code == 0, ab.output
    assert "split matches the plan" in ab.output and "Too few recipients to tell B from A" in ab.output
    lift = run(path, "lift", "9", "--cost-per-delivered", "0.1")
    assert lift.exit_code == 0, lift.output
    assert "reply_72h" in lift.output and "control group" in lift.output
    assert "read" not in lift.output.split("\n")[0]  # no read column in the lift table
