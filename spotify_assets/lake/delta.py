"""The three ways the pipeline writes Delta tables, each idempotent by construction.

- `insert_new_versions`: bronze's append-only record; a MERGE rendered from jinja_templates/
  inserts the (key, watermark) pairs not yet in the window, never updating or deleting a version.
- `replace_window`: a partitioned table's window, replaced atomically (`replaceWhere`).
- `overwrite`: a table recomputed whole from its inputs.
- `update_matched`: a few columns of rows outside the window a run replaced, which that window's
  data decides (e.g. a first-seen date on later days when an earlier day is backfilled).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spotify_assets.catalog import validate_identifier
from spotify_assets.lake import storage
from spotify_assets.sql import render


@dataclass(frozen=True)
class Window:
    """A half-open interval [start, end) over a DATE or TIMESTAMP column; start None is open.
    `open_below`: a partition window that also holds every older row (a table's first), its
    start kept as the partition's own."""

    column: str
    start: datetime | date | None
    end: datetime | date | None
    open_below: bool = False

    @property
    def lower(self) -> datetime | date | None:
        """The bound the predicate applies below: None when open."""
        return None if self.open_below else self.start

    def predicate(self, alias: str | None = None) -> str:
        column = f"`{validate_identifier(self.column, 'column')}`"
        if alias:
            column = f"{validate_identifier(alias, 'alias')}.{column}"
        return self.condition(column, _literal)

    def condition(self, column: str, literal: Callable[[datetime | date], str]) -> str:
        """The window as a SQL condition on `column` (quoted already), bounds written by
        `literal`: Spark's dialect in `predicate`, another engine's elsewhere."""
        parts = [f"{column} IS NOT NULL"]
        if self.lower is not None:
            parts.append(f"{column} >= {literal(self.lower)}")
        if self.end is not None:
            parts.append(f"{column} < {literal(self.end)}")
        return " AND ".join(parts)

    def args(self) -> dict[str, datetime | date]:
        """The bounds as SQL parameter values (`:window_start`, `:window_end`); timestamps
        are UTC, whatever the machine's time zone."""
        return {
            name: value.replace(tzinfo=UTC) if isinstance(value, datetime) else value
            for name, value in (("window_start", self.lower), ("window_end", self.end))
            if value is not None
        }


@dataclass(frozen=True)
class SchemaChange:
    added: tuple[str, ...] = ()  # columns the source gained: the table gains them too
    missing: tuple[str, ...] = ()  # columns the source lost: NULL in the new rows


def _literal(value: datetime | date) -> str:
    # Values come from partition windows (datetime/date objects), never from user text.
    if isinstance(value, datetime):
        return f"TIMESTAMP'{value.strftime('%Y-%m-%d %H:%M:%S')}'"
    return f"DATE'{value.isoformat()}'"


# What a table holds (its version, history, row count, properties, a small table's rows) is
# read on the driver with delta-rs (`deltalake`): it reads the log in milliseconds where a Spark
# query pays its jobs' fixed cost, works alike under every engine (local Spark, Spark Connect,
# Databricks), and sees the tables as every pandas, polars or DuckDB user does. So no table
# carries a reader feature delta-rs lacks: no deletion vectors (change_log.PROPERTIES).

# Up to this many rows, a table's columns are read on the driver: a few hundred thousand rows of
# a few columns take milliseconds in Arrow, where a Spark query pays its jobs' fixed cost.
MAX_ROWS = 500_000
_NANOSECOND_YEARS = (1677, 2262)


def _table(path: str) -> DeltaTable:
    return DeltaTable(path, storage_options=storage.delta_rs_options(path))


def exists(path: str) -> bool:
    """Whether a Delta table is at `path` (its log holds a commit: a write in progress is not
    a table yet)."""
    return DeltaTable.is_deltatable(path, storage_options=storage.delta_rs_options(path))


def table_version(path: str) -> int:
    """The table's latest version; -1 when there is no table."""
    return _table(path).version() if exists(path) else -1


def table_state(path: str) -> str:
    """`<table id>@<version>`: which table is at `path` and at which version ("none@-1" when
    there is none). A table deleted and created again starts at version 0 under a new id."""
    if not exists(path):
        return "none@-1"
    table = _table(path)
    return f"{table.metadata().id}@{table.version()}"


def history(path: str, limit: int) -> list[dict[str, Any]]:
    """The table's latest `limit` commits, newest first, as DESCRIBE HISTORY gives them
    (version, operation, operationParameters, operationMetrics, userMetadata)."""
    return [
        {
            "version": int(entry["version"]),
            "operation": entry.get("operation"),
            "operationParameters": entry.get("operationParameters") or {},
            "operationMetrics": entry.get("operationMetrics") or {},
            "userMetadata": entry.get("userMetadata"),
        }
        for entry in _table(path).history(max(int(limit), 1))[: max(int(limit), 0)]
    ]


def properties(path: str) -> dict[str, str]:
    return dict(_table(path).metadata().configuration)


def reader_features(path: str) -> list[str]:
    """The reader features of the table's protocol (what a reader must support to read it)."""
    return list(_table(path).protocol().reader_features or [])


def _files(table: DeltaTable) -> pa.Table:
    """The table's data files with their statistics, one row each (delta-rs' add actions)."""
    return pa.table(table.get_add_actions(flatten=True))


def row_count(path: str) -> int:
    """Rows in the table's latest version: its files' record counts, without reading them;
    counted by a scan when a file has no count or rows were deleted in place (a table older
    code gave deletion vectors)."""
    table = _table(path)
    records = _files(table)["num_records"]
    if records.null_count or "deletionVectors" in (table.protocol().reader_features or []):
        first = pa.schema(table.schema().to_arrow()).names[0]
        return pa.table(table.scan(columns=[first])).num_rows
    return int(pc.sum(records).as_py() or 0)


def last_commit_rows(path: str) -> int:
    """Rows the table's latest commit wrote, from Delta's operation metrics (no second scan)."""
    rows = history(path, 1)
    metrics = rows[0]["operationMetrics"] if rows else {}
    return int(metrics.get("numOutputRows", 0))


def read_arrow(
    path: str, columns: Sequence[str], window: Window | None = None, max_rows: int | None = None
) -> pa.Table | None:
    """`columns` of the table's rows (in `window`, when given) as Arrow, read on the driver by
    delta-rs' own engine (which reads every layout: column mapping, partitions, evolved
    schemas); None when the files that may hold them hold more than `max_rows` (MAX_ROWS)
    rows: Spark reads those."""
    table = _table(path)
    files = _files(table)
    if window is not None:
        files = files.filter(_may_hold(files, window))
    records = files["num_records"]
    limit = MAX_ROWS if max_rows is None else max_rows
    if records.null_count or (pc.sum(records).as_py() or 0) > limit:
        return None  # too many rows for the driver, or files that do not say how many
    read = list(dict.fromkeys([*columns, *([window.column] if window else [])]))
    predicate = None
    bounds = [b for b in (window.lower, window.end) if b is not None] if window else []
    if window is not None and all(
        _NANOSECOND_YEARS[0] < b.year < _NANOSECOND_YEARS[1] for b in bounds
    ):
        # Lets the engine skip files (its SQL parses a timestamp in nanoseconds, which hold
        # these years only); the rows are filtered here, exactly.
        kind = pa.schema(table.schema().to_arrow()).field(window.column).type
        predicate = _sql_condition(window, kind)
    rows = _without_views(pa.table(table.scan(columns=read, predicate=predicate)))
    if window is not None:
        rows = rows.filter(in_window(rows, window))
    return rows.select(list(columns))


def _without_views(rows: pa.Table) -> pa.Table:
    """Strings and binaries as Spark's `toArrow` gives them: delta-rs' engine returns Arrow's
    view types, which not every pyarrow function takes yet."""
    plain = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}
    schema = pa.schema([f.with_type(plain.get(f.type, f.type)) for f in rows.schema])
    return rows if schema == rows.schema else rows.cast(schema)


