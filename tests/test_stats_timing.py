"""Time to read and best send time, counted by hand (world: test_stats_world)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from stats_world import add_account, add_broadcast, add_contact, add_recipient, build_campaigns

from bizchat.analytics.stats.timing import recommend, send_time_grid


@pytest.fixture
def stats(ws):
    build_campaigns(ws)
    return ws.stats


def test_time_to_read_median_and_p90(stats):
    # Broadcast 1 reads, minutes after the send: 108 played 5, 103 10 (no delivered
    # receipt), 101 30, 105 120 (its duplicate read at 180 is ignored).
    df = stats.time_to_read("broadcast")
    b1 = df[df["broadcast_id"] == 1].iloc[0]
    assert b1["read"] == 4
    assert b1["median_min"] == pytest.approx(20.0)              # (10 + 30) / 2
    assert b1["p90_min"] == pytest.approx(30 + 0.7 * (120 - 30))  # interpolated at 2.7 of 0..3
    assert b1["read_1h_share"] == pytest.approx(3 / 4)
    assert b1["read_24h_share"] == pytest.approx(1.0)
    assert df["broadcast_id"].tolist() == [1]  # broadcasts without reads have no row


def test_time_to_read_per_label(stats):
    df = stats.time_to_read("label", account=1).set_index("label")
    assert df.loc["VIP", "median_min"] == pytest.approx(30.0)          # 101
    assert df.loc["Krimi", "median_min"] == pytest.approx(7.5)         # 103 (10), 108 (5)
    assert df.loc["(no label)", "read"] == 1                            # 105


def test_read_distribution_bins_and_cumulative_open_rate(stats):
    df = stats.read_distribution()
    assert df["bin_label"].tolist() == ["< 5 min", "5-15 min", "15-60 min", "1-3 h", "3-6 h",
                                        "6-24 h", "1-3 days", "> 3 days"]
    # 5 min is not "< 5 min"; 10 min is 5-15; 30 is 15-60; 120 is 1-3 h.
    assert df["read"].tolist() == [0, 2, 1, 1, 0, 0, 0, 0]
    assert df["share"].tolist() == pytest.approx([0, 0.5, 0.25, 0.25, 0, 0, 0, 0])
    assert df["cum_share"].iloc[-1] == pytest.approx(1.0)
    # Delivered: the five of broadcast 1 (broadcast 2 delivered none).
    assert (df["delivered"] == 5).all()
    assert df["cum_open_rate"].tolist() == pytest.approx([0, 0.4, 0.6, 0.8, 0.8, 0.8, 0.8, 0.8])
    per_broadcast = stats.read_distribution("broadcast")
    b2 = per_broadcast[per_broadcast["broadcast_id"] == 2]
    assert len(b2) == 8 and (b2["read"] == 0).all() and b2["share"].isna().all()
    assert b2["cum_open_rate"].isna().all()  # nothing delivered: NaN, not 0


# --- best send time across daylight saving time -----------------------------------------------

WINTER = datetime(2025, 3, 24, 7, 0, tzinfo=UTC)   # Monday 08:00 CET
SUMMER = datetime(2025, 3, 31, 6, 0, tzinfo=UTC)   # Monday 08:00 CEST (DST began 30 March)
AFTERNOON = datetime(2025, 3, 26, 16, 0, tzinfo=UTC)  # Wednesday 17:00 CET


@pytest.fixture
def dst(ws):
    """Three broadcasts of ten delivered messages each; 6, 7 and 3 read."""
    with ws.transaction() as con:
        add_account(con, 1)
        contact = 1
        for bid, at, reads in ((1, WINTER, 6), (2, SUMMER, 7), (3, AFTERNOON, 3)):
            add_broadcast(con, bid, 1, at)
            for i in range(10):
                add_contact(con, contact, 1)
                sent = at + timedelta(seconds=i)
                events = [("delivered", sent + timedelta(seconds=30))]
                if i < reads:
                    events.append(("read", sent + timedelta(minutes=20)))
                add_recipient(con, bid, 1, contact, sent_at=sent, events=events)
                contact += 1
    return ws.stats


def cell(grid, weekday, hour):
    return grid[(grid["weekday"] == weekday) & (grid["hour"] == hour)].iloc[0]


@pytest.mark.slow
def test_send_time_grid_in_berlin_merges_the_dst_switch(dst):
    berlin = dst.send_times("Europe/Berlin")
    assert len(berlin) == 7 * 24
    monday8 = cell(berlin, 0, 8)
    assert (monday8["delivered"], monday8["read"]) == (20, 13)
    assert monday8["open_rate"] == pytest.approx(13 / 20)
    assert cell(berlin, 2, 17)[["delivered", "read"]].tolist() == [10, 3]
    assert berlin["delivered"].sum() == 30
    assert np.isnan(cell(berlin, 4, 12)["open_rate"])


@pytest.mark.slow
def test_send_time_grid_in_utc_splits_it(dst):
    utc = dst.send_times("UTC")
    assert cell(utc, 0, 7)[["delivered", "read"]].tolist() == [10, 6]
    assert cell(utc, 0, 6)[["delivered", "read"]].tolist() == [10, 7]
    assert cell(utc, 2, 16)[["delivered", "read"]].tolist() == [10, 3]
    assert cell(utc, 0, 8)["delivered"] == 0


@pytest.mark.slow
def test_best_send_time_depends_on_the_zone_and_on_sample_size(dst):
    advice = dst.best_send_time("Europe/Berlin", min_delivered=15)
    assert (advice.weekday, advice.hour, advice.delivered) == (0, 8, 20)
    assert advice.open_rate == pytest.approx(0.65)
    assert advice.overall_rate == pytest.approx(16 / 30)
    assert "Mon 08:00-09:00 (Europe/Berlin)" in advice.verdict
    assert "lower bound" in advice.verdict
    # In UTC no slot reaches 15 deliveries.
    utc = dst.best_send_time("UTC", min_delivered=15)
    assert utc.weekday is None and "Too few messages to recommend" in utc.verdict
    assert "busiest has 10" in utc.verdict
    utc = dst.best_send_time("UTC", min_delivered=5)
    assert (utc.weekday, utc.hour) == (0, 6)
    assert not utc.clearly_better  # 7 of 10 is not clearly above 16 of 30
    assert "not clearly better" in utc.verdict


def test_recommendation_prefers_a_big_sample_over_a_lucky_small_one():
    slots = pd.DataFrame({"weekday": [1, 3, 5], "hour": [9, 18, 20], "delivered": [5, 2000, 400],
                          "read": [5, 1200, 160]})
    grid = send_time_grid(slots)
    assert cell(grid, 1, 9)["open_rate"] == 1.0
    advice = recommend(grid, "UTC", min_delivered=1)
    # 5 of 5 has a Wilson lower bound of about 0.57; 1,200 of 2,000 about 0.58.
    assert (advice.weekday, advice.hour) == (3, 18)
    assert advice.clearly_better  # its lower bound is above the overall 1365/2405
    assert advice.candidates["hour"].tolist()[:2] == [18, 9]
    low, high = cell(grid, 1, 9)[["ci_low", "ci_high"]]
    z = 1.959963984540054
    assert low == pytest.approx(5 / (5 + z * z))  # Wilson at p = 1: n / (n + z^2)
    assert high == pytest.approx(1.0)
