"""`bizchat web` as the tests run it: a real subprocess on 127.0.0.1 with a known token.

``WebServer(workspace, home, *options).start()`` runs ``python -m bizchat.cli web`` in its
own process group with throwaway ``JUPYTER_*`` folders, reads the URL line and waits until
the server answers. ``stop(sig)`` sends one signal and returns the exit status;
``kernel_pids()`` are the server's child processes (its page kernels), to prove none is
left behind.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from browser import ensure_kernel, free_port

READY_TIMEOUT = 60.0
URL_LINE = re.compile(r"^bizchat web: open (http://\S+)$", re.M)


def children(pid: int) -> list[int]:
    """Every descendant process of ``pid`` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class WebServer:
    def __init__(self, workspace: Path, home: Path, *options: str, token: str | None = None,
                 busy_timeout: float = 3.0):
        self.busy_timeout = busy_timeout
        self.workspace, self.home = workspace, home
        self.port = free_port()
        self.token = token or secrets.token_urlsafe(24)
        self.base = f"http://127.0.0.1:{self.port}"
        self.options = list(options)
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.started_in = 0.0
        self.out, self.err = home / "web.out", home / "web.err"

    def env(self) -> dict:
        env = dict(os.environ)
        for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
            folder = self.home / name.lower()
            folder.mkdir(parents=True, exist_ok=True)
            env[name] = str(folder)
        env.pop("BIZCHAT_WORKSPACE", None)
        env["BIZCHAT_WEB_TOKEN"] = self.token   # by environment: not on the command line
        return env

    def start(self) -> WebServer:
        ensure_kernel()
        began = time.monotonic()
        cmd = [sys.executable, "-m", "bizchat.cli", "--workspace", str(self.workspace),
               "--timeout", str(self.busy_timeout), "web", "--port", str(self.port), *self.options]
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(cmd, env=self.env(), stdout=out, stderr=err,
                                         cwd=self.home, start_new_session=True)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bizchat web exited with {self.proc.returncode}:\n"
                                   + self.logs()[-3000:])
            found = URL_LINE.search(self.out.read_text(errors="replace"))
            if found:
                self.url = found.group(1)
                try:
                    if httpx.get(self.base + "/voila/static/favicon.ico", timeout=2).status_code == 200:
                        self.started_in = time.monotonic() - began
                        return self
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        self.kill()
        raise RuntimeError("bizchat web did not answer in time:\n" + self.logs()[-3000:])

    def logs(self) -> str:
        return (self.out.read_text(errors="replace") + "\n"
                + self.err.read_text(errors="replace"))

    def page(self, name: str) -> str:
        return f"{self.base}/voila/render/{name}"

    def kernel_pids(self) -> list[int]:
        assert self.proc is not None
        return children(self.proc.pid)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """One signal, then the exit status (the group is killed if it does not exit)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(os.getpgid(self.proc.pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
