"""Funnel and open-rate tables against the hand-built workspace (see test_stats_world)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import pandas as pd
import pytest
from stats_world import T1, build_campaigns

from bizchat.analytics.stats import pseudonymize
from bizchat.analytics.stats.pseudonym import ENV_VAR, pseudonym_key
from bizchat.errors import InvalidValue, NotFound


@pytest.fixture
def stats(ws):
    build_campaigns(ws)
    return ws.stats


def row(df: pd.DataFrame, **keys) -> pd.Series:
    mask = pd.Series(True, index=df.index)
    for k, v in keys.items():
        mask &= df[k] == v
    assert mask.sum() == 1, (keys, df)
    return df[mask].iloc[0]


def test_open_rates_per_broadcast_counted_by_hand(stats):
    df = stats.open_rates()
    assert df["broadcast_id"].tolist() == [1, 2, 3]
    b1 = row(df, broadcast_id=1)
    assert (b1["name"], b1["account_id"], b1["category"]) == ("Winter", 1, "marketing")
    assert b1[["recipients", "skipped", "sent", "delivered", "read", "failed"]].tolist() == [8, 1, 7, 5, 4, 1]
    assert b1["delivery_rate"] == pytest.approx(5 / 7)
    assert b1["open_rate"] == pytest.approx(4 / 5)
    assert b1["scheduled_for"] == pd.Timestamp(T1)
    assert b1["first_sent_at"] == pd.Timestamp(T1) + pd.Timedelta(seconds=5)


def test_zero_denominators_are_nan_not_zero_or_errors(stats):
    df = stats.open_rates()
    b2, b3 = row(df, broadcast_id=2), row(df, broadcast_id=3)
    # Broadcast 2: sent 2, both failed (one after a delivered receipt: failed is final).
    assert b2[["sent", "delivered", "read", "failed"]].tolist() == [2, 0, 0, 2]
    assert b2["delivery_rate"] == 0.0
    assert math.isnan(b2["open_rate"])
    # Broadcast 3: nobody sent.
    assert b3[["recipients", "skipped", "sent"]].tolist() == [1, 1, 0]
    assert math.isnan(b3["delivery_rate"]) and math.isnan(b3["open_rate"])
    assert df["open_rate"].dtype == "float64"


def test_open_rates_equal_the_campaign_stats_view(stats, ws):
    ours = stats.open_rates().set_index("broadcast_id")
    view = ws.sql("SELECT * FROM campaign_stats ORDER BY broadcast_id").set_index("broadcast_id")
    for column in ("recipients", "skipped", "sent", "delivered", "read", "failed"):
        assert ours[column].tolist() == view[column].tolist(), column
    pd.testing.assert_series_equal(ours["open_rate"], view["open_rate"], check_names=False)
    pd.testing.assert_series_equal(ours["delivery_rate"], view["delivery_rate"], check_names=False)


def test_funnel_replies_within_72h_and_opt_outs_within_7_days(stats):
    b1 = row(stats.funnel(), broadcast_id=1)
    # 101 (2 h) and 105 (71 h) replied in time; 102 after 80 h does not count.
    assert b1["replied"] == 2
    assert b1["reply_rate"] == pytest.approx(2 / 5)
    # 102 opted out after 3 days; 108 after 8 days does not count.
    assert b1["opted_out"] == 1
    assert b1["opt_out_rate"] == pytest.approx(1 / 5)
    assert b1["control"] == 0
    b2 = row(stats.funnel(), broadcast_id=2)
    assert b2["replied"] == 0 and math.isnan(b2["reply_rate"])


def test_totals_without_grouping(stats):
    df = stats.funnel(None)
    assert len(df) == 1
    assert df.iloc[0][["recipients", "sent", "delivered", "read", "failed", "replied"]].tolist() == [
        11, 9, 5, 4, 3, 2]


def test_failures_by_error_code(stats):
    df = stats.failures(None)
    assert df[["error_code", "failed"]].values.tolist() == [[131026, 2], [131049, 1]]
    assert df["share_of_failed"].tolist() == pytest.approx([2 / 3, 1 / 3])
    assert df["share_of_sent"].tolist() == pytest.approx([2 / 9, 1 / 9])
    per_broadcast = stats.failures("broadcast")
    assert row(per_broadcast, broadcast_id=1, error_code=131026)["failed"] == 1
    assert row(per_broadcast, broadcast_id=1, error_code=131026)["share_of_sent"] == pytest.approx(1 / 7)


def test_by_label_counts_a_recipient_under_each_of_its_labels(stats):
    df = stats.open_rates("label", account=1)
    vip, krimi, none = row(df, label="VIP"), row(df, label="Krimi"), row(df, label="(no label)")
    # VIP: 101 (read), 102 (delivered). Krimi: 102, 103 (read), 108 (played).
    assert vip[["recipients", "delivered", "read"]].tolist() == [2, 2, 1]
    assert krimi[["recipients", "delivered", "read"]].tolist() == [3, 3, 2]
    assert krimi["open_rate"] == pytest.approx(2 / 3)
    # No label: 104, 105, 106, 107 of broadcast 1 and 201, 202 of broadcast 2.
    assert none[["recipients", "sent", "delivered", "read"]].tolist() == [6, 5, 1, 1]
    assert pd.isna(none["label_id"])


def test_filters_account_labels_category_time(stats):
    assert stats.open_rates(account=2)["broadcast_id"].tolist() == [3]
    assert stats.open_rates(category="utility")["broadcast_id"].tolist() == [2]
    assert stats.open_rates(start="2025-03-01")["broadcast_id"].tolist() == [2, 3]
    assert stats.open_rates(end=date(2025, 3, 10))["broadcast_id"].tolist() == [1]
    # Half-open: a broadcast at exactly `end` is out, at exactly `start` in.
    assert stats.open_rates(start=datetime(2025, 3, 10, 9, tzinfo=UTC),
                            end=datetime(2025, 3, 12, 10, tzinfo=UTC))["broadcast_id"].tolist() == [2]
    vip = stats.open_rates(labels="vip")  # names match regardless of case, in every account
    assert vip.set_index("broadcast_id")["recipients"].to_dict() == {1: 2, 3: 1}
    vip1 = stats.open_rates(labels=["VIP"], account="1")
    assert vip1[["broadcast_id", "recipients", "read"]].values.tolist() == [[1, 2, 1]]
    assert stats.open_rates(labels=["VIP", "Krimi"], account=1)["recipients"].tolist() == [4]
    assert stats.open_rates(broadcasts=[2, 3])["broadcast_id"].tolist() == [2, 3]


def test_bad_filters_say_what_to_do(stats):
    with pytest.raises(NotFound, match="No label named 'nope'"):
        stats.open_rates(labels="Nope")
    with pytest.raises(NotFound):
        stats.open_rates(account="+4930999999")
    with pytest.raises(InvalidValue, match="swap them"):
        stats.open_rates(start="2025-03-01", end="2025-01-01")
    with pytest.raises(InvalidValue, match="Cannot group by 'colour'"):
        stats.open_rates("colour")
    with pytest.raises(InvalidValue, match="time zone"):
        stats.open_rates("hour", tz="Mars/Olympus")
    with pytest.raises(InvalidValue, match="category"):
        stats.open_rates(category="promo")
    with pytest.raises(NotFound, match="No broadcast"):
        stats.open_rates(broadcasts=99)


def test_month_day_hour_weekday_buckets_follow_the_time_zone(stats):
    # Broadcast 1 went out at 23:30 UTC on Friday 31 January = 00:30 on Saturday 1 February
    # in Berlin.
    utc = stats.open_rates(["month", "day", "hour", "weekday"], account=1, category="marketing",
                           tz="UTC")
    assert len(utc) == 1
    r = utc.iloc[0]
    assert (r["month"], r["day"], r["hour"], r["weekday"], r["weekday_name"]) == (
        pd.Timestamp("2025-01-01"), pd.Timestamp("2025-01-31"), 23, 4, "Fri")
    berlin = stats.open_rates(["month", "day", "hour", "weekday"], account=1, category="marketing",
                              tz="Europe/Berlin").iloc[0]
    assert (berlin["month"], berlin["day"], berlin["hour"], berlin["weekday"]) == (
        pd.Timestamp("2025-02-01"), pd.Timestamp("2025-02-01"), 0, 5)
    assert berlin["sent"] == 7 and berlin["open_rate"] == pytest.approx(4 / 5)
    weeks = stats.open_rates("week", tz="Europe/Berlin")
    assert weeks["week"].tolist() == [pd.Timestamp("2025-01-27"), pd.Timestamp("2025-03-10")]


def test_time_buckets_count_only_sent_messages(stats):
    # 106 (skipped) was never sent anything: it has no send time and no hour (issue 16).
    df = stats.open_rates("hour", broadcasts=1, tz="UTC")
    assert df[["hour", "recipients", "skipped"]].values.tolist() == [[23, 7, 0]]


def test_variant_and_template_grouping(ws):
    from stats_world import add_account, add_broadcast, add_contact, add_recipient
    with ws.transaction() as con:
        add_account(con, 1)
        add_broadcast(con, 5, 1, T1, template="tpl_a",
                      variants=[{"variant": "A", "template": "tpl_a", "share": 1},
                                {"variant": "B", "template": "tpl_b", "share": 1}], control_fraction=0.2)
        for c, variant, read in ((1, "A", True), (2, "A", False), (3, "B", True), (4, "B", True)):
            add_contact(con, c, 1)
            events = [("delivered", T1 + pd.Timedelta(minutes=1))]
            if read:
                events.append(("read", T1 + pd.Timedelta(minutes=9)))
            add_recipient(con, 5, 1, c, sent_at=T1, events=events, variant=variant,
                          template="tpl_a" if variant == "A" else "tpl_b")
        add_contact(con, 5, 1)
        add_recipient(con, 5, 1, 5, variant="control", skip_reason="control")
    stats = ws.stats
    df = stats.open_rates("variant")
    assert df[["variant", "recipients", "sent", "delivered", "read"]].values.tolist() == [
        ["A", 2, 2, 2, 1], ["B", 2, 2, 2, 2], ["control", 1, 0, 0, 0]]
    assert math.isnan(row(df, variant="control")["open_rate"])
    by_template = stats.open_rates("template")
    assert by_template.set_index("template")["read"].to_dict() == {"tpl_a": 1, "tpl_b": 2}
    assert stats.funnel("variant").set_index("variant")["control"].to_dict() == {"A": 0, "B": 0, "control": 1}


def test_empty_workspace_gives_empty_tables(ws):
    stats = ws.stats
    assert stats.open_rates().empty
    totals = stats.funnel(None)
    assert totals.iloc[0]["recipients"] == 0 and math.isnan(totals.iloc[0]["open_rate"])


def test_each_call_closes_its_connection(stats, ws):
    stats.open_rates("label")
    stats.funnel("day", tz="Europe/Berlin")
    # A writer can open the file at once: nothing is left open (DuckDB refuses a second
    # connection with another configuration in the same process).
    with ws.transaction() as con:
        con.execute("INSERT INTO settings (key, value) VALUES ('after_stats', 'ok')")
    assert ws.sql("SELECT value FROM settings WHERE key = 'after_stats'")["value"].tolist() == ["ok"]


def test_recipients_table_is_pseudonymous(stats, ws, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    df = stats.recipients(broadcasts=1)
    assert len(df) == 8
    assert "contact_id" not in df.columns
    text = df.to_csv()
    for forbidden in ("+49151", "Person 10", "101,"):
        assert forbidden not in text
    key = (ws.path.parent / (ws.path.name + ".key")).read_text().strip()
    assert len(key) == 64  # made with the workspace, kept beside it
    assert pseudonym_key(ws) == key
    assert set(df["contact_key"]) == set(pseudonymize(range(101, 109), key))
    r = df.set_index("contact_key").loc[pseudonymize([102], key)[0]]
    assert (r["delivered"], r["read"], pd.isna(r["first_reply_at"]), pd.notna(r["first_opt_out_at"])) == (
        True, False, True, True)
    # The environment wins over the stored key.
    monkeypatch.setenv(ENV_VAR, "from-the-environment")
    again = stats.recipients(broadcasts=1)
    assert set(again["contact_key"]) == set(pseudonymize(range(101, 109), "from-the-environment"))


def test_contact_keys_are_the_privacy_modules(ws, monkeypatch):
    from bizchat.analytics.stats import pseudonym
    from bizchat.people import pseudonym as privacy
    monkeypatch.delenv(ENV_VAR, raising=False)
    key = pseudonym_key(ws)
    assert pseudonymize([7, 12345, None], key) == [privacy.contact_key(key.encode(), 7),
                                                    privacy.contact_key(key.encode(), 12345), None]
    assert pseudonym(ws, 7) == pseudonymize([7], key)[0]


def test_null_variant_and_null_schedule(ws):
    """A broadcast without scheduled_for takes its first send as reference time; recipients
    without a variant form their own group instead of vanishing."""
    from stats_world import add_account, add_broadcast, add_contact, add_recipient
    with ws.transaction() as con:
        add_account(con, 1)
        add_broadcast(con, 1, 1, T1)
        con.execute("UPDATE broadcasts SET scheduled_for = NULL")
        for c in (1, 2):
            add_contact(con, c, 1)
            add_recipient(con, 1, 1, c, sent_at=T1 + pd.Timedelta(hours=c),
                          events=[("delivered", T1 + pd.Timedelta(hours=3))])
        add_contact(con, 3, 1)
        add_recipient(con, 1, 1, 3, skip_reason="opted_out")
    stats = ws.stats
    df = stats.open_rates("variant")
    assert len(df) == 1 and pd.isna(df["variant"].iloc[0]) and df["recipients"].iloc[0] == 3
    assert pd.isna(df["scheduled_for"].iloc[0])
    # Reference time = first send, T1 + 1 h: in [T1 + 1 h, ...) but not in [T1 + 2 h, ...).
    assert len(stats.open_rates(start=T1 + pd.Timedelta(hours=1))) == 1
    assert stats.open_rates(start=T1 + pd.Timedelta(hours=2)).empty
    # Only the two sent recipients have a send time (the skipped one has no hour).
    assert stats.open_rates("hour", tz="UTC")[["hour", "recipients"]].values.tolist() == [
        [0, 1], [1, 1]]
