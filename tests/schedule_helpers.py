"""Tiny report notebooks for the scheduler tests (a kernel start is most of their cost),
a schedule file writer, and the python3 kernel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat

SECRET = "EAAGtokenForSchedule0123456789abcdefXYZ"


def ensure_kernel() -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    if "python3" not in KernelSpecManager().find_kernel_specs():
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix"],
                       check=True, capture_output=True)
    return "python3"


def notebook(folder: Path, name: str, *body: str) -> Path:
    """A report notebook with a typed parameters cell (workspace, day) and ``body`` cells."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('workspace: str = ""  # set by bizchat\n'
                                       'day: str = ""  # the slot\'s day')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {name}"), params,
                *(nbformat.v4.new_code_cell(src) for src in body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def report_folder(folder: Path) -> Path:
    """``hello`` (prints its day) and ``broken`` (raises with a secret in the message)."""
    notebook(folder, "hello", "print('report for', day)")
    notebook(folder, "broken", "import os\nraise RuntimeError('no luck: ' + os.environ['BIZCHAT_ACCESS_TOKEN'])")
    return folder


def schedule_file(path: Path, *entries: dict) -> Path:
    lines = []
    for e in entries:
        lines.append("[[report]]")
        for k, v in e.items():
            if k != "params":
                lines.append(f"{k} = {_toml(v)}")
        if e.get("params"):
            lines.append("[report.params]")
            lines += [f"{k} = {_toml(v)}" for k, v in e["params"].items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _toml(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return f'"{value}"' if isinstance(value, str) else str(value)
