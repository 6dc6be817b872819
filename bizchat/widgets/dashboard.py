"""The dashboard: campaign numbers under filters, as charts and the tables behind them.

``Dashboard(ws)`` has filters (account, date range, labels, category, broadcast) and tabs:
rates (delivery and open; reply rates on request, as they cost the
full funnel) by broadcast, label, day or hour; the funnel; time to
read; the best-send-time heatmap; A/B and lift of one broadcast; failures by error code.
Open rates are lower bounds (read receipts can be off), as every ``bizchat.analytics``
chart says. Only the tab on screen is computed when a filter changes; the others when
they are opened. Clicking a broadcast's bar in the rates chart picks that broadcast as
the filter (a plotly ``FigureWidget``). The table behind the current view downloads as
CSV or Excel through the safe exports (no cell can start a spreadsheet formula).

Every number comes from ``ws.stats`` (and the lists from ``ws.accounts``,
``ws.labels``, ``ws.broadcasts``); the charts from ``bizchat.analytics.charts``.
"""

from __future__ import annotations

import base64
import functools
import html
import tempfile
from pathlib import Path

import ipywidgets as w
import pandas as pd
import plotly.graph_objects as go

from ..analytics import charts
from ..privacy.safe_export import safe_csv, safe_excel
from .base import Workbench, button
from .paging import html_table

TABS = (("rates", "Rates"), ("funnel", "Funnel"), ("time_to_read", "Time to read"),
        ("send_time", "Best send time"), ("experiment", "A/B and lift"),
        ("failures", "Failures"))
RATE_GROUPS = (("by broadcast", "broadcast"), ("by label", "label"), ("by day", "day"),
               ("by hour", "hour"))
ALL = "all"
MAX_ROWS = 200   # rows shown under a chart; the download has them all


def _html_link(data: bytes, filename: str, mime: str, text: str) -> str:
    """A download link carrying the file itself (no server route needed: works in
    JupyterLab and Voilà alike)."""
    encoded = base64.b64encode(data).decode("ascii")
    return (f"<a download='{html.escape(filename)}' href='data:{mime};base64,{encoded}' "
            f"target='_blank'>{html.escape(text)}</a>")


