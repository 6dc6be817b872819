"""Looking at a lake: what it holds (show) and whether its files are intact (verify)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pandas as pd

from .manifest import read_manifest
from .publish import checksum


def show(out: str | os.PathLike) -> pd.DataFrame:
    """One row per tenant and table: partitions by, files, rows, bytes, exported_at."""
    manifest = read_manifest(out)
    rows = []
    for tenant in manifest.tenants():
        entry = manifest.tenant(tenant)
        for table, spec in entry["tables"].items():
            files = spec["files"]
            rows.append({"tenant": tenant, "table": table,
                         "partitioned_by": "/".join(spec["partitioned_by"]),
                         "files": len(files), "rows": sum(f["rows"] for f in files),
                         "bytes": sum(f["bytes"] for f in files),
                         "exported_at": entry["exported_at"], "source": entry["source"]})
    return pd.DataFrame(rows, columns=["tenant", "table", "partitioned_by", "files", "rows",
                                       "bytes", "exported_at", "source"])


@dataclass
class Verification:
    """The outcome of verify: files checked and what is wrong with the others."""

    files: int = 0
    rows: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            return f"OK: {self.files} file(s), {self.rows:,} row(s), sizes and sha256 as listed."
        return "\n".join([f"{len(self.problems)} problem(s) in {self.files} file(s):"]
                         + [f"  {p}" for p in self.problems])


def verify(out: str | os.PathLike) -> Verification:
    """Every listed file exists with the listed size, sha256 and row count."""
    import pyarrow.parquet as pq

    manifest = read_manifest(out)
    result = Verification()
    for entry in manifest.all_entries():
        result.files += 1
        path = manifest.dir / entry.path
        if not path.is_file():
            result.problems.append(f"{entry.path}: missing")
            continue
        size = path.stat().st_size
        if size != entry.bytes:
            result.problems.append(f"{entry.path}: {size} bytes, listed {entry.bytes}")
            continue
        if checksum(path) != entry.sha256:
            result.problems.append(f"{entry.path}: sha256 differs from the manifest")
            continue
        try:
            rows = pq.read_metadata(path).num_rows
        except Exception as exc:   # noqa: BLE001 - any unreadable file is a finding
            result.problems.append(f"{entry.path}: not readable as Parquet ({exc})")
            continue
        if rows != entry.rows:
            result.problems.append(f"{entry.path}: {rows} rows, listed {entry.rows}")
        result.rows += rows
    return result
