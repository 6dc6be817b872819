"""Ibis over a data source: one connection per call, tables, lookups, time zones.

Analytics are Ibis expressions, not SQL strings, so the same metric code runs on every
Ibis backend a source opens: the workspace file (DuckDB, ``WorkspaceSource``), DuckDB over
a Parquet lake, or Spark over the same lake (``bizchat.lake.stats``). Everything
backend-specific lives in ``Tables``: the table schemas, the names tables have in the
backend, the local wall-clock time of an instant (DuckDB's ``timezone``, Spark's
``from_utc_timestamp``), minutes between two instants, and running an expression.

Why the schemas are read from ``information_schema`` instead of ``backend.table(name)``:
ibis 12 looks a table up with ``DuckDBPyRelation.fetch_arrow_table()``, which DuckDB 2.0
removed. Unbound tables (``ibis.table(schema, name)``) compile to the same SQL, and one
query for all columns costs a few milliseconds.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pandas as pd

from ...errors import InvalidValue, NotFound
from ...people.accounts import resolve_id as resolve_account_id

# The tables and views the metrics read.
TABLES = ("accounts", "contacts", "consent_events", "chats", "messages", "message_events",
          "message_status", "labels", "contact_labels", "broadcasts", "broadcast_recipients")


class Tables:
    """The Ibis backend of one open connection and the source's tables as Ibis tables.

    ``schemas`` maps each table to its columns; ``names`` (optional) maps a table to the
    name it has in the backend (a Spark session shared by several lakes and tenants holds
    each as its own temporary view). ``dialect`` picks the backend-specific expressions:
    "duckdb" or "pyspark".
    """

    def __init__(self, backend, schemas: dict[str, dict], *, names: dict[str, str] | None = None,
                 dialect: str = "duckdb", resolve_account: Callable[[object], int] | None = None):
        self.backend = backend
        self.resolve_account = resolve_account
        self.dialect = dialect
        self._schemas = schemas
        self._names = names or {}
        self._tables: dict[str, ir.Table] = {}

    def __getattr__(self, name: str) -> ir.Table:
        if name.startswith("_") or name not in self._schemas:
            raise AttributeError(name)
        if name not in self._tables:
            self._tables[name] = ibis.table(self._schemas[name], name=self._names.get(name, name))
        return self._tables[name]

    def execute(self, expr: ir.Table) -> pd.DataFrame:
        """Run ``expr`` and return pandas: the edge where results leave Ibis.

        Through Arrow rather than ``backend.execute``: ibis 12's pandas conversion reads a
        pandas option that pandas 3 deprecates (a warning, an error under pytest).
        """
        with warnings.catch_warnings():
            if self.dialect == "pyspark":
                # pyspark's toPandas and ibis's pyspark results use options pandas 3
                # deprecates (copy=, future.infer_string): their warnings, not ours.
                warnings.simplefilter("ignore", getattr(pd.errors, "Pandas4Warning",
                                                        DeprecationWarning))
            table = self.backend.to_pyarrow(expr)
        return to_pandas(table.to_pandas(date_as_object=False), expr.schema())

    def local_time(self, ts: ir.TimestampValue, tz: str) -> ir.TimestampValue:
        """The local wall-clock time of a UTC instant in ``tz`` (a naive timestamp).

        Hours, weekdays and day/week/month buckets of the result follow the zone's
        daylight-saving rules.
        """
        if self.dialect == "pyspark":
            return _from_utc_timestamp(ts, tz)
        return _timezone(tz, ts)

    def minutes_between(self, later: ir.TimestampValue,
                        earlier: ir.TimestampValue) -> ir.FloatingValue:
        """Minutes from ``earlier`` to ``later`` (whole milliseconds: both engines count
        the millisecond boundaries crossed, so the results are identical)."""
        if self.dialect == "pyspark":
            ms = _unix_millis(later) - _unix_millis(earlier)
        else:
            ms = later.delta(earlier, unit="millisecond")
        return ms.cast("float64") / 60_000.0

    def account_id(self, ref) -> int:
        """The account_id ``ref`` names: the source's own resolver (the workspace knows
        accounts by any form of their number and phone_number_id), else by account_id."""
        if self.resolve_account is not None:
            return self.resolve_account(ref)
        return lookup_account_id(self, ref)


class Source(Protocol):
    """Where ``Stats`` reads from: opens one ``Tables`` session per call and turns the
    source's contact ids into the pseudonymous ``contact_key`` of contact-level tables."""

    def session(self) -> contextlib.AbstractContextManager[Tables]: ...

    def contact_keys(self, contact_ids: Iterable) -> list[str | None]: ...

    def describe(self) -> str: ...


