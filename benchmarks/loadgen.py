"""Shared pieces of the webhook benchmarks: a workspace with the test account, the
Cloud API body builders from tests/webhook_samples.py, processes on free loopback ports,
and a small HTTP/1.1 load generator.

The load generator is plain asyncio streams with requests pre-built as raw bytes (each
with its own pre-computed ``X-Hub-Signature-256``), so generating load costs little next
to serving it; an HTTP client library would be the bottleneck on a 2-core machine. It
only ever connects to 127.0.0.1, and it is bounded twice: by the number of requests and
by a deadline after which no new request is sent.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-app-secret"
TOKEN = "bench-verify-token"
T0 = 1_790_000_000  # Unix seconds of the first status


def samples():
    """tests/webhook_samples.py (builders of Cloud API bodies), loaded by path."""
    spec = importlib.util.spec_from_file_location("webhook_samples", ROOT / "tests" / "webhook_samples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_workspace(path: Path):
    """A fresh workspace with the one business account the sample bodies are addressed to."""
    import bizchat

    ws = bizchat.open(path)
    ws.accounts.add("+49 30 901820", name="Lindenblatt Verlag", phone_number_id=samples().PNID)
    return ws


def message_id(n: int) -> str:
    """A wamid-shaped id (about the length of real ones) for message number ``n``."""
    return f"wamid.HBgNNDkxNzAxMjM0NTY3OBUCABEYEj{n:012d}QzQ0RkE3AA=="


def recipient(n: int) -> str:
    return f"49170{n % 10_000_000:07d}"


PER_POST = 3  # statuses in one small (receiver-sized) batch


def small_status_items(j: int) -> list[tuple[str, str, str]]:
    """(message id, status, unix time) of small batch ``j``: messages 3j, 3j+1, 3j+2."""
    return [(message_id(PER_POST * j + k), ("sent", "delivered", "read")[k], str(T0 + j))
            for k in range(PER_POST)]


def small_status_bodies(first: int, count: int) -> list[bytes]:
    """``count`` small status batches as Cloud API bodies, numbered from ``first``."""
    ws_samples = samples()
    return [ws_samples.dumps(ws_samples.statuses(small_status_items(j)))
            for j in range(first, first + count)]


# --- processes on loopback -----------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(port: int, path: str, timeout: float = 2.0) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
        return json.loads(response.read())


def start(args: list[str], port: int, env: dict | None = None, ready_path: str = "/health",
          timeout: float = 60.0) -> subprocess.Popen:
    """Start ``python args...`` from the repo root and wait until it answers on ``port``.
    Its stderr goes to a temporary file (a pipe nobody reads during the run would fill up
    and block the server's logging)."""
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=log, text=True)
    proc.log = log
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"{args} exited with {proc.returncode}: {log.read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{ready_path}", timeout=1):
                return proc
        except OSError:
            time.sleep(0.1)
    stop(proc)
    raise RuntimeError(f"{args} did not answer on port {port} within {timeout:g} s")


def stop(proc: subprocess.Popen, timeout: float = 120.0) -> tuple[int, str]:
    """SIGTERM the process we started; returns (exit status, its stderr)."""
    if proc.poll() is None:
        proc.terminate()
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    proc.log.seek(0)
    log = proc.log.read()
    proc.log.close()
    return code, log


# --- the load generator ----------------------------------------------------------------

def post_request(port: int, path: str, body: bytes, signature: str | None) -> bytes:
    """One raw HTTP/1.1 keep-alive POST."""
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n")
    if signature:
        head += f"X-Hub-Signature-256: {signature}\r\n"
    return head.encode("ascii") + b"\r\n" + body


@dataclass
class LoadResult:
    sent: int = 0
    elapsed_s: float = 0.0
    latencies: list[float] = field(default_factory=list)   # seconds, per answered request
    codes: dict[int, int] = field(default_factory=dict)      # status -> count
    ok: list[int] = field(default_factory=list)              # indexes answered 200
    errors: list[str] = field(default_factory=list)          # connection-level failures
    stopped_by_deadline: bool = False

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed_s if self.elapsed_s else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    def summary(self) -> str:
        return (f"{len(self.latencies):,} answered in {self.elapsed_s:.2f} s = {self.rate:,.0f} req/s, "
                f"p50 {self.percentile(50) * 1e3:.1f} ms, p99 {self.percentile(99) * 1e3:.1f} ms, "
                f"max {max(self.latencies, default=float('nan')) * 1e3:.1f} ms"
                + (f", codes {self.codes}" if set(self.codes) != {200} else "")
                + (f", {len(self.errors)} connection errors" if self.errors else "")
                + (", stopped by the deadline" if self.stopped_by_deadline else ""))


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
        elif name.strip().lower() == b"transfer-encoding":
            raise RuntimeError("chunked responses are not supported by this load generator")
    if length:
        await reader.readexactly(length)
    return status


async def _load(port: int, requests: list[bytes], concurrency: int, max_seconds: float,
                rate: float | None) -> LoadResult:
    result = LoadResult()
    position = 0
    start = time.perf_counter()
    deadline = start + max_seconds

    async def worker() -> None:
        nonlocal position
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while position < len(requests):
                index = position
                position += 1
                if rate:  # open loop: latency counts from the scheduled send time
                    scheduled = start + index / rate
                    wait = scheduled - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)
                else:
                    scheduled = time.perf_counter()
                if time.perf_counter() > deadline:
                    result.stopped_by_deadline = True
                    position = len(requests)
                    return
                result.sent += 1
                writer.write(requests[index])
                await writer.drain()
                status = await _read_response(reader)
                result.latencies.append(time.perf_counter() - scheduled)
                result.codes[status] = result.codes.get(status, 0) + 1
                if status == 200:
                    result.ok.append(index)
        except (OSError, asyncio.IncompleteReadError) as exc:
            result.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed_s = time.perf_counter() - start
    return result


def run_load(port: int, requests: list[bytes], *, concurrency: int = 16,
             max_seconds: float = 60.0, rate: float | None = None) -> LoadResult:
    """Send ``requests`` over ``concurrency`` keep-alive connections to 127.0.0.1:``port``.

    Closed loop (``rate=None``): each connection sends its next request when the previous
    one is answered, which measures the most the server sustains. Open loop (``rate``
    requests/s): requests are due on a fixed schedule and latency counts from when each
    was due, so a server falling behind shows in the latency (no coordinated omission).
    """
    return asyncio.run(_load(port, requests, concurrency, max_seconds, rate))
