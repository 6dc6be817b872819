"""The export: one workspace's analytical tables into the lake, under its tenant.

DuckDB writes the Parquet itself (``COPY (SELECT ...) TO ... (FORMAT parquet,
PARTITION_BY ...)``) from one read-only connection of the workspace's connection policy;
what each table holds is tables.py. The contact_id -> contact_key map is computed once
per export in Python with ``bizchat.people.pseudonym.contact_key`` (so the lake's keys are
exactly the workspace's) and joined as a registered Arrow table.

Incremental and idempotent by fingerprints: for every partition (a month of messages, the
status bucket of a month ...) the export computes ``count(*)`` and the sum of the rows'
hashes of exactly the rows it would write, and keeps them in the manifest's watermarks.
Only partitions whose fingerprint changed are written again: new rows, late receipts for
an old month, recipients whose state moved on, rows an erasure re-keyed or a retention
purge removed. Partitions that no longer exist are dropped. A run without changes writes
no file, not even the manifest; a run after changes ends equal to a fresh export.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .. import store
from ..errors import InvalidValue, LakeError
from ..people import pseudonym
from ..store import faults
from . import publish
from .manifest import TENANT, now_iso, read_or_empty
from .tables import SPECS, TableSpec

Progress = Callable[[str], None] | None
# The version of what tables.py writes: a change (columns, keys) rewrites every partition.
RULES = 1


@dataclass
class ExportResult:
    """What one export did: per table the rows in the lake now, partitions written and
    dropped; files written and deleted."""

    out: Path
    tenant: str
    published: bool = False
    tables: dict[str, dict] = field(default_factory=dict)
    files_written: int = 0
    files_deleted: int = 0
    rows_written: int = 0
    seconds: float = 0.0
    erasure: dict | None = None

    def summary(self) -> str:
        head = (f"Exported tenant {self.tenant!r} to {self.out}: {self.files_written} file(s), "
                f"{self.rows_written:,} row(s) written, {self.files_deleted} old file(s) deleted "
                f"in {self.seconds:.1f} s." if self.published else
                f"Tenant {self.tenant!r} in {self.out} is up to date: nothing written.")
        lines = [head]
        for name, t in self.tables.items():
            if t["written"] or t["dropped"]:
                lines.append(f"  {name:<22}{t['rows']:>12,} rows  {t['written']} partition(s) "
                             f"written, {t['dropped']} dropped")
        if self.erasure and self.erasure.get("files"):
            lines.append(f"  erased people: {self.erasure['files']} file(s) rewritten without "
                         f"{self.erasure['rows']} row(s)")
        return "\n".join(lines)


def default_tenant(path: str | os.PathLike) -> str:
    """The workspace file's stem, lower-cased, other characters as '-', at most 40."""
    name = re.sub(r"[^a-z0-9_-]+", "-", Path(path).stem.lower()).strip("-")[:40]
    return name or "workspace"


def check_tenant(name: str) -> str:
    if not isinstance(name, str) or not TENANT.fullmatch(name):
        raise InvalidValue(f"{name!r} is not a tenant name: use 1-40 of a-z, 0-9, '_' and '-' "
                           "(e.g. verlag-nord).", input=name)
    return name


def key_map(con, secret: bytes) -> pa.Table:
    """contact_id -> contact_key of every contact id the exported tables mention."""
    ids = con.execute("""
        SELECT contact_id FROM contacts UNION SELECT contact_id FROM chats
        UNION SELECT contact_id FROM messages WHERE contact_id IS NOT NULL
        UNION SELECT contact_id FROM consent_events UNION SELECT contact_id FROM contact_labels
        UNION SELECT contact_id FROM broadcast_recipients""").fetchnumpy()["contact_id"]
    keys = [pseudonym.contact_key(secret, int(i)) for i in ids]
    return pa.table({"contact_id": pa.array(ids, pa.int64()), "contact_key": pa.array(keys, pa.string())})


