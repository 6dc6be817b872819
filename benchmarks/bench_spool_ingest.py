"""Status receipts from the webhook spool into the workspace, against a plain Arrow insert.

Issue 4 asks that receipts are ingested from the spool at no less than half the rate of
a plain DuckDB Arrow insert of the same rows into an unindexed table. This measures both
in the same run and prints the ratio; it asserts nothing about speed.

Set-up: a workspace with one account and a spool holding N signed-body records, each a
status batch of 240 statuses, as an account sending 80 messages/s receives them each
second: ``sent`` for this second's 80 messages, ``delivered`` for the previous second's,
``read`` for the one before (the first two bodies carry the last messages' receipts, so
those arrive before their ``sent``). Every message gets all three, so N x 240 events and
N x 80 message_status rows; 1,000,000 events (quick: 100,000). Statuses carry pricing
like Cloud API statuses do since per-message pricing.

- Ours: drain the spool the way the receiver's ingest process does,
  ``Ingester(path, spool, threads=1).run_once()`` until nothing is pending (64 MiB of
  spool per batch, the Ingester's default; the Ingester keeps its connection while a backlog lasts, up to its
  ``hold``), then check that every event is in message_events and message_status. Best
  of 3 fresh workspaces (the median is printed too). Status-only bodies take the SQL path (bizchat/ingest/status_bodies.py).
- Reference: the same rows as a pyarrow Table with message_events' columns, ``INSERT INTO
  t SELECT * FROM arrow_table`` into an unindexed table in a fresh DuckDB file (best of 3).
- Breakdown: a second drain into a fresh workspace, one connection as the Ingester does,
  with timers around the stages (spool read, status-body SQL, each receipts statement,
  commit, close).
- Floor (second row): what is reachable at all. The raw bodies into a raw_payloads-shaped
  table plus the event rows into a message_events-shaped table, both from ready Arrow
  tables, in one transaction, in a fresh file (best of 3, timed like the reference:
  no connect, no close): no spool reading, no parsing, no dedupe, no message_status.
- Bound (third row): the floor, but the event rows made from the bodies by the least
  parsing DuckDB does (json_transform of the receipt fields + unnest, straight into the
  table). No path that parses in DuckDB and keeps the raw bodies can beat it.
- With 1 % bad bodies: the same spool with one bad status body after every 100 good
  ones (see ``BREAKAGES``), drained the same way; issue 13 asks for at least half the
  speed of the clean spool. Every good event is checked stored, every bad body rejected.
- Against the bound: the first row's time beside the bound row's (issue 13 restates issue
  4's target that way, aiming at >= 0.5 of the bound at 1 million events).
- Receiver-sized (last row): the receiver benchmark's small bodies (3 statuses each) in
  batches of about 200 bodies, which is what the receiver's ingest process does at 1,000
  POSTs/s; shows the fixed cost per batch and per body.

ratio = reference_s / ours_s = our events/s / reference rows/s; the issue's target is >= 0.5.
``python -m benchmarks.bench_spool_ingest [--quick]`` prints the rows.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import re
import statistics
import tempfile
import time
import types
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from benchmarks.loadgen import (
    T0,
    make_workspace,
    message_id,
    recipient,
    samples,
    small_status_bodies,
    small_status_items,
)

PER_BODY = 240     # statuses per body: 80 messages/s x (sent, delivered, read)
PER_SECOND = 80
PRICING = {"billable": True, "pricing_model": "PMP", "category": "marketing"}
TARGET = 0.5
REPEAT = 3         # drains of our own, each into a fresh workspace: best and median shown


# --- the data --------------------------------------------------------------------------

def _statuses_of(second: int, n_seconds: int):
    """(message number, status, unix time) of the statuses arriving in body ``second``."""
    for lag, state in enumerate(("sent", "delivered", "read")):
        block = (second - lag) % n_seconds
        for k in range(PER_SECOND):
            n = block * PER_SECOND + k
            yield n, state, T0 + block + lag * 5 + k % 3


def build(n_events: int) -> tuple[list[bytes], pa.Table]:
    """Spool lines (one signed-body record each) and the same receipts as an Arrow table."""
    ws_samples = samples()
    n_seconds = max(3, round(n_events / PER_BODY))
    received = datetime.now(UTC)
    lines, cols = [], defaultdict(list)
    for second in range(n_seconds):
        items = []
        for n, state, ts in _statuses_of(second, n_seconds):
            items.append({"id": message_id(n), "status": state, "timestamp": str(ts),
                          "recipient_id": recipient(n), "pricing": PRICING})
            cols["message_id"].append(message_id(n))
            cols["status"].append(state)
            cols["at"].append(datetime.fromtimestamp(ts, UTC))
            cols["recipient_id"].append(recipient(n))
        body = ws_samples.dumps(ws_samples.envelope({"statuses": items}))
        lines.append(_record(body, received))
    constant = {"pricing_category": "marketing", "pricing_model": "PMP", "billable": True}
    return lines, _event_table(cols, received, constant)


# What a sender gets wrong (issue 13): each bad body is a status batch like the others with
# one status broken in one of these ways; the Python path rejects the body with a reason.
BREAKAGES = [
    lambda s: s.update(timestamp="100000000000000000000"),   # absurd time
    lambda s: s.update(id=4711),                              # a number where text belongs
    lambda s: s.pop("timestamp"),                             # no time
    lambda s: s.update(id="wamid.\ud800"),                   # a lone surrogate (escaped)
    lambda s: s.update(recipient_id=491701234567),            # a number for the recipient
    lambda s: s.update(errors={"code": 131026}),              # errors not a list
]


def with_bad_bodies(lines: list[bytes], share: float = 0.01) -> tuple[list[bytes], int]:
    """``lines`` with bad bodies mixed in (one after every 1/share good ones): (lines, bad)."""
    ws_samples = samples()
    received = datetime.now(UTC)
    every = max(1, round(1 / share))
    out, bad = [], 0
    for i, line in enumerate(lines):
        out.append(line)
        if (i + 1) % every == 0:
            items = [{"id": message_id(10**9 + bad * PER_BODY + k), "status": "sent",
                      "timestamp": str(T0 + k), "recipient_id": recipient(k), "pricing": PRICING}
                     for k in range(PER_BODY)]
            BREAKAGES[bad % len(BREAKAGES)](items[bad % PER_BODY])
            text = json.dumps(ws_samples.envelope({"statuses": items}), separators=(",", ":"))
            out.append(_record(text.encode("utf-8"), received))
            bad += 1
    return out, bad


def build_small(n_bodies: int) -> tuple[list[bytes], pa.Table]:
    """The receiver benchmark's bodies (3 statuses each) as spool lines, and their rows."""
    received = datetime.now(UTC)
    lines = [_record(body, received) for body in small_status_bodies(0, n_bodies)]
    cols = defaultdict(list)
    for j in range(n_bodies):
        for mid, state, ts in small_status_items(j):
            cols["message_id"].append(mid)
            cols["status"].append(state)
            cols["at"].append(datetime.fromtimestamp(int(ts), UTC))
            cols["recipient_id"].append("491701234567")  # the samples' default recipient
    return lines, _event_table(cols, received, {})


