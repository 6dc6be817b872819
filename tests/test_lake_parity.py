"""Parity: every metric three ways (the workspace file, DuckDB on the lake, Spark on the lake)
gives identical results.

Three tenants in one lake, exported with the real ``ws.lake.export``:

- ``hand``: the hand-built campaigns of stats_world (NULL variants and error codes, a
  broadcast with no deliveries and one with no sends, i.e. zero denominators; broadcast 1
  scheduled 2025-01-31 23:30 UTC, February in Berlin; receipts delivered twice), plus
  receipts that arrive out of order (read before delivered) and chat turns;
- ``ab``: the A/B world (variants, a hold-out control group, replies and opt-outs);
- ``demo``: the 300-contact demo (two accounts, months of traffic).

Each call below runs on all three; DataFrames must be equal with ``assert_frame_equal``
(dtypes included), result objects field by field. The Spark half shares one session
(``spark`` fixture) and runs on one xdist worker.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from conftest import copy_workspace
from stats_world import (
    T1,
    H,
    M,
    add_inbound,
    add_outbound,
    add_recipient,
    build_ab_world,
    build_campaigns,
    record_status_events,
)

import bizchat
from bizchat.lake.stats import LakeStats

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)

# (name, tenants it runs on, call): every public method, with the groupings and zones
# where engines could differ (local months across a month boundary, weekdays, hours).
CALLS = [
    ("open_rates", "hand demo", lambda s: s.open_rates()),
    ("open_rates_label_berlin_month", "hand demo",
     lambda s: s.open_rates(["label", "month"], tz="Europe/Berlin")),
    ("open_rates_utc_month_day", "hand", lambda s: s.open_rates(["month", "day"], tz="UTC")),
    ("open_rates_variant_template", "ab", lambda s: s.open_rates(["variant", "template"])),
    ("open_rates_filtered", "hand",
     lambda s: s.open_rates("account", account=1, labels="krimi", category="marketing",
                            start="2025-01-01", end="2025-04-01")),
    ("open_rates_all", "hand", lambda s: s.open_rates(())),
    ("funnel", "hand ab demo", lambda s: s.funnel()),
    ("funnel_week_hour", "hand", lambda s: s.funnel(["week", "hour"], tz="Europe/Berlin")),
    ("funnel_none", "demo", lambda s: s.funnel(None, category="marketing")),
    ("failures", "hand demo", lambda s: s.failures()),
    ("failures_by_broadcast", "hand", lambda s: s.failures("broadcast")),
    ("time_to_read", "hand demo", lambda s: s.time_to_read()),
    ("time_to_read_weekday", "hand", lambda s: s.time_to_read("weekday", tz="Europe/Berlin")),
    ("read_distribution", "hand demo", lambda s: s.read_distribution()),
    ("read_distribution_broadcast", "hand", lambda s: s.read_distribution("broadcast")),
    ("send_times", "hand demo", lambda s: s.send_times("Europe/Berlin")),
    ("best_send_time", "demo", lambda s: s.best_send_time(min_delivered=20)),
    ("cohorts", "hand demo", lambda s: s.cohorts("Europe/Berlin")),
    ("cohorts_utc", "demo", lambda s: s.cohorts("UTC", months=3)),
    ("consent_changes", "hand demo", lambda s: s.consent_changes()),
    ("consent_coverage", "hand demo", lambda s: s.consent_coverage(end=AS_OF)),
    ("label_growth", "hand demo", lambda s: s.label_growth(start="2026-06-01", end=AS_OF)),
    ("inbound_volume", "hand demo", lambda s: s.inbound_volume()),
    ("inbound_volume_month", "demo", lambda s: s.inbound_volume("month", tz="UTC")),
    ("response_times", "hand demo", lambda s: s.response_times(as_of=AS_OF)),
    ("response_times_day", "hand", lambda s: s.response_times("day", as_of=AS_OF)),
    ("messages_per_chat", "hand demo", lambda s: s.messages_per_chat()),
    ("zone", "hand demo", lambda s: s.zone()),
    ("zone_account", "hand", lambda s: s.zone(2)),
    ("data_reach", "hand demo", lambda s: s.data_reach(1)),
    ("ab_test", "ab", lambda s: s.ab_test(9, "open", as_of=AS_OF)),
    ("ab_test_reply", "ab", lambda s: s.ab_test(9, "reply", as_of=AS_OF)),
    ("control_lift", "ab", lambda s: s.control_lift(9, cost_per_delivered=0.1, as_of=AS_OF)),
    ("plan_ab", "demo", lambda s: s.plan_ab(0.05, metric="reply")),
    ("recipients", "hand ab", lambda s: s.recipients()),
]


# On Spark the demo tenant runs these (every call costs Spark ~1-2 s; the hand-built
# tenants, where the edge cases are, run every call on every engine).
SPARK_ON_DEMO = {"open_rates_label_berlin_month", "funnel", "cohorts", "response_times",
                 "send_times", "inbound_volume_month", "plan_ab", "time_to_read"}


def build_hand(ws) -> None:
    """stats_world's campaigns, receipts out of order and a few chat turns."""
    build_campaigns(ws)
    with ws.transaction() as con:
        s = T1 + timedelta(seconds=5)
        # 109: the read receipt is ingested before the delivered one (webhooks reorder).
        from stats_world import add_contact
        add_contact(con, 109, 1)
        mid = add_recipient(con, 1, 1, 109, sent_at=s, events=[("read", s + 20 * M)])
        record_status_events(con, pd.DataFrame(
            [(mid, "delivered", s + 2 * M, None)],
            columns=["message_id", "status", "at", "error_code"]).astype({"error_code": "Int32"}))
        # Turns: answered in 30 min; answered after 30 h (outside the window); unanswered.
        day = datetime(2025, 2, 28, 22, 50, tzinfo=UTC)   # March in Berlin 10 min later
        add_inbound(con, 1, 101, day)
        add_outbound(con, 1, 101, day + 30 * M)
        add_inbound(con, 1, 103, day + 2 * H)
        add_outbound(con, 1, 103, day + 32 * H)
        add_inbound(con, 1, 104, day + 3 * H)
        add_outbound(con, 1, 104, day + 3 * H + M, automatic=True)


