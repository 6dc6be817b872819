"""`make lab` starts JupyterLab on notebooks/ against a workspace, as root too, on PORT."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import httpx
import pytest
from browser import free_port
from conftest import ROOT, copy_workspace


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_lab_serves_the_notebooks_on_the_given_port(demo_template, tmp_path):
    workspace = copy_workspace(demo_template, tmp_path)
    port = free_port()
    env = {**os.environ, "JUPYTER_TOKEN": "t0ken"}
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR",
                 "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR"):
        env[name] = str(tmp_path / name.lower())
    env.pop("MAKEFLAGS", None)
    # The stamp exists (the suite runs in the venv), so make only starts the server.
    log = tmp_path / "lab.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["make", "-s", "lab", f"PORT={port}", f"DEMO={workspace}"],
                                cwd=ROOT, env={**env, "BROWSER": "true"}, start_new_session=True,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline, answer = time.monotonic() + 90, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/contents",
                                   params={"token": "t0ken"}, timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
        assert answer is not None and answer.status_code == 200
        names = {item["name"] for item in answer.json()["content"]}
        assert {"01_tour.ipynb", "02_labels.ipynb", "05_inbox.ipynb"} <= names
    finally:
        os.killpg(os.getpgid(proc.pid), signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(os.getpgid(proc.pid), signal.SIGKILL)
            proc.wait()
