"""Chart builders: DataFrame in, plotly Figure out, with the lower-bound note on read rates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from bizchat.analytics import charts
from bizchat.analytics.stats.timing import SendTimeAdvice, send_time_grid

NOTE = charts.LOWER_BOUND_NOTE


def notes(fig) -> list[str]:
    return [a.text for a in fig.layout.annotations]


def says_lower_bound(fig) -> bool:
    return "lower bound" in (fig.layout.title.text or "") and NOTE in notes(fig)


@pytest.fixture
def per_broadcast():
    return pd.DataFrame({
        "broadcast_id": [1, 2], "name": ["Winter", "Frühling"], "recipients": [8, 2],
        "sent": [7, 2], "delivered": [5, 0], "read": [4, 0], "failed": [1, 2], "replied": [2, 0],
        "delivery_rate": [5 / 7, 0.0], "open_rate": [0.8, np.nan], "reply_rate": [0.4, np.nan],
        "opt_out_rate": [0.2, np.nan]})


def test_rates_chart_has_one_bar_trace_per_rate(per_broadcast):
    fig = charts.rates_chart(per_broadcast)
    assert isinstance(fig, go.Figure)
    assert [t.name for t in fig.data] == ["Delivery rate", "Open rate (lower bound)", "Reply rate",
                                          "Opt-out rate"]
    assert all(isinstance(t, go.Bar) for t in fig.data)
    assert list(fig.data[1].x) == ["Winter", "Frühling"]
    assert fig.data[1].y[0] == pytest.approx(0.8) and np.isnan(fig.data[1].y[1])
    assert fig.layout.yaxis.tickformat == ".0%"
    assert says_lower_bound(fig)
    no_reads = charts.rates_chart(per_broadcast, rates=["delivery_rate", "reply_rate"])
    assert NOTE not in notes(no_reads)


def test_funnel_chart(per_broadcast):
    fig = charts.funnel_chart(per_broadcast)
    (funnel,) = fig.data
    assert isinstance(funnel, go.Funnel)
    assert list(funnel.y) == ["Recipients", "Sent", "Delivered", "Read (lower bound)", "Replied"]
    assert list(funnel.x) == [10, 9, 5, 4, 2]
    assert says_lower_bound(fig)


def test_open_rate_trend_uses_two_axes():
    df = pd.DataFrame({"week": pd.to_datetime(["2025-01-06", "2025-01-13"]), "delivered": [10, 0],
                       "open_rate": [0.5, np.nan]})
    fig = charts.open_rate_trend(df)
    assert [type(t).__name__ for t in fig.data] == ["Bar", "Scatter"]
    assert fig.data[0].yaxis == "y2" and fig.data[1].yaxis == "y"
    assert says_lower_bound(fig)
    with pytest.raises(ValueError, match="grouped by day, week or month"):
        charts.open_rate_trend(df.drop(columns="week"))


def test_failures_chart_sums_codes():
    df = pd.DataFrame({"broadcast_id": [1, 2, 2], "error_code": pd.array([131026, 131026, 131049], "Int64"),
                       "error_title": ["Undeliverable", "Undeliverable", None], "failed": [1, 1, 1]})
    fig = charts.failures_chart(df)
    (bar,) = fig.data
    assert bar.orientation == "h"
    assert dict(zip(bar.y, bar.x, strict=True)) == {"131049": 1, "131026 Undeliverable": 2}
    assert NOTE not in notes(fig)


def test_time_to_read_chart():
    dist = pd.DataFrame({"bin_label": ["< 5 min", "5-15 min"], "share": [0.25, 0.75],
                         "cum_open_rate": [0.2, 0.8]})
    fig = charts.time_to_read_chart(dist)
    assert [t.name for t in fig.data] == ["Share of reads", "Read so far / delivered (lower bound)"]
    assert says_lower_bound(fig)


def test_send_time_heatmap_marks_the_recommendation():
    grid = send_time_grid(pd.DataFrame({"weekday": [0, 5], "hour": [8, 0], "delivered": [20, 7],
                                        "read": [13, 4]}))
    advice = SendTimeAdvice(0, 8, "Europe/Berlin", 0.65, 0.43, 0.82, 20, 17 / 27, False, "", grid)
    fig = charts.send_time_heatmap(grid, advice)
    (heat,) = fig.data
    assert isinstance(heat, go.Heatmap)
    z = np.array(heat.z, dtype=float)
    assert z.shape == (7, 24)
    assert z[0, 8] == pytest.approx(0.65) and np.isnan(z[3, 3])
    assert heat.text[0][8] == 20 and heat.text[5][0] == 7  # counts shown in the cells
    assert list(heat.y) == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    assert len(fig.layout.shapes) == 1
    assert "best: Mon 08:00" in fig.layout.title.text
    assert says_lower_bound(fig)


def test_cohort_heatmap():
    df = pd.DataFrame({"cohort": pd.to_datetime(["2025-01-01", "2025-01-01", "2025-02-01"]),
                       "months_since": [0, 1, 0], "delivered": [1, 2, 1], "open_rate": [1.0, 0.5, 1.0]})
    fig = charts.cohort_heatmap(df)
    (heat,) = fig.data
    assert list(heat.y) == ["2025-01", "2025-02"] and list(heat.x) == [0, 1]
    assert np.isnan(np.array(heat.z, dtype=float)[1, 1])
    assert says_lower_bound(fig)


def test_ab_chart_error_bars_and_note_only_for_open_rates():
    table = pd.DataFrame({"variant": ["A", "B"], "rate": [0.3, 0.36], "ci_low": [0.27, 0.33],
                          "ci_high": [0.33, 0.39]})
    fig = charts.ab_chart(table, "open")
    (bar,) = fig.data
    assert list(bar.error_y.array) == pytest.approx([0.03, 0.03])
    assert list(bar.error_y.arrayminus) == pytest.approx([0.03, 0.03])
    assert says_lower_bound(fig)
    assert NOTE not in notes(charts.ab_chart(table, "reply"))


def test_lift_chart_has_no_reads():
    table = pd.DataFrame({"arm": ["all"] * 3, "outcome": ["reply_72h", "reply_7d", "opt_out_7d"],
                          "description": ["replied within 72 h", "replied within 7 days",
                                          "opted out within 7 days"],
                          "lift": [0.02, 0.025, 0.001], "lift_ci_low": [0.01, 0.012, -0.002],
                          "lift_ci_high": [0.03, 0.04, 0.004]})
    fig = charts.lift_chart(table)
    (bar,) = fig.data
    assert list(bar.y) == pytest.approx([2.0, 2.5, 0.1])
    assert list(bar.error_y.arrayminus) == pytest.approx([1.0, 1.3, 0.3])
    assert "read" not in " ".join(map(str, bar.x)).lower()
    assert NOTE not in notes(fig)


def test_chat_charts():
    volume = pd.DataFrame({"weekday": [0, 6], "hour": [10, 23], "messages": [2, 5]})
    heat = charts.inbound_heatmap(volume).data[0]
    assert np.array(heat.z)[0, 10] == 2 and np.array(heat.z)[6, 23] == 5
    times = pd.DataFrame({"account_id": [1, 2], "median_response_min": [60.0, 30.0],
                          "p90_response_min": [900.0, 100.0], "answered_24h_share": [0.4, 0.9]})
    fig = charts.response_time_chart(times)
    assert [t.name for t in fig.data] == ["median (min)", "p90 (min)", "answered within 24 h"]
    assert list(fig.data[0].x) == ["account 1", "account 2"]


def test_group_labels():
    df = pd.DataFrame({"account_id": [1, 1], "label_id": [1, None], "label": ["VIP", "(no label)"],
                       "day": pd.to_datetime(["2025-01-31", "2025-02-01"])})
    assert charts.group_labels(df) == ["1 · VIP · 2025-01-31", "1 · (no label) · 2025-02-01"]
    assert charts.group_labels(pd.DataFrame({"x": [1]})) == ["all"]
