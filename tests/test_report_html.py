"""The report notebooks for real: the weekly campaign report on a small hand-counted
workspace shows the stats functions' numbers in its HTML, and its charts draw in Debian's
chromium with every network request blocked (issue 19, items 1, 2 and 7).

One executed report serves every assert (module scope): a run costs seconds.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from click.testing import CliRunner
from schedule_helpers import ensure_kernel
from stats_world import build_campaigns

import bizchat
from bizchat.cli import main

pytestmark = pytest.mark.slow
PERIOD = {"start": "2025-01-27", "end": "2025-03-17", "timezone": "Europe/Berlin"}


@pytest.fixture(scope="module")
def weekly(tmp_path_factory):
    """The weekly report on the stats world, run through the CLI once."""
    ensure_kernel()
    folder = tmp_path_factory.mktemp("weekly")
    ws = bizchat.open(folder / "ws.duckdb")
    build_campaigns(ws)
    args = [x for k, v in PERIOD.items() for x in ("-p", k, v)]
    out = CliRunner().invoke(main, ["--workspace", str(ws.path), "report", "run",
                                    "weekly_campaign_report", *args])
    assert out.exit_code == 0, out.output
    paths = dict(line.split(": ", 1) for line in out.output.strip().splitlines())
    return ws, Path(paths["notebook"]), Path(paths["html"])


def text_of(html: str) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def pct(x) -> str:
    return "-" if pd.isna(x) else f"{x:.1%}"


def test_the_html_shows_the_numbers_of_the_stats_functions(weekly):
    ws, notebook, page = weekly
    text = text_of(page.read_text(encoding="utf-8"))
    kw = dict(start=pd.Timestamp(PERIOD["start"], tz="Europe/Berlin"),
              end=pd.Timestamp(PERIOD["end"], tz="Europe/Berlin"))
    total = ws.stats.funnel(None, **kw).iloc[0]
    # The comparison table: counts, then rates as percentages, this period first.
    for column in ("sent", "delivered", "read", "replied", "opted_out", "failed"):
        assert re.search(rf"\b{column} {int(total[column])} \d+ ", text), column
    for rate in ("delivery_rate", "open_rate", "reply_rate", "opt_out_rate"):
        assert f"{rate} {pct(total[rate])} " in text, rate
    assert (total.sent, total.delivered, total["read"]) == (9, 5, 4)      # the world's counts
    per = ws.stats.funnel("broadcast", **kw).set_index("broadcast_id")
    for bid, row in per.iterrows():
        cells = f"{bid} {row['name']} {row.sent} {row.delivered} {row['read']} {row.replied} " \
                f"{row.opted_out} {row.failed} {pct(row.delivery_rate)} {pct(row.open_rate)}"
        assert cells in text, cells
    failures = ws.stats.failures(None, **kw)
    for code in failures["error_code"]:
        assert str(code) in text
    assert "lower bound" in text and "import bizchat" not in text       # prose, no code
    assert "Period: 2025-01-27 to 2025-03-16 (Europe/Berlin)" in text


def test_the_run_is_recorded_with_its_html_and_listed(weekly):
    ws, notebook, page = weekly
    run = ws.reports.runs().iloc[0]
    assert (run.status, run.output_path, run.html_path) == ("ok", str(notebook), str(page))
    assert page.parent.parent.name == "weekly_campaign_report"
    assert page.parent.parent.parent == (ws.path.parent / "reports").resolve()
    index = (ws.path.parent / "reports" / "index.html").read_text(encoding="utf-8")
    assert f'href="weekly_campaign_report/{page.parent.name}/{page.name}"' in index
    listed = CliRunner().invoke(main, ["--workspace", str(ws.path), "report", "runs"])
    assert listed.exit_code == 0 and page.name in listed.output
    # The executed notebook keeps the parameters and is the record; no plotly JSON lost.
    nb = nbformat.read(notebook, as_version=4)
    assert nb.metadata.papermill.parameters["start"] == PERIOD["start"]


def test_the_charts_draw_offline_in_chromium(weekly, chromium_browser):
    """Every plotly output of the run is a drawn chart with the network blocked.

    Through the session's chromium: a second ``sync_playwright()`` in a worker that already
    holds the session's fails (Playwright's sync API refuses to run inside its own loop)."""
    ws, notebook, page = weekly
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    expected = sum("application/vnd.plotly.v1+json" in o.get("data", {})
                   for c in nb["cells"] for o in c.get("outputs", []))
    assert expected >= 2
    html = page.read_text(encoding="utf-8")
    assert html.count("plotly.js v") <= 2          # the library embedded once (its banner)
    blocked = []
    context = chromium_browser.new_context()
    try:
        def block(route):
            blocked.append(route.request.url)
            route.abort()

        context.route(re.compile(r"^(?!file:).*"), block)
        tab = context.new_page()
        tab.goto(page.as_uri())
        tab.wait_for_function(
            f"document.querySelectorAll('.js-plotly-plot .main-svg g.trace').length > 0 && "
            f"document.querySelectorAll('.js-plotly-plot').length >= {expected}",
            timeout=60_000)
        drawn = tab.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')]
            .filter(p => p.querySelector('svg.main-svg g.trace')).length""")
    finally:
        context.close()
    assert drawn == expected
    assert blocked == []                           # nothing even tried the network