class WorkspaceSource:
    """The workspace file: one read-only DuckDB connection per stats call."""

    def __init__(self, ws):
        self.ws = ws

    def session(self) -> contextlib.AbstractContextManager[Tables]:
        return session(self.ws)

    def contact_keys(self, contact_ids: Iterable) -> list[str | None]:
        from .pseudonym import pseudonym_key, pseudonymize
        return pseudonymize(contact_ids, pseudonym_key(self.ws))

    def describe(self) -> str:
        return f"workspace {self.ws.path}"


@contextlib.contextmanager
def session(ws) -> Iterator[Tables]:
    """A read-only connection for one stats call, closed afterwards.

    Uses the workspace's connection policy (retry while another process writes, UTC);
    Ibis wraps the open DuckDB connection instead of opening its own, so no second
    connection with another configuration is ever opened in this process.
    """
    with ws.connect(read_only=True) as con:
        backend = ibis.duckdb.from_connection(con)
        yield Tables(backend, duckdb_schemas(con, backend),
                     resolve_account=lambda ref: resolve_account_id(con, ref))


def duckdb_schemas(con, backend, tables: Iterable[str] = TABLES,
                   schema: str = "main") -> dict[str, dict]:
    """The columns of ``tables`` in a DuckDB connection as Ibis types, one query."""
    rows = con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name IN (SELECT unnest(?)) "
        "ORDER BY table_name, ordinal_position", [schema, list(tables)]).fetchall()
    schemas: dict[str, dict] = {}
    mapper = backend.compiler.type_mapper
    for table, column, type_ in rows:
        schemas.setdefault(table, {})[column] = mapper.from_string(type_)
    return schemas


def to_pandas(df: pd.DataFrame, schema=None) -> pd.DataFrame:
    """Results at the edge, the same from every backend: a dense index; integer columns
    that can be missing (an error code, the label_id of "(no label)") as nullable
    integers rather than floats; instants as microsecond UTC timestamps; local times
    (naive) as microsecond timestamps."""
    df = df.reset_index(drop=True)
    for column, dtype in (schema.items() if schema is not None else ()):
        values = df[column]
        if dtype.is_integer() and pd.api.types.is_float_dtype(values):
            df[column] = values.astype("Int64")
        elif dtype.is_timestamp() and pd.api.types.is_datetime64_any_dtype(values):
            aware = getattr(values.dt, "tz", None) is not None
            if dtype.timezone is not None:
                values = values.dt.tz_convert("UTC") if aware else values.dt.tz_localize("UTC")
                df[column] = values.astype("datetime64[us, UTC]")
            else:
                values = values.dt.tz_convert("UTC").dt.tz_localize(None) if aware else values
                df[column] = values.astype("datetime64[us]")
    return df


# --- time -------------------------------------------------------------------------------------

@ibis.udf.scalar.builtin(name="timezone")
# ibis reads the SQL types from these annotations (instances, not classes):
def _timezone(zone: str, ts: dt.Timestamp(timezone="UTC")  # type: ignore[valid-type]
              ) -> dt.Timestamp(timezone=None):  # type: ignore[valid-type]
    """DuckDB's timezone(zone, timestamptz): the wall-clock time in ``zone``."""


@ibis.udf.scalar.builtin(name="from_utc_timestamp")
def _from_utc_timestamp(ts: dt.Timestamp(timezone="UTC"),  # type: ignore[valid-type]
                        zone: str) -> dt.Timestamp(timezone=None):  # type: ignore[valid-type]
    """Spark's from_utc_timestamp(ts, zone): the wall-clock time in ``zone``."""


@ibis.udf.scalar.builtin(name="unix_millis")
def _unix_millis(ts: dt.Timestamp(timezone="UTC")) -> dt.int64:  # type: ignore[valid-type]
    """Spark's unix_millis(ts): milliseconds since the epoch (truncated)."""



def check_tz(tz: str | None) -> str:
    tz = tz or "UTC"
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidValue(
            f"Unknown time zone {tz!r}. Use an IANA name such as 'Europe/Berlin' or 'UTC'.",
            input=tz) from None
    return tz


