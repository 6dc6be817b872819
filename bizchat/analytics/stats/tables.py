"""Ibis over the workspace: one read-only connection per call, tables, filters, time zones.

Analytics are Ibis expressions, not SQL strings, so the same metric code can later run on
another Ibis backend (e.g. PySpark). Everything backend-specific lives here: the DuckDB
connection, the table schemas and ``local_time`` (the one function a port must swap).

Why the schemas are read from ``information_schema`` instead of ``backend.table(name)``:
ibis 12 looks a table up with ``DuckDBPyRelation.fetch_arrow_table()``, which DuckDB 2.0
removed. Unbound tables (``ibis.table(schema, name)``) compile to the same SQL, and one
query for all columns costs a few milliseconds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
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
    """The Ibis backend of one open connection and the workspace tables as Ibis tables."""

    def __init__(self, backend, schemas: dict[str, dict]):
        self.backend = backend
        self._schemas = schemas
        self._tables: dict[str, ir.Table] = {}

    def __getattr__(self, name: str) -> ir.Table:
        if name.startswith("_") or name not in self._schemas:
            raise AttributeError(name)
        if name not in self._tables:
            self._tables[name] = ibis.table(self._schemas[name], name=name)
        return self._tables[name]

    def execute(self, expr: ir.Table) -> pd.DataFrame:
        """Run ``expr`` and return pandas: the edge where results leave Ibis.

        Through Arrow rather than ``backend.execute``: ibis 12's pandas conversion reads a
        pandas option that pandas 3 deprecates (a warning, an error under pytest).
        """
        table = self.backend.to_pyarrow(expr)
        return to_pandas(table.to_pandas(date_as_object=False), expr.schema())


@contextlib.contextmanager
def session(ws) -> Iterator[Tables]:
    """A read-only connection for one stats call, closed afterwards.

    Uses the workspace's connection policy (retry while another process writes, UTC);
    Ibis wraps the open DuckDB connection instead of opening its own, so no second
    connection with another configuration is ever opened in this process.
    """
    with ws.connect(read_only=True) as con:
        backend = ibis.duckdb.from_connection(con)
        rows = con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' AND table_name IN (SELECT unnest(?)) "
            "ORDER BY table_name, ordinal_position", [list(TABLES)]).fetchall()
        schemas: dict[str, dict] = {}
        mapper = backend.compiler.type_mapper
        for table, column, type_ in rows:
            schemas.setdefault(table, {})[column] = mapper.from_string(type_)
        yield Tables(backend, schemas)


def to_pandas(df: pd.DataFrame, schema=None) -> pd.DataFrame:
    """Results at the edge: a dense index; integer columns that can be missing (an error
    code, the label_id of "(no label)") as nullable integers rather than floats."""
    df = df.reset_index(drop=True)
    for column, dtype in (schema.items() if schema is not None else ()):
        if dtype.is_integer() and pd.api.types.is_float_dtype(df[column]):
            df[column] = df[column].astype("Int64")
    return df


# --- time -------------------------------------------------------------------------------------

@ibis.udf.scalar.builtin(name="timezone")
# ibis reads the SQL types from these annotations (instances, not classes):
def _timezone(zone: str, ts: dt.Timestamp(timezone="UTC")  # type: ignore[valid-type]
              ) -> dt.Timestamp(timezone=None):  # type: ignore[valid-type]
    """DuckDB's timezone(zone, timestamptz): the wall-clock time in ``zone``."""


def local_time(ts: ir.TimestampValue, tz: str) -> ir.TimestampValue:
    """The local wall-clock time of a UTC instant in ``tz`` (a naive timestamp).

    The only backend-specific expression of the stats package: on Spark it would be
    ``from_utc_timestamp``. Hours, weekdays and day/week/month buckets of the result
    follow the zone's daylight-saving rules.
    """
    return _timezone(tz, ts)


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


def minutes_between(later: ir.TimestampValue, earlier: ir.TimestampValue) -> ir.FloatingValue:
    """Minutes from ``earlier`` to ``later`` (millisecond precision)."""
    return later.delta(earlier, unit="millisecond").cast("float64") / 60_000.0


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


def resolve_filters(con, *, account=None, start=None, end=None,
                    labels: Iterable[str] | str | None = None,
                    category: str | None = None, broadcasts=None) -> Filters:
    """Check the user's filters against the workspace and resolve names to ids."""
    account_id = resolve_account_id(con, account) if account is not None else None
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
        sql = "SELECT label_id, lower(name) FROM labels WHERE lower(name) IN (SELECT unnest(?))"
        params: list = [[str(n).strip().lower() for n in names]]
        if account_id is not None:
            sql += " AND account_id = ?"
            params.append(account_id)
        found = con.execute(sql, params).fetchall()
        missing = sorted({str(n).strip().lower() for n in names} - {name for _, name in found})
        if missing:
            raise NotFound(f"No label named {', '.join(map(repr, missing))}"
                           f"{' in this account' if account_id is not None else ''}. "
                           "List the labels with `bizchat labels list --account ...`.",
                           input=missing)
        label_ids = tuple(sorted(i for i, _ in found))
    broadcast_ids: tuple[int, ...] = ()
    if broadcasts is not None:
        wanted = [broadcasts] if isinstance(broadcasts, int | str) else list(broadcasts)
        try:
            broadcast_ids = tuple(sorted({int(b) for b in wanted}))
        except (TypeError, ValueError):
            raise InvalidValue(f"Broadcasts are given by their id (a number), not {broadcasts!r}.",
                               input=broadcasts) from None
        known = {r[0] for r in con.execute(
            "SELECT broadcast_id FROM broadcasts WHERE broadcast_id IN (SELECT unnest(?))",
            [list(broadcast_ids)]).fetchall()}
        if set(broadcast_ids) - known:
            raise NotFound(f"No broadcast {sorted(set(broadcast_ids) - known)} in this workspace. "
                           "List them with `bizchat stats open-rates`.", input=broadcasts)
    return Filters(account_id, start_utc, end_utc, label_ids, category, broadcast_ids)


def now_utc() -> datetime:
    return datetime.now(UTC)
