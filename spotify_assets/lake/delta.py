"""The three ways the pipeline writes Delta tables, each idempotent by construction.

- `insert_new_versions`: bronze's append-only record; a MERGE rendered from jinja_templates/
  inserts the (key, watermark) pairs not yet in the window, never updating or deleting a version.
- `replace_window`: a partitioned table's window, replaced atomically (`replaceWhere`).
- `overwrite`: a table recomputed whole from its inputs.
- `update_matched`: a few columns of rows outside the window a run replaced, which that window's
  data decides (e.g. a first-seen date on later days when an earlier day is backfilled).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from spotify_assets.catalog import validate_identifier
from spotify_assets.lake import storage
from spotify_assets.sql import delta_table, render


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
        parts = [f"{column} IS NOT NULL"]
        if self.lower is not None:
            parts.append(f"{column} >= {_literal(self.lower)}")
        if self.end is not None:
            parts.append(f"{column} < {_literal(self.end)}")
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


# Table metadata is read from the log's files (through `storage`) or with SQL (DESCRIBE ...),
# not with delta's Python DeltaTable: both work the same on a local session, over Spark Connect,
# and on Databricks, where DeltaTable needs a Delta Connect plugin on the server.


def exists(path: str) -> bool:
    """Whether a Delta table is at `path`: its log holds the first commit, or a checkpoint once
    old commits are cleaned up. Commits appear atomically (written aside, then renamed), so a
    write in progress is not a table yet. A look at the file system, not a Spark job: the
    steps ask it often."""
    log = storage.join(path, "_delta_log")
    first_commit = storage.join(log, f"{0:020d}.json")
    return storage.exists(first_commit) or storage.exists(storage.join(log, "_last_checkpoint"))


def detail(spark: SparkSession, path: str) -> Row:
    row = spark.sql(f"DESCRIBE DETAIL {delta_table(path)}").first()
    assert row is not None
    return row


# The log's own files: commit N is `N.json` (20 digits), a checkpoint `N.checkpoint[...]`.
_COMMIT = re.compile(r"^(\d{20})\.json$")
_CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint(?:\.[^/]+)?\.(?:parquet|json)$")
# Commits a catalog accepted but has not yet copied into the log (catalog-managed tables).
_STAGED = "_staged_commits"


def history(spark: SparkSession, path: str, limit: int) -> list[dict[str, Any]]:
    """The table's latest `limit` commits, newest first, as DESCRIBE HISTORY gives them
    (version, operation, operationParameters, operationMetrics, userMetadata), read from the
    commit files themselves: a few small files instead of a Spark query, which the steps would
    pay about 0.3 s each for."""
    log, names = _log_files(path)
    if names is None:  # the log alone may be behind: ask Delta
        rows = spark.sql(f"DESCRIBE HISTORY {delta_table(path)} LIMIT {int(limit)}").collect()
        return [row.asDict() for row in rows]
    versions = sorted((int(m[1]) for n in names if (m := _COMMIT.match(n))), reverse=True)
    return [_commit(log, version) for version in versions[: max(int(limit), 0)]]


def _log_files(path: str) -> tuple[str, list[str] | None]:
    """The table's log folder and the names in it; None for the names when a catalog holds
    commits the log does not have yet (Delta 4 creates `_staged_commits` empty)."""
    log = storage.join(path, "_delta_log")
    names = storage.list_names(log)
    if _STAGED in names and storage.list_names(storage.join(log, _STAGED)):
        return log, None
    return log, names


def _commit(log: str, version: int) -> dict[str, Any]:
    """One commit's entry of the history, from its `commitInfo` action."""
    info: dict[str, Any] = {}
    for line in storage.read_text(storage.join(log, f"{version:020d}.json")).splitlines():
        if line.startswith('{"commitInfo"'):
            info = json.loads(line)["commitInfo"]
            break
    return {
        "version": version,
        "operation": info.get("operation"),
        "operationParameters": info.get("operationParameters") or {},
        "operationMetrics": info.get("operationMetrics") or {},
        "userMetadata": info.get("userMetadata"),
    }


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
        return last_commit_rows(spark, path), SchemaChange(added=())
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


def table_version(spark: SparkSession, path: str) -> int:
    """The table's latest version (-1 when it has none): the newest commit or checkpoint in
    its log, a listing of one folder."""
    _, names = _log_files(path)
    if names is None:
        rows = history(spark, path, 1)
        return int(rows[0]["version"]) if rows else -1
    matches = (_COMMIT.match(n) or _CHECKPOINT.match(n) for n in names)
    return max((int(m[1]) for m in matches if m), default=-1)


def row_count(spark: SparkSession, path: str) -> int:
    """Rows in the table's latest version. Delta's checksum file of that version lists every
    file of a small table with its statistics (Delta's `allFilesInCrc`): their record counts,
    less the rows deletion vectors remove, add up without a Spark job. Spark counts when the
    checksum is missing, lists no files (a table of many) or a file has no record count."""
    checksum = latest_checksum(path)
    counted = _rows_in_checksum(checksum) if checksum is not None else None
    return counted if counted is not None else read(spark, path).count()


def latest_checksum(path: str) -> dict[str, Any] | None:
    """The checksum file Delta wrote after the table's newest commit (`N.crc`: the version's
    protocol, metadata and, for a small table, every file with its statistics), or None when
    there is none or a catalog holds newer commits than the log."""
    log, names = _log_files(path)
    versions = [int(m[1]) for n in names or () if (m := _COMMIT.match(n))]
    checksum = f"{max(versions):020d}.crc" if versions else None
    if names is None or checksum not in names:
        return None
    return json.loads(storage.read_text(storage.join(log, checksum)))


def _rows_in_checksum(checksum: dict[str, Any]) -> int | None:
    files = checksum.get("allFiles")
    if files is None:
        return None
    rows = 0
    for add in files:
        records = json.loads(add.get("stats") or "{}").get("numRecords")
        if records is None:
            return None
        rows += int(records) - int((add.get("deletionVector") or {}).get("cardinality", 0))
    return rows


def last_commit_rows(spark: SparkSession, path: str) -> int:
    """Rows the table's latest commit wrote, from Delta's operation metrics (no second scan)."""
    rows = history(spark, path, 1)
    metrics = (rows[0]["operationMetrics"] or {}) if rows else {}
    return int(metrics.get("numOutputRows", 0))


def overwrite(df: DataFrame, path: str) -> None:
    df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
