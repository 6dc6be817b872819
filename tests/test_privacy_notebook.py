"""notebooks/06_privacy.ipynb, executed for real against a temporary workspace."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import bizchat
from bizchat import demo
from bizchat.errors import NotFound

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "06_privacy.ipynb"


@pytest.mark.slow
def test_privacy_walkthrough_answers_access_and_erasure(tmp_path):
    import papermill
    from jupyter_client.kernelspec import KernelSpecManager

    if "python3" not in KernelSpecManager().find_kernel_specs():
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix"], check=True,
                       capture_output=True)
    path = tmp_path / "ws.duckdb"
    demo.build(path, contacts=60, seed=2)
    ws = bizchat.open(path)
    first = ws.sql("SELECT account_id, phone_e164, name FROM contacts ORDER BY contact_id LIMIT 1").iloc[0]
    out = tmp_path / "executed.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(out), kernel_name="python3", progress_bar=False,
                               cwd=str(NOTEBOOK.parent),
                               parameters={"workspace": str(path), "export_dir": str(tmp_path / "export"),
                                           "erase": True})
    text = out.read_text(encoding="utf-8")
    assert "Wrote" in text and "Erased 1 contact" in text and "privacy.erase" in text
    with pytest.raises(NotFound):
        ws.contacts.get(int(first["account_id"]), first["phone_e164"])
    # The export was written, then deleted by the erasure as a copy of their data.
    audit = ws.sql("SELECT action FROM audit_log WHERE actor = 'notebook' ORDER BY \"at\"")["action"].tolist()
    assert audit[0] == "privacy.export" and "privacy.erase" in audit
    assert not (tmp_path / "export" / "access.json").exists()
    assert first["phone_e164"].encode() not in path.read_bytes()
    assert all(not c.get("outputs") for c in nbformat.read(NOTEBOOK, as_version=4).cells
               if c.cell_type == "code")