def _sql_condition(window: Window, kind: pa.DataType) -> str:
    """`window.predicate()` in delta-rs' SQL (DataFusion): literals of the column's type."""

    def literal(value: date | datetime) -> str:
        bound = _bound(value, kind).as_py()
        if pa.types.is_date(kind):
            return f"DATE '{bound.isoformat()}'"
        if bound.tzinfo is not None:
            bound = bound.astimezone(UTC)
        text = bound.replace(tzinfo=None).isoformat(sep="T")
        return f"TIMESTAMP '{text}{'Z' if getattr(kind, 'tz', None) else ''}'"

    return window.condition(f'"{validate_identifier(window.column, "column")}"', literal)


def _bound(value: date | datetime, kind: pa.DataType) -> pa.Scalar:
    """A window's bound as a scalar of the column's type; the bounds are UTC, as the session's."""
    if pa.types.is_timestamp(kind) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if pa.types.is_date(kind) and isinstance(value, datetime):
        value = value.date()
    if isinstance(value, datetime) and getattr(kind, "tz", None) is not None:
        value = value.replace(tzinfo=UTC)
    return pa.scalar(value, type=kind)


def in_window(rows: pa.Table, window: Window) -> pa.ChunkedArray:
    """Which of `rows` `window.predicate()` holds for (an Arrow mask, never NULL)."""
    values = rows.column(window.column)
    mask = pc.is_valid(values)
    if window.lower is not None:
        mask = pc.and_(mask, pc.greater_equal(values, _bound(window.lower, values.type)))
    if window.end is not None:
        mask = pc.and_(mask, pc.less(values, _bound(window.end, values.type)))
    return pc.fill_null(mask, False)


