"""Metadata every materialisation reports: table name, row count, column schema and location."""

from __future__ import annotations

from typing import Any

from dagster import MetadataValue, TableColumn, TableSchema
from pyspark.sql import DataFrame, Observation
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from spotify_assets.catalog import TableName


def column_schema(schema: StructType) -> TableSchema:
    return TableSchema(
        columns=[
            TableColumn(name=f.name, type=f.dataType.simpleString(), constraints=None)
            for f in schema.fields
        ]
    )


def table_metadata(
    schema: StructType, row_count: int, path: str, name: TableName, **extra: Any
) -> dict[str, Any]:
    return {
        "dagster/table_name": str(name),
        "dagster/row_count": row_count,
        "dagster/column_schema": column_schema(schema),
        "dagster/uri": MetadataValue.path(path),
        **extra,
    }


class Counted:
    """Rows of a frame counted while it is written: Spark's `observe` collects the aggregates
    in the write's own job, so the metadata costs no second pass over the data.

        counted = Counted(frame, rescued=RESCUED)
        delta.overwrite(counted.frame, path)
        counted.rows, counted.rescued

    Read the counts only after the frame's write (its first action)."""

    def __init__(self, frame: DataFrame, rescued: str | None = None) -> None:
        self._observation = Observation()
        aggregates = [F.count(F.lit(1)).alias("rows")]
        if rescued is not None and rescued in frame.columns:
            aggregates.append(F.count(rescued).alias("rescued"))
        self.frame = frame.observe(self._observation, *aggregates)
        self._counts: dict[str, Any] | None = None

    def _get(self) -> dict[str, Any]:
        if self._counts is None:
            self._counts = self._observation.get
        return self._counts

    @property
    def rows(self) -> int:
        return int(self._get()["rows"])

    @property
    def rescued(self) -> int:
        return int(self._get().get("rescued") or 0)
