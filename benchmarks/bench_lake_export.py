"""The lake export: rows per second of ``ws.lake.export`` beside a plain DuckDB ``COPY``.

Issue 20 (item 5) asks for the export's rows per second against a plain DuckDB
``COPY ... TO`` of the same rows.

- Ours: ``ws.lake.export(out)`` into an empty folder, end to end: the contact-key map
  (HMAC per contact in Python), a fingerprint per partition (count and hash sum of the
  rows), message ids keyed (SHA-256 twice per id, in DuckDB), ``COPY ... PARTITION_BY``
  per table, sha256 of every file, the manifest. Then the same export again (nothing
  changed: fingerprints only, no file written), and after one late read receipt (one
  event month and one status bucket rewritten).
- Reference: ``COPY (SELECT * FROM <table>) TO '<file>' (FORMAT parquet, COMPRESSION
  zstd)`` of each of the eleven tables, every column as stored: the same rows, no keys,
  no partitions, no checksums.

Worlds: the demo workspace (20,000 contacts; ``--quick``: 2,000), and the 10-million-message
workspace of bench_open_rates (``generate``; ``--quick``: 200,000 messages;
``BIZCHAT_BENCH_LAKE_MESSAGES`` overrides). ratio = reference_s / ours_s (below 1: the
export is slower than the plain copy; the note says by how much and why).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

TABLES = ("accounts", "contacts", "consent_events", "chats", "messages", "message_events",
          "message_status", "labels", "contact_labels", "broadcasts", "broadcast_recipients")


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def plain_copy(path: Path, out: Path) -> tuple[float, int]:
    """Seconds and rows of COPY (SELECT * FROM t) TO parquet for every table."""
    import duckdb

    out.mkdir(parents=True)
    t = time.perf_counter()
    con = duckdb.connect(str(path), read_only=True)
    rows = 0
    try:
        for table in TABLES:
            target = str(out / f"{table}.parquet").replace("'", "''")
            got = con.execute(f"COPY (SELECT * FROM {table}) TO '{target}' "
                              "(FORMAT parquet, COMPRESSION zstd)").fetchall()
            rows += int(got[0][0]) if got else 0
    finally:
        con.close()
    return time.perf_counter() - t, rows


def late_receipt(ws) -> None:
    from bizchat.ingest import webhooks

    old = ws.sql("""SELECT message_id, sent_at FROM message_status WHERE status = 'delivered'
                    ORDER BY sent_at LIMIT 1""").iloc[0]
    import pandas as pd
    with ws.transaction() as con:
        webhooks.record_receipts(con, pd.DataFrame([{"message_id": old.message_id, "status": "read",
                                                     "at": old.sent_at + timedelta(days=3)}]))


def measure(label: str, path: Path, folder: Path) -> list[dict]:
    import bizchat

    ws = bizchat.open(path)
    ref_s, ref_rows = plain_copy(path, folder / "plain")
    _log(f"  {label}: plain COPY {ref_rows:,} rows in {ref_s:.1f} s")
    lake = folder / "lake"
    t = time.perf_counter()
    result = ws.lake.export(lake)
    ours_s = time.perf_counter() - t
    rows = sum(v["rows"] for v in result.tables.values())
    if rows != ref_rows:
        raise AssertionError(f"the lake holds {rows} rows, the tables {ref_rows}")
    _log(f"  {label}: export {rows:,} rows in {ours_s:.1f} s")
    t = time.perf_counter()
    again = ws.lake.export(lake)
    again_s = time.perf_counter() - t
    if again.files_written:
        raise AssertionError("a re-run without changes wrote files")
    late_receipt(ws)
    t = time.perf_counter()
    late = ws.lake.export(lake)
    late_s = time.perf_counter() - t
    lake_bytes = sum(p.stat().st_size for p in lake.rglob("*.parquet"))
    plain_bytes = sum(p.stat().st_size for p in (folder / "plain").rglob("*.parquet"))
    return [
        {"benchmark": f"lake export, {label}", "ours_s": ours_s, "reference_s": ref_s,
         "ratio": ref_s / ours_s,
         "note": f"{rows:,} rows: {rows / ours_s:,.0f} rows/s vs plain COPY {rows / ref_s:,.0f} "
                 f"rows/s; {result.files_written} files, {lake_bytes / 1e6:,.0f} MB "
                 f"(plain {plain_bytes / 1e6:,.0f} MB)"},
        {"benchmark": f"lake re-export unchanged, {label}", "ours_s": again_s,
         "reference_s": ref_s, "ratio": ref_s / again_s,
         "note": "fingerprints only, no file written; reference: the plain COPY of all rows"},
        {"benchmark": f"lake export after a late receipt, {label}", "ours_s": late_s,
         "reference_s": ref_s, "ratio": ref_s / late_s,
         "note": f"{late.files_written} file(s), {late.rows_written:,} rows rewritten"},
    ]


def run(quick: bool = False) -> list[dict]:
    from benchmarks.bench_open_rates import generate
    from bizchat import demo

    contacts = 2_000 if quick else 20_000
    messages = int(os.environ.get("BIZCHAT_BENCH_LAKE_MESSAGES") or (200_000 if quick else 10_000_000))
    rows: list[dict] = []
    folder = Path(tempfile.mkdtemp(prefix="bench_lake_"))
    try:
        path = folder / "demo" / "demo.duckdb"
        path.parent.mkdir()
        _log(f"building the demo workspace ({contacts:,} contacts)")
        demo.build(path, contacts=contacts, seed=7)
        rows += measure(f"demo {contacts:,} contacts", path, folder / "demo")
        shutil.rmtree(folder / "demo")
        big = folder / "big" / "big.duckdb"
        big.parent.mkdir()
        _log(f"generating {messages:,} messages")
        generate(big, messages)
        rows += measure(f"{messages:,} messages", big, folder / "big")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


if __name__ == "__main__":
    from benchmarks.__main__ import render

    print(render(run(quick="--quick" in sys.argv)))