def _event_table(cols: dict, received: datetime, constant: dict) -> pa.Table:
    """message_events' columns: ``cols`` as given, ``constant`` repeated, the rest NULL."""
    from bizchat.messaging.receipts import EVENT_SCHEMA

    n = len(cols["message_id"])
    arrays = []
    for f in EVENT_SCHEMA:
        if f.name in cols:
            arrays.append(pa.array(cols[f.name], f.type))
        elif f.name in constant:
            arrays.append(pa.array([constant[f.name]] * n, f.type))
        elif f.name == "received_at":
            arrays.append(pa.array([received] * n, f.type))
        else:
            arrays.append(pa.nulls(n, f.type))
    return pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA)


def _record(body: bytes, received: datetime) -> bytes:
    from bizchat.ingest.spool import Spool

    return Spool.record(body, received)


def _fill_spool(workspace_path: Path, lines: list[bytes]):
    from bizchat.ingest.spool import Spool

    spool = Spool(workspace_path)
    for i in range(0, len(lines), 256):  # the receiver appends in group-commit chunks
        spool.append(lines[i:i + 256])
    return spool


# --- ours ------------------------------------------------------------------------------

def drain(workspace_path: Path, spool, batch_bytes: int | None = None, threads: int | None = 1
          ) -> tuple[float, float, int]:
    """Ingest the whole spool as the receiver's ingest process does (one DuckDB thread,
    as ``ingester.main`` sets it; ``threads=None``: DuckDB's default, every core);
    (seconds, CPU seconds of this process, batches)."""
    from bizchat.receiver.ingester import Ingester

    ingester = Ingester(workspace_path, spool, threads=threads,
                        **({"batch_bytes": batch_bytes} if batch_bytes else {}))
    start, cpu = time.perf_counter(), time.process_time()
    while spool.pending_bytes():
        if not ingester.run_once(timeout=30):
            raise RuntimeError(f"ingest made no progress: {ingester.last_error or 'workspace busy'}")
    return time.perf_counter() - start, time.process_time() - cpu, ingester.batches