def message_salt(secret: bytes) -> bytes:
    """The salt of the lake's message keys, derived from the workspace secret."""
    return hmac.new(secret, b"bizchat lake message ids", hashlib.sha256).digest()


def quote(path: Path) -> str:
    """A path as a SQL string literal (COPY TO takes no parameter for its target)."""
    return "'" + str(path).replace("'", "''") + "'"


def fingerprints(con, sql: str) -> dict[str, dict]:
    """{partition: {"rows": n, "hash": h}} of the rows ``sql`` selects."""
    rows = con.execute(f"SELECT _part, count(*), CAST(sum(hash(x)) AS VARCHAR) FROM ({sql}) AS x "
                       "GROUP BY _part").fetchall()
    return {p: {"rows": int(n), "hash": h} for p, n, h in rows}


def columns(con, sql: str) -> list[list[str]]:
    return [[name, type_] for name, type_, *_ in con.execute(f"DESCRIBE {sql}").fetchall()
            if name != "_part"]


def write_parts(con, spec: TableSpec, bodies: bool, parts: list[str], area: Path) -> dict[str, list[Path]]:
    """COPY the rows of ``parts`` to ``area`` (one Hive folder per partition); the files
    written per partition."""
    target = area / spec.name
    sql = spec.select(bodies=bodies, only_parts=True)
    con.execute(f"COPY ({sql}) TO {quote(target)} "
                "(FORMAT parquet, PARTITION_BY (_part), COMPRESSION zstd)", [parts])
    written: dict[str, list[Path]] = {}
    for folder in sorted(target.iterdir()):
        part = folder.name.removeprefix("_part=")
        written[part] = sorted(folder.glob("*.parquet"))
    return written


def final_path(out: Path, spec: TableSpec, tenant: str, part: str, run: str, n: int) -> Path:
    folder = out / spec.name / f"tenant={tenant}"
    if spec.by_month:
        return folder / f"month={part}" / f"part-{run}-{n}.parquet"
    return folder / f"{part}-{run}-{n}.parquet"