@pytest.fixture(scope="module")
def lake(tmp_path_factory, empty_template, demo_template):
    """(lake dir, {tenant: workspace}): three workspaces exported into one lake."""
    root = tmp_path_factory.mktemp("lake_parity")
    spaces = {}
    for tenant, build in (("hand", build_hand), ("ab", build_ab_world), ("demo", None)):
        folder = root / tenant
        folder.mkdir()
        path = copy_workspace(demo_template if build is None else empty_template, folder)
        ws = bizchat.open(path)
        if build is not None:
            build(ws)
        ws.lake.export(root / "lake", tenant=tenant)
        spaces[tenant] = bizchat.open(path, read_only=True)
    return root / "lake", spaces


def assert_same(expected, actual, what: str) -> None:
    if isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(expected, actual, obj=what)
    elif dataclasses.is_dataclass(expected):
        assert type(expected) is type(actual), what
        for field in dataclasses.fields(expected):
            assert_same(getattr(expected, field.name), getattr(actual, field.name),
                        f"{what}.{field.name}")
    elif isinstance(expected, float) and math.isnan(expected):
        assert isinstance(actual, float) and math.isnan(actual), what
    else:
        assert expected == actual, f"{what}: {expected!r} != {actual!r}"


def run_all(lake_dir, spaces, engine: str, spark=None) -> int:
    checked = 0
    for tenant, ws in spaces.items():
        stats = LakeStats(lake_dir, tenant, engine=engine, spark=spark)
        for name, tenants, call in CALLS:
            if tenant in tenants.split() and (
                    engine != "spark" or tenant != "demo" or name in SPARK_ON_DEMO):
                assert_same(call(ws.stats), call(stats), f"{tenant}:{name}:{engine}")
                checked += 1
    return checked


def test_every_method_has_a_parity_call():
    from bizchat.analytics.stats import Stats

    methods = {n for n in dir(Stats) if not n.startswith("_") and callable(getattr(Stats, n))}
    uncovered = {n for n in methods if not any(c == n or c.startswith(n + "_") for c, _, _ in CALLS)}
    assert not uncovered


@pytest.mark.slow
def test_duckdb_on_the_lake_equals_the_workspace(lake):
    lake_dir, spaces = lake
    assert run_all(lake_dir, spaces, "duckdb") > 50


# py4j (Spark's Python-JVM bridge) drops its pooled sockets to the local JVM unclosed.
PY4J_SOCKETS = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning")


@pytest.mark.slow
@pytest.mark.xdist_group("spark")
@PY4J_SOCKETS
def test_spark_on_the_lake_equals_the_workspace(lake, spark):
    lake_dir, spaces = lake
    assert run_all(lake_dir, spaces, "spark", spark) >= 40


@pytest.mark.slow
def test_the_worlds_have_the_edges_the_parity_claims(lake):
    """The hand tenant really has a zero denominator, NULLs, a month that depends on the
    zone and an out-of-order receipt, so parity over it means something."""
    _, spaces = lake
    stats = spaces["hand"].stats
    rates = stats.open_rates()
    assert rates["open_rate"].isna().any()                       # 0 delivered
    assert rates["delivery_rate"].isna().any()                   # 0 sent
    berlin = stats.open_rates("month", tz="Europe/Berlin")
    utc = stats.open_rates("month", tz="UTC")
    assert list(berlin["month"].dt.month) != list(utc["month"].dt.month)
    recipients = stats.recipients(broadcasts=1)
    assert recipients["variant"].isna().all() and recipients["error_code"].isna().sum() > 0
    assert len(recipients) == 9 and recipients["read"].sum() == 5

