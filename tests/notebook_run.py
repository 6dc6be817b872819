"""Executing notebooks for real with papermill, against a workspace the test owns.

``execute(notebook, tmp_path, workspace=..., **parameters)`` runs every cell top to
bottom in a fresh kernel (this interpreter's), with the notebook's folder as working
directory, and returns the executed notebook (nbformat). The source file is never
written: the output goes to ``tmp_path``.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def workbench_notebooks() -> list[Path]:
    """Every notebook in notebooks/ (the workbench; reports/ are run by their own tests)."""
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def all_notebooks() -> list[Path]:
    """Every committed notebook, report notebooks included."""
    return sorted(NOTEBOOKS.rglob("*.ipynb"))


def execute(notebook: Path, out_dir: Path, *, workspace, timeout: int = 300,
            **parameters) -> nbformat.NotebookNode:
    import papermill
    from browser import ensure_kernel

    ensure_kernel()
    out = Path(out_dir) / f"executed-{notebook.name}"
    papermill.execute_notebook(str(notebook), str(out), kernel_name="python3",
                               progress_bar=False, cwd=str(notebook.parent),
                               execution_timeout=timeout,
                               parameters={"workspace": str(workspace), **parameters})
    return nbformat.read(out, as_version=4)


def outputs_text(nb: nbformat.NotebookNode) -> str:
    """Every text output of the executed notebook (streams, plain text, HTML)."""
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if "text" in output:
                parts.append(output["text"])
            for mime in ("text/plain", "text/html"):
                if mime in output.get("data", {}):
                    parts.append(output["data"][mime])
    return "\n".join(parts)