class Dashboard(Workbench):
    """Filters, tabs of charts, the current table and its download."""

    def __init__(self, ws, *, account=None, **kwargs):
        super().__init__(ws, **kwargs)
        self.tables: dict[str, pd.DataFrame] = {}   # per tab, the table behind the view
        self.figures: dict[str, go.FigureWidget] = {}
        self._stale: set[str] = {key for key, _ in TABS}
        self._quiet = True
        self._build()
        accounts = ws.accounts.list()
        self._accounts = {int(r.account_id): r for r in accounts.itertuples()}
        self.account.options = [("All accounts", ALL)] + [
            (f"{r.display_name or ''} {r.phone_e164}".strip(), int(r.account_id))
            for r in accounts.itertuples()]
        if account is not None:
            found = self.act(lambda: ws.accounts.get(account))
            if found is not None:
                self.account.value = int(found["account_id"])
        self._load_choices()
        self._quiet = False
        self.refresh()

    # -- layout ---------------------------------------------------------------------------------

    def _build(self) -> None:
        narrow = {"description_width": "initial"}
        self.account = w.Dropdown(description="Account", options=[("All accounts", ALL)],
                                  value=ALL, style=narrow)
        self.start = w.DatePicker(description="From", style=narrow)
        self.end = w.DatePicker(description="before", style=narrow)
        self.labels = w.SelectMultiple(description="Labels", options=[], rows=4, style=narrow)
        self.category = w.Dropdown(description="Category", options=[("all", ALL),
                                   ("marketing", "marketing"), ("utility", "utility")],
                                   value=ALL, style=narrow)
        self.broadcast = w.Dropdown(description="Broadcast", options=[("all", ALL)], value=ALL,
                                    style=narrow, layout=w.Layout(width="380px"))
        self.reload = button("Refresh", icon="refresh",
                             tooltip="Read the workspace again (new receipts, new broadcasts)")
        self.group = w.ToggleButtons(options=list(RATE_GROUPS), value="broadcast")
        # Reply rates need every recipient's first reply within 72 h: the full funnel, a few
        # times slower than delivery and open rates from the per-broadcast totals.
        self.replies = w.Checkbox(value=False, description="with reply rates (slower)",
                                  style={"description_width": "initial"})
        self.tabs = w.Tab()
        self.panes = {key: w.VBox() for key, _ in TABS}
        self.tabs.children = [self.panes[key] for key, _ in TABS]
        for i, (_, title) in enumerate(TABS):
            self.tabs.set_title(i, title)
        self.table = w.HTML()
        self.download_csv = button("CSV", icon="download", tooltip="The table as CSV")
        self.download_excel = button("Excel", icon="download", tooltip="The table as Excel")
        self.link = w.HTML()
        self.children = [
            w.HBox([self.account, self.category, self.broadcast, self.reload]),
            w.HBox([self.start, self.end, self.labels]),
            self.tabs, self.table,
            w.HBox([w.Label("Download this table:"), self.download_csv, self.download_excel,
                    self.link]),
            self.status,
        ]
        self.account.observe(self._account_picked, names="value")
        for control in (self.start, self.end, self.labels, self.category, self.broadcast):
            control.observe(lambda _: self.refresh(), names="value")
        self.group.observe(lambda _: self.refresh(only="rates"), names="value")
        self.replies.observe(lambda _: self.refresh(only="rates"), names="value")
        self.tabs.observe(lambda _: self._tab_opened(), names="selected_index")
        self.reload.on_click(lambda _: self._account_picked(None))
        self.download_csv.on_click(lambda _: self.download("csv"))
        self.download_excel.on_click(lambda _: self.download("xlsx"))

    # -- filters ----------------------------------------------------------------------------------

    def _account_id(self) -> int | None:
        return None if self.account.value == ALL else int(self.account.value)

    def _load_choices(self) -> None:
        """Labels and broadcasts of the chosen account (or of all); choices still there
        stay chosen."""
        ids = [self._account_id()] if self._account_id() is not None else list(self._accounts)
        names: dict[str, None] = {}
        for account_id in ids:
            found = self.act(functools.partial(self.ws.labels.list, account_id))
            if found is not None:
                names.update(dict.fromkeys(found["name"]))
        kept_labels, kept_broadcast = set(self.labels.value), self.broadcast.value
        self.labels.value = ()
        self.labels.options = sorted(names, key=str.lower)
        self.labels.value = tuple(n for n in self.labels.options if n in kept_labels)
        listed = self.act(lambda: self.ws.broadcasts.names(self._account_id()))
        listed = listed if listed is not None else pd.DataFrame(columns=["broadcast_id", "name"])
        self.broadcast.value = ALL
        self.broadcast.options = [("all", ALL)] + [(f"{int(r.broadcast_id)} · {r.name}",
                                                    int(r.broadcast_id))
                                                   for r in listed.itertuples()]
        if kept_broadcast in {v for _, v in self.broadcast.options}:
            self.broadcast.value = kept_broadcast

    def _account_picked(self, _change) -> None:
        if self._quiet:
            return
        self._quiet = True
        try:
            self._load_choices()
        finally:
            self._quiet = False
        self.refresh()

    def filters(self) -> dict:
        """The ``ws.stats`` keyword filters the controls stand for."""
        return dict(account=self._account_id(), start=self.start.value, end=self.end.value,
                    labels=list(self.labels.value) or None,
                    category=None if self.category.value == ALL else self.category.value,
                    broadcasts=None if self.broadcast.value == ALL else int(self.broadcast.value))

    def tz(self) -> str:
        """Days, hours and the heatmap in the chosen account's time zone (else the first's)."""
        ids = [self._account_id()] if self._account_id() is not None else list(self._accounts)
        zone = getattr(self._accounts.get(ids[0]), "timezone", None) if ids else None
        return zone or "UTC"

    # -- computing ----------------------------------------------------------------------------------

    @property
    def current(self) -> str:
        return TABS[self.tabs.selected_index or 0][0]

    def refresh(self, only: str | None = None) -> None:
        """After a filter change: every tab is stale; the one on screen is recomputed."""
        if self._quiet:
            return
        self._stale = {only} if only else {key for key, _ in TABS}
        self._compute(self.current)

    def _tab_opened(self) -> None:
        if self.current in self._stale:
            self._compute(self.current)
        else:
            self._show_table(self.current)

    def _compute(self, key: str) -> None:
        built = self.act(lambda: getattr(self, f"_{key}")(self.filters()),
                         busy="Computing…")
        if built is None:
            return
        self._stale.discard(key)
        table, figure, extra = built
        self.tables[key] = table
        children: list[w.Widget] = []
        if key == "rates":
            children.append(w.HBox([self.group, self.replies]))
        if extra:
            children.append(w.HTML(extra))
        if figure is not None:
            widget = go.FigureWidget(figure)
            if key == "rates" and self.group.value == "broadcast" and "broadcast_id" in table:
                ids = [int(b) for b in table["broadcast_id"]]
                for trace in widget.data:
                    trace.on_click(lambda _t, points, _s, ids=ids: self._drill(ids, points))
            self.figures[key] = widget
            children.append(widget)
        self.panes[key].children = children
        self._show_table(key)

    def _drill(self, ids: list[int], points) -> None:
        """A click on a broadcast's bar picks that broadcast as the filter."""
        if points.point_inds:
            self.broadcast.value = ids[points.point_inds[0]]

    def _show_table(self, key: str) -> None:
        table = self.tables.get(key)
        self.link.value = ""
        if table is None:
            self.table.value = ""
            return
        shown = table.head(MAX_ROWS)
        more = f"<i>{len(table) - MAX_ROWS:,} more rows in the download.</i>" \
            if len(table) > MAX_ROWS else ""
        self.table.value = html_table(shown, formatters=_formatters(shown)) + more

    # the tabs: each returns (table, figure, extra HTML) from ws.stats and charts

    def _rates(self, f: dict):
        by = self.group.value
        if self.replies.value:
            table = self.ws.stats.funnel(by, tz=self.tz(), **f)
            rates = ["delivery_rate", "open_rate", "reply_rate"]
        else:
            table = self.ws.stats.open_rates(by, tz=self.tz(), **f)
            rates = ["delivery_rate", "open_rate"]
        title = ("Delivery, open and reply rates" if self.replies.value else
                 "Delivery and open rates") + f" by {by}" + \
            (f" ({self.tz()})" if by in ("day", "hour") else "")
        return table, charts.rates_chart(table, rates, title=title), None

    def _funnel(self, f: dict):
        table = self.ws.stats.funnel(None, **f)
        return table, charts.funnel_chart(table), None

    def _time_to_read(self, f: dict):
        table = self.ws.stats.read_distribution(None, **f)
        return table, charts.time_to_read_chart(table), None

    def _send_time(self, f: dict):
        f = {k: v for k, v in f.items()}
        tz = self.tz()
        grid = self.ws.stats.send_times(tz, **f)
        advice = self.ws.stats.best_send_time(tz, **f) if grid["delivered"].sum() else None
        note = html.escape(str(advice)) if advice is not None else None
        return grid, charts.send_time_heatmap(grid, advice), note

    def _experiment(self, f: dict):
        if f["broadcasts"] is None:
            return (pd.DataFrame(), None,
                    "<i>Pick one broadcast in the filter (or click its bar under Rates) to see "
                    "its A/B test and its lift over the control group.</i>")
        bid = f["broadcasts"]
        ab = self.ws.stats.ab_test(bid)
        lift = self.ws.stats.control_lift(bid)
        tables = [ab.table.assign(result="A/B")]
        notes = [f"<b>A/B:</b> {html.escape(ab.verdict)}"]
        figure = charts.ab_chart(ab.table) if len(ab.table) > 1 else None
        if len(lift.table):
            tables.append(lift.table.assign(result="lift"))
            notes.append(f"<b>Lift:</b> {html.escape(lift.verdict)}")
            if figure is None:
                figure = charts.lift_chart(lift.table)
        return pd.concat(tables, ignore_index=True), figure, "<br>".join(notes)

    def _failures(self, f: dict):
        table = self.ws.stats.failures(None, **f)
        if table.empty:
            return table, None, "<i>No failed messages under these filters.</i>"
        return table, charts.failures_chart(table), None

    # -- download -------------------------------------------------------------------------------------

    def download(self, kind: str) -> str | None:
        """A link to the current view's table as CSV or Excel (safe exports)."""
        table = self.tables.get(self.current)
        if table is None or table.empty:
            self.status.error("This view has no table to download yet.")
            return None
        name = f"bizchat_{self.current}"

        def build() -> str:
            if kind == "csv":
                return _html_link(str(safe_csv(table)).encode("utf-8"), name + ".csv", "text/csv",
                                  f"{name}.csv ({len(table):,} rows)")
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / (name + ".xlsx")
                safe_excel({self.current: table}, path)
                data = path.read_bytes()
            return _html_link(data, name + ".xlsx", "application/vnd.openxmlformats-"
                              "officedocument.spreadsheetml.sheet", f"{name}.xlsx ({len(table):,} rows)")

        link = self.act(build, busy="Preparing the file…")
        if link is not None:
            self.link.value = link
        return link


def _formatters(frame: pd.DataFrame) -> dict:
    out = {}
    for column in frame.columns:
        if column.endswith(("_rate", "_share")) or column in ("share", "cum_share"):
            out[column] = lambda v: "" if v is None or pd.isna(v) else f"{100 * v:.1f} %"
    return out


__all__ = ["Dashboard"]
