"""The same metrics on the lake: ``LakeStats``, a ``Stats`` over one tenant of a Parquet lake.

Every metric is the stats package's own Ibis expression; only the source differs. A
source opens one session per call, reads the manifest (the only truth of what is
published: files of an export that died before publishing are never read), and exposes
each table of one tenant under the name and column names the metrics use:

- ``contact_key`` (the workspace's HMAC pseudonym) as ``contact_id``, so joins, distinct
  counts and label filters work unchanged, and contact-level tables show the key as is;
- naive UTC ``TIMESTAMP`` columns as instants (``TIMESTAMPTZ`` on DuckDB, Spark's
  ``TIMESTAMP`` read in the pinned UTC session time zone);
- an empty table (a tenant without broadcasts) from the manifest's column types.

Engines: ``duckdb`` (an in-memory DuckDB with views over the listed files, Hive
partitioning with ``hive_types_autocast=false``) and ``spark`` (temporary views in a Spark
session, through ``ibis.pyspark``; the session time zone is UTC while a call runs and the
user's setting comes back afterwards). Ids (account, broadcast, label, chat, message) are
per tenant, so a LakeStats reads one tenant; in a lake of several, name it.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import ibis

from .. import store
from ..analytics.stats import Stats
from ..analytics.stats.tables import TABLES, Tables, duckdb_schemas
from ..errors import InvalidValue, LakeError
from . import spark as sparks
from .manifest import NAME, Manifest, parse_manifest, read_manifest

ENGINES = ("duckdb", "spark")
KEY = "contact_key"
TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_ ]*(\([0-9, ]+\))?")   # INTEGER, DECIMAL(18,3)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class LakeTable:
    """One table of one tenant as the lake lists it: files and (column, DuckDB type)."""

    def __init__(self, manifest: Manifest, tenant: str, name: str, url: str | None = None):
        self.name = name
        if url is not None:  # object storage: the engine checks and reads the files
            self.files: list = [f"{url}/{e.path}" for e in manifest.entries(tenant, name)]
        else:
            self.files = manifest.files(tenant, name)
        self.columns = manifest.columns(tenant, name)
        wrong = [c for c in self.columns if not TYPE.fullmatch(c[1])]
        if wrong:  # the types go into SQL text: only type names, never anything else
            raise LakeError(f"The manifest of {manifest.dir} gives {name}.{wrong[0][0]} the "
                            f"type {wrong[0][1]!r}, which is not a column type; the manifest "
                            "was not written by bizchat.", path=str(manifest.dir), input=wrong[0])
        if not self.columns:
            raise LakeError(f"The manifest of {manifest.dir} gives no columns for {name!r} of "
                            f"tenant {tenant!r}; re-export it with this bizchat.",
                            path=str(manifest.dir), input=name)
        missing = [str(p) for p in self.files if url is None and not p.is_file()]
        if missing:
            raise LakeError(f"The lake {manifest.dir} lists {len(missing)} file(s) of {name!r} "
                            f"that are missing (e.g. {missing[0]}). Check it with `bizchat lake "
                            "verify` and re-export the tenant.", path=missing[0], input=name)

    def out_name(self, column: str) -> str:
        return "contact_id" if column == KEY else column

    def is_instant(self, type_: str) -> bool:
        return type_.upper() == "TIMESTAMP"


class LakeSource:
    """One tenant of a lake, read with DuckDB or Spark; one session per stats call."""

    _runs = itertools.count()

    def __init__(self, lake_dir: str | os.PathLike, tenant: str | None = None,
                 engine: str = "duckdb", spark=None, spark_master: str | None = None):
        if engine not in ENGINES:
            raise InvalidValue(f"Unknown engine {engine!r}; choose {' or '.join(ENGINES)}.",
                               input=engine)
        text = str(lake_dir)
        # A URL (s3a://, gs://, hdfs://, file://): Spark reads it through Hadoop's file
        # systems, the manifest included; DuckDB reads local folders.
        self.url = text.rstrip("/") if "://" in text else None
        if self.url is not None and engine != "spark":
            raise InvalidValue(f"The lake {text} is a URL: read it with engine 'spark' "
                               "(--engine spark), or mount it as a folder.", input=text)
        self.dir = Path(lake_dir)
        self.engine = engine
        self._spark = spark
        self._own_spark = False
        self._spark_master = spark_master
        self._ibis_spark = None
        self._views: tuple[str, dict[str, str], dict[str, dict]] | None = None
        self.tenant = self._manifest().pick(tenant)

    def describe(self) -> str:
        return f"lake {self.url or self.dir} (tenant {self.tenant}, {self.engine})"

    def contact_keys(self, contact_ids: Iterable) -> list[str | None]:
        """The lake holds the keys themselves."""
        return [None if k is None or k != k else str(k) for k in contact_ids]

    def _tables(self) -> tuple[str, list[LakeTable]]:
        """(a fingerprint of the tenant's manifest entry, its tables). Read per call, so a
        newer export shows at the next call."""
        manifest = self._manifest()
        manifest.pick(self.tenant)
        entry = json.dumps(manifest.tenant(self.tenant), sort_keys=True)
        present = set(manifest.tables(self.tenant))
        absent = [t for t in TABLES if t not in present]
        if absent:
            raise LakeError(f"Tenant {self.tenant!r} of the lake {self.dir} has no "
                            f"{', '.join(absent)}; re-export it with this bizchat.",
                            path=str(self.dir), input=absent)
        stamp = hashlib.sha256(entry.encode("utf-8")).hexdigest()
        return stamp, [LakeTable(manifest, self.tenant, name, self.url) for name in TABLES]

    def _manifest(self) -> Manifest:
        if self.url is None:
            return read_manifest(self.dir)
        spark = self.spark()
        try:
            text = sparks.read_text(spark, f"{self.url}/{NAME}")
        except Exception as exc:  # no such file, no credentials, no file system for the scheme
            raise LakeError(f"Cannot read the manifest of the lake {self.url} "
                            f"({type(exc).__name__}: {str(exc).strip()[:200]}). Check the URL, "
                            "the credentials and that the file system's package is on Spark's "
                            "classpath (docs/scale.md).", path=self.url) from None
        return parse_manifest(self.url, text)

    def _base(self, table: str) -> str:
        return f"{self.url}/{table}" if self.url is not None else str(self.dir / table)

    def session(self) -> contextlib.AbstractContextManager[Tables]:
        return self._duckdb() if self.engine == "duckdb" else self._spark_session()

    # --- DuckDB --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _duckdb(self) -> Iterator[Tables]:
        con = store.connect(":memory:")  # the workspace's policy: UTC, no replacement scans
        try:
            for table in self._tables()[1]:
                con.execute(f"CREATE VIEW {_quote(table.name)} AS {self._duckdb_select(table)}")
            backend = ibis.duckdb.from_connection(con)
            yield Tables(backend, duckdb_schemas(con, backend))
        finally:
            con.close()

    @staticmethod
    def _duckdb_select(table: LakeTable) -> str:
        cols = []
        for name, type_ in table.columns:
            expr = f"CAST({_quote(name)} AS TIMESTAMPTZ)" if table.is_instant(type_) else _quote(name)
            cols.append(f"{expr} AS {_quote(table.out_name(name))}")
        if not table.files:
            empty = ", ".join(
                f"CAST(NULL AS {'TIMESTAMPTZ' if table.is_instant(type_) else type_}) "
                f"AS {_quote(table.out_name(name))}" for name, type_ in table.columns)
            return f"SELECT {empty} WHERE false"
        files = ", ".join(_sql_string(str(p)) for p in table.files)
        return (f"SELECT {', '.join(cols)} FROM read_parquet([{files}], hive_partitioning = true, "
                "hive_types_autocast = false)")

    # --- Spark ---------------------------------------------------------------------------

    def spark(self):
        """The Spark session (made on first use; shared by every call of this source)."""
        if self._spark is None:
            self._spark, self._own_spark = sparks.session(self._spark_master)
        return self._spark

    def close(self) -> None:
        """Stop the Spark session if this source started it."""
        if self._spark is not None:
            self._drop_views()
            if self._own_spark:
                self._spark.stop()
        self._spark, self._own_spark, self._ibis_spark = None, False, None

    @contextlib.contextmanager
    def _spark_session(self) -> Iterator[Tables]:
        spark = self.spark()
        stamp, tables = self._tables()
        with sparks.utc(spark):
            if self._ibis_spark is None:
                self._ibis_spark = sparks.ibis_backend(spark)
            if self._views is None or self._views[0] != stamp:
                # Reading a table's files (listing, footers) costs seconds on Spark: the
                # views stay until the tenant's entry in the manifest changes.
                self._drop_views()
                run = next(self._runs)
                views: dict[str, str] = {}
                for table in tables:
                    view = f"bizchat_lake_{os.getpid()}_{run}_{table.name}"
                    self._spark_frame(spark, table).createOrReplaceTempView(view)
                    views[table.name] = view
                self._views = (stamp, views, self._schemas(tables))
            _, views, schemas = self._views
            yield Tables(self._ibis_spark, schemas, names=views, dialect="pyspark")

    @staticmethod
    def _schemas(tables: list[LakeTable]) -> dict[str, dict]:
        """The tables' Ibis schemas, as the DuckDB engine sees them (the manifest's types)."""
        con = store.connect(":memory:")
        try:
            for table in tables:
                con.execute(f"CREATE VIEW {_quote(table.name)} AS "
                            f"{LakeSource._duckdb_select(_Empty(table))}")
            return duckdb_schemas(con, ibis.duckdb.from_connection(con))
        finally:
            con.close()

    def _drop_views(self) -> None:
        if self._views is not None and self._spark is not None:
            for view in self._views[1].values():
                self._spark.catalog.dropTempView(view)
        self._views = None

    def _spark_frame(self, spark, table: LakeTable):
        cols = []
        for name, type_ in table.columns:
            ident = f"`{name}`"
            expr = f"CAST({ident} AS TIMESTAMP)" if table.is_instant(type_) else ident
            cols.append(f"{expr} AS `{table.out_name(name)}`")
        if not table.files:
            empty = ", ".join(f"CAST(NULL AS {sparks.spark_type(type_)}) AS `{table.out_name(name)}`"
                              for name, type_ in table.columns)
            return spark.sql(f"SELECT {empty} WHERE false")
        frame = (spark.read.option("basePath", self._base(table.name))
                 .parquet(*[str(p) for p in table.files]))
        return frame.selectExpr(*cols)


class _Empty(LakeTable):
    """A table's columns without its files (its schema, for mapping types)."""

    def __init__(self, table: LakeTable):
        self.name, self.columns, self.files = table.name, table.columns, []


class LakeStats(Stats):
    """``ws.stats`` on the lake: the same methods, arguments and results, read from one
    tenant of the Parquet lake at ``lake_dir`` with ``engine`` "duckdb" or "spark".

    ``tenant`` is required when the lake holds several. For Spark, pass your own
    ``spark`` session, or ``spark_master`` (else the configured master, else
    ``local[2]``); the session's time zone is UTC only while a call runs. Accounts are
    named by account_id (the lake keeps no phone numbers). ``recipients`` shows the
    ``contact_key`` the lake holds (the same key ``ws.stats.recipients`` computes).
    """

    def __init__(self, lake_dir: str | os.PathLike, tenant: str | None = None, *,
                 engine: str = "duckdb", spark=None, spark_master: str | None = None):
        self.lake = LakeSource(lake_dir, tenant, engine, spark, spark_master)
        super().__init__(source=self.lake)

    @property
    def tenant(self) -> str:
        return self.lake.tenant

    @property
    def engine(self) -> str:
        return self.lake.engine

    def close(self) -> None:
        """Stop the Spark session this LakeStats started (never one it was given)."""
        self.lake.close()

    def __enter__(self) -> LakeStats:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
