"""The lake's manifest: ``DIR/_manifest.json``, the only truth of what is published.

Readers read only the files listed here, never what a glob of the folder finds: the files
of an export that died before publishing are on disk but invisible. The exporter replaces
the manifest in one atomic step (temp file, fsync, ``os.replace``), so a reader sees either
the old lake or the new one.

The format (``"format": 1``)::

    {"format": 1, "published_at": "<ISO UTC>",
     "tenants": {"<tenant>": {"exported_at": "<ISO UTC>", "source": "<workspace file name>",
                  "watermarks": {...the exporter's bookkeeping...},
                  "tables": {"<table>": {"partitioned_by": ["tenant", "month"] | ["tenant"],
                                         "columns": [["<name>", "<DuckDB type>"], ...],
                                         "files": [{"path": "<relative, / separated>",
                                                    "rows": N, "bytes": B, "sha256": "..."}]}}}}}

``columns`` gives each table's schema even when it has no file (a tenant without
broadcasts), so a reader can make an empty table of the right types.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from ..errors import LakeError, NotFound

NAME = "_manifest.json"
FORMAT = 1
TENANT = re.compile(r"[a-z0-9_-]{1,40}")


@dataclass(frozen=True)
class FileEntry:
    """One published Parquet file: its path relative to the lake, rows, bytes, checksum."""

    path: str
    rows: int
    bytes: int
    sha256: str

    def as_dict(self) -> dict:
        return {"path": self.path, "rows": self.rows, "bytes": self.bytes, "sha256": self.sha256}


def how_to_make(dir: Path) -> str:
    return f"Make one with `bizchat lake export --out {dir}` (run it in each workspace)."


class Manifest:
    """A parsed ``_manifest.json`` of the lake at ``dir``."""

    def __init__(self, dir: Path, data: dict):
        self.dir = Path(dir)
        self.data = data

    @classmethod
    def empty(cls, dir: Path) -> Manifest:
        return cls(dir, {"format": FORMAT, "published_at": None, "tenants": {}})

    # --- reading ---------------------------------------------------------------------------

    def tenants(self) -> list[str]:
        """The tenants in the lake, sorted."""
        return sorted(self.data["tenants"])

    def pick(self, tenant: str | None = None) -> str:
        """The tenant to read: ``tenant`` if the lake holds it, else the only one; with
        several and none named, LakeError listing them (ids are per tenant)."""
        if tenant is not None:
            self.tenant(tenant)
            return tenant
        held = self.tenants()
        if len(held) == 1:
            return held[0]
        if not held:
            raise LakeError(f"The lake {self.dir} holds no tenant yet. {how_to_make(self.dir)}",
                            path=str(self.dir))
        raise LakeError(f"The lake {self.dir} holds {len(held)} tenants ({', '.join(held)}); "
                        "name one (--tenant NAME): ids are per workspace.",
                        path=str(self.dir), tenants=held)

    def tenant(self, tenant: str) -> dict:
        """The manifest entry of one tenant (NotFound naming the tenants there are)."""
        try:
            return self.data["tenants"][tenant]
        except KeyError:
            held = ", ".join(self.tenants()) or "none"
            raise NotFound(f"The lake {self.dir} has no tenant {tenant!r} (it holds: {held}).",
                           input=tenant, tenants=self.tenants()) from None

    def tables(self, tenant: str) -> list[str]:
        return list(self.tenant(tenant)["tables"])

    def table(self, tenant: str, table: str) -> dict:
        tables = self.tenant(tenant)["tables"]
        if table not in tables:
            raise NotFound(f"The lake {self.dir} has no table {table!r} for tenant {tenant!r}.",
                           input=table)
        return tables[table]

    def entries(self, tenant: str, table: str) -> list[FileEntry]:
        return [FileEntry(**f) for f in self.table(tenant, table)["files"]]

    def files(self, tenant: str, table: str) -> list[Path]:
        """The absolute paths of the published files of ``table`` for ``tenant``."""
        return [self.dir / e.path for e in self.entries(tenant, table)]

    def columns(self, tenant: str, table: str) -> list[tuple[str, str]]:
        """(name, DuckDB type) of the table's columns inside the files (no tenant/month)."""
        return [(c[0], c[1]) for c in self.table(tenant, table).get("columns", [])]

    def partitioned_by(self, tenant: str, table: str) -> list[str]:
        return list(self.table(tenant, table)["partitioned_by"])

    def all_entries(self) -> list[FileEntry]:
        """Every file listed, for all tenants and tables."""
        return [FileEntry(**f) for t in self.data["tenants"].values()
                for table in t["tables"].values() for f in table["files"]]

    # --- writing (the exporter's) ----------------------------------------------------------

    def with_tenant(self, tenant: str, entry: dict | None) -> Manifest:
        """A copy with ``tenant``'s entry replaced (removed when ``entry`` is None)."""
        tenants = dict(self.data["tenants"])
        if entry is None:
            tenants.pop(tenant, None)
        else:
            tenants[tenant] = entry
        return Manifest(self.dir, {"format": FORMAT, "published_at": now_iso(),
                                   "tenants": dict(sorted(tenants.items()))})

    def write(self) -> None:
        """Replace ``DIR/_manifest.json`` atomically: temp file, fsync, rename, fsync dir."""
        path = self.dir / NAME
        tmp = self.dir / f".{NAME}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(self.data, fh, indent=1, sort_keys=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(self.dir)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (POSIX: fsync the directory)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_path(dir: Path, rel: object) -> None:
    """A listed path must stay inside the lake: relative, '/'-separated, no '..'."""
    if not isinstance(rel, str) or not rel:
        raise LakeError(f"The manifest of the lake {dir} lists a file without a path.", path=str(dir))
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or "\\" in rel or rel.startswith("_"):
        raise LakeError(f"The manifest of the lake {dir} lists {rel!r}, which is not a path "
                        "inside the lake; the manifest was not written by bizchat.",
                        path=str(dir), input=rel)