def run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def export(ws, out: str | os.PathLike, *, tenant: str | None = None, bodies: bool = False,
           replace: bool = False, progress: Progress = None) -> ExportResult:
    """Export ``ws`` into the lake at ``out`` as ``tenant`` (default: the file's stem).

    A tenant exported from another workspace (another pseudonymisation key) is refused
    unless ``replace``: two workspaces named bizchat.duckdb in different folders must not
    overwrite each other's tenant."""
    from . import erasure

    started = time.monotonic()
    say = progress or (lambda line: None)
    tenant = check_tenant(tenant if tenant is not None else default_tenant(ws.path))
    out = publish.prepare(Path(out))
    result = ExportResult(out=out, tenant=tenant)
    secret = pseudonym.secret_for(ws)
    with publish.tenant_lock(out, tenant):
        before = read_or_empty(out)
        result.files_deleted += publish.clean(out, tenant, before)   # a died run's leftovers
        old = before.data["tenants"].get(tenant) or {}
        marks = old.get("watermarks", {})
        key_id = pseudonym.key_id(secret)
        if marks.get("key_id") not in (None, key_id) and not replace:
            raise LakeError(
                f"The tenant {tenant!r} in {out} holds the export of another workspace "
                f"({old.get('source')}, made with another pseudonymisation key). Give this "
                "workspace its own tenant (--tenant NAME), or replace that tenant's data "
                "with --replace-tenant (e.g. after `bizchat privacy keys --new-key`).",
                path=str(out), input=tenant)
        same_rules = marks.get("bodies") == bodies and marks.get("key_id") == key_id \
            and marks.get("rules") == RULES
        old_parts = marks.get("partitions", {}) if same_rules else {}
        run = run_id()
        area = publish.staging(out) / tenant / run
        area.mkdir(parents=True)
        staged: dict[str, dict[str, list[Path]]] = {}
        prints: dict[str, dict[str, dict]] = {}
        schemas: dict[str, list[list[str]]] = {}
        with ws.connect(read_only=True) as con:
            keys = key_map(con, secret)
            say(f"{len(keys):,} contact keys computed")
            erased_through = erasure.last_erasure(con)
            # files written before this run may hold people erased since: checked below
            erased = erasure.erased_keys(con, since=marks.get("erasures_through")) if old else []
            salt = pa.table({"salt": pa.array([message_salt(secret)], pa.binary())})
            with store.registered(con, "_lake_keys", keys), store.registered(con, "_lake_salt", salt):
                for spec in SPECS.values():
                    sql = spec.select(bodies=bodies)
                    schemas[spec.name] = columns(con, sql)
                    prints[spec.name] = fingerprints(con, spec.select(bodies=bodies, raw=True))
                    mine = old_parts.get(spec.name, {})
                    # changed rows, or files gone from disk (a lake restored in part)
                    changed = sorted(p for p, f in prints[spec.name].items()
                                     if {"rows": mine.get(p, {}).get("rows"),
                                         "hash": mine.get(p, {}).get("hash")} != f
                                     or not all((out / e["path"]).is_file()
                                                for e in mine[p]["files"]))
                    if changed:
                        staged[spec.name] = write_parts(con, spec, bodies, changed, area)
                        rows = sum(prints[spec.name][p]["rows"] for p in changed)
                        say(f"{spec.name}: {len(changed)} partition(s), {rows:,} rows written")
        faults.point("lake.staged")
        tables, partitions = {}, {}
        for spec in SPECS.values():
            mine = old_parts.get(spec.name, {})
            now = prints[spec.name]
            dropped = [p for p in mine if p not in now]
            written = staged.get(spec.name, {})
            parts: dict[str, dict] = {}
            for part, print_ in sorted(now.items()):
                if part in written:
                    entries = []
                    for n, path in enumerate(written[part]):
                        final = final_path(out, spec, tenant, part, run, n)
                        publish.place(path, final)
                        entries.append(publish.describe(
                            out, final, pq.read_metadata(final).num_rows).as_dict())
                        faults.point("lake.file")
                    if sum(e["rows"] for e in entries) != print_["rows"]:
                        raise LakeError(f"{spec.name} {part}: the files hold "
                                        f"{sum(e['rows'] for e in entries)} rows, the workspace "
                                        f"{print_['rows']}; nothing was published.", path=str(out))
                    result.files_written += len(entries)
                    result.rows_written += print_["rows"]
                else:
                    entries = mine[part]["files"]
                parts[part] = {**print_, "files": entries}
            partitions[spec.name] = parts
            tables[spec.name] = {"partitioned_by": spec.partitioned_by, "columns": schemas[spec.name],
                                 "files": [f for p in parts.values() for f in p["files"]]}
            result.tables[spec.name] = {"rows": sum(p["rows"] for p in parts.values()),
                                        "written": len(written), "dropped": len(dropped)}
        changed_any = any(t["written"] or t["dropped"] for t in result.tables.values())
        entry = {"exported_at": now_iso(), "source": Path(ws.path).name,
                 "watermarks": {"bodies": bodies, "erasures_through": erased_through,
                                "key_id": key_id, "rules": RULES, "partitions": partitions},
                 "tables": tables}
        if changed_any or not old or old.get("tables") != tables \
                or marks.get("erasures_through") != erased_through:
            manifest = publish.publish(out, tenant, entry)
            result.published = True
        else:
            manifest = before
        result.files_deleted += publish.clean(out, tenant, manifest)
        if erased:   # belt and braces: no erased key may survive in a listed file
            result.erasure = erasure.rewrite_without(out, tenant, erased, progress=say)
            if result.erasure["files"]:
                result.files_deleted += result.erasure["files"]
    result.seconds = time.monotonic() - started
    return result

