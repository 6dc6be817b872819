"""Spark for the lake's metrics: a session sensible for small local runs, UTC while we query.

``session(master)`` makes (or reuses) a SparkSession. Without a master and outside
spark-submit it is ``local[2]``: few shuffle partitions (Spark's default 200 cost seconds
of task scheduling on tiny tables), no UI, no console progress bar, an in-memory catalog
and warehouse in a temporary folder, partition-column type inference
off (``tenant=000`` would otherwise become the number 0), the driver bound to 127.0.0.1
and JVM logs at ERROR. Under spark-submit (or with ``spark.master`` in the Spark
configuration) the cluster's settings are left as they are.

``utc(spark)`` pins ``spark.sql.session.timeZone`` to UTC for one unit of work and puts the
user's setting back afterwards: lake timestamps are naive UTC, and Spark interprets them
(and casts, truncations, ``from_utc_timestamp``) in the session time zone. ibis's
``pyspark.connect`` sets UTC (and ``spark.sql.mapKeyDedupPolicy``) for good on the session
it wraps; those are restored too, so a user's own session is never changed for good.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import LakeError

# What ibis or our queries set on a session, restored after each unit of work.
PINNED = {"spark.sql.session.timeZone": "UTC"}
TOUCHED = ("spark.sql.session.timeZone", "spark.sql.mapKeyDedupPolicy")
LOCAL_MASTER = "local[2]"


def _import_pyspark():
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise LakeError("Spark is not installed. Install the extra: pip install 'bizchat[spark]' "
                        "(Spark also needs a Java runtime, 17 or newer).",
                        input="spark") from None
    return SparkSession


def configured_master() -> str | None:
    """The master the usual Spark configuration gives (spark-submit, spark-defaults.conf)."""
    if os.environ.get("PYSPARK_GATEWAY_PORT"):      # launched by spark-submit / pyspark
        return "(spark-submit)"
    conf_dir = os.environ.get("SPARK_CONF_DIR") or (
        os.path.join(os.environ["SPARK_HOME"], "conf") if os.environ.get("SPARK_HOME") else None)
    if conf_dir:
        defaults = Path(conf_dir) / "spark-defaults.conf"
        if defaults.is_file():
            for line in defaults.read_text(encoding="utf-8", errors="replace").splitlines():
                parts = line.split(None, 1)
                if len(parts) == 2 and parts[0] == "spark.master":
                    return parts[1].strip()
    return None


def session(master: str | None = None):
    """(SparkSession, made_here) for the lake's metrics: the active session when there is
    one and no master is asked for, else a new one on ``master`` (default: the configured
    master, else ``local[2]``) with settings for small runs when local."""
    SparkSession = _import_pyspark()
    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        return active, False
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.appName("bizchat")
    chosen = master or (None if configured_master() else LOCAL_MASTER)
    if chosen is not None:
        builder = builder.master(chosen)
    local = (chosen or "").startswith("local")
    log_conf = Path(__file__).with_name("log4j2.properties")
    settings = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.extraJavaOptions":
            f"-Duser.timezone=UTC -Dlog4j2.configurationFile={log_conf.as_uri()}",
    }
    if local:
        settings.update({
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.sql.catalogImplementation": "in-memory",
            "spark.sql.warehouse.dir": tempfile.mkdtemp(prefix="bizchat-spark-"),
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
        })
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # no Java, a master that does not answer
        raise LakeError(f"Spark did not start ({type(exc).__name__}: {str(exc).strip()[:300]}). "
                        "Spark needs a Java runtime (17 or newer) on PATH or in JAVA_HOME; "
                        "with --spark-master, check the URL.", input=master) from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark, True


@contextlib.contextmanager
def utc(spark) -> Iterator[None]:
    """Run the block with the session time zone UTC; restore every setting we touched."""
    before = {key: spark.conf.get(key, None) for key in TOUCHED}
    try:
        for key, value in PINNED.items():
            spark.conf.set(key, value)
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


SPARK_TYPES = {"BOOLEAN": "BOOLEAN", "TINYINT": "TINYINT", "SMALLINT": "SMALLINT",
               "INTEGER": "INT", "BIGINT": "BIGINT", "HUGEINT": "DECIMAL(38,0)",
               "FLOAT": "FLOAT", "DOUBLE": "DOUBLE", "VARCHAR": "STRING", "DATE": "DATE",
               "TIMESTAMP": "TIMESTAMP", "TIMESTAMP WITH TIME ZONE": "TIMESTAMP",
               "BLOB": "BINARY", "JSON": "STRING"}


def spark_type(duckdb_type: str) -> str:
    """The Spark SQL type of a DuckDB type named in the manifest (for empty tables)."""
    upper = duckdb_type.upper()
    if upper.startswith("DECIMAL"):
        return upper
    return SPARK_TYPES.get(upper, "STRING")


def ibis_backend(spark):
    """ibis's pyspark backend over ``spark``, with one fix to its SQL: ``count(where=p)``.

    ibis compiles it as ``sum(cast(p AS BIGINT))``, which is NULL, not 0, when ``p`` is NULL
    on every row of a group (a variant nobody replied to: ``reply_at <= ...`` is NULL), while
    DuckDB's ``count(*) FILTER (WHERE p)`` gives 0. Spark's ``count_if(p)`` counts the rows
    where ``p`` is true, as DuckDB does. Call inside ``utc()``: connecting sets the session
    time zone."""
    import ibis
    from ibis.backends.sql.compilers.pyspark import PySparkCompiler

    class Compiler(PySparkCompiler):
        def visit_CountStar(self, op, *, arg, where):
            if where is not None:
                return self.f.count_if(where)
            return super().visit_CountStar(op, arg=arg, where=where)

    backend = ibis.pyspark.connect(spark)
    backend.compiler = Compiler()
    return backend


def read_text(spark, url: str) -> str:
    """A small text file (the manifest) read through Hadoop's file systems, as Spark reads
    the lake's files: s3a://, gs://, hdfs://, file://. Not ``spark.read.text``: Spark's file
    listing skips names starting with ``_`` (``_manifest.json``) as hidden."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(url)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    stream = fs.open(path)
    try:
        return jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()