def check(ws, table: pa.Table, n_bodies: int, rejected: int = 0) -> None:
    """Every receipt of ``table`` is in message_events once, message_status has one row
    per message (read where a read came), every body is in raw_payloads, and
    ``rejected`` bad bodies are kept there as rejected."""
    got = ws.sql("""SELECT (SELECT count(*) FROM message_events) AS events,
                           (SELECT count(DISTINCT (message_id, status)) FROM message_events) AS distinct_events,
                           (SELECT count(*) FROM message_status) AS messages,
                           (SELECT count(*) FROM message_status WHERE status = 'read') AS read,
                           (SELECT count(*) FROM raw_payloads WHERE state = 'ingested') AS bodies,
                           (SELECT count(*) FROM raw_payloads WHERE state = 'rejected'
                                                               AND note IS NOT NULL) AS rejected
                    """).iloc[0].tolist()
    con = duckdb.connect()
    try:
        con.register("expected", table)
        messages, read = con.execute("""SELECT count(DISTINCT message_id),
                                               count(DISTINCT message_id) FILTER (WHERE status = 'read')
                                        FROM expected""").fetchone()
    finally:
        con.close()
    want = [table.num_rows, table.num_rows, messages, read, n_bodies, rejected]
    if got != want:
        raise AssertionError(f"workspace holds (events, distinct, messages, read, bodies, "
                             f"rejected) = {got}, expected {want}")


# --- reference -------------------------------------------------------------------------

def reference(table: pa.Table, directory: Path, repeat: int = 3,
              prefix: str = "reference") -> tuple[float, float]:
    """Best of ``repeat``: the rows into an unindexed table of a fresh DuckDB file;
    (seconds, CPU seconds of that attempt)."""
    columns = ", ".join(f'"{f.name}" {_sql_type(f.type)}' for f in table.schema)
    best, best_cpu = float("inf"), 0.0
    for attempt in range(repeat):
        con = duckdb.connect(str(directory / f"{prefix}{attempt}.duckdb"))
        try:
            con.execute(f"CREATE TABLE t ({columns})")
            con.register("arrow_table", table)
            start, cpu = time.perf_counter(), time.process_time()
            con.execute("INSERT INTO t SELECT * FROM arrow_table")
            took, took_cpu = time.perf_counter() - start, time.process_time() - cpu
            if took < best:
                best, best_cpu = took, took_cpu
            assert con.execute("SELECT count(*) FROM t").fetchone()[0] == table.num_rows
        finally:
            con.close()
    return best, best_cpu


def _sql_type(t: pa.DataType) -> str:
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ"
    return {pa.string(): "VARCHAR", pa.int32(): "INTEGER", pa.bool_(): "BOOLEAN"}[t]


# --- where our time goes -----------------------------------------------------------------

