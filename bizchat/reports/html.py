"""The HTML of an executed report: no code cells, charts that draw offline.

Under papermill there is no frontend, so plotly emits only its own MIME type
(``application/vnd.plotly.v1+json``), which nbconvert's HTML exporter drops: a naive
conversion has no charts at all. ``plotly_outputs_to_html`` turns each such output into
HTML that draws the figure, with plotly.js embedded once per file (the first chart), so
the page needs nothing from the network. The ``bizchat_report`` template is the lab
template without require.js and MathJax, which it would fetch from a CDN.
"""

from __future__ import annotations

from pathlib import Path

PLOTLY_MIME = "application/vnd.plotly.v1+json"
TEMPLATES = Path(__file__).parent / "templates"


def plotly_outputs_to_html(nb) -> int:
    """Replace every plotly output of ``nb`` by drawing HTML; returns how many."""
    import plotly.io as pio

    charts = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY_MIME not in data:
                continue
            html = pio.to_html(dict(data[PLOTLY_MIME]), include_plotlyjs=charts == 0,
                               full_html=False, validate=False, config={"displaylogo": False})
            output["data"] = {"text/html": html}
            charts += 1
    return charts


def render(notebook: Path, target: Path, secrets: list[str]) -> Path:
    """Write ``notebook`` as HTML without code cells to ``target``; secrets are cut out."""
    import nbformat
    from nbconvert import HTMLExporter

    from .secrets import scrub

    nb = nbformat.read(notebook, as_version=4)
    plotly_outputs_to_html(nb)
    exporter = HTMLExporter(extra_template_basedirs=[str(TEMPLATES)],
                            template_name="bizchat_report", exclude_input=True,
                            exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    target.write_text(scrub(body, secrets), encoding="utf-8")
    return target
