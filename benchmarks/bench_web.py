"""`bizchat web` start-up and its first page, beside bare Voilà on a one-line notebook.

Data (not timed): the demo workspace, 20,000 contacts (quick: 2,000).

- web.start: ours is ``bizchat web`` from launch until it answers HTTP (the URL line
  printed, Voilà listening); the reference is ``voila`` on a folder with a notebook that
  prints one line, started the same way. Median of 3 (quick: 1).
- web.first_page.inbox / .labels: ours is one GET of the page with the token: a kernel
  starts, the page's cell builds the widget on the workspace (the inbox's chat list, the
  label manager's labels and first page of contacts) and Voilà returns the HTML; the
  reference is the same GET of the one-line notebook on the bare Voilà. Median of 3
  (quick: 1). What a browser adds (loading the widget JavaScript, drawing) is printed by
  tests/test_web_browser.py ("start page -> inbox usable").

Target: a page usable within a few seconds. ratio = reference_s / ours_s (below 1: what
building the widget on the workspace adds). ``python -m benchmarks web [--quick]``.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from bizchat import demo


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    """One server subprocess; ``started`` is seconds from launch until it answers."""

    def __init__(self, cmd: list[str], port: int, home: Path, env: dict):
        self.port, self.base = port, f"http://127.0.0.1:{port}"
        env = {**os.environ, **env}
        for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
            (home / name.lower()).mkdir(parents=True, exist_ok=True)
            env[name] = str(home / name.lower())
        began = time.monotonic()
        self.proc = subprocess.Popen(cmd, env=env, cwd=home, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{cmd[2:4]} exited with {self.proc.returncode}")
            try:
                if httpx.get(self.base + "/voila/static/favicon.ico", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        self.started = time.monotonic() - began

    def get(self, name: str, token: str) -> float:
        began = time.monotonic()
        r = httpx.get(f"{self.base}/voila/render/{name}", params={"token": token}, timeout=300)
        if r.status_code != 200:
            raise RuntimeError(f"{name}: HTTP {r.status_code}")
        return time.monotonic() - began

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _ours(workspace: Path, home: Path, token: str) -> _Server:
    port = _port()
    return _Server([sys.executable, "-m", "bizchat.cli", "--workspace", str(workspace), "web",
                    "--port", str(port)], port, home, {"BIZCHAT_WEB_TOKEN": token})


def _reference(folder: Path, home: Path, token: str) -> _Server:
    port = _port()
    return _Server([sys.executable, "-m", "voila", str(folder), "--no-browser",
                    f"--port={port}", "--Voila.ip=127.0.0.1", f"--Voila.token={token}"],
                   port, home, {})


def run(quick: bool) -> list[dict]:
    contacts = 2_000 if quick else 20_000
    repeat = 1 if quick else 3
    token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        workspace = tmp_path / "demo.duckdb"
        _log(f"web: building the demo ({contacts:,} contacts)")
        demo.build(workspace, contacts=contacts, seed=7)
        folder = tmp_path / "plain"
        folder.mkdir()
        nbformat.write(new_notebook(cells=[new_code_cell('print("hello")')],
                                    metadata={"kernelspec": {"name": "python3",
                                                             "display_name": "Python 3",
                                                             "language": "python"}}),
                       folder / "hello.ipynb")
        starts: dict[str, list[float]] = {"ours": [], "ref": []}
        pages: dict[str, list[float]] = {"inbox": [], "labels": [], "ref": []}
        for i in range(repeat):
            _log(f"web: round {i + 1} of {repeat}")
            ours = _ours(workspace, tmp_path / f"ours{i}", token)
            try:
                starts["ours"].append(ours.started)
                pages["inbox"].append(ours.get("inbox.ipynb", token))
                pages["labels"].append(ours.get("labels.ipynb", token))
            finally:
                ours.stop()
            ref = _reference(folder, tmp_path / f"ref{i}", token)
            try:
                starts["ref"].append(ref.started)
                pages["ref"].append(ref.get("hello.ipynb", token))
            finally:
                ref.stop()
    med = {k: statistics.median(v) for k, v in {**starts, **{f"p_{k}": v for k, v in pages.items()}}.items()}
    return [
        {"benchmark": "web.start", "ours_s": med["ours"], "reference_s": med["ref"],
         "ratio": med["ref"] / med["ours"], "note": "launch -> answering; bare voila"},
        {"benchmark": "web.first_page.inbox", "ours_s": med["p_inbox"],
         "reference_s": med["p_ref"], "ratio": med["p_ref"] / med["p_inbox"],
         "note": f"GET with token, {contacts:,} contacts; one-line page"},
        {"benchmark": "web.first_page.labels", "ours_s": med["p_labels"],
         "reference_s": med["p_ref"], "ratio": med["p_ref"] / med["p_labels"],
         "note": "GET with token; one-line page"},
    ]
