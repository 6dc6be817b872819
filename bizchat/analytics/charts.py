"""Plotly figures for the stats tables: pure ``DataFrame -> go.Figure`` functions.

Each builder takes a table from ``ws.stats`` (never a connection) and returns a figure
that notebooks, reports and the widgets show as they are. Every figure that shows a read
or open rate says in its title and in a note under the plot that the rate is a lower
bound, because recipients can switch read receipts off.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..errors import InvalidValue

LOWER_BOUND_NOTE = ("Open (read) rates are a lower bound: recipients can switch read "
                    "receipts off.")
RATE_NAMES = {"delivery_rate": "Delivery rate", "open_rate": "Open rate (lower bound)",
              "reply_rate": "Reply rate", "opt_out_rate": "Opt-out rate"}
KEY_ORDER = ("broadcast_id", "variant", "account_id", "category", "template", "label",
             "day", "week", "month", "weekday_name", "hour")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _lower_bound(fig: go.Figure) -> go.Figure:
    """The note under the plot, and "(lower bound)" in the title."""
    title = fig.layout.title.text or ""
    if "lower bound" not in title:
        fig.update_layout(title_text=(title + " (open rates are lower bounds)").strip())
    fig.add_annotation(text=LOWER_BOUND_NOTE, xref="paper", yref="paper", x=0, y=-0.22,
                       xanchor="left", yanchor="top", showarrow=False,
                       font=dict(size=11, color="#666"))
    fig.update_layout(margin=dict(b=110))
    return fig


def group_labels(df: pd.DataFrame) -> list[str]:
    """A readable label per row from its group keys (broadcast name, label, day ...)."""
    if df.empty:
        return []
    parts = []
    if "name" in df.columns:
        parts.append(df["name"].astype(str))
    for key in KEY_ORDER:
        if key not in df.columns or (key == "broadcast_id" and "name" in df.columns):
            continue
        if key == "weekday_name" or (key == "account_id" and "label" in df.columns):
            col = df[key].astype(str)
        elif key in ("day", "week", "month"):
            col = pd.to_datetime(df[key]).dt.strftime("%Y-%m-%d" if key != "month" else "%Y-%m")
        elif key == "hour":
            col = df[key].map(lambda h: f"{int(h):02d}:00")
        elif key == "account_id":
            col = "account " + df[key].astype(str)
        else:
            col = df[key].astype(str).where(df[key].notna(), "(none)")
        parts.append(col)
    if not parts:
        return ["all"] * len(df)
    out = parts[0].astype(str)
    for part in parts[1:]:
        out = out + " · " + part.astype(str)
    return out.tolist()


def rates_chart(df: pd.DataFrame, rates=None, title: str = "Campaign rates") -> go.Figure:
    """Grouped bars: one bar per rate column for each row of an open-rate or funnel table."""
    rates = [r for r in (rates or RATE_NAMES) if r in df.columns]
    labels = group_labels(df)
    fig = go.Figure([go.Bar(name=RATE_NAMES.get(r, r), x=labels, y=df[r],
                            hovertemplate="%{x}<br>%{y:.1%}<extra>" + RATE_NAMES.get(r, r)
                            + "</extra>") for r in rates])
    fig.update_layout(title_text=title, barmode="group", yaxis=dict(tickformat=".0%",
                      title="share", rangemode="tozero"), xaxis_title=None)
    return _lower_bound(fig) if "open_rate" in rates else fig


def funnel_chart(df: pd.DataFrame, title: str = "Campaign funnel") -> go.Figure:
    """The funnel recipients -> sent -> delivered -> read (-> replied), summed over rows."""
    stages = [s for s in ("recipients", "sent", "delivered", "read", "replied") if s in df.columns]
    values = [int(df[s].sum()) for s in stages]
    names = [s.capitalize() + (" (lower bound)" if s == "read" else "") for s in stages]
    fig = go.Figure(go.Funnel(y=names, x=values, textinfo="value+percent initial"))
    fig.update_layout(title_text=title)
    return _lower_bound(fig)


def open_rate_trend(df: pd.DataFrame, title: str = "Open rate over time") -> go.Figure:
    """Open rate per day, week or month (line) over delivered messages (bars)."""
    key = next((k for k in ("day", "week", "month") if k in df.columns), None)
    if key is None:
        raise InvalidValue("open_rate_trend needs a table grouped by day, week or month "
                         "(ws.stats.open_rates('week')).")
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    x = pd.to_datetime(df[key])
    fig.add_trace(go.Bar(name="Delivered", x=x, y=df["delivered"], marker_color="#c7d7e8"),
                  secondary_y=True)
    fig.add_trace(go.Scatter(name="Open rate (lower bound)", x=x, y=df["open_rate"],
                             mode="lines+markers"), secondary_y=False)
    fig.update_yaxes(title_text="open rate", tickformat=".0%", rangemode="tozero",
                     secondary_y=False)
    fig.update_yaxes(title_text="delivered messages", showgrid=False, secondary_y=True)
    fig.update_layout(title_text=title, xaxis_title=key)
    return _lower_bound(fig)


def failures_chart(df: pd.DataFrame, title: str = "Failed messages by error") -> go.Figure:
    """Horizontal bars of failed messages per error code (summed over groups)."""
    titles = df.get("error_title", pd.Series([""] * len(df), index=df.index)).fillna("")
    table = (df.assign(code=df["error_code"].astype("string").fillna("unknown"), title=titles)
             .groupby(["code", "title"], as_index=False)["failed"].sum()
             .sort_values("failed"))
    labels = [f"{c} {t}".strip() for c, t in zip(table["code"], table["title"], strict=True)]
    fig = go.Figure(go.Bar(x=table["failed"], y=labels, orientation="h", name="Failed"))
    fig.update_layout(title_text=title, xaxis_title="failed messages", yaxis_title=None)
    return fig


def time_to_read_chart(dist: pd.DataFrame, title: str = "Time to read") -> go.Figure:
    """Share of reads per time bin (bars) and the cumulative open rate (line) from
    ``ws.stats.read_distribution()`` (one group)."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Bar(name="Share of reads", x=dist["bin_label"], y=dist["share"]),
                  secondary_y=False)
    fig.add_trace(go.Scatter(name="Read so far / delivered (lower bound)", x=dist["bin_label"],
                             y=dist["cum_open_rate"], mode="lines+markers"), secondary_y=True)
    fig.update_yaxes(title_text="share of reads", tickformat=".0%", secondary_y=False)
    fig.update_yaxes(title_text="cumulative open rate", tickformat=".0%", rangemode="tozero",
                     showgrid=False, secondary_y=True)
    fig.update_layout(title_text=title, xaxis_title="time from send to read")
    return _lower_bound(fig)


