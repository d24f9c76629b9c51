"""The SQL source as a Dagster resource: SQLite (embedded default), PostgreSQL or Azure SQL.

Tables are reflected from the source at each run, so a new source column reaches bronze without a
code change. Extraction streams rows in bounded chunks (`chunk_rows`) and hands them over as Arrow
record batches, so memory does not grow with a window's size and data moves into Spark columnar.
Connection failures are retried with exponential backoff, then reported naming host and table with
the password masked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from dagster import ConfigurableResource
from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    and_,
    create_engine,
    false,
    func,
    make_url,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.exc import DBAPIError, NoSuchTableError, OperationalError
from sqlalchemy.sql.elements import ColumnElement

from spotify_assets.catalog import RESCUED, SourceTable, validate_identifier
from spotify_assets.settings import _sqlite_url_absolute
from spotify_assets.source import pg_arrow

T = TypeVar("T")


class SourceUnavailable(RuntimeError):
    """The source could not be reached after every retry."""


class SourceTableMissing(RuntimeError):
    """A table or column named in the metadata does not exist in the source."""


def masked(url: str) -> str:
    """The URL with its password replaced by ***, for logs and errors."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


def _scrub(text: str, url: str) -> str:
    """Remove the URL's password from a driver's error text."""
    try:
        password = make_url(url).password
    except Exception:
        return text
    return text.replace(str(password), "***") if password else text


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    parsed = make_url(url)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)  # embedded default
    elif parsed.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = 10
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def arrow_type(column) -> pa.DataType:
    """The Arrow type a source column lands as; unknown types land as text, never dropped."""
    sql_type = column.type
    if isinstance(sql_type, BigInteger):
        return pa.int64()
    if isinstance(sql_type, SmallInteger | Integer):
        return pa.int32()
    if isinstance(sql_type, Boolean):
        return pa.bool_()
    if isinstance(sql_type, DateTime):
        return pa.timestamp("us", tz="UTC")  # source DATETIMEs are naive UTC
    if isinstance(sql_type, Date):
        return pa.date32()
    if isinstance(sql_type, Float):
        return pa.float64()
    if isinstance(sql_type, Numeric):
        precision, scale = sql_type.precision, sql_type.scale
        if precision and precision <= 38:
            return pa.decimal128(precision, scale or 0)
        return pa.float64()
    return pa.string()


class UnreadableValue(ValueError):
    """A source value that does not fit its column's type where no row can hold it rescued
    (a key or watermark inside a window)."""


RESCUE_ERRORS = (pa.ArrowException, TypeError, ValueError, OverflowError)


def to_batch(
    rows: Sequence[Any], schema: pa.Schema, required: Collection[str] = ()
) -> pa.RecordBatch:
    """Rows (tuples in the order of `schema`'s source columns) as an Arrow batch of `schema`.

    SQLite keeps any value in any column: a value that does not fit its column's type (text in
    an INTEGER column, 1.5 or 3e9 in an INT, an unreadable date) is set NULL and kept, as text,
    in the row's `_rescued_data` JSON object (Auto Loader's rescue) when `schema` ends with that
    column. A `required` column's value (the key and watermark that place a row) is never
    rescued: it raises UnreadableValue naming the column and the value, and nothing is landed.
    """
    fields = [f for f in schema if f.name != RESCUED]
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [[] for _ in fields]
    rescued: dict[int, dict[str, str]] = {}
    arrays = [_column(f, values, rescued) for f, values in zip(fields, columns, strict=True)]
    for held in rescued.values():
        for name, value in held.items():
            if name in required or len(fields) == len(schema):
                raise UnreadableValue(
                    f"column {name}: the value {value!r} does not fit its type "
                    f"({schema.field(name).type})"
                )
    if len(fields) < len(schema):
        notes = [json.dumps(rescued[i], sort_keys=True) if i in rescued else None
                 for i in range(len(rows))]  # fmt: skip
        arrays.append(pa.array(notes, type=pa.string()))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _column(field: pa.Field, values: Sequence[Any], rescued: dict[int, dict[str, str]]):
    if pa.types.is_string(field.type):
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())
    try:
        return _convert(values, field.type)
    except RESCUE_ERRORS:
        pass
    kept = []
    for i, value in enumerate(values):
        try:
            _convert([value], field.type)
            kept.append(value)
        except RESCUE_ERRORS:
            kept.append(None)
            rescued.setdefault(i, {})[field.name] = str(value)
    return _convert(kept, field.type)


