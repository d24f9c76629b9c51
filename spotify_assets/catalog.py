"""The one place that knows every table: source names, lake entities, keys, watermarks and paths.

A source table `DimUser` becomes the entity `dim_user` in every layer, stored as a Delta table at
`<LAKEHOUSE_ROOT>/<layer>/<entity>` so that any Delta reader (Spark, DuckDB, delta-rs) can open it,
and named `<catalog>.<schema_prefix><layer>.<entity>` (`table_name`): `spark_catalog.gold.dim_user`
locally, a Unity Catalog name such as `spotify.gold.dim_user` on Databricks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

# Values that did not fit their column, kept as a JSON object of text (Auto Loader's name): a
# column of bronze (what the source could not type) and of silver (what the contract could not).
RESCUED = "_rescued_data"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class Layer(StrEnum):
    BRONZE = "bronze"
    SILVER = "silver"
    GOLD = "gold"


def validate_identifier(name: str, what: str = "identifier") -> str:
    """Accept only plain SQL identifiers, so configuration can never inject SQL."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(
            f"invalid {what} {name!r}: use letters, digits and underscores, starting with a letter"
        )
    return name


@dataclass(frozen=True)
class SourceTable:
    """A table of the SQL source and how bronze ingests it."""

    name: str  # as in the source database, e.g. DimUser
    entity: str  # lake name in every layer, e.g. dim_user
    key: str
    watermark: str
    watermark_is_date: bool = False  # DATE watermark (DimDate.date) rather than DATETIME
    schema: str | None = None  # source schema; None: the connection's default
    partition_start: date | None = None  # first window; earlier watermarks land in it

    def __post_init__(self) -> None:
        if self.schema is not None:
            validate_identifier(self.schema, "schema name")
        for value, what in (
            (self.name, "table name"),
            (self.entity, "entity name"),
            (self.key, "key column"),
            (self.watermark, "watermark column"),
        ):
            validate_identifier(value, what)


SOURCE_TABLES: tuple[SourceTable, ...] = (
    SourceTable("DimUser", "dim_user", key="user_id", watermark="updated_at"),
    SourceTable("DimArtist", "dim_artist", key="artist_id", watermark="updated_at"),
    SourceTable("DimTrack", "dim_track", key="track_id", watermark="updated_at"),
    SourceTable("DimDate", "dim_date", key="date_key", watermark="date", watermark_is_date=True),
    SourceTable("FactStream", "fact_stream", key="stream_id", watermark="stream_timestamp"),
)
SOURCE_BY_ENTITY = {t.entity: t for t in SOURCE_TABLES}

# Gold tables, their natural keys and surrogate keys (None: no history, the natural key is the key).
GOLD_KEYS: dict[str, tuple[str, str | None]] = {
    "dim_user": ("user_id", "user_sk"),
    "dim_artist": ("artist_id", "artist_sk"),
    "dim_track": ("track_id", "track_sk"),
    "dim_date": ("date_key", None),
    "fact_stream": ("stream_id", None),
}


def entity_name(table: str) -> str:
    """The lake name of a source table: DimUser -> dim_user, FactStream -> fact_stream."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", table).lower()
    return validate_identifier(snake, "table name")


def table_path(lakehouse_root: str, layer: Layer, entity: str) -> str:
    validate_identifier(entity, "table name")
    return f"{lakehouse_root.rstrip('/')}/{Layer(layer).value}/{entity}"


DEFAULT_CATALOG = "spark_catalog"


@dataclass(frozen=True)
class TableName:
    """A table's three-level name; `str()` reads `catalog.schema.table`."""

    catalog: str
    schema: str
    table: str

    def __str__(self) -> str:
        return f"{self.catalog}.{self.schema}.{self.table}"

    @property
    def sql(self) -> str:
        """The name quoted for Spark SQL (each part a validated identifier)."""
        return ".".join(f"`{part}`" for part in (self.catalog, self.schema, self.table))

    @property
    def schema_sql(self) -> str:
        return f"`{self.catalog}`.`{self.schema}`"


def table_name(
    layer: Layer, entity: str, catalog: str = DEFAULT_CATALOG, schema_prefix: str = ""
) -> TableName:
    """The one function that names tables: the layer is the schema (with an optional prefix,
    e.g. `dev_` for a development target), the entity the table."""
    return TableName(
        validate_identifier(catalog, "catalog name"),
        validate_identifier(f"{schema_prefix}{Layer(layer).value}", "schema name"),
        validate_identifier(entity, "table name"),
    )