_LABELS = [
    (r"^SELECT payload_id FROM raw_payloads", "sql: raw_payloads dedupe lookup"),
    (r"^SELECT account_id, phone_number_id", "sql: account map"),
    (r"^CREATE OR REPLACE TEMP TABLE _new_events", "sql: new receipts (dedupe vs message_status)"),
    (r"^SELECT count\(\*\) FROM _new_events", "sql: count new"),
    (r"^INSERT INTO message_events", "sql: insert message_events"),
    (r"^CREATE OR REPLACE TEMP TABLE _status_in", "sql: group new receipts per message"),
    (r"^INSERT INTO message_status", "sql: insert/upsert message_status"),
    (r"^UPDATE message_status", "sql: update message_status"),
    (r"^UPDATE broadcast_recipients", "sql: outbox resolve"),
    (r"^INSERT INTO raw_payloads", "sql: insert raw_payloads"),
    (r"^SELECT ord, CASE WHEN regexp_matches", "sql: status bodies: structure check"),
    (r"^CREATE OR REPLACE TEMP TABLE _sb_rows", "sql: status bodies: json_transform + unnest"),
    (r"^SELECT ord, count\(\*\) = any_value", "sql: status bodies: value checks + numbers"),
    (r"^SELECT ord, ei, ci, si, errors_json", "sql: status bodies: errors"),
    (r"^SELECT r.message_id", "sql: status bodies: receipt rows to Arrow"),
    (r"^DROP TABLE IF EXISTS _sb_rows", "sql: status bodies: clean up"),
]


class _Timed:
    """A connection that times each statement it runs (the pieces call it like a
    DuckDB connection); everything else passes through."""

    def __init__(self, con, times: dict):
        self._con, self._times = con, times

    def execute(self, sql, *args, **kw):
        label = self._label(sql)
        start = time.perf_counter()
        result = self._con.execute(sql, *args, **kw)
        self._times[label] += time.perf_counter() - start
        return result

    def sql(self, sql, *args, **kw):  # lazy: the time goes where the rows are fetched
        rel, label = self._con.sql(sql, *args, **kw), self._label(sql)
        times = self._times

        class Timed:
            def to_arrow_table(self):
                start = time.perf_counter()
                try:
                    return rel.to_arrow_table()
                finally:
                    times[label] += time.perf_counter() - start
        return Timed()

    def _label(self, sql):
        text = " ".join(sql.split())
        return next((name for pattern, name in _LABELS if re.match(pattern, text)),
                    "sql: " + text[:40])

    def register(self, name, obj):
        start = time.perf_counter()
        result = self._con.register(name, obj)
        self._times["sql: register"] += time.perf_counter() - start
        return result

    def __getattr__(self, name):
        return getattr(self._con, name)


@contextlib.contextmanager
def _timers(times: dict):
    """Time json.loads, parse_batch and record_status_events as webhook_ingest calls them."""
    from bizchat.ingest import webhooks
    from bizchat.messaging import receipts

    def timed(fn, label):
        def wrapper(*args, **kw):
            start = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                times[label] += time.perf_counter() - start
        return wrapper

    saved = (webhooks.json, webhooks.parse_batch,
             webhooks.receipts.record_status_events)
    webhooks.json = types.SimpleNamespace(
        loads=timed(json.loads, "python: json.loads of bodies"), dumps=json.dumps)
    webhooks.parse_batch = timed(saved[1], "python: parse_batch (dict walk + DataFrames)")

    def sql_so_far():
        return sum(v for k, v in times.items() if k.startswith("sql: "))

    def record(*args, **kw):  # its Python share: total minus the SQL it ran
        start, sql_before = time.perf_counter(), sql_so_far()
        try:
            return saved[2](*args, **kw)
        finally:
            times["python: record_status_events (as_event_table etc.)"] += (
                time.perf_counter() - start - (sql_so_far() - sql_before))

    class Receipts:  # the receipts module, with record_status_events timed
        def __getattr__(self, name):
            return record if name == "record_status_events" else getattr(receipts, name)

    webhooks.receipts = Receipts()
    try:
        yield
    finally:
        webhooks.json, webhooks.parse_batch = saved[0], saved[1]
        webhooks.receipts = receipts


