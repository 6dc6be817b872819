"""The campaign open-rate table: ``Stats.open_rates()`` against a plain-pandas reference.

Issue 6 asks for the table over 10 million messages and about 25 million status events
in under 1.5 s, and at least 5 (aim: 10) times faster than the pandas reference.

Data (not timed): a workspace generated with numpy and inserted as Arrow tables straight
into DuckDB (not through the API): 2 accounts, one broadcast per 5,000 messages,
broadcast_recipients (the sent ones plus about 3 % skipped, among them a control group),
the outbound messages, their receipts in message_events (sent, delivered, read, played,
failed; some reads without a delivered receipt, some sends without a sent receipt) and
message_status as ingestion keeps it (one row per message, first time of each status,
the message's broadcast).
Message ids look like wamids (``wamid.HBgL...``, 25-30 characters, in random order).

- Ours: ``Stats(ws).open_rates()`` (Ibis on DuckDB, a read-only connection per call:
  per-broadcast totals from broadcast_recipients and from message_status grouped by its
  broadcast_id, no join on the message id), end to end: open, query, pandas, close.
- Reference: plain pandas, as an analyst without message_status would do it: load
  broadcast_recipients, message_events and broadcasts into DataFrames (the file is a
  DuckDB file, so ``duckdb ... .df()`` is the loader), derive each message's state from
  all its receipts with groupby, merge, aggregate per broadcast. A second row runs pandas
  on message_status (the kept-current state) instead of the events.

Each side runs in its own process (median of 3 runs after one warm-up); the process
reports its own peak RSS (``ru_maxrss``, which includes DuckDB's native memory, unlike
tracemalloc). The results are compared: same counts for every broadcast or the run fails.

Runner contract: ``run(quick) -> list[dict]`` with benchmark, ours_s, reference_s, ratio
(reference_s / ours_s) and note. ``python -m benchmarks.bench_open_rates [--quick]``
(quick: 1 million messages).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parent.parent
PER_BROADCAST = 5_000
T0 = np.datetime64("2025-01-01T00:00:00", "us").astype(np.int64)
SEC = 1_000_000
COUNTS = ["recipients", "skipped", "sent", "delivered", "read", "failed"]


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- data -------------------------------------------------------------------------------------

def _ts(us: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    values = us.astype("datetime64[us]")
    return pa.array(values, pa.timestamp("us", tz="UTC"), mask=None if mask is None else ~mask)


def _const(value: str, n: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([value]))


def _pick(codes: np.ndarray, values: list[str]) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(values))


def _insert(con, table: str, data: pa.Table) -> None:
    con.register("_bench_rows", data)
    cols = ", ".join(f'"{c}"' for c in data.column_names)
    con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _bench_rows")
    con.unregister("_bench_rows")


def generate(path: Path, n: int, seed: int = 6) -> dict:
    """Write the workspace; returns the row counts."""
    import bizchat

    rng = np.random.default_rng(seed)
    ws = bizchat.open(path)
    nb = max(2, n // PER_BROADCAST)
    start = T0 + np.sort(rng.integers(0, 365 * 86400, nb)) * SEC
    bid = np.repeat(np.arange(1, nb + 1), -(-n // nb))[:n]
    account = (bid % 2 + 1).astype(np.int32)
    contact = rng.integers(1, max(2, n // 10), n)
    sent = start[bid - 1] + np.arange(n) % PER_BROADCAST * SEC // 40 + rng.integers(0, SEC, n)
    # wamid-like ids in random order: an odd multiplier permutes 0..2^40.
    perm = (np.arange(n, dtype=np.uint64) * np.uint64(2654435761) + np.uint64(977)) % np.uint64(2**40)
    ids = pc.binary_join_element_wise("wamid.HBgLNDkx", pc.cast(pa.array(perm), pa.string()), "")

    u = rng.random(n)
    failed = u < 0.02
    delivered = ~failed & (rng.random(n) < 0.95)
    read = delivered & (rng.random(n) < 0.6)
    played = read & (rng.random(n) < 0.02)                    # voice notes
    no_delivered_receipt = read & (rng.random(n) < 0.01)      # read implies delivered
    no_sent_receipt = rng.random(n) < 0.01
    d_at = sent + rng.integers(SEC, 60 * SEC, n)
    r_at = d_at + rng.lognormal(np.log(1800), 1.2, n).astype(np.int64) * SEC
    f_at = sent + 5 * SEC

    with ws.transaction() as con:
        con.execute("INSERT INTO accounts (account_id, phone_e164, number_type, display_name) VALUES "
                    "(1, '+4930901820', 'fixed_line', 'Bench 1'), (2, '+4930901821', 'fixed_line', 'Bench 2')")
        _insert(con, "broadcasts", pa.table({
            "broadcast_id": pa.array(np.arange(1, nb + 1)),
            "account_id": pa.array((np.arange(1, nb + 1) % 2 + 1).astype(np.int32)),
            "name": pa.array([f"Broadcast {i}" for i in range(1, nb + 1)]),
            "template": _const("wochentipp", nb), "category": _const("marketing", nb),
            "control_fraction": pa.array(np.where(np.arange(nb) % 10 == 0, 0.05, 0.0)),
            "status": _const("done", nb), "scheduled_for": _ts(start), "created_at": _ts(start - 86400 * SEC)}))
        _insert(con, "messages", pa.table({
            "message_id": ids, "chat_id": pa.array(contact), "account_id": pa.array(account),
            "contact_id": pa.array(contact), "direction": _const("out", n), "kind": _const("template", n),
            "template_name": _const("wochentipp", n), "broadcast_id": pa.array(bid),
            "source": _const("transport", n), "created_at": _ts(sent)}))
        _log(f"  messages: {n:,}")
        # Receipts, as they arrived (first per message and status).
        parts = []
        for status, mask, at in (("sent", ~no_sent_receipt, sent), ("delivered", delivered & ~no_delivered_receipt, d_at),
                                 ("read", read & ~played, r_at), ("played", played, r_at), ("failed", failed, f_at)):
            idx = np.flatnonzero(mask)
            parts.append(pa.table({
                "message_id": ids.take(pa.array(idx)), "status": _const(status, len(idx)),
                "at": _ts(at[idx]), "error_code": pa.array(np.full(len(idx), 131026 if status == "failed" else 0,
                                                                   np.int32), mask=np.full(len(idx), status != "failed")),
                "received_at": _ts(at[idx] + SEC)}))
        events = pa.concat_tables([p.cast(parts[0].schema) for p in parts])
        _insert(con, "message_events", events)
        _log(f"  message_events: {events.num_rows:,}")
        state = np.where(failed, 3, np.where(read, 2, np.where(delivered, 1, 0)))
        _insert(con, "message_status", pa.table({
            "message_id": ids, "status": _pick(state, ["sent", "delivered", "read", "failed"]),
            "sent_at": _ts(sent, ~no_sent_receipt), "delivered_at": _ts(d_at, delivered & ~no_delivered_receipt),
            "read_at": _ts(r_at, read & ~played), "played_at": _ts(r_at, played), "failed_at": _ts(f_at, failed),
            "error_code": pa.array(np.full(n, 131026, np.int32), mask=~failed), "updated_at": _ts(sent),
            "broadcast_id": pa.array(bid)}))
        _log("  message_status")
        # Recipients: every message, plus skipped ones (opted out, or the control group of
        # every tenth broadcast).
        k = n // 33
        sb = rng.integers(1, nb + 1, k)
        control = (sb - 1) % 10 == 0
        keys = pc.binary_join_element_wise("k", pc.cast(pa.array(np.arange(n + k)), pa.string()), "")
        _insert(con, "broadcast_recipients", pa.table({
            "broadcast_id": pa.array(np.concatenate([bid, sb])),
            "contact_id": pa.array(np.concatenate([contact, rng.integers(1, max(2, n // 10), k)])),
            "variant": pa.array(np.concatenate([np.full(n, None), np.where(control, "control", None)]),
                                pa.string()),
            "state": _pick(np.concatenate([np.where(failed, 1, 0), np.full(k, 2)]), ["sent", "failed", "skipped"]),
            "skip_reason": pa.array(np.concatenate([np.full(n, None), np.where(control, "control", "opted_out")]),
                                    pa.string()),
            "idempotency_key": keys,
            "message_id": pa.concat_arrays([ids, pa.nulls(k, pa.string())]),
            "updated_at": _ts(np.concatenate([sent, start[sb - 1]]))}))
        _log(f"  broadcast_recipients: {n + k:,}")
    return {"messages": n, "events": events.num_rows, "recipients": n + k, "broadcasts": nb}


# --- the two sides (each runs in its own process) --------------------------------------------

def _rss_mb() -> float:
    """Peak resident set of this process (VmHWM). Not ru_maxrss: on Linux that keeps the
    parent's peak across fork + exec, and the parent just generated the data."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ours(path: str) -> pd.DataFrame:
    import bizchat
    from bizchat.analytics.stats import Stats
    return Stats(bizchat.open(path)).open_rates()


