"""The source tables with the original project's exact names, columns and types.

`../shared/reference/source-schema.md` (SQL Server types) maps to SQLAlchemy's generic types, which
render as INT / VARCHAR(n) / DATE / DATETIME on Azure SQL and their equivalents on PostgreSQL and
SQLite. `ingestion_config` is the metadata table that drives bronze; `simulator_state` remembers how
the simulator seeded the database so that `advance` continues the same story.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)


def build_metadata(schema: str | None = None) -> MetaData:
    md = MetaData(schema=schema)
    Table(
        "DimUser",
        md,
        Column("user_id", Integer, primary_key=True, autoincrement=False),
        Column("user_name", String(255)),
        Column("country", String(255)),
        Column("subscription_type", String(50)),
        Column("start_date", Date),
        Column("end_date", Date),
        Column("updated_at", DateTime),
    )
    Table(
        "DimArtist",
        md,
        Column("artist_id", Integer, primary_key=True, autoincrement=False),
        Column("artist_name", String(255)),
        Column("genre", String(100)),
        Column("country", String(100)),
        Column("updated_at", DateTime),
    )
    Table(
        "DimTrack",
        md,
        Column("track_id", Integer, primary_key=True, autoincrement=False),
        Column("track_name", String(255)),
        Column("artist_id", Integer),
        Column("album_name", String(255)),
        Column("duration_sec", Integer),
        Column("release_date", Date),
        Column("updated_at", DateTime),
    )
    Table(
        "DimDate",
        md,
        Column("date_key", Integer, primary_key=True, autoincrement=False),
        Column("date", Date),
        Column("day", Integer),
        Column("month", Integer),
        Column("year", Integer),
        Column("weekday", String(20)),
    )
    Table(
        "FactStream",
        md,
        Column("stream_id", BigInteger, primary_key=True, autoincrement=False),
        Column("user_id", Integer),
        Column("track_id", Integer),
        Column("date_key", Integer),
        Column("listen_duration", Integer),
        Column("device_type", String(50)),
        Column("stream_timestamp", DateTime),
    )
    Table(
        "ingestion_config",
        md,
        Column("source_schema", String(128), nullable=True),
        Column("source_table", String(128), primary_key=True),
        Column("primary_key", String(128), nullable=False),
        Column("watermark_column", String(128), nullable=False),
        Column("enabled", Boolean, nullable=False, default=True),
        Column("partition_start", Date, nullable=False),
        Column("options", Text, nullable=False, default="{}"),
    )
    Table(
        "simulator_state",
        md,
        Column("name", String(64), primary_key=True),
        Column("value", String(255), nullable=False),
    )
    return md


DATA_TABLES = ("DimUser", "DimArtist", "DimTrack", "DimDate", "FactStream")
