"""The workbench widgets' reactions against the service calls behind them.

Issue 17 asks: on the demo workspace a composer audience change shows its new count and
exclusions in under 200 ms; a dashboard filter change recomputes its figures in under
300 ms, and in under 1 s at 10 million messages.

- Composer (demo): ``BroadcastComposer`` with a text, then the audience's "labels: any
  of" set to each label in turn; timed from setting the value until the count and the
  exclusions are on screen (the observer runs ``ws.broadcasts.estimate`` with three
  previews and renders). Reference: ``ws.broadcasts.estimate`` for the same definition.
- Dashboard (demo): ``Dashboard`` on its rates tab; each filter change (a label, the
  category, an account) timed until the table and the FigureWidget are rebuilt.
  Reference: the ``ws.stats.open_rates`` call for the same filters.
- Dashboard (10 million messages; quick: 1 million): the world of ``bench_open_rates``
  (generated, not timed), the same filter changes (category, account, a broadcast).

The demo is ``data/demo.duckdb`` when it exists (``make demo``), else one is built in a
temporary folder (20,000 contacts; quick: 2,000). Median of the changes; the widgets run
headless (no browser: the time a browser adds to draw is not in these numbers).
``python -m benchmarks composer_dashboard [--quick]``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "data" / "demo.duckdb"


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _demo(folder: Path, quick: bool) -> Path:
    if DEMO.exists():
        return DEMO
    from bizchat import demo

    path = folder / "demo.duckdb"
    _log(f"building a demo workspace in {path} ...")
    demo.build(path, contacts=2_000 if quick else 20_000, seed=7)
    return path


def _timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def composer_rows(ws) -> list[dict]:
    from bizchat.widgets import BroadcastComposer

    account = int(ws.accounts.list()["account_id"].iloc[0])
    c = BroadcastComposer(ws, account=account, background=False)
    c.body.value = "Hallo {first_name}, neue Bücher in {city}!"
    labels = list(c.audience.labels_any.options)
    ours, ref = [], []
    for label in labels * 2:
        c.audience.labels_any.value = ()
        ours.append(_timed(lambda lab=label: setattr(c.audience.labels_any, "value", (lab,))))
        assert c.status.kind != "error", c.status.text
        assert c.count.value and c.exclusions.value
        definition = c.definition()
        ref.append(_timed(lambda d=definition: ws.broadcasts.estimate(account, **d)))
    o, r = statistics.median(ours), statistics.median(ref)
    return [{"benchmark": "composer audience change (demo)", "ours_s": o, "reference_s": r,
             "ratio": r / o, "note": f"median of {len(ours)} label changes, max "
             f"{max(ours):.3f} s; target < 0.200 s; reference: ws.broadcasts.estimate"}]


def dashboard_rows(ws, name: str, target: float) -> list[dict]:
    from bizchat.widgets import Dashboard

    d = Dashboard(ws)
    accounts = [v for _, v in d.account.options if v != "all"]
    ours, ref = [], []

    def change(control, value, filters_after):
        ours.append(_timed(lambda: setattr(control, "value", value)))
        assert d.status.kind != "error", d.status.text
        ref.append(_timed(lambda: ws.stats.open_rates("broadcast", tz=d.tz(), **filters_after())))

    for _ in range(2):
        for value in ("marketing", "utility", "all"):
            change(d.category, value, d.filters)
        for account in [*accounts, "all"]:
            change(d.account, account, d.filters)
        for label in list(d.labels.options)[:3]:
            change(d.labels, (label,), d.filters)
        d.labels.value = ()
        broadcasts = [v for _, v in d.broadcast.options if v != "all"][:2]
        for bid in broadcasts:
            change(d.broadcast, bid, d.filters)
        d.broadcast.value = "all"
    o, r = statistics.median(ours), statistics.median(ref)
    return [{"benchmark": f"dashboard filter change ({name})", "ours_s": o, "reference_s": r,
             "ratio": r / o, "note": f"median of {len(ours)} changes (category, account, "
             f"label, broadcast), max {max(ours):.3f} s; target < {target:.3f} s; "
             "reference: ws.stats.open_rates"}]


def run(quick: bool = False) -> list[dict]:
    import bizchat

    from . import bench_open_rates

    with tempfile.TemporaryDirectory() as folder:
        path = _demo(Path(folder), quick)
        ws = bizchat.open(path, read_only=True)
        rows = composer_rows(ws) + dashboard_rows(ws, "demo", 0.3)
        n = 1_000_000 if quick else 10_000_000
        big = Path(folder) / "big.duckdb"
        _log(f"generating {n:,} messages ...")
        bench_open_rates.generate(big, n)
        rows += dashboard_rows(bizchat.open(big, read_only=True), f"{n / 1e6:g} M messages", 1.0)
    return rows


if __name__ == "__main__":
    from .__main__ import render

    print(render(run(quick="--quick" in sys.argv)))
