"""In a real browser: notebooks/02_labels.ipynb in JupyterLab, a label created through the
label manager's UI, then found in the workspace."""

from __future__ import annotations

import pytest
from browser import cell_errors, open_notebook, run_all_cells
from conftest import copy_workspace
from notebook_run import NOTEBOOKS

import bizchat

NAME = 'Browser "Stammkunde" 🌻'


@pytest.mark.slow
def test_create_a_label_in_the_label_manager(lab, lab_page, demo_template, tmp_path):
    workspace = copy_workspace(demo_template, tmp_path)
    ws = bizchat.open(workspace)
    account = ws.accounts.list()["account_id"].iloc[0]
    before = set(ws.labels.list(int(account))["name"])
    lab.add_notebook(NOTEBOOKS / "02_labels.ipynb", "labels_test.ipynb", workspace=str(workspace))
    page = lab_page
    open_notebook(page, lab, "labels_test.ipynb")
    run_all_cells(page)
    assert cell_errors(page) == []
    page.get_by_placeholder("new label name").fill(NAME)
    page.get_by_role("button", name="Create label").click()
    page.get_by_text(f"Created label '{NAME}'").first.wait_for(timeout=30_000)
    labels = ws.labels.list(int(account))
    assert set(labels["name"]) - before == {NAME}
    # the table on the page shows it with its (zero) count, escaped as typed
    assert page.locator(".bizchat-table td", has_text=NAME).count() == 1
    page.screenshot(path=str(tmp_path / "labels.png"))