def _may_hold(files: pa.Table, window: Window) -> pa.ChunkedArray:
    """Which files' statistics leave room for a row in the window (True when they say nothing).
    Delta truncates timestamps' statistics to milliseconds: the upper one is widened by 1 ms."""
    names = files.column_names
    keep = pa.chunked_array([pa.array([True] * files.num_rows, pa.bool_())])
    low, high = f"min.{window.column}", f"max.{window.column}"
    if high in names and window.lower is not None:
        upper, below_lower = files[high], pc.less
        if pa.types.is_timestamp(upper.type):  # the true maximum is below max + 1 ms
            upper = pc.add(upper, pa.scalar(timedelta(milliseconds=1), pa.duration("us")))
            below_lower = pc.less_equal
        below = below_lower(upper, _bound(window.lower, upper.type))
        keep = pc.and_(keep, pc.invert(pc.fill_null(below, False)))
    if low in names and window.end is not None:
        lower = files[low]
        above = pc.greater_equal(lower, _bound(window.end, lower.type))
        keep = pc.and_(keep, pc.invert(pc.fill_null(above, False)))
    return keep


def read(spark: SparkSession, path: str) -> DataFrame:
    return spark.read.format("delta").load(path)


def align_schema(spark: SparkSession, df: DataFrame, path: str) -> tuple[DataFrame, SchemaChange]:
    """Give `df` the target's columns it lacks (as NULLs) and report columns it adds."""
    if not exists(path):
        return df, SchemaChange()
    target = {f.name: f.dataType for f in read(spark, path).schema.fields}
    missing = tuple(c for c in target if c not in df.columns)
    added = tuple(c for c in df.columns if c not in target)
    for column in missing:
        df = df.withColumn(column, F.lit(None).cast(target[column]))
    return df, SchemaChange(added=added, missing=missing)


def insert_new_versions(
    spark: SparkSession,
    df: DataFrame,
    path: str,
    keys: list[str],
    window: Window,
    view: str = "incoming_versions",
) -> tuple[int, SchemaChange]:
    """Insert rows whose `keys` are not yet in the target window; never update or delete.

    `df` holds at most one row per `keys` (ingestion.conflicts makes it so).
    Returns the rows inserted and how the schema changed (new source columns are added to the
    table by MERGE schema evolution; lost ones are NULL in new rows).
    """
    if not exists(path):
        df.write.format("delta").mode("append").save(path)
        return last_commit_rows(path), SchemaChange(added=())
    df, change = align_schema(spark, df, path)
    df.createOrReplaceTempView(view)
    statement = render(
        "insert_new_versions.sql.j2",
        args=window.args(),
        target=path,
        source=view,
        keys=keys,
        window_column=window.column,
        has_start=window.lower is not None,
        has_end=window.end is not None,
        evolve_schema=bool(change.added),
    )
    row = statement.run(spark).first()
    spark.catalog.dropTempView(view)
    return (int(row["num_inserted_rows"]) if row is not None else 0), change


def replace_window(df: DataFrame, path: str, window: Window) -> None:
    """Replace the rows of `window` atomically. Columns `df` has and the table lacks join the
    table (a new source column, or a table written by an older version of this code)."""
    (
        df.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", window.predicate())
        .option("mergeSchema", "true")
        .save(path)
    )


def update_matched(
    spark: SparkSession,
    df: DataFrame,
    path: str,
    keys: list[str],
    columns: list[str],
    view: str = "matched_updates",
) -> int:
    """Set `columns` of the rows matching `df` on `keys` to `df`'s values; returns the rows
    updated. `df` must hold at most one row per key (MERGE refuses ambiguous matches). Nothing
    to update writes no commit."""
    if df.isEmpty():
        return 0
    df.createOrReplaceTempView(view)
    try:
        statement = render(
            "update_matched.sql.j2", target=path, source=view, keys=keys, columns=columns
        )
        row = statement.run(spark).first()
    finally:
        spark.catalog.dropTempView(view)
    return int(row["num_updated_rows"]) if row is not None else 0


def overwrite(df: DataFrame, path: str) -> None:
    df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
