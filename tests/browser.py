"""The real-browser harness: JupyterLab on 127.0.0.1, driven by Debian's chromium.

``LabServer`` starts ``jupyter lab`` on a random port with a random token, throwaway
``JUPYTER_*`` folders (config, data, runtime, settings, workspaces) and news/update
checks off, in its own process group (``--allow-root`` when root), and stops it by that
group. ``chromium()`` launches /usr/bin/chromium headless through Playwright's Python
package (never ``playwright install``: no browser can be downloaded here).
``open_notebook`` waits until the status bar names the kernel as idle before anything
runs: the idle dot alone shows before a kernel is attached.

The fixtures (``lab``, ``lab_page``) live in conftest.py; one server per test session.
Skipped, with the reason, only when chromium is absent and ``CI`` is not set.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
KERNEL_IDLE = "Python 3 (ipykernel) | Idle"
READY_TIMEOUT = 90.0


def need_chromium() -> None:
    """Skip without chromium, unless on CI (there it must be installed: fail)."""
    if Path(CHROMIUM).exists():
        return
    reason = (f"{CHROMIUM} is missing: install it with `apt-get install chromium "
              "fonts-liberation` (.ci/run does)")
    if os.environ.get("CI"):
        pytest.fail(reason + " - CI must run the browser tests")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_kernel() -> None:
    """The python3 kernel of this interpreter (the venv's), for Lab and papermill."""
    from jupyter_client.kernelspec import KernelSpecManager

    if "python3" not in KernelSpecManager().find_kernel_specs():
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix"],
                       check=True, capture_output=True)


def _quiet_settings(settings: Path) -> None:
    """Lab settings that keep toasts (news, update checks) off the page."""
    folder = settings / "@jupyterlab" / "apputils-extension"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}), encoding="utf-8")


class LabServer:
    """A JupyterLab server serving ``root`` (notebooks are copied there by the tests)."""

    def __init__(self, root: Path, home: Path, env: dict | None = None):
        self.root, self.home = root, home
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = env or {}
        self.proc: subprocess.Popen | None = None
        self.log = home / "jupyter.log"

    def env(self) -> dict:
        env = {**os.environ, **self.extra_env}
        for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR",
                     "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR"):
            folder = self.home / name.lower()
            folder.mkdir(parents=True, exist_ok=True)
            env[name] = str(folder)
        _quiet_settings(Path(env["JUPYTERLAB_SETTINGS_DIR"]))
        env.pop("JUPYTER_TOKEN", None)
        return env

    def start(self) -> LabServer:
        ensure_kernel()
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
               f"--port={self.port}", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={self.root}", "--ServerApp.port_retries=0",
               "--LabApp.news_url=", "--ServerApp.disable_check_xsrf=False"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, env=self.env(), stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n"
                                   + self.log.read_text(errors="replace")[-3000:])
            try:
                if httpx.get(f"{self.url}/api/status", params={"token": self.token},
                             timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError("jupyter lab did not answer /api/status within "
                           f"{READY_TIMEOUT:.0f} s:\n" + self.log.read_text(errors="replace")[-3000:])

    def stop(self) -> None:
        """Stop the server and its kernels: SIGTERM to the process group, then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = os.getpgid(self.proc.pid)
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        try:   # kernels it started share the group; none may outlive the test session
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def add_notebook(self, source: Path, name: str | None = None, **parameters) -> Path:
        """Copy a notebook into the served folder (Lab autosaves: never serve the source),
        with ``parameters`` (e.g. ``workspace=path``) set at the end of its parameters
        cell, as papermill would, so each test points it at its own workspace."""
        import nbformat

        target = self.root / (name or source.name)
        if not parameters:
            shutil.copy(source, target)
            return target
        nb = nbformat.read(source, as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        cell.source += "\n" + "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
        nbformat.write(nb, target)
        return target

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"


def chromium(playwright):
    """Debian's chromium, headless, as Playwright's browser."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True,
        args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])


def open_notebook(page, lab: LabServer, name: str, *, timeout: float = 90_000) -> None:
    """Open ``name`` in Lab and wait until its kernel is attached and idle."""
    page.goto(lab.notebook_url(name))
    page.locator(".jp-Notebook").first.wait_for(timeout=timeout)
    page.get_by_text(KERNEL_IDLE).first.wait_for(timeout=timeout)


def run_all_cells(page, *, timeout: float = 120_000) -> None:
    """Run > Run All Cells, then wait for the kernel to be idle again with every cell run."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    wait_cells_done(page, timeout=timeout)


def wait_cells_done(page, *, timeout: float = 120_000) -> None:
    """Until no cell shows ``[*]`` and the kernel is idle."""
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-InputPrompt')];
            return prompts.length > 0 && prompts.every(p => !p.textContent.includes('*'));
        }""", timeout=timeout)
    page.get_by_text(KERNEL_IDLE).first.wait_for(timeout=timeout)


def cell_errors(page) -> list[str]:
    """Texts of error outputs (tracebacks) on the page."""
    return page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], "
                        ".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']"
                        ).all_inner_texts()