def _convert(values: Sequence[Any], type_: pa.DataType) -> pa.Array:
    """Values as an array of `type_` by a safe cast (never truncating 1.5 to 1); dates and
    times may come as ISO text (SQLite), naive times are UTC."""
    inferred = pa.array(values)
    if pa.types.is_timestamp(type_) and pa.types.is_string(inferred.type):
        inferred = pc.cast(inferred, pa.timestamp(type_.unit))
    return pc.cast(inferred, type_, safe=True)


class SourceDatabase(ConfigurableResource):
    """Read access to the source tables through SQLAlchemy."""

    url: str
    schema_name: str | None = None
    chunk_rows: int = 50_000
    retries: int = 3  # attempts after the first, with exponential backoff
    backoff_seconds: float = 1.0
    arrow_native: bool = True  # PostgreSQL: extract through ADBC straight into Arrow

    @property
    def engine(self) -> Engine:
        return _engine(_sqlite_url_absolute(self.url))

    @property
    def backend(self) -> str:
        """sqlite, postgresql, mssql: from the URL, without loading the driver."""
        return make_url(self.url).get_backend_name()

    @property
    def display_url(self) -> str:
        return masked(self.url)

    @property
    def host(self) -> str:
        parsed = make_url(self.url)
        return parsed.host or (parsed.database or "local file")

    def with_retries(self, what: str, fn: Callable[[], T]) -> T:
        """Run `fn`, retrying connection failures; then fail naming host and `what`."""
        delay = self.backoff_seconds
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except (OperationalError, DBAPIError, pg_arrow.AdbcOperationalError) as exc:
                # SQLAlchemy's OperationalError (a DBAPIError) and ADBC's are connection-level.
                transient = (
                    not isinstance(exc, DBAPIError)
                    or isinstance(exc, OperationalError)
                    or exc.connection_invalidated
                )
                if not transient:
                    raise
                if attempt == self.retries:
                    cause = exc.orig if isinstance(exc, DBAPIError) else exc
                    detail = _scrub(str(cause or exc).splitlines()[0], self.url)
                    raise SourceUnavailable(
                        f"source {self.display_url} (host {self.host}) unreachable while {what}, "
                        f"after {attempt + 1} attempt{'s' if attempt else ''}: {detail}"
                    ) from None
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def table(self, source: SourceTable) -> Table:
        """The source table as it is now (reflected), or SourceTableMissing naming it."""
        schema = source.schema or self.schema_name
        if schema:
            validate_identifier(schema, "source schema")
        qualified = f"{schema}.{source.name}" if schema else source.name

        def reflect() -> Table:
            try:
                return Table(source.name, MetaData(schema=schema), autoload_with=self.engine)
            except NoSuchTableError:
                raise SourceTableMissing(
                    f"table {qualified} named in ingestion_config does not exist in the source "
                    f"{self.display_url}"
                ) from None

        table = self.with_retries(f"reading the definition of {qualified}", reflect)
        for column, what in ((source.key, "primary key"), (source.watermark, "watermark")):
            if column not in table.c:
                raise SourceTableMissing(
                    f"{what} column {column!r} named in ingestion_config does not exist in "
                    f"{qualified} (columns: {', '.join(table.c.keys())})"
                )
        return table

    def keyed_by(self, source: SourceTable) -> bool:
        """Whether the table's primary key makes every (key, watermark) pair unique: it is the
        key, or the key and the watermark. A view or a table without one can repeat pairs."""
        primary_key = {c.name for c in self.table(source).primary_key.columns}
        return source.key in primary_key <= {source.key, source.watermark}

    def count(self, source: SourceTable) -> int:
        table = self.table(source)

        def run() -> int:
            with self.engine.connect() as conn:
                return int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)

        return self.with_retries(f"counting {source.name}", run)

    @staticmethod
    def arrow_schema(table: Table) -> pa.Schema:
        return pa.schema([pa.field(c.name, arrow_type(c)) for c in table.columns])

    @staticmethod
    def bound(source: SourceTable, value: datetime | None) -> date | datetime | None:
        if value is None:
            return None
        return value.date() if source.watermark_is_date else value.replace(tzinfo=None)

    def placeable(self, table: Table, source: SourceTable) -> list[ColumnElement[bool]]:
        """What a row needs to belong to a daily window: a watermark and a key, and on SQLite
        (which keeps any value in any column) a watermark that is date text and an integer key
        that is an integer. A row without them is landed apart (`read_null_watermarks`), never
        lost."""
        wm, key = table.c[source.watermark], table.c[source.key]
        conditions: list[ColumnElement[bool]] = [wm.is_not(None), key.is_not(None)]
        if self.backend == "sqlite":
            parsed = func.date(wm) if source.watermark_is_date else func.datetime(wm)
            conditions += [
                func.typeof(wm) == "text",
                wm.op("GLOB")("[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*"),
                parsed.is_not(None),
            ]
            if isinstance(key.type, Integer):
                conditions.append(func.typeof(key) == "integer")
        return conditions

    def window_filter(
        self, table: Table, source: SourceTable, start: datetime | None, end: datetime | None
    ) -> list[ColumnElement[bool]]:
        """Watermark in [start, end); None bounds are open. Unplaceable rows never match."""
        wm = table.c[source.watermark]
        low, high = self.bound(source, start), self.bound(source, end)
        conditions = self.placeable(table, source)
        if low is not None:
            conditions.append(wm >= low)
        if high is not None:
            conditions.append(wm < high)
        return conditions

    def columns(self, table: Table) -> list[ColumnElement[Any]]:
        """The table's columns to select; on SQLite dates and times as their stored text, which
        `to_batch` parses (SQLAlchemy's own parsing raises on an unreadable one)."""
        if self.backend != "sqlite":
            return list(table.columns)
        return [
            type_coerce(c, String).label(c.name) if isinstance(c.type, Date | DateTime) else c
            for c in table.columns
        ]

    def extract_statement(
        self, table: Table, source: SourceTable, start: datetime | None, end: datetime | None
    ):
        conditions = self.window_filter(table, source, start, end)
        return select(*self.columns(table)).where(*conditions).order_by(table.c[source.key])

    def stream(
        self, stmt, schema: pa.Schema, what: str, required: Collection[str] = ()
    ) -> Iterator[pa.RecordBatch]:
        """Run `stmt` in one read and yield its rows (of `schema`) as Arrow batches of at most
        chunk_rows; a trailing `_rescued_data` column in `schema` takes what SQLite holds that
        does not fit its column (see `to_batch`).

        The connection is retried only before the first row arrives; a failure mid-stream
        raises, and the caller writes nothing (a partial window is never landed). On PostgreSQL
        the rows come as Arrow through the ADBC driver (`arrow_native`).
        """
        if self.arrow_native and self.engine.dialect.name == "postgresql":
            # Bind values are partition bounds (dates), rendered as SQL literals by SQLAlchemy.
            sql = str(
                stmt.compile(dialect=self.engine.dialect, compile_kwargs={"literal_binds": True})
            )
            conn = self.with_retries(what, lambda: pg_arrow.connect(self.url))
            typed = pa.schema([f for f in schema if f.name != RESCUED])
            for batch in pg_arrow.arrow_batches(conn, sql, typed):
                if len(typed) < len(schema):  # a typed source has nothing to rescue
                    nothing = pa.nulls(batch.num_rows, pa.string())
                    batch = pa.RecordBatch.from_arrays([*batch.columns, nothing], schema=schema)
                yield batch
            return
        conn = self.with_retries(
            what, lambda: self.engine.connect().execution_options(stream_results=True)
        )
        with conn:
            result = conn.execute(stmt)
            while rows := result.fetchmany(self.chunk_rows):
                try:
                    yield to_batch(rows, schema, required)
                except UnreadableValue as exc:
                    raise UnreadableValue(f"{what} from {self.display_url}: {exc}") from None

    def landing_schema(self, table: Table) -> pa.Schema:
        """The source columns as Arrow types, then `_rescued_data`."""
        return self.arrow_schema(table).append(pa.field(RESCUED, pa.string()))

    def read_window(
        self, source: SourceTable, start: datetime | None, end: datetime | None
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """Rows whose watermark falls in [start, end) (None: unbounded), as Arrow batches."""
        table = self.table(source)
        stmt = self.extract_statement(table, source, start, end)
        schema = self.landing_schema(table)
        required = (source.key, source.watermark)
        return schema, self.stream(stmt, schema, f"reading {source.name}", required)

    def read_null_watermarks(
        self, source: SourceTable
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """Rows no window can hold (a NULL watermark or key; on SQLite also an unreadable one,
        see `placeable`): they are landed apart, their unreadable values rescued."""
        table = self.table(source)
        placed = and_(*self.placeable(table, source))
        stmt = (
            select(*self.columns(table))
            .where(or_(table.c[source.watermark].is_(None), ~func.coalesce(placed, false())))
            .order_by(table.c[source.key])
        )
        schema = self.landing_schema(table)
        return schema, self.stream(stmt, schema, f"reading NULL-watermark rows of {source.name}")
