"""Bronze -> silver: typed, cleaned, latest version per key."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from spotify_assets.catalog import SOURCE_BY_ENTITY


def clean_strings(df: DataFrame) -> DataFrame:
    """Trim every string column and turn empty strings into NULL."""
    return df.select(
        *[
            F.nullif(F.trim(F.col(f.name)), F.lit("")).alias(f.name)
            if isinstance(f.dataType, StringType)
            else F.col(f.name)
            for f in df.schema.fields
        ]
    )


def latest_per_key(df: DataFrame, key: str, sequence: str) -> DataFrame:
    """Keep, per key, the row with the greatest sequence value (ties: latest ingestion)."""
    order = [F.col(sequence).desc_nulls_last()]
    if "_ingested_at" in df.columns:
        order.append(F.col("_ingested_at").desc())
    ranked = df.withColumn("_rank", F.row_number().over(Window.partitionBy(key).orderBy(*order)))
    return ranked.where(F.col("_rank") == 1).drop("_rank")


def duration_flag(seconds_col: str) -> F.Column:
    """The original project's track duration band."""
    seconds = F.col(seconds_col)
    return (
        F.when(seconds < 150, "low").when(seconds < 300, "medium").when(seconds.isNotNull(), "high")
    )


def _typed(entity: str, bronze: DataFrame) -> DataFrame:
    df = clean_strings(bronze)
    if entity == "dim_track":
        df = df.withColumn("duration_flag", duration_flag("duration_sec"))
    return df


def refine(entity: str, bronze: DataFrame) -> DataFrame:
    """The current version of every key."""
    source = SOURCE_BY_ENTITY[entity]
    return latest_per_key(_typed(entity, bronze), source.key, source.watermark)


def versions(entity: str, bronze: DataFrame) -> DataFrame:
    """Every distinct (key, watermark) version, once (the earliest ingestion wins)."""
    source = SOURCE_BY_ENTITY[entity]
    ranked = _typed(entity, bronze).withColumn(
        "_rank",
        F.row_number().over(
            Window.partitionBy(source.key, source.watermark).orderBy(F.col("_ingested_at"))
        ),
    )
    return ranked.where(F.col("_rank") == 1).drop("_rank")
