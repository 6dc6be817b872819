"""The dashboard without a browser: filters set, tabs opened, tables compared with the
stats service, downloads decoded."""

from __future__ import annotations

import base64
import io
import re

import pandas as pd
import plotly.graph_objects as go
import pytest
from plotly.callbacks import Points
from widget_helpers import click, set_value

from bizchat.widgets import Dashboard


@pytest.fixture
def dash(demo_ws):
    d = Dashboard(demo_ws)
    assert d.status.kind != "error", d.status.text
    return d


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert len(a) > 0
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


@pytest.mark.slow
def test_rates_follow_the_filters_and_equal_the_service(dash, demo_ws):
    ws = demo_ws
    _same(dash.tables["rates"], ws.stats.open_rates("broadcast"))
    fig = dash.figures["rates"]
    assert isinstance(fig, go.FigureWidget) and "lower bound" in fig.layout.title.text
    label = dash.labels.options[0]
    set_value(dash.labels, (label,))
    _same(dash.tables["rates"], ws.stats.open_rates("broadcast", labels=[label]))
    set_value(dash.category, "marketing")
    set_value(dash.group, "hour")
    tz = dash.tz()
    _same(dash.tables["rates"], ws.stats.open_rates("hour", labels=[label], category="marketing",
                                                    tz=tz))
    set_value(dash.replies, True)
    expected = ws.stats.funnel("hour", labels=[label], category="marketing", tz=tz)
    _same(dash.tables["rates"], expected)
    assert "reply_rate" in dash.tables["rates"]
    set_value(dash.labels, ())
    set_value(dash.start, pd.Timestamp("2100-01-01").date())
    assert dash.tables["rates"]["sent"].sum() == 0   # nothing that late: an empty view


@pytest.mark.slow
def test_every_tab_computes_from_the_service(dash, demo_ws):
    ws = demo_ws
    account = dash.account.options[1][1]
    set_value(dash.account, account)
    _same(dash.tables["rates"], ws.stats.open_rates("broadcast", account=account))
    for key in ("funnel", "time_to_read", "send_time", "failures"):
        dash.tabs.selected_index = [k for k, _ in __import__(
            "bizchat.widgets.dashboard", fromlist=["TABS"]).TABS].index(key)
        assert dash.status.kind != "error", dash.status.text
    _same(dash.tables["funnel"], ws.stats.funnel(None, account=account))
    _same(dash.tables["time_to_read"], ws.stats.read_distribution(None, account=account))
    _same(dash.tables["send_time"], ws.stats.send_times(dash.tz(), account=account))
    _same(dash.tables["failures"], ws.stats.failures(None, account=account))
    # a tab opened again is not recomputed; a filter change recomputes the one on screen
    before = dash.figures["failures"]
    dash.tabs.selected_index = 0
    dash.tabs.selected_index = 5
    assert dash.figures["failures"] is before
    set_value(dash.category, "utility")
    assert dash.figures.get("failures") is not before or dash.tables["failures"].empty


def test_clicking_a_broadcast_bar_picks_it_and_shows_its_ab_and_lift(dash, demo_ws):
    ids = [int(b) for b in dash.tables["rates"]["broadcast_id"]]
    with_variants = demo_ws.sql(
        "SELECT broadcast_id FROM broadcasts WHERE json_array_length(variants) > 1 "
        "OR control_fraction > 0 ORDER BY broadcast_id DESC LIMIT 1")["broadcast_id"]
    target = int(with_variants.iloc[0]) if len(with_variants) else ids[-1]
    trace = dash.figures["rates"].data[0]
    trace._dispatch_on_click(Points(point_inds=[ids.index(target)], xs=[], ys=[],
                                    trace_name=trace.name, trace_index=0), None)
    assert dash.broadcast.value == target
    dash.tabs.selected_index = 4
    assert dash.status.kind != "error", dash.status.text
    shown = dash.panes["experiment"].children[0].value
    assert "A/B:" in shown
    assert (dash.tables["experiment"]["result"] == "A/B").any()


def test_download_is_the_current_table_through_the_safe_exports(dash, demo_ws):
    ws = demo_ws
    account = ws.accounts.list()["phone_e164"].iloc[0]
    created = ws.broadcasts.create(account, '=HYPERLINK("http://evil","x") 🌻', body="Hallo!")
    ws.broadcasts.send(created["broadcast_id"], seed=1)
    click(dash.reload)   # reads the new broadcast
    link = dash.download("csv")
    data = base64.b64decode(re.search(r"base64,([^']+)'", link).group(1)).decode("utf-8")
    table = pd.read_csv(io.StringIO(data))
    assert len(table) == len(dash.tables["rates"])
    assert "'=HYPERLINK(\"http://evil\",\"x\") 🌻" in set(table["name"])
    link = dash.download("xlsx")
    raw = base64.b64decode(re.search(r"base64,([^']+)'", link).group(1))
    sheet = pd.read_excel(io.BytesIO(raw))
    assert len(sheet) == len(dash.tables["rates"])
    assert any(str(n).startswith("'=HYPERLINK") for n in sheet["name"])
    assert dash.link.value == link
    click(dash.download_csv)
    assert "bizchat_rates.csv" in dash.link.value


def test_a_filter_the_workspace_does_not_know_is_one_sentence(dash):
    set_value(dash.start, pd.Timestamp("2030-01-02").date())
    set_value(dash.end, pd.Timestamp("2030-01-01").date())
    assert dash.status.kind == "error" and "swap them" in dash.status.text
