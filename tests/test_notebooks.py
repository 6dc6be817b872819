"""Every notebook: committed without outputs, a tagged parameters cell first, and executed
top to bottom with papermill against a copy of the small demo workspace.

New notebooks in notebooks/ are picked up by themselves; ``CHECKS`` adds what a
notebook's run must have changed or shown.
"""

from __future__ import annotations

import nbformat
import pytest
from conftest import copy_workspace
from notebook_run import all_notebooks, execute, outputs_text, workbench_notebooks

import bizchat

BOOKSHOP = "+49 30 23125480"   # the demo's bookshop account (the samples' account)


def _tour(ws, text):
    assert ws.contacts.get(BOOKSHOP, "+49 176 55501234")["name"] == "Jana Becker"
    assert ws.consent.current("+49 176 55502345", account=BOOKSHOP) == "opt_out"   # STOP
    assert "imported=7" in text and "Jana Becker" in text


CHECKS = {"01_tour.ipynb": _tour}


def dirty_cells(nb) -> list[int]:
    """Code cells that carry outputs or an execution count."""
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
            and (c.get("outputs") or c.get("execution_count") is not None)]


@pytest.mark.parametrize("path", all_notebooks(), ids=lambda p: p.name)
def test_committed_without_outputs(path):
    dirty = dirty_cells(nbformat.read(path, as_version=4))
    assert dirty == [], f"{path.name}: cells {dirty} carry outputs; clear them before committing"


def test_the_output_check_can_fail():
    v4 = nbformat.v4
    ran = v4.new_code_cell("1", execution_count=1,
                           outputs=[v4.new_output("execute_result", {"text/plain": "1"})])
    assert dirty_cells(v4.new_notebook(cells=[v4.new_code_cell("x = 1"), ran])) == [1]


@pytest.mark.parametrize("path", workbench_notebooks(), ids=lambda p: p.name)
def test_first_code_cell_holds_the_tagged_workspace_parameter(path):
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", [])
    assert first.source.startswith("workspace: str = \"\"")


@pytest.mark.slow
@pytest.mark.parametrize("path", workbench_notebooks(), ids=lambda p: p.name)
def test_runs_top_to_bottom_on_the_demo(path, demo_template, tmp_path):
    workspace = copy_workspace(demo_template, tmp_path)
    extra = {"export_dir": str(tmp_path / "export")} if path.name == "06_privacy.ipynb" else {}
    nb = execute(path, tmp_path, workspace=workspace, **extra)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    text = outputs_text(nb)
    assert "Traceback" not in text
    if path.name in CHECKS:
        CHECKS[path.name](bizchat.open(workspace), text)
