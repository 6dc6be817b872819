"""The demo workspace build against a plain Arrow bulk insert of the same rows.

- Ours: ``demo.build(path, contacts=N)`` into a fresh file: drawing the scenario with
  numpy, writing every table through Arrow in one transaction (tables with primary keys
  as the schema has them), receipts through ``receipts.record_status_events``.
  N = 20,000 contacts (about a million messages); quick: 2,000.
- Reference: the very rows ours wrote, read back into Arrow tables (not timed), then
  ``INSERT INTO t SELECT * FROM arrow_table`` for every table into unindexed tables with
  the same column types in a fresh DuckDB file, in one transaction (best of 3).

ratio = reference_s / ours_s = our rows/s / reference rows/s. The reference only moves
bytes; ours also generates the data, keeps primary keys and maintains message_status, so
a ratio well below 1 is expected: the note shows rows/s of both and ours per stage.
``python -m benchmarks demo [--quick]``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import duckdb

from bizchat import demo, store


def _tables(path: Path) -> dict:
    """Every non-empty table of the workspace as an Arrow table (the migrations' own excluded)."""
    con = store.connect(path, read_only=True)
    try:
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' "
            "AND table_name <> 'schema_migrations' ORDER BY table_name").fetchall()]
        tables = {name: con.sql(f'SELECT * FROM "{name}"').to_arrow_table() for name in names}
    finally:
        con.close()
    return {name: t for name, t in tables.items() if t.num_rows}


def reference(tables: dict, folder: Path, repeat: int = 3) -> float:
    """Best time to insert ``tables`` into unindexed tables of a fresh file, one transaction."""
    best = float("inf")
    for attempt in range(repeat):
        con = duckdb.connect(str(folder / f"reference{attempt}.duckdb"))
        try:
            for name, table in tables.items():
                con.register("_source", table)
                con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _source LIMIT 0')
                con.unregister("_source")
            start = time.perf_counter()
            con.execute("BEGIN TRANSACTION")
            for name, table in tables.items():
                con.register("_source", table)
                con.execute(f'INSERT INTO "{name}" SELECT * FROM _source')
                con.unregister("_source")
            con.execute("COMMIT")
            best = min(best, time.perf_counter() - start)
            inserted = sum(con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in tables)
            if inserted != sum(t.num_rows for t in tables.values()):
                raise RuntimeError(f"reference inserted {inserted} rows, expected all of them")
        finally:
            con.close()
    return best


def run(quick: bool) -> list[dict]:
    contacts = 2_000 if quick else 20_000
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / "demo.duckdb"
        start = time.perf_counter()
        summary = demo.build(path, contacts=contacts, seed=7)
        ours_s = time.perf_counter() - start
        tables = _tables(path)
        ref_s = reference(tables, folder)
    rows = sum(t.num_rows for t in tables.values())
    stages = ", ".join(f"{k} {v:.2f}" for k, v in summary["stage_seconds"].items())
    note = (f"{contacts:,} contacts: {rows:,} rows in {len(tables)} tables "
            f"({summary['messages']:,} messages, {tables['message_events'].num_rows:,} receipts). "
            f"Ours {rows / ours_s:,.0f} rows/s generating and writing (1 run); reference "
            f"{rows / ref_s:,.0f} rows/s inserting the same Arrow tables into unindexed tables "
            f"(best of 3). Ours per stage, s: {stages}.")
    return [{
        "benchmark": f"demo.build {contacts:,} contacts",
        "ours_s": round(ours_s, 3),
        "reference_s": round(ref_s, 3),
        "ratio": round(ref_s / ours_s, 3),
        "note": note,
    }]


if __name__ == "__main__":
    import sys

    for row in run(quick="--quick" in sys.argv):
        print(row)