def breakdown(workspace_path: Path, spool, batch_bytes: int | None = None) -> tuple[float, dict]:
    """A second drain with timers around every stage, holding the connection while there
    is a backlog as ``Ingester.run_once`` does; (total seconds, seconds per stage)."""
    from bizchat import store
    from bizchat.ingest.webhooks import ingest_bodies
    from bizchat.receiver.ingester import CHECKPOINT_AT, Ingester

    hold = inspect.signature(Ingester).parameters["hold"].default
    batch_bytes = batch_bytes or inspect.signature(Ingester).parameters["batch_bytes"].default
    times: dict = defaultdict(float)
    total_start = time.perf_counter()
    with _timers(times):
        while spool.pending_bytes():
            start = time.perf_counter()
            con = store.connect(workspace_path)
            con.execute("SET threads = 1")                       # as the ingest process
            con.execute(f"SET checkpoint_threshold = '{CHECKPOINT_AT}'")
            times["connect"] += time.perf_counter() - start
            try:
                held = time.monotonic()
                while spool.pending_bytes() and time.monotonic() - held < hold:
                    start = time.perf_counter()
                    batch = spool.read(batch_bytes)
                    times["python: spool.read (lines + dates)"] += time.perf_counter() - start
                    con.execute("BEGIN TRANSACTION")
                    start = time.perf_counter()
                    ingest_bodies(_Timed(con, times), batch.records)
                    times["ingest_bodies total"] += time.perf_counter() - start
                    start = time.perf_counter()
                    con.execute("COMMIT")
                    times["commit"] += time.perf_counter() - start
                    start = time.perf_counter()
                    spool.commit(batch)
                    times["spool.commit (offset fsync)"] += time.perf_counter() - start
            finally:
                start = time.perf_counter()
                con.close()
                times["close (checkpoint)"] += time.perf_counter() - start
    total = time.perf_counter() - total_start
    inner = sum(v for k, v in times.items() if k.startswith(("sql: ", "python: json", "python: parse",
                                                             "python: record")))
    times["python: rest of ingest_bodies (Arrow tables, dedupe, raw frame)"] = max(
        0.0, times.pop("ingest_bodies total") - inner)
    return total, dict(times)


def _format_breakdown(total: float, times: dict) -> str:
    rest = total - sum(times.values())
    parts = sorted({**times, "not timed (loop, temp tables, scheduling)": rest}.items(),
                   key=lambda kv: -kv[1])
    return "; ".join(f"{name} {sec:.2f} s ({sec / total:.0%})" for name, sec in parts if sec >= 0.005)


# --- floor: what is reachable at all --------------------------------------------------------

RAW_COLUMNS = pa.schema([("payload_id", pa.string()), ("received_at", pa.timestamp("us", tz="UTC")),
                         ("account_id", pa.int32()), ("state", pa.string()), ("note", pa.string()),
                         ("body", pa.string())])


