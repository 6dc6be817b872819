"""Chat metrics: customer turns, first response time, the 24-hour window, volumes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from stats_world import add_account, add_contact, add_inbound, add_label, add_outbound

from bizchat.errors import InvalidValue

T0 = datetime(2025, 1, 6, 10, 0, tzinfo=UTC)  # a Monday
D, H, MIN = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
AS_OF = T0 + 30 * D


@pytest.fixture
def stats(ws):
    """Chat 1: turn 1 (10:00 + 10:05, greeting in between, answered 10:30); turn 2 (Tue
    12:00; a broadcast at 13:00 is no answer; answered Thu 14:00, 50 h later); turn 3 (Fri
    10:00, never answered: the next message comes 25 h later); turn 4 (Sat 11:00,
    answered after 60 min); turn 5 (Sun 10:00; the business writes 8 days later, which is
    no answer). Chat 2 (label VIP): turn 6, two hours before AS_OF, still pending."""
    with ws.transaction() as con:
        add_account(con, 1)
        add_contact(con, 1, 1)
        add_contact(con, 2, 1)
        add_label(con, 1, 1, "VIP", [2])
        add_inbound(con, 1, 1, T0)
        add_outbound(con, 1, 1, T0 + 2 * timedelta(seconds=1), automatic=True)
        add_inbound(con, 1, 1, T0 + 5 * MIN)
        add_outbound(con, 1, 1, T0 + 30 * MIN)
        add_inbound(con, 1, 1, T0 + D + 2 * H)
        add_outbound(con, 1, 1, T0 + D + 3 * H, broadcast_id=77)
        add_outbound(con, 1, 1, T0 + 3 * D + 4 * H)
        add_inbound(con, 1, 1, T0 + 4 * D)
        add_inbound(con, 1, 1, T0 + 5 * D + H)
        add_outbound(con, 1, 1, T0 + 5 * D + 2 * H)
        add_inbound(con, 1, 1, T0 + 6 * D)
        add_outbound(con, 1, 1, T0 + 14 * D)
        add_inbound(con, 1, 2, AS_OF - 2 * H)
    return ws.stats


def test_response_times_counted_by_hand(stats):
    r = stats.response_times(as_of=AS_OF).iloc[0]
    assert r["account_id"] == 1
    assert r[["turns", "answered", "pending", "answered_24h"]].tolist() == [6, 3, 1, 2]
    assert r["answered_24h_share"] == pytest.approx(2 / 5)  # pending turns are left out
    # Responses: turn 1 30 min, turn 4 60 min, turn 2 2 days 2 h (3,000 min) after Tue 12:00.
    assert r["median_response_min"] == pytest.approx(60.0)   # of 30, 60, 3000
    assert r["p90_response_min"] == pytest.approx(60 + 0.8 * (3000 - 60))


def test_response_time_filters_and_buckets(stats):
    later = stats.response_times(None, start=T0 + 4 * D, as_of=AS_OF).iloc[0]
    assert later["turns"] == 4  # turns 3 to 6 start on or after Friday
    vip = stats.response_times(labels="VIP", as_of=AS_OF).iloc[0]
    assert vip[["turns", "answered", "pending"]].tolist() == [1, 0, 1]
    per_weekday = stats.response_times("weekday", as_of=AS_OF).set_index("weekday")
    assert per_weekday.loc[0, "turns"] == 1 and per_weekday.loc[0, "median_response_min"] == 30
    assert per_weekday.loc[0, "weekday_name"] == "Mon"
    # Once the window has closed, the last turn is no longer pending but unanswered.
    closed = stats.response_times(as_of=AS_OF + 2 * D).iloc[0]
    assert closed["pending"] == 0 and closed["answered_24h_share"] == pytest.approx(2 / 6)


def test_inbound_volume_and_messages_per_chat(stats):
    volume = stats.inbound_volume(tz="UTC")
    monday10 = volume[(volume["weekday"] == 0) & (volume["hour"] == 10)].iloc[0]
    assert (monday10["messages"], monday10["chats"]) == (2, 1)
    assert volume["messages"].sum() == 7
    berlin = stats.inbound_volume("hour", tz="Europe/Berlin").set_index("hour")
    # Mon 10:00 and 10:05, Fri 10:00, Sun 10:00 UTC are 11:xx in Berlin (winter time).
    assert berlin.loc[11, "messages"] == 4
    per_chat = stats.messages_per_chat().iloc[0]
    assert per_chat[["chats", "messages", "inbound", "outbound"]].tolist() == [2, 13, 7, 6]
    assert per_chat["mean_per_chat"] == pytest.approx(6.5)
    assert per_chat["p90_per_chat"] == pytest.approx(1 + 0.9 * 11)


def test_chat_metrics_refuse_campaign_only_options(stats):
    with pytest.raises(InvalidValue, match="no template category"):
        stats.response_times(category="marketing")
    with pytest.raises(InvalidValue, match="not broadcast"):
        stats.inbound_volume("broadcast")
