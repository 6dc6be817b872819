"""Erased people leave the lake: every file holding an erased key is rewritten without it.

The lake holds pseudonymous keys only, but a key is still personal data. The workspace
records each erasure (and each retention purge of an inactive contact) as a
``privacy.erase`` audit entry whose ``subject_key`` is the person's contact_key. For those
keys this pass finds the listed files of the tenant that hold them, writes each again
without the person's rows (and without the rows of the person's messages in the tables
keyed by message: events, status, recipients), publishes, and deletes the old files.

An export normally gets there on its own (erasure re-keys the person's rows in the
workspace, so their partitions' fingerprints change and are written again); this pass is
``bizchat lake erase-pending`` and the export's final check, and works from the lake alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from .. import store
from . import publish
from .manifest import read_manifest, read_or_empty

ACTION = "privacy.erase"


def erased_keys(con, *, since: str | None = None) -> list[str]:
    """The contact keys erased in the workspace (after ``since``, an ISO time, if given)."""
    sql = "SELECT DISTINCT subject_key FROM audit_log WHERE action = ? AND subject_key IS NOT NULL"
    params: list = [ACTION]
    if since:
        sql += ' AND "at" > CAST(? AS TIMESTAMPTZ)'
        params.append(since)
    return sorted(r[0] for r in con.execute(sql, params).fetchall())


def last_erasure(con) -> str | None:
    """The time of the latest erasure recorded (ISO, microseconds), or None."""
    row = con.execute('SELECT max("at") FROM audit_log WHERE action = ?', [ACTION]).fetchall()
    return row[0][0].isoformat() if row and row[0][0] is not None else None


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _holding(con, files: list[Path], column: str, values_table: str) -> dict[str, int]:
    """{file: rows} of the files with a row whose ``column`` is among ``values_table``."""
    if not files:
        return {}
    rows = con.execute(
        f"SELECT filename, count(*) FROM read_parquet(?, filename = true, hive_partitioning = false) "
        f"WHERE {column} IN (SELECT v FROM {values_table}) GROUP BY filename",
        [[str(f) for f in files]]).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def rewrite_without(out: Path, tenant: str, keys: list[str], *, progress=None) -> dict:
    """Rewrite the tenant's files that hold any of ``keys`` (or their messages) without
    those rows; publish and delete the old files. Call with the tenant lock held.
    Returns {"files": rewritten, "rows": rows removed}."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    say = progress or (lambda line: None)
    manifest = read_or_empty(out)
    if tenant not in manifest.data["tenants"] or not keys:
        return {"files": 0, "rows": 0}
    entry = manifest.tenant(tenant)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        with store.registered(con, "_erased", pa.table({"v": pa.array(keys, pa.string())})):
            keyed = {t: manifest.files(tenant, t) for t, spec in entry["tables"].items()
                     if any(c[0] == "contact_key" for c in spec.get("columns", []))}
            hits = {t: _holding(con, files, "contact_key", "_erased") for t, files in keyed.items()}
            # the person's messages: events and status rows are keyed by message only
            message_ids = set()
            for table in ("messages", "broadcast_recipients"):
                for f in hits.get(table, {}):
                    message_ids |= {r[0] for r in con.execute(
                        "SELECT message_id FROM read_parquet(?, hive_partitioning = false) "
                        "WHERE contact_key IN (SELECT v FROM _erased) AND message_id IS NOT NULL",
                        [f]).fetchall()}
            ids = pa.table({"v": pa.array(sorted(message_ids), pa.string())})
            with store.registered(con, "_erased_messages", ids):
                for table in ("message_events", "message_status"):
                    if table in entry["tables"]:
                        hits[table] = _holding(con, manifest.files(tenant, table), "message_id",
                                               "_erased_messages")
                replaced, removed = {}, 0
                area = publish.staging(out) / tenant / "erasure"
                area.mkdir(parents=True, exist_ok=True)
                for table, files in hits.items():
                    keep = ("(contact_key IS NULL OR contact_key NOT IN (SELECT v FROM _erased))"
                            if table in keyed else "true")
                    if table in ("message_events", "message_status", "broadcast_recipients"):
                        keep += (" AND (message_id IS NULL OR message_id NOT IN "
                                 "(SELECT v FROM _erased_messages))")
                    for name in files:
                        old = Path(name)
                        rel = old.relative_to(out).as_posix()
                        staged = area / (old.stem + ".parquet")
                        con.execute(f"COPY (SELECT * FROM read_parquet(?, hive_partitioning = false) "
                                    f"WHERE {keep}) TO {_quote(staged)} (FORMAT parquet, "
                                    "COMPRESSION zstd)", [name])
                        final = old.with_name(f"{old.stem}-e{os.getpid()}.parquet")
                        publish.place(staged, final)
                        replaced[rel] = publish.describe(out, final, pq.read_metadata(final).num_rows)
                        removed += files[name]
    finally:
        con.close()
    if not replaced:
        return {"files": 0, "rows": 0}
    for table in entry["tables"].values():
        table["files"] = [replaced[f["path"]].as_dict() if f["path"] in replaced else f
                          for f in table["files"]]
    for parts in entry.get("watermarks", {}).get("partitions", {}).values():
        for part in parts.values():
            if any(f["path"] in replaced for f in part["files"]):
                part["files"] = [replaced[f["path"]].as_dict() if f["path"] in replaced else f
                                 for f in part["files"]]
                part["hash"] = "rewritten-after-erasure"   # the next export writes it afresh
    new = publish.publish(out, tenant, entry)
    publish.clean(out, tenant, new)
    say(f"erased people: {len(replaced)} file(s) rewritten without {removed} row(s)")
    return {"files": len(replaced), "rows": removed}


def erase_pending(ws, out, *, tenant: str | None = None, progress=None) -> dict:
    """Remove every person the workspace erased from its tenant in the lake at ``out``."""
    from .export import check_tenant, default_tenant

    tenant = check_tenant(tenant if tenant is not None else default_tenant(ws.path))
    out = Path(out)
    manifest = read_manifest(out)
    manifest.tenant(tenant)     # NotFound naming the tenants there are
    with ws.connect(read_only=True) as con:
        keys = erased_keys(con)
    with publish.tenant_lock(out, tenant):
        result = rewrite_without(out, tenant, keys, progress=progress)
    return {"tenant": tenant, "erased_keys": len(keys), **result}