def _load(path: str, sql: str) -> pd.DataFrame:
    import duckdb
    con = duckdb.connect(path, read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def reference_events(path: str, timings: dict | None = None) -> pd.DataFrame:
    """Plain pandas from the receipts: every message's state re-derived from all events."""
    t = time.perf_counter()
    recipients = _load(path, "SELECT broadcast_id, message_id, state FROM broadcast_recipients")
    events = _load(path, "SELECT message_id, status FROM message_events")
    broadcasts = _load(path, "SELECT broadcast_id, name FROM broadcasts")
    if timings is not None:
        timings["load_s"] = time.perf_counter() - t
    status = events["status"]
    flags = pd.DataFrame({
        "message_id": events["message_id"],
        "d": status.isin(["delivered", "read", "played"]),   # a read implies delivered
        "r": status.isin(["read", "played"]),
        "f": status.eq("failed")}).groupby("message_id", sort=False).any()
    return _aggregate(recipients, flags, broadcasts)


def reference_status(path: str, timings: dict | None = None) -> pd.DataFrame:
    """Plain pandas from message_status (the state ingestion keeps current)."""
    t = time.perf_counter()
    recipients = _load(path, "SELECT broadcast_id, message_id, state FROM broadcast_recipients")
    status = _load(path, "SELECT message_id, delivered_at, read_at, played_at, failed_at FROM message_status")
    broadcasts = _load(path, "SELECT broadcast_id, name FROM broadcasts")
    if timings is not None:
        timings["load_s"] = time.perf_counter() - t
    read = status["read_at"].notna() | status["played_at"].notna()
    flags = pd.DataFrame({"d": status["delivered_at"].notna() | read, "r": read,
                          "f": status["failed_at"].notna()}).set_index(status["message_id"])
    return _aggregate(recipients, flags, broadcasts)


def _aggregate(recipients: pd.DataFrame, flags: pd.DataFrame, broadcasts: pd.DataFrame) -> pd.DataFrame:
    j = recipients.join(flags, on="message_id")
    f = j["f"].fillna(False).astype(bool)
    ok = j["message_id"].notna() & ~f
    table = pd.DataFrame({
        "broadcast_id": j["broadcast_id"], "recipients": 1, "skipped": j["state"].eq("skipped"),
        "sent": j["message_id"].notna(), "delivered": ok & j["d"].fillna(False).astype(bool),
        "read": ok & j["r"].fillna(False).astype(bool), "failed": f | j["state"].eq("failed"),
    }).groupby("broadcast_id").sum().astype("int64")
    table["delivery_rate"] = table["delivered"] / table["sent"].where(table["sent"] > 0)
    table["open_rate"] = table["read"] / table["delivered"].where(table["delivered"] > 0)
    return broadcasts.set_index("broadcast_id").join(table, how="inner").reset_index()


SIDES = {"ours": ours, "pandas_events": reference_events, "pandas_status": reference_status}


def _child(side: str, path: str, out: str, repeats: int, warm_up: bool = True) -> None:
    """Entry point of a side's process: warm up, time, report."""
    rss_start = _rss_mb()
    fn = SIDES[side]
    if warm_up:
        fn(path)  # lazy imports (Ibis), the OS page cache
    times, loads = [], []
    for _ in range(repeats):
        timings: dict = {}
        t = time.perf_counter()
        df = fn(path, timings) if side.startswith("pandas") else fn(path)
        times.append(time.perf_counter() - t)
        loads.append(timings.get("load_s", 0.0))
    df.to_parquet(out + ".parquet")
    Path(out).write_text(json.dumps({"times": times, "loads": loads, "rss_start_mb": rss_start,
                                     "peak_rss_mb": _rss_mb()}))


def _run_side(side: str, path: Path, repeats: int, warm_up: bool) -> tuple[dict, pd.DataFrame]:
    out = str(path.with_suffix(f".{side}.json"))
    code = (f"from benchmarks.bench_open_rates import _child; "
            f"_child({side!r}, {str(path)!r}, {out!r}, {repeats}, {warm_up})")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # stdout off: DuckDB draws a progress bar for long queries.
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env,
                   stdout=subprocess.DEVNULL)
    return json.loads(Path(out).read_text()), pd.read_parquet(out + ".parquet")


