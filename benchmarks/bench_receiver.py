"""The webhook receiver under load, against a bare Starlette app on the same server stack.

Issue 4 asks that the receiver sustains at least 1,000 signed POSTs/s on loopback with
p99 latency under 100 ms, and that every accepted event is in the workspace afterwards.
This measures it next to a reference and prints the numbers; it asserts nothing about
speed, but it does check that no accepted event was lost.

- Ours: ``bizchat webhook serve`` as its own process on a free port, with a fresh workspace
  and its account. Every POST is a small status batch (3 statuses of 3 distinct messages)
  with its own ``X-Hub-Signature-256``. Afterwards: wait until ``/health`` reports nothing
  pending, SIGTERM (must exit 0), and check that message_events holds exactly the events
  of the POSTs answered 200.
- Reference: ``bare_app`` below, run by uvicorn the same way (same uvicorn, h11, asyncio
  loop): it reads the body and answers 200 without verifying or storing it. The ratio
  shows what the signature check, JSON check, durable spool (fsync) and the in-process
  ingest thread cost.

Two runs per server, after a short warm-up: closed loop (K keep-alive connections, each
sends the next request when answered: the most the server sustains) and open loop at a
fixed 1,000 requests/s (latency counted from each request's due time). The load generator
(benchmarks/loadgen.py) runs in this process and shares the machine's cores with the
server. ratio = reference_s / ours_s (ours as a fraction of the bare app; < 1 is slower).
``python -m benchmarks.bench_receiver [--quick]`` prints the rows.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from benchmarks.loadgen import (
    SECRET,
    T0,
    TOKEN,
    LoadResult,
    free_port,
    get_json,
    make_workspace,
    message_id,
    post_request,
    run_load,
    samples,
    start,
    stop,
)

PER_POST = 3
STATES = ("sent", "delivered", "read")
CONCURRENCY = 16          # closed loop
OPEN_CONNECTIONS = 32     # open loop: enough to keep 1,000 req/s in flight
RATE = 1_000.0
MAX_SECONDS = 60.0
WARMUP = 300


# --- the reference: answers 200, verifies and stores nothing -------------------------------

async def _bare_post(request: Request) -> PlainTextResponse:
    await request.body()
    return PlainTextResponse("OK")


async def _bare_health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "pending_bytes": 0})


bare_app = Starlette(routes=[Route("/webhook", _bare_post, methods=["POST"]),
                             Route("/health", _bare_health, methods=["GET"])])


# --- the load ------------------------------------------------------------------------------

def bodies(first_post: int, count: int) -> list[bytes]:
    """``count`` status batches; POST j names messages 3j, 3j+1, 3j+2 (distinct per POST)."""
    ws_samples = samples()
    out = []
    for j in range(first_post, first_post + count):
        items = [(message_id(PER_POST * j + k), STATES[k], str(T0 + j)) for k in range(PER_POST)]
        out.append(ws_samples.dumps(ws_samples.statuses(items)))
    return out


def requests_for(port: int, batch: list[bytes]) -> list[bytes]:
    from bizchat.server import sign

    return [post_request(port, "/webhook", body, sign(body, SECRET)) for body in batch]


def _drive(port: int, n: int) -> dict[str, tuple[LoadResult, list[int]]]:
    """Warm-up, closed loop, open loop; per run its result and the POST numbers it used."""
    runs, first = {}, 0
    for name, count, kw in (("warmup", WARMUP, {"concurrency": 4}),
                            ("closed", n, {"concurrency": CONCURRENCY}),
                            ("open", n, {"concurrency": OPEN_CONNECTIONS, "rate": RATE})):
        numbers = list(range(first, first + count))
        requests = requests_for(port, bodies(first, count))
        result = run_load(port, requests, max_seconds=MAX_SECONDS, **kw)
        runs[name] = (result, [numbers[i] for i in result.ok])
        first += count
        time.sleep(0.5)  # let the ingest thread settle between runs
    return runs


def _wait_drained(port: int, accepted: int, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    health = get_json(port, "/health")
    while time.monotonic() < deadline:
        health = get_json(port, "/health")
        if health["pending_bytes"] == 0 and health["accepted"] >= accepted:
            return health
        time.sleep(0.1)
    raise AssertionError(f"the receiver still has work pending after {timeout:g} s: {health}")


def _verify(ws, ok_posts: list[int]) -> int:
    """message_events holds exactly the events of the POSTs answered 200; returns the count."""
    expected = {message_id(PER_POST * j + k) for j in ok_posts for k in range(PER_POST)}
    stored = ws.sql("SELECT message_id, count(*) AS n FROM message_events GROUP BY message_id")
    got = set(stored["message_id"])
    missing, extra = expected - got, got - expected
    if missing or (stored["n"] > 1).any():
        raise AssertionError(f"{len(missing)} accepted events missing from message_events "
                             f"(e.g. {sorted(missing)[:3]}), {int((stored['n'] > 1).sum())} doubled")
    if extra:  # a POST the generator gave up on after the server spooled it
        raise AssertionError(f"{len(extra)} events stored that were not answered 200")
    return len(expected)


# --- the benchmark -----------------------------------------------------------------------------

def run(quick: bool) -> list[dict]:
    n = 3_000 if quick else 20_000
    load = os.getloadavg()[0]
    # Reference first: the bare app.
    port = free_port()
    proc = start(["-m", "uvicorn", "benchmarks.bench_receiver:bare_app", "--host", "127.0.0.1",
                  "--port", str(port), "--log-level", "warning", "--no-access-log"], port)
    try:
        bare = _drive(port, n)
    finally:
        bare_code, _ = stop(proc)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "receiver.duckdb"
        ws = make_workspace(path)
        port = free_port()
        proc = start(["-m", "bizchat.cli", "webhook", "serve", "--port", str(port),
                      "--workspace", str(path)], port,
                     env={"BIZCHAT_APP_SECRET": SECRET, "BIZCHAT_VERIFY_TOKEN": TOKEN})
        try:
            ours = _drive(port, n)
            ok_posts = [j for result, posts in ours.values() for j in posts]
            drain_start = time.perf_counter()
            health = _wait_drained(port, len(ok_posts))
            drain_s = time.perf_counter() - drain_start
        finally:
            code, log = stop(proc)
        if code != 0:
            raise AssertionError(f"the receiver exited {code} on SIGTERM, expected 0:\n{log[-2000:]}")
        events = _verify(ws, ok_posts)

    machine = (f"{os.cpu_count()} cores shared by the load generator (this process), the server "
               f"and anything else running (load average {load:.1f} at start); uvicorn with "
               "h11 and the asyncio loop for both (httptools/uvloop not installed)")
    rows = []
    closed, bare_closed = ours["closed"][0], bare["closed"][0]
    ours_s, ref_s = n / closed.rate, n / bare_closed.rate
    rows.append({
        "benchmark": f"receiver, {n:,} signed POSTs of {PER_POST} statuses, closed loop K={CONCURRENCY}",
        "ours_s": round(ours_s, 3),
        "reference_s": round(ref_s, 3),
        "ratio": round(ref_s / ours_s, 3),
        "note": (f"ours {closed.summary()} (target >= 1,000 req/s: "
                 f"{'met' if closed.rate >= 1000 else 'missed'}); bare app {bare_closed.summary()}; "
                 f"{machine}"),
    })
    paced, bare_paced = ours["open"][0], bare["open"][0]
    p99, ref_p99 = paced.percentile(99), bare_paced.percentile(99)
    rows.append({
        "benchmark": f"receiver p99 latency, {n:,} POSTs paced at {RATE:,.0f}/s (seconds)",
        "ours_s": round(p99, 4),
        "reference_s": round(ref_p99, 4),
        "ratio": round(ref_p99 / p99, 3),
        "note": (f"ours {paced.summary()} (target p99 < 100 ms at 1,000 req/s: "
                 f"{'met' if p99 < 0.1 and paced.rate >= 0.98 * RATE else 'missed'}); bare app "
                 f"{bare_paced.summary()}; afterwards spool drained in {drain_s:.1f} s "
                 f"({health['batches']} ingest batches in all), SIGTERM exit 0 (bare app "
                 f"{bare_code}), all {events:,} events of the {len(ok_posts):,} POSTs answered 200 "
                 f"(incl. {WARMUP} warm-up) found once in message_events; {machine}"),
    })
    return rows


if __name__ == "__main__":
    import sys

    for row in run(quick="--quick" in sys.argv):
        print(row)
