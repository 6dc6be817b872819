"""The open-rate table on the lake: the workspace file, DuckDB over the lake, local Spark.

Data (not timed): the world of ``bench_open_rates`` (10 million messages, about 25
million receipts, 10.3 million broadcast recipients; quick: 500,000 messages) in a
workspace file, exported with ``ws.lake.export`` into a lake folder (the export time is
in the note; ``bench_lake_export`` measures the export itself).

Sides, each the same ``open_rates()`` call and result (checked equal with
``assert_frame_equal``, else the run fails):

- reference: ``ws.stats.open_rates()`` on the workspace file;
- ours, DuckDB: ``LakeStats(lake).open_rates()`` (an in-memory DuckDB with views over the
  manifest's Parquet files);
- ours, Spark: ``LakeStats(lake, engine="spark").open_rates()`` on ``local[2]``. Spark's
  session start (the JVM) and the first query (file listing, footers, code generation)
  are reported apart from the query time.

Median of 3 runs after one warm-up, in this process. ``ratio`` = reference_s / ours_s
(below 1: slower than the file). ``python -m benchmarks.bench_lake_stats [--quick]``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _median(call, repeats: int = 3) -> tuple[float, pd.DataFrame]:
    call()  # warm-up: imports, page cache, Spark's code generation
    times, df = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        df = call()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), df


def run(quick: bool = False) -> list[dict]:
    import bizchat
    from bizchat.lake import spark as sparks
    from bizchat.lake.stats import LakeStats

    from . import bench_open_rates

    n = 500_000 if quick else 10_000_000
    with tempfile.TemporaryDirectory(prefix="bench_lake_stats_") as tmp:
        path, lake = Path(tmp) / "bench.duckdb", Path(tmp) / "lake"
        _log(f"bench_lake_stats: generating {n:,} messages ...")
        bench_open_rates.generate(path, n)
        ws = bizchat.open(path)
        t = time.perf_counter()
        ws.lake.export(lake, tenant="bench")
        export_s = time.perf_counter() - t
        files = sum(1 for _ in lake.rglob("*.parquet"))
        _log(f"  exported in {export_s:.1f} s ({files} files); timing ...")
        load = os.getloadavg()[0]

        file_s, expected = _median(lambda: ws.stats.open_rates())
        duck_s, on_duck = _median(lambda: LakeStats(lake).open_rates())
        pd.testing.assert_frame_equal(expected, on_duck)

        t = time.perf_counter()
        spark, _ = sparks.session()
        start_s = time.perf_counter() - t
        try:
            stats = LakeStats(lake, engine="spark", spark=spark)
            t = time.perf_counter()
            stats.open_rates()
            first_s = time.perf_counter() - t
            spark_s, on_spark = _median(stats.open_rates)
            pd.testing.assert_frame_equal(expected, on_spark)
        finally:
            spark.stop()

    size = f"{n / 1e6:g}M messages"
    return [
        {"benchmark": f"open rates, {size}: DuckDB on the lake vs the workspace file",
         "ours_s": duck_s, "reference_s": file_s, "ratio": file_s / duck_s,
         "note": f"same result; export {export_s:.1f} s, {files} Parquet files; load {load:.1f}"},
        {"benchmark": f"open rates, {size}: local Spark (2 cores) on the lake vs the file",
         "ours_s": spark_s, "reference_s": file_s, "ratio": file_s / spark_s,
         "note": f"same result; Spark session start {start_s:.1f} s, first query "
                 f"{first_s:.1f} s (not in ours_s)"},
    ]


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    for row in run(quick):
        print(row)
