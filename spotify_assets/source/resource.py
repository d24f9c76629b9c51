"""The SQL source as a Dagster resource: SQLite (embedded default), PostgreSQL or Azure SQL.

Extraction streams rows in bounded chunks and hands them over as Arrow record batches, so the data
moves into Spark columnar, never row by row through Spark.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
from dagster import ConfigurableResource
from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Engine,
    Integer,
    String,
    Table,
    create_engine,
    func,
    make_url,
    select,
)

from spotify_assets.catalog import SourceTable, validate_identifier
from spotify_assets.settings import _sqlite_url_absolute
from spotify_assets.source.schema import build_metadata


def masked(url: str) -> str:
    """The URL with its password replaced by ***, for logs and errors."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)  # the embedded default
    return create_engine(url, pool_pre_ping=True)


def arrow_type(column) -> pa.DataType:
    sql_type = column.type
    if isinstance(sql_type, BigInteger):
        return pa.int64()
    if isinstance(sql_type, Integer):
        return pa.int32()
    if isinstance(sql_type, Boolean):
        return pa.bool_()
    if isinstance(sql_type, DateTime):
        return pa.timestamp("us", tz="UTC")  # source DATETIMEs are naive UTC
    if isinstance(sql_type, Date):
        return pa.date32()
    if isinstance(sql_type, String):
        return pa.string()
    raise TypeError(f"no Arrow type for column {column.name} of type {sql_type}")


class SourceDatabase(ConfigurableResource):
    """Read access to the source tables through SQLAlchemy."""

    url: str
    schema_name: str | None = None
    chunk_rows: int = 50_000

    @property
    def engine(self) -> Engine:
        return _engine(_sqlite_url_absolute(self.url))

    @property
    def display_url(self) -> str:
        return masked(self.url)

    def table(self, name: str) -> Table:
        if self.schema_name:
            validate_identifier(self.schema_name, "source schema")
        md = build_metadata(self.schema_name)
        key = f"{self.schema_name}.{name}" if self.schema_name else name
        return md.tables[key]

    def count(self, name: str) -> int:
        table = self.table(name)
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)

    def arrow_schema(self, name: str) -> pa.Schema:
        return pa.schema([pa.field(c.name, arrow_type(c)) for c in self.table(name).columns])

    def read_window(
        self, source: SourceTable, start: datetime, end: datetime
    ) -> Iterator[pa.RecordBatch]:
        """Rows whose watermark falls in [start, end), as Arrow batches of at most chunk_rows."""
        table = self.table(source.name)
        wm = table.c[source.watermark]
        low: date | datetime = (
            start.date() if source.watermark_is_date else start.replace(tzinfo=None)
        )
        high: date | datetime = end.date() if source.watermark_is_date else end.replace(tzinfo=None)
        stmt = select(table).where(wm >= low, wm < high).order_by(table.c[source.key], wm)
        schema = self.arrow_schema(source.name)
        names = schema.names
        with self.engine.connect().execution_options(stream_results=True) as conn:
            result = conn.execute(stmt)
            while rows := result.fetchmany(self.chunk_rows):
                columns = list(zip(*rows, strict=True))
                yield pa.RecordBatch.from_arrays(
                    [
                        pa.array(col, type=schema.field(n).type)
                        for n, col in zip(names, columns, strict=True)
                    ],
                    schema=schema,
                )
