"""Metadata every materialisation reports: table name, row count, column schema and location."""

from __future__ import annotations

from typing import Any

from dagster import MetadataValue, TableColumn, TableSchema
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