def _check(dir: Path, data: object) -> dict:
    if not isinstance(data, dict) or "format" not in data:
        raise LakeError(f"{dir / NAME} is not a bizchat lake manifest. {how_to_make(dir)}",
                        path=str(dir))
    if data["format"] != FORMAT:
        raise LakeError(f"The lake {dir} has manifest format {data['format']!r}; this bizchat "
                        f"reads format {FORMAT}. Export into a new folder, or use the bizchat "
                        "that wrote it.", path=str(dir), input=data["format"])
    tenants = data.get("tenants")
    if not isinstance(tenants, dict):
        raise LakeError(f"{dir / NAME} has no tenants object; it was not written by bizchat.",
                        path=str(dir))
    for name, tenant in tenants.items():
        if not TENANT.fullmatch(str(name)) or not isinstance(tenant, dict) \
                or not isinstance(tenant.get("tables"), dict):
            raise LakeError(f"{dir / NAME} has a malformed entry for tenant {name!r}.",
                            path=str(dir), input=name)
        for table in tenant["tables"].values():
            for f in table.get("files", []):
                _check_path(dir, f.get("path") if isinstance(f, dict) else None)
    return data


def read_manifest(dir: str | os.PathLike) -> Manifest:
    """The manifest of the lake at ``dir`` (LakeError when there is none or it is foreign)."""
    dir = Path(dir)
    path = dir / NAME
    if dir.exists() and not dir.is_dir():
        raise LakeError(f"{dir} is a file, not a lake folder. {how_to_make(dir)}", path=str(dir))
    if not path.exists():
        what = "has no manifest (_manifest.json)" if dir.is_dir() else "does not exist"
        raise LakeError(f"The lake {dir} {what}, so nothing in it is published. "
                        f"{how_to_make(dir)}", path=str(dir))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LakeError(f"Cannot read the manifest {path}: {exc}. {how_to_make(dir)}",
                        path=str(dir)) from None
    return Manifest(dir, _check(dir, data))


def read_or_empty(dir: Path) -> Manifest:
    """The exporter's view: the manifest, or an empty one for a new lake folder."""
    if not (Path(dir) / NAME).exists():
        if Path(dir).exists() and not Path(dir).is_dir():
            raise LakeError(f"The lake folder {dir} is a file. Give a folder (it is created "
                            "if missing).", path=str(dir))
        return Manifest.empty(Path(dir))
    return read_manifest(dir)


__all__ = ["FORMAT", "NAME", "TENANT", "FileEntry", "Manifest", "read_manifest", "read_or_empty"]
