"""Tables whose cost follows what changed: Delta's change data feed, and state kept in commits.

- `sync`: make a table equal to a recomputed frame with one MERGE that touches only the rows
  that differ, so the change data feed (CDF) records exactly the real changes.
- `changed_keys`: the keys whose rows changed between two table versions, read from the CDF
  (no scan of the table); None when the feed cannot say (not enabled then, vacuumed, or a
  wholesale overwrite in the range), and the caller falls back to a full recompute.
- `recorded` / `recording`: what a derived table was built from (e.g. the source version it
  consumed), stored as the `userMetadata` of the very commit that wrote it, so the table and its
  record can never disagree after a crash.

Tables written here carry no deletion vectors, so every Delta reader opens them (see delta.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spotify_assets.lake import delta
from spotify_assets.sql import delta_table, render

# No deletion vectors: delta-rs (pandas, polars, DuckDB's delta extension) cannot read a table
# that has them. A MERGE rewrites the files holding the rows it changes instead.
PROPERTIES = {"delta.enableChangeDataFeed": "true", "delta.enableDeletionVectors": "false"}
USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"

# Commits that change no row: a record written before them still describes the table.
_NO_DATA_CHANGE = {"OPTIMIZE", "SET TBLPROPERTIES", "VACUUM START", "VACUUM END"}
# Operations after which the feed holds exactly the rows that changed (and appends). Anything
# else in a range (an overwrite, a restore) and the caller recomputes everything.
_FEED_EXACT = {"MERGE", "UPDATE", "DELETE"} | _NO_DATA_CHANGE


@dataclass(frozen=True)
class SyncCounts:
    inserted: int
    updated: int
    deleted: int


def ensure_properties(spark: SparkSession, path: str) -> None:
    """Give a table written by older code the change data feed, and take away its deletion
    vectors: DROP FEATURE rewrites the files that have one and removes the reader feature
    (Delta 4 keeps the history readable, without truncating it)."""
    have = delta.properties(path)
    missing = {k: v for k, v in PROPERTIES.items() if have.get(k) != v}
    if missing:
        assignments = ", ".join(f"'{k}' = '{v}'" for k, v in missing.items())  # constants
        spark.sql(f"ALTER TABLE {delta_table(path)} SET TBLPROPERTIES ({assignments})")
    if "deletionVectors" in (delta.reader_features(path)):
        spark.sql(f"ALTER TABLE {delta_table(path)} DROP FEATURE deletionVectors")


def create(df: DataFrame, path: str) -> None:
    """A new table with the change data feed on and no deletion vectors."""
    writer = df.write.format("delta").mode("error")  # Spark Connect knows no "errorifexists"
    for name, value in PROPERTIES.items():
        writer = writer.option(name, value)
    writer.save(path)


def sync(
    spark: SparkSession, df: DataFrame, path: str, keys: list[str], view: str = "synced_rows"
) -> SyncCounts:
    """Make the table at `path` hold exactly `df` (unique on `keys`): insert new rows, update
    rows whose values differ, delete rows `df` lacks; unchanged rows are not touched."""
    if not delta.exists(path):
        create(df, path)
        return SyncCounts(delta.last_commit_rows(path), 0, 0)
    ensure_properties(spark, path)
    df, change = delta.align_schema(spark, df, path)
    df.createOrReplaceTempView(view)
    try:
        row = (
            render(
                "sync_table.sql.j2",
                target=path,
                source=view,
                keys=keys,
                columns=[c for c in df.columns if c not in keys and c not in change.added],
                added=list(change.added),
                evolve_schema=bool(change.added),
            )
            .run(spark)
            .first()
        )
    finally:
        spark.catalog.dropTempView(view)
    if row is None:
        return SyncCounts(0, 0, 0)
    return SyncCounts(
        int(row["num_inserted_rows"]), int(row["num_updated_rows"]), int(row["num_deleted_rows"])
    )


def changed_keys(
    spark: SparkSession, path: str, key: str, since: int, until: int
) -> DataFrame | None:
    """Distinct `key` values of the rows inserted, updated or deleted in versions (since, until],
    from the change data feed; None when the feed cannot tell."""
    feed = changes(spark, path, [key], since, until)
    return None if feed is None else feed.select(key).distinct()


def changes(
    spark: SparkSession, path: str, columns: list[str], since: int, until: int
) -> DataFrame | None:
    """`columns` of the change data feed's rows of versions (since, until], each with its
    `_change_type` (insert, delete, update_preimage, update_postimage), read once; None when the
    feed cannot tell (a wholesale write in the range, or part of the log or change files gone)."""
    if until <= since:
        empty = delta.read(spark, path).select(*columns)
        return empty.withColumn("_change_type", F.lit("insert")).limit(0)
    latest = delta.table_version(path)
    operations = [  # the commits after `since`, not the whole log
        op for op in delta.history(path, max(latest - since, 1)) if since < op["version"] <= until
    ]
    if len(operations) != until - since:  # part of the log is gone
        return None
    for op in operations:
        mode = (op["operationParameters"] or {}).get("mode")
        appended = op["operation"] == "WRITE" and mode == "Append"
        if op["operation"] not in _FEED_EXACT and not appended:
            return None
    try:  # read here, so that change files removed by VACUUM fail here, not in the caller
        return (
            spark.read.format("delta")
            .option("readChangeFeed", "true")
            .option("startingVersion", since + 1)
            .option("endingVersion", until)
            .load(path)
            .select(*columns, "_change_type")
            .localCheckpoint()
        )
    except (PySparkException, Py4JJavaError):
        return None


def recorded(spark: SparkSession, path: str, name: str, within: int = 20) -> dict[str, Any] | None:
    """The record `name` of the latest commit that carries one among the last `within`, or
    None (the caller then rebuilds, and every build writes a record). None too when a later
    commit changed rows without a record (a RESTORE, a manual DELETE): the record no longer
    describes the table."""
    if not delta.exists(path):
        return None
    for row in delta.history(path, within):  # newest first
        try:
            document = json.loads(row["userMetadata"]) if row["userMetadata"] else None
        except ValueError:
            document = None
        if isinstance(document, dict) and isinstance(document.get(name), dict):
            return document[name]
        if row["operation"] not in _NO_DATA_CHANGE:
            return None
    return None


@contextmanager
def recording(spark: SparkSession, name: str, record: dict[str, Any]) -> Iterator[None]:
    """Commits made inside carry `{name: record}` as their userMetadata."""
    spark.conf.set(USER_METADATA, json.dumps({name: record}, sort_keys=True))
    try:
        yield
    finally:
        spark.conf.unset(USER_METADATA)
