"""The run archive: ``index.html`` in a report output folder lists every run, newest
first, with links to its HTML and executed notebook (paths relative to the folder)."""

from __future__ import annotations

import html
import os
from pathlib import Path

import pandas as pd


def _link(path, folder: Path, text: str) -> str:
    if not isinstance(path, str) or not path:
        return ""
    target = Path(path)
    try:
        href = os.path.relpath(target, folder)
    except ValueError:            # another drive
        href = target.as_uri()
    return f'<a href="{html.escape(href)}">{html.escape(text)}</a>'


def write_index(folder: Path, runs: pd.DataFrame) -> Path:
    """Write ``folder/index.html`` for the runs whose outputs lie in ``folder``."""
    folder = Path(folder)
    rows = []
    inside = runs[runs["output_path"].fillna("").str.startswith(str(folder.resolve()) + os.sep)
                  | runs["output_path"].fillna("").str.startswith(str(folder) + os.sep)]
    for run in inside.sort_values("started_at", ascending=False).itertuples():
        started = pd.Timestamp(run.started_at).tz_convert("UTC").strftime("%Y-%m-%d %H:%M UTC")
        rows.append(
            f"<tr><td>{html.escape(started)}</td><td>{html.escape(str(run.report))}</td>"
            f"<td class='{html.escape(str(run.status))}'>{html.escape(str(run.status))}</td>"
            f"<td>{_link(run.html_path, folder, 'report')}</td>"
            f"<td>{_link(run.output_path, folder, 'notebook')}</td>"
            f"<td>{html.escape(run.error if isinstance(run.error, str) else '')}</td></tr>")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>bizchat reports</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:.3em .8em;text-align:left}}
.failed{{color:#b00}} tr:nth-child(even){{background:#f4f4f4}}</style></head>
<body><h1>bizchat reports</h1><p>Every run, newest first.</p>
<table><tr><th>started</th><th>report</th><th>status</th><th>HTML</th><th>notebook</th><th>error</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""
    target = folder / "index.html"
    target.write_text(page, encoding="utf-8")
    return target
