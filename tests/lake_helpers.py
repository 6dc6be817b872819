"""Reading a lake in tests: tables as DataFrames from the files the manifest lists, every
string value of every file, and a listing of the folder's bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pandas as pd

from bizchat.lake import read_manifest


def lake_table(lake: Path, tenant: str, table: str) -> pd.DataFrame:
    """The rows of ``table`` for ``tenant`` (listed files only), sorted for comparison."""
    manifest = read_manifest(lake)
    files = [str(f) for f in manifest.files(tenant, table)]
    names = [c for c, _ in manifest.columns(tenant, table)]
    if not files:
        return pd.DataFrame(columns=names)
    con = duckdb.connect()
    try:
        frame = con.execute("SELECT * FROM read_parquet(?, hive_partitioning = false)",
                            [files]).df()
    finally:
        con.close()
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def folder_state(lake: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under the lake folder (staging included)."""
    return {p.relative_to(lake).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(lake.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


def all_text(lake: Path) -> bytes:
    """Every byte of every file in the lake folder, plus every value of every Parquet file
    decoded (compressed pages hide strings from a plain byte scan)."""
    chunks = []
    con = duckdb.connect()
    try:
        for path in sorted(lake.rglob("*")):
            if not path.is_file():
                continue
            chunks.append(path.read_bytes())
            if path.suffix == ".parquet":
                rows = con.execute("SELECT * FROM read_parquet(?, hive_partitioning = false)",
                                   [str(path)]).fetchall()
                chunks.append(repr(rows).encode())
    finally:
        con.close()
    return b"\n".join(chunks)
