"""The webhook receiver as its own process on 127.0.0.1, for the tests that need real
sockets and real signals: start it, post signed bodies, hold its workspace, find and
watch its ingest process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx

from bizchat.receiver.server import sign

SECRET = "test-app-secret"
TOKEN = "test-verify-token"


def wait_for(predicate, timeout=20.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(client, body: bytes, signature: str | None = "auto"):
    headers = {"content-type": "application/json"}
    if signature == "auto":
        headers["x-hub-signature-256"] = sign(body, SECRET)
    elif signature:
        headers["x-hub-signature-256"] = signature
    return client.post("/webhook", content=body, headers=headers)


def health(url: str) -> dict:
    return httpx.get(url + "/health", timeout=5).json()


def start_receiver(path, port, *options: str, ready: bool = True, **popen):
    """``bizchat webhook serve`` for ``path`` on ``port``; waits until it answers."""
    env = {**os.environ, "BIZCHAT_APP_SECRET": SECRET, "BIZCHAT_VERIFY_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "bizchat.cli", "webhook", "serve",
                             "--port", str(port), "--workspace", str(path), *options],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            **popen)
    url = f"http://127.0.0.1:{port}"
    if not ready:
        return proc, url

    def up():
        try:
            return httpx.get(url + "/health", timeout=1).status_code in (200, 503)
        except httpx.TransportError:
            return proc.poll() is not None
    assert wait_for(up, 30) and proc.poll() is None, (
        proc.stderr.read() if proc.poll() is not None else "not up")
    return proc, url


def stop(proc, timeout=60) -> tuple[int, str]:
    """SIGTERM; (exit status, stderr)."""
    if proc.poll() is None:
        proc.terminate()
    try:
        code = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = proc.stderr.read()
    proc.stderr.close()
    return code, log


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


HOLD = textwrap.dedent("""
    import sys, duckdb, time
    con = duckdb.connect(sys.argv[1])
    print("locked", flush=True)
    sys.stdin.readline()   # hold until told
    con.close()
""")


class Holder:
    """Another process holding the workspace (as a notebook or a report would)."""

    def __init__(self, path):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        self.proc.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