def floor(lines: list[bytes], table: pa.Table, directory: Path, *, parse: bool = False,
          repeat: int = 3) -> tuple[float, float, float, float]:
    """Best of ``repeat``: the raw bodies into a raw_payloads-shaped table and the event rows
    into a message_events-shaped table, in one transaction of a fresh DuckDB file, timed
    like ``reference`` (no connect, no close); (seconds, CPU seconds, seconds of the close
    that follows, i.e. the checkpoint, of that attempt, median seconds of all attempts).

    ``parse=False``: the event rows come from the ready Arrow table. ``parse=True``: they
    come from the bodies, by the least parsing there is in DuckDB (json_transform of the
    receipt fields + unnest, straight into the table; no checks, no dedupe, no
    message_status)."""
    from bizchat.ingest.spool import decode_line
    from bizchat.ingest.status_bodies import SHAPE

    records = [decode_line(line.rstrip(b"\n")) for line in lines]
    raw = pa.Table.from_arrays([
        pa.array([r[0] for r in records], pa.string()),
        pa.array([datetime.fromisoformat(r[1]) for r in records], RAW_COLUMNS.field(1).type),
        pa.array([1] * len(records), pa.int32()),
        pa.array(["ingested"] * len(records), pa.string()),
        pa.nulls(len(records), pa.string()),
        pa.array([r[2] for r in records], pa.string()),
    ], schema=RAW_COLUMNS)
    events = "SELECT * FROM ev_in"
    if parse:
        events = f"""
            SELECT st.id, st.status, to_timestamp(st.timestamp::BIGINT), st.recipient_id,
                   NULL, NULL, st.errors, st.conversation.id, st.conversation.origin.type,
                   st.pricing.category, st.pricing.pricing_model, st.pricing.billable,
                   st.biz_opaque_callback_data, received_at
            FROM (SELECT received_at, unnest(c.value.statuses) AS st
                  FROM (SELECT received_at, unnest(e.changes) AS c
                        FROM (SELECT received_at, unnest(d.entry) AS e
                              FROM (SELECT received_at, json_transform(body, '{SHAPE}') AS d
                                    FROM raw_in))))"""

    def ddl(schema):
        return ", ".join(f'"{f.name}" {_sql_type(f.type)}' for f in schema)

    best, best_cpu, best_close = float("inf"), 0.0, 0.0
    took_all = []
    for attempt in range(repeat):
        con = duckdb.connect(str(directory / f"floor{int(parse)}{attempt}.duckdb"))
        closed = None
        try:
            con.execute(f"CREATE TABLE raw ({ddl(raw.schema)})")
            con.execute(f"CREATE TABLE ev ({ddl(table.schema)})")
            con.register("raw_in", raw)
            con.register("ev_in", table)
            start, cpu = time.perf_counter(), time.process_time()
            con.execute("BEGIN TRANSACTION")
            con.execute("INSERT INTO raw SELECT * FROM raw_in")
            con.execute(f"INSERT INTO ev {events}")
            con.execute("COMMIT")
            took, took_cpu = time.perf_counter() - start, time.process_time() - cpu
            assert con.execute("SELECT (SELECT count(*) FROM raw), (SELECT count(*) FROM ev)"
                               ).fetchall() == [(len(records), table.num_rows)]
            start = time.perf_counter()
            con.close()
            closed = time.perf_counter() - start
            took_all.append(took)
            if took < best:
                best, best_cpu, best_close = took, took_cpu, closed
        finally:
            if closed is None:
                con.close()
    return best, best_cpu, best_close, statistics.median(took_all)


# --- the benchmark -----------------------------------------------------------------------------

SMALL_PER_BATCH = 200   # bodies per ingest batch at 1,000 POSTs/s and the 0.2 s interval


def _small_batches(quick: bool, tmp: Path) -> dict:
    """Receiver-sized work: small bodies (3 statuses) in batches of about 200 bodies."""
    n_bodies = 1_500 if quick else 6_000
    lines, table = build_small(n_bodies)
    batch_bytes = SMALL_PER_BATCH * sum(map(len, lines)) // len(lines)
    path = tmp / "small.duckdb"
    ws = make_workspace(path)
    seconds, cpu, batches = drain(path, _fill_spool(path, lines), batch_bytes)
    check(ws, table, n_bodies)
    ref_s, ref_cpu = reference(table, tmp, prefix="small")
    path = tmp / "small_breakdown.duckdb"
    make_workspace(path)
    second_s, times = breakdown(path, _fill_spool(path, lines), batch_bytes)
    return {"bodies": n_bodies, "events": table.num_rows, "seconds": seconds, "cpu": cpu,
            "batches": batches, "ref_s": ref_s, "ref_cpu": ref_cpu, "second_s": second_s,
            "times": times}


