"""The three ways the pipeline writes Delta tables, each idempotent by construction.

- `insert_new_versions`: bronze's append-only record; MERGE inserts the (key, watermark) pairs not
  yet present in the window and never updates or deletes a captured version.
- `replace_window`: a partitioned table's window, replaced atomically (`replaceWhere`).
- `overwrite`: a table recomputed whole from its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from spotify_assets.catalog import validate_identifier


@dataclass(frozen=True)
class Window:
    """A half-open interval [start, end) over a DATE or TIMESTAMP column."""

    column: str
    start: datetime | date
    end: datetime | date

    def predicate(self, alias: str | None = None) -> str:
        column = f"`{validate_identifier(self.column, 'column')}`"
        if alias:
            column = f"{validate_identifier(alias, 'alias')}.{column}"
        return f"{column} >= {_literal(self.start)} AND {column} < {_literal(self.end)}"


def _literal(value: datetime | date) -> str:
    # Values come from partition windows (datetime/date objects), never from user text.
    if isinstance(value, datetime):
        return f"TIMESTAMP'{value.strftime('%Y-%m-%d %H:%M:%S')}'"
    return f"DATE'{value.isoformat()}'"


def exists(spark: SparkSession, path: str) -> bool:
    return DeltaTable.isDeltaTable(spark, path)


def read(spark: SparkSession, path: str) -> DataFrame:
    return spark.read.format("delta").load(path)


def insert_new_versions(
    spark: SparkSession, df: DataFrame, path: str, keys: list[str], window: Window
) -> int:
    """Insert rows whose `keys` are not yet in the target window; returns rows inserted."""
    df = df.dropDuplicates(keys)
    if not exists(spark, path):
        df.write.format("delta").mode("append").save(path)
        return df.count()
    match = " AND ".join(f"t.`{k}` <=> s.`{validate_identifier(k)}`" for k in keys)
    metrics = (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(df.alias("s"), f"{window.predicate('t')} AND {match}")
        .whenNotMatchedInsertAll()
        .execute()
    )
    row = metrics.first()
    return int(row["num_inserted_rows"]) if row is not None else 0


def replace_window(df: DataFrame, path: str, window: Window) -> None:
    (
        df.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", window.predicate())
        .save(path)
    )


def overwrite(df: DataFrame, path: str) -> None:
    df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