def send_time_heatmap(grid: pd.DataFrame, advice=None,
                      title: str = "Open rate by weekday and hour") -> go.Figure:
    """Weekday x hour heatmap of the open rate, with the delivered count in each cell
    (``ws.stats.send_times()``); ``advice`` (best_send_time) marks the recommended slot."""
    z = grid.pivot(index="weekday", columns="hour", values="open_rate").reindex(
        index=range(7), columns=range(24))
    n = grid.pivot(index="weekday", columns="hour", values="delivered").reindex(
        index=range(7), columns=range(24)).fillna(0).astype(int)
    hours = [f"{h:02d}" for h in range(24)]
    fig = go.Figure(go.Heatmap(
        z=z.values, x=hours, y=list(WEEKDAYS), customdata=n.values, text=n.values,
        texttemplate="%{text}", colorscale="Blues", zmin=0, zmax=1,
        colorbar=dict(title="open rate", tickformat=".0%"),
        hovertemplate="%{y} %{x}:00<br>open rate %{z:.1%}<br>%{customdata} delivered<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title=None)
    fig.update_xaxes(title="hour of the send (local time); numbers: delivered messages")
    if advice is not None and getattr(advice, "weekday", None) is not None:
        fig.add_shape(type="rect", x0=advice.hour - 0.5, x1=advice.hour + 0.5,
                      y0=advice.weekday - 0.5, y1=advice.weekday + 0.5,
                      line=dict(color="#d62728", width=3))
        title = f"{title} ({advice.tz}); best: {WEEKDAYS[advice.weekday]} {advice.hour:02d}:00"
    fig.update_layout(title_text=title)
    return _lower_bound(fig)


def cohort_heatmap(df: pd.DataFrame, title: str = "Open rate by opt-in cohort") -> go.Figure:
    """Cohort (opt-in month) x months since opt-in heatmap of the open rate."""
    table = df.assign(cohort=pd.to_datetime(df["cohort"]).dt.strftime("%Y-%m"))
    z = table.pivot(index="cohort", columns="months_since", values="open_rate").sort_index()
    n = table.pivot(index="cohort", columns="months_since", values="delivered").reindex_like(z)
    fig = go.Figure(go.Heatmap(
        z=z.values, x=[int(c) for c in z.columns], y=list(z.index), customdata=n.values,
        colorscale="Blues", zmin=0, zmax=1, colorbar=dict(title="open rate", tickformat=".0%"),
        hovertemplate="cohort %{y}, month %{x}<br>open rate %{z:.1%}<br>%{customdata} delivered"
                      "<extra></extra>"))
    fig.update_layout(title_text=title, xaxis_title="months since opt-in",
                      yaxis_title="opt-in month")
    return _lower_bound(fig)


def ab_chart(table: pd.DataFrame, metric: str = "open", title: str | None = None) -> go.Figure:
    """Each variant's rate with its confidence interval (``ABTest.table``)."""
    words = {"open": "Open rate", "reply": "Reply rate", "opt_out": "Opt-out rate"}
    fig = go.Figure(go.Bar(
        x=table["variant"], y=table["rate"], name=words.get(metric, metric),
        error_y=dict(type="data", symmetric=False, array=table["ci_high"] - table["rate"],
                     arrayminus=table["rate"] - table["ci_low"]),
        text=[f"{r:.1%}" if r == r else "" for r in table["rate"]], textposition="outside",
        hovertemplate="%{x}: %{y:.1%}<extra></extra>"))
    fig.update_layout(title_text=title or f"{words.get(metric, metric)} by variant",
                      yaxis=dict(tickformat=".0%", rangemode="tozero", title=words.get(metric)),
                      xaxis_title="variant")
    return _lower_bound(fig) if metric == "open" else fig


def lift_chart(table: pd.DataFrame, title: str = "Lift over the control group") -> go.Figure:
    """Lift (treated minus control, in points) per outcome with its confidence interval
    (``ControlLift.table``). Reads are never part of it: the control group gets nothing
    to read."""
    fig = go.Figure()
    for arm, rows in table.groupby("arm", sort=False):
        fig.add_trace(go.Bar(
            name=f"variant {arm}" if arm != "all" else "all recipients",
            x=rows["description"], y=rows["lift"] * 100,
            error_y=dict(type="data", symmetric=False,
                         array=(rows["lift_ci_high"] - rows["lift"]) * 100,
                         arrayminus=(rows["lift"] - rows["lift_ci_low"]) * 100),
            hovertemplate="%{x}: %{y:+.2f} points<extra></extra>"))
    fig.add_hline(y=0, line_color="#999")
    fig.update_layout(title_text=title, barmode="group", yaxis_title="lift (percentage points)",
                      xaxis_title=None)
    return fig


def inbound_heatmap(df: pd.DataFrame, title: str = "Inbound messages by weekday and hour") -> go.Figure:
    """Weekday x hour heatmap of inbound messages (``ws.stats.inbound_volume()``)."""
    z = df.pivot(index="weekday", columns="hour", values="messages").reindex(
        index=range(7), columns=range(24)).fillna(0)
    fig = go.Figure(go.Heatmap(z=z.values, x=[f"{h:02d}" for h in range(24)], y=list(WEEKDAYS),
                               colorscale="Greens", colorbar=dict(title="messages"),
                               hovertemplate="%{y} %{x}:00: %{z} messages<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title_text=title, xaxis_title="hour (local time)")
    return fig


def response_time_chart(df: pd.DataFrame, title: str = "First response time") -> go.Figure:
    """Median and p90 first response (minutes, bars) and the share answered within the
    24-hour window (line) per group (``ws.stats.response_times()``)."""
    labels = group_labels(df)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Bar(name="median (min)", x=labels, y=df["median_response_min"]),
                  secondary_y=False)
    fig.add_trace(go.Bar(name="p90 (min)", x=labels, y=df["p90_response_min"]),
                  secondary_y=False)
    fig.add_trace(go.Scatter(name="answered within 24 h", x=labels, y=df["answered_24h_share"],
                             mode="lines+markers"), secondary_y=True)
    fig.update_yaxes(title_text="minutes", secondary_y=False)
    fig.update_yaxes(title_text="answered within 24 h", tickformat=".0%", range=[0, 1.05],
                     showgrid=False, secondary_y=True)
    fig.update_layout(title_text=title, barmode="group")
    return fig
