"""Silver deduplication: the latest version per key, and every distinct version once."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from spotify_assets.transforms.contracts import Contract


def latest_per_key(df: DataFrame, contract: Contract) -> DataFrame:
    """Per key, the row with the greatest sequence value (ties: the latest ingestion)."""
    order = [F.col(contract.sequence).desc_nulls_last()]
    if "_ingested_at" in df.columns:
        order.append(F.col("_ingested_at").desc())
    by_key = Window.partitionBy(contract.key).orderBy(*order)
    return df.withColumn("_rank", F.row_number().over(by_key)).where("_rank = 1").drop("_rank")


def versions(df: DataFrame, contract: Contract) -> DataFrame:
    """Every distinct (key, sequence) version once; the earliest ingestion wins."""
    by_version = Window.partitionBy(contract.key, contract.sequence).orderBy("_ingested_at")
    return df.withColumn("_rank", F.row_number().over(by_version)).where("_rank = 1").drop("_rank")
