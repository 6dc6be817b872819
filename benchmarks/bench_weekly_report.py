"""The weekly campaign report on the demo workspace against a trivial papermill notebook.

- Ours: ``ws.reports.run("weekly_campaign_report", {"end": <the demo's today>})``: papermill
  executes the report (every figure from ``ws.stats``), the HTML is rendered with plotly.js
  embedded, the run recorded and the archive index written. Target: under 15 s on the
  demo workspace (20,000 contacts); quick: a 2,000-contact demo.
- Reference: papermill executing a notebook with one parameters cell and ``x = 1`` (a
  kernel start and shutdown: the floor of any report run), in the same run.

ratio = reference_s / ours_s (the share of our time the floor takes). The demo is built
first (not timed). ``python -m benchmarks weekly_report [--quick]``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import nbformat

import bizchat
from bizchat import demo

TARGET_S = 15.0
DEMO_TODAY = "2026-11-01"     # the demo's fixed "today" (bizchat.demo.clock.NOW)


def _trivial(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('workspace: str = ""  # unused')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("x = 1")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "trivial.ipynb"
    nbformat.write(nb, path)
    return path


def run(quick: bool) -> list[dict]:
    import papermill

    contacts = 2_000 if quick else 20_000
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        demo.build(folder / "demo.duckdb", contacts=contacts, seed=7)
        ws = bizchat.open(folder / "demo.duckdb")
        trivial = _trivial(folder)
        start = time.perf_counter()
        papermill.execute_notebook(str(trivial), str(folder / "out.ipynb"), kernel_name="python3",
                                   progress_bar=False, log_output=False)
        ref_s = time.perf_counter() - start
        start = time.perf_counter()
        out = ws.reports.run("weekly_campaign_report", {"end": DEMO_TODAY}, output_dir=folder / "r")
        ours_s = time.perf_counter() - start
        size = out.with_suffix(".html").stat().st_size
    verdict = "meets" if ours_s < TARGET_S else "MISSES"
    return [{
        "benchmark": f"weekly report, demo {contacts:,} contacts",
        "ours_s": round(ours_s, 3),
        "reference_s": round(ref_s, 3),
        "ratio": round(ref_s / ours_s, 3),
        "note": (f"{verdict} the {TARGET_S:.0f} s target; reference: a trivial papermill "
                 f"notebook (kernel start and stop); HTML {size / 1e6:.1f} MB with plotly.js "
                 "embedded once"),
    }]
