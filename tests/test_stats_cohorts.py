"""Opt-in cohorts, counted by hand, in UTC and in Berlin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from stats_world import (
    add_account,
    add_broadcast,
    add_consent,
    add_contact,
    add_label,
    add_recipient,
)

X = datetime(2025, 1, 20, 10, tzinfo=UTC)
Y = datetime(2025, 2, 20, 10, tzinfo=UTC)
Z = datetime(2025, 3, 20, 10, tzinfo=UTC)


@pytest.fixture
def stats(ws):
    """Opt-ins: 1 on 15 Jan (again in March), 2 on 31 Jan 23:30 UTC (1 Feb in Berlin),
    3 on 10 Feb; 4 never. Broadcasts X (Jan) to 1; Y (Feb) to 1, 2, 3, 4; Z (Mar) to 1, 3.
    Reads: X-1, Y-2, Y-3, Z-1."""
    with ws.transaction() as con:
        add_account(con, 1)
        for c in (1, 2, 3, 4):
            add_contact(con, c, 1)
        add_label(con, 1, 1, "VIP", [3])
        add_consent(con, 1, 1, "opt_in", datetime(2025, 1, 15, 8, tzinfo=UTC))
        add_consent(con, 1, 1, "opt_in", datetime(2025, 3, 1, 8, tzinfo=UTC))
        add_consent(con, 2, 1, "opt_in", datetime(2025, 1, 31, 23, 30, tzinfo=UTC))
        add_consent(con, 3, 1, "opt_in", datetime(2025, 2, 10, 8, tzinfo=UTC))
        add_consent(con, 4, 1, "opt_in", datetime(2025, 2, 1, 8, tzinfo=UTC), purpose="service")
        sends = {1: (X, {1: True}), 2: (Y, {1: False, 2: True, 3: True, 4: True}),
                 3: (Z, {1: True, 3: False})}
        for bid, (at, fates) in sends.items():
            add_broadcast(con, bid, 1, at)
            for c, read in fates.items():
                events = [("delivered", at + timedelta(minutes=1))]
                if read:
                    events.append(("read", at + timedelta(minutes=5)))
                add_recipient(con, bid, 1, c, sent_at=at, events=events)
    return ws.stats


def table(df):
    return {(c.strftime("%Y-%m"), m): (n, cd, d, r)
            for c, m, n, cd, d, r in df[["cohort", "months_since", "cohort_contacts",
                                         "contacts_delivered", "delivered", "read"]].itertuples(index=False)}


def test_cohorts_in_utc(stats):
    df = stats.cohorts("UTC")
    assert table(df) == {
        ("2025-01", 0): (2, 1, 1, 1),   # X to 1
        ("2025-01", 1): (2, 2, 2, 1),   # Y to 1 (unread) and 2 (read)
        ("2025-01", 2): (2, 1, 1, 1),   # Z to 1
        ("2025-02", 0): (1, 1, 1, 1),   # Y to 3
        ("2025-02", 1): (1, 1, 1, 0),   # Z to 3
    }
    assert df["open_rate"].tolist() == pytest.approx([1, 0.5, 1, 1, 0])
    assert df["cohort"].dtype.kind == "M"


def test_cohorts_follow_the_time_zone(stats):
    # In Berlin contact 2 opted in on 1 February.
    assert table(stats.cohorts("Europe/Berlin")) == {
        ("2025-01", 0): (1, 1, 1, 1),
        ("2025-01", 1): (1, 1, 1, 0),
        ("2025-01", 2): (1, 1, 1, 1),
        ("2025-02", 0): (2, 2, 2, 2),
        ("2025-02", 1): (2, 1, 1, 0),
    }


@pytest.mark.slow
def test_cohort_filters(stats):
    # The time range picks cohorts by opt-in time.
    assert set(stats.cohorts(start="2025-02-01")["cohort"].dt.strftime("%Y-%m")) == {"2025-02"}
    assert table(stats.cohorts(labels="VIP")) == {("2025-02", 0): (1, 1, 1, 1),
                                                  ("2025-02", 1): (1, 1, 1, 0)}
    assert table(stats.cohorts(months=1)).keys() == {("2025-01", 0), ("2025-01", 1),
                                                     ("2025-02", 0), ("2025-02", 1)}
    assert stats.cohorts(account=1, category="utility").empty
    assert isinstance(stats.cohorts(), pd.DataFrame)