def run(quick: bool) -> list[dict]:
    n_target = 100_000 if quick else 1_000_000
    load = os.getloadavg()[0]
    lines, table = build(n_target)
    n_events, n_bodies = table.num_rows, len(lines)
    spool_mb = sum(map(len, lines)) / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # Ours: best of REPEAT fresh workspaces, like the reference and the bound rows.
        runs = []
        for attempt in range(REPEAT):
            path = tmp / f"ours{attempt}.duckdb"
            ws = make_workspace(path)
            runs.append(drain(path, _fill_spool(path, lines)))
            check(ws, table, n_bodies)
            for leftover in tmp.glob(f"ours{attempt}.duckdb*"):
                leftover.unlink()
        ours_s, ours_cpu, batches = min(runs)
        ours_median = statistics.median(r[0] for r in runs)
        # Ours, with 1 % bad bodies mixed in.
        bad_lines, n_bad = with_bad_bodies(lines)
        path = tmp / "bad.duckdb"
        ws = make_workspace(path)
        bad_s, bad_cpu, _ = drain(path, _fill_spool(path, bad_lines))
        check(ws, table, n_bodies, rejected=n_bad)
        # Reference.
        ref_s, ref_cpu = reference(table, tmp)
        # Breakdown.
        path = tmp / "breakdown.duckdb"
        ws = make_workspace(path)
        second_s, times = breakdown(path, _fill_spool(path, lines))
        check(ws, table, n_bodies)
        # What is reachable at all.
        floor_s, floor_cpu, floor_close, _ = floor(lines, table, tmp)
        bound_s, bound_cpu, bound_close, bound_median = floor(lines, table, tmp, parse=True)
        small = _small_batches(quick, tmp)

    machine = (f"Wall-clock times on {os.cpu_count()} cores shared with other work (load average "
               f"{load:.1f} at start)")
    ratio = ref_s / ours_s
    verdict = ("meets" if ratio >= TARGET else
               f"misses the >= {TARGET:.0%} target by {TARGET / ratio:.1f}x")
    reference_note = (f"reference {n_events / ref_s:,.0f} rows/s ({ref_cpu:.2f} s CPU, best of 3 "
                      "fresh files)")
    rows = [{
        "benchmark": f"spool -> workspace, {n_events:,} status events",
        "ours_s": round(ours_s, 3),
        "reference_s": round(ref_s, 3),
        "ratio": round(ratio, 3),
        "note": (f"{n_bodies:,} bodies x {PER_BODY} statuses, {spool_mb:.0f} MB spool, {batches} "
                 f"batches (Ingester's default size), status-only bodies parsed in DuckDB (status_bodies.py); ours {n_events / ours_s:,.0f} events/s ({ours_cpu:.1f} s CPU; best of {REPEAT}, median {ours_median:.2f} s), "
                 f"{reference_note}; ratio {ratio:.3f} {verdict}; every event checked in "
                 f"message_events + message_status. Where the time goes (second drain with "
                 f"timers, {second_s:.2f} s): {_format_breakdown(second_s, times)}. {machine}."),
    }, {
        "benchmark": f"spool -> workspace with 1 % bad bodies, {n_events:,} good events",
        "ours_s": round(bad_s, 3),
        "reference_s": round(ours_median, 3),
        "ratio": round(ours_median / bad_s, 3),
        "note": (f"reference: the same spool without bad bodies (first row, the median of its drains). {n_bad} bad bodies "
                 f"(1 per {len(lines) // max(1, n_bad)} good ones, each a status batch with one "
                 f"status broken: an absurd timestamp, a number where text belongs, no "
                 f"timestamp, a lone surrogate, errors not a list) mixed in; each is kept in "
                 f"raw_payloads as rejected with its reason and every good event is stored "
                 f"(checked). ratio = speed with bad bodies / speed without ({bad_cpu:.1f} s CPU); "
                 f"target >= 0.5: {'met' if ours_median / bad_s >= 0.5 else 'missed'}. {machine}."),
    }, {
        "benchmark": f"ours against the least-parsing bound, {n_events:,} status events",
        "ours_s": round(ours_s, 3),
        "reference_s": round(bound_s, 3),
        "ratio": round(bound_s / ours_s, 3),
        "note": (f"the first row restated (issue 13): the reference is the bound row below (the "
                 f"raw bodies stored and the events made by json_transform + unnest straight "
                 f"into the table, one transaction, timed without connect and close as in issue "
                 f"4's figures); ratio = bound / ours, both best of {REPEAT} fresh files, aim >= "
                 f"0.5: {'met' if bound_s / ours_s >= 0.5 else 'missed'}; median against median "
                 f"{bound_median:.2f} / {ours_median:.2f} s = {bound_median / ours_median:.3f}. "
                 f"With the checkpoint the "
                 f"bound pays at its close added ({bound_close:.2f} s), as ours pays its "
                 f"checkpoints: {(bound_s + bound_close) / ours_s:.3f}. Ours is "
                 f"{ours_cpu:.1f} s CPU. {machine}."),
    }, {
        "benchmark": f"floor: raw bodies + event rows, no parsing, {n_events:,} events",
        "ours_s": round(floor_s, 3),
        "reference_s": round(ref_s, 3),
        "ratio": round(ref_s / floor_s, 3),
        "note": (f"not a bizchat path: the {n_bodies:,} bodies ({spool_mb:.0f} MB) into a "
                 f"raw_payloads-shaped table plus the {n_events:,} event rows into a "
                 f"message_events-shaped table, from ready Arrow tables, in one transaction "
                 f"(best of 3 fresh files, {floor_cpu:.2f} s CPU), timed like the reference; "
                 f"the close after it (checkpoint) took another {floor_close:.2f} s, which ours "
                 f"pays too. Storing what must be stored, with nothing else, reaches "
                 f"{ref_s / floor_s:.2f} of the reference ({ref_s / (floor_s + floor_close):.2f} "
                 f"with the close); ours also reads the spool, parses, dedupes and keeps "
                 f"message_status, and is at {ratio / (ref_s / floor_s):.0%} of this floor. "
                 f"{machine}."),
    }, {
        "benchmark": f"bound: floor + parsing the bodies in DuckDB, {n_events:,} events",
        "ours_s": round(bound_s, 3),
        "reference_s": round(ref_s, 3),
        "ratio": round(ref_s / bound_s, 3),
        "note": (f"not a bizchat path: as the floor, but the event rows come from the bodies "
                 f"by the least parsing DuckDB can do (json_transform of the receipt fields + "
                 f"unnest, straight into the table: no checks, no dedupe, no message_status, no "
                 f"spool reading; {bound_cpu:.2f} s CPU, close {bound_close:.2f} s). Any path "
                 f"that parses the bodies in DuckDB and keeps them stays below "
                 f"{ref_s / bound_s:.2f} of the reference before it does any of the rest the "
                 f"issue asks for; ours is at {ratio / (ref_s / bound_s):.0%} of this bound. "
                 f"{machine}."),
    }, {
        "benchmark": (f"spool -> workspace, receiver-sized: {small['bodies']:,} bodies of 3 statuses "
                      f"in batches of {SMALL_PER_BATCH}"),
        "ours_s": round(small["seconds"], 3),
        "reference_s": round(small["ref_s"], 3),
        "ratio": round(small["ref_s"] / small["seconds"], 3),
        "note": (f"{small['events']:,} events in {small['batches']} batches: "
                 f"{small['events'] / small['seconds']:,.0f} events/s, "
                 f"{small['cpu'] / small['bodies'] * 1e3:.2f} ms CPU per body "
                 f"({small['cpu'] / small['batches'] * 1e3:.0f} ms CPU per batch); reference one "
                 f"Arrow insert of the same rows ({small['ref_cpu']:.2f} s CPU). What the "
                 f"receiver's ingest process does at 1,000 POSTs/s. Where the time goes "
                 f"({small['second_s']:.2f} s): "
                 f"{_format_breakdown(small['second_s'], small['times'])}. {machine}."),
    }]
    return rows


if __name__ == "__main__":
    import sys

    for row in run(quick="--quick" in sys.argv):
        print(row)