def as_utc(value, name: str) -> datetime | None:
    """A time filter bound as an aware UTC datetime; naive values and dates are UTC."""
    if value is None:
        return None
    try:
        if isinstance(value, date) and not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day)
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise InvalidValue(
            f"{name}={value!r} is not a date or time. Write e.g. 2025-03-01 or "
            "2025-03-01T08:00:00+01:00.", input=value, argument=name) from None
    if pd.isna(stamp):
        raise InvalidValue(f"{name} is empty; leave it out or give a date.", input=value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def ratio(num: ir.NumericValue, den: ir.NumericValue) -> ir.FloatingValue:
    """num / den as a float; NULL (NaN in pandas) when den is 0."""
    return num.cast("float64") / den.cast("float64").nullif(0.0)


# --- filters ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Filters:
    """Resolved filters: an account, a half-open UTC time range, labels, a category.

    ``label_ids`` keeps contacts that carry any of the labels (current assignments).
    ``category`` is the broadcast's template category (marketing, utility);
    ``broadcast_ids`` keeps only those broadcasts.
    """

    account_id: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    label_ids: tuple[int, ...] = ()
    category: str | None = None
    broadcast_ids: tuple[int, ...] = ()

    def time(self, ts: ir.TimestampValue) -> list[ir.BooleanValue]:
        """Predicates keeping ``ts`` in [start, end)."""
        preds = []
        if self.start is not None:
            preds.append(ts >= self.start)
        if self.end is not None:
            preds.append(ts < self.end)
        return preds

    def has_label(self, t: Tables, contact_id: ir.IntegerValue) -> ir.BooleanValue:
        """``contact_id`` carries one of the labels (an IN subquery: unlike a semi join it
        keeps the filtered table a plain relation for the joins that follow)."""
        cl = t.contact_labels
        return contact_id.isin(cl.filter(cl.label_id.isin(list(self.label_ids))).contact_id)


CATEGORIES = ("marketing", "utility")


def resolve_filters(t: Tables, *, account=None, start=None, end=None,
                    labels: Iterable[str] | str | None = None,
                    category: str | None = None, broadcasts=None) -> Filters:
    """Check the user's filters against the source and resolve names to ids (small Ibis
    lookups, so every source answers them the same way)."""
    account_id = t.account_id(account) if account is not None else None
    start_utc, end_utc = as_utc(start, "start"), as_utc(end, "end")
    if start_utc and end_utc and start_utc >= end_utc:
        raise InvalidValue(f"start ({start_utc:%Y-%m-%d %H:%M} UTC) is not before end "
                           f"({end_utc:%Y-%m-%d %H:%M} UTC); swap them.", input=(start, end))
    if category is not None and category not in CATEGORIES:
        raise InvalidValue(f"Unknown template category {category!r}; broadcasts are "
                           f"{' or '.join(CATEGORIES)}.", input=category)
    label_ids: tuple[int, ...] = ()
    if labels:
        names = [labels] if isinstance(labels, str) else list(labels)
        wanted = sorted({str(n).strip().lower() for n in names})
        lb = t.labels
        preds = [lb["name"].lower().isin(wanted)]
        if account_id is not None:
            preds.append(lb.account_id == account_id)
        found = t.execute(lb.filter(*preds).select("label_id", low=lb["name"].lower()))
        missing = sorted(set(wanted) - set(found["low"]))
        if missing:
            raise NotFound(f"No label named {', '.join(map(repr, missing))}"
                           f"{' in this account' if account_id is not None else ''}. "
                           "List the labels with `bizchat labels list --account ...`.",
                           input=missing)
        label_ids = tuple(sorted(int(i) for i in found["label_id"]))
    broadcast_ids: tuple[int, ...] = ()
    if broadcasts is not None:
        given = [broadcasts] if isinstance(broadcasts, int | str) else list(broadcasts)
        try:
            broadcast_ids = tuple(sorted({int(b) for b in given}))
        except (TypeError, ValueError):
            raise InvalidValue(f"Broadcasts are given by their id (a number), not {broadcasts!r}.",
                               input=broadcasts) from None
        b = t.broadcasts
        known = set(t.execute(b.filter(b.broadcast_id.isin(list(broadcast_ids)))
                              .select("broadcast_id"))["broadcast_id"].astype(int))
        if set(broadcast_ids) - known:
            raise NotFound(f"No broadcast {sorted(set(broadcast_ids) - known)} in this workspace. "
                           "List them with `bizchat stats open-rates`.", input=broadcasts)
    return Filters(account_id, start_utc, end_utc, label_ids, category, broadcast_ids)


def lookup_account_id(t: Tables, ref) -> int:
    """The account_id ``ref`` names where accounts are known by id only (the lake keeps
    no phone numbers)."""
    a = t.accounts
    text = str(ref.get("account_id") if isinstance(ref, dict) else ref).strip()
    if text.isdigit():
        found = t.execute(a.filter(a.account_id == int(text)).select("account_id"))
        if len(found):
            return int(found["account_id"].iloc[0])
    raise NotFound(f"No account {ref!r} here. The lake knows accounts by account_id"
                   " (phone numbers are not exported); list them with "
                   "`bizchat accounts list` on the workspace.", input=ref)


def account_zones(t: Tables, account_id: int | None = None) -> set[str]:
    """The time zones of one account, or of all accounts."""
    a = t.accounts
    if account_id is not None:
        a = a.filter(a.account_id == int(account_id))
    zones = t.execute(a.select("timezone").distinct())["timezone"]
    return {z for z in zones if isinstance(z, str) and z}


def now_utc() -> datetime:
    return datetime.now(UTC)