def _check_same(a: pd.DataFrame, b: pd.DataFrame, what: str) -> None:
    a = a.set_index("broadcast_id").sort_index()
    b = b.set_index("broadcast_id").sort_index()
    assert list(a.index) == list(b.index), f"{what}: different broadcasts"
    for column in COUNTS:
        assert (a[column].to_numpy() == b[column].to_numpy()).all(), f"{what}: {column} differs"
    for column in ("delivery_rate", "open_rate"):
        np.testing.assert_allclose(a[column].to_numpy(float), b[column].to_numpy(float), rtol=1e-12)


def run(quick: bool = False) -> list[dict]:
    n = 1_000_000 if quick else 10_000_000
    # pandas imports everything up front and takes a minute per run at 10M: no warm-up, and
    # one run at full size.
    plan = {"ours": (3, True),
            "pandas_events": (3 if quick else 1, False), "pandas_status": (3 if quick else 1, False)}
    with tempfile.TemporaryDirectory(prefix="bench_open_rates_") as tmp:
        path = Path(tmp) / "bench.duckdb"
        _log(f"bench_open_rates: generating {n:,} messages ...")
        t = time.perf_counter()
        sizes = generate(path, n)
        _log(f"  generated in {time.perf_counter() - t:.1f} s; running the sides ...")
        load = os.getloadavg()[0]
        results = {side: _run_side(side, path, *plan[side]) for side in SIDES}
    (o, ours_df), rows = results["ours"], []
    o_s = float(np.median(o["times"]))
    for side, label in (("pandas_events", "receipts"), ("pandas_status", "message_status")):
        r, ref_df = results[side]
        _check_same(ours_df, ref_df, side)
        r_s = float(np.median(r["times"]))
        compute = r_s - float(np.median(r["loads"]))
        rows.append({
            "benchmark": f"open-rate table, {sizes['messages'] / 1e6:g}M messages vs pandas on {label}",
            "ours_s": o_s, "reference_s": r_s, "ratio": r_s / o_s,
            "note": (f"{sizes['events']:,} events, {sizes['recipients']:,} recipients, "
                     f"{sizes['broadcasts']:,} broadcasts; median of {plan['ours'][0]} (pandas: "
                     f"{plan[side][0]}). Peak RSS: ours "
                     f"{o['peak_rss_mb']:,.0f} MB, pandas {r['peak_rss_mb']:,.0f} MB (after imports "
                     f"{o['rss_start_mb']:,.0f} / {r['rss_start_mb']:,.0f} MB). pandas spends "
                     f"{r_s - compute:.2f} s loading and {compute:.2f} s computing. "
                     f"Target: < 1.5 s{' (at 10M)' if quick else ''} and >= 5x. Load average {load:.1f} "
                     f"on {os.cpu_count()} CPUs.")})
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(json.dumps(row, indent=1))
