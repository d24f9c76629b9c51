"""Asset checks. Every gold table: its keys are unique and never NULL.

A dimension with history has one row per version: its surrogate key is unique over all rows, and
its natural key over the current rows (exactly one current version per key).
"""

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    asset_check,
)
from pyspark.sql import functions as F

from spotify_assets.catalog import GOLD_KEYS, Layer
from spotify_assets.lake import delta
from spotify_assets.resources import Lakehouse, SparkResource
from spotify_assets.transforms.expectations import SAMPLE_SIZE


def key_violations(df, key: str) -> tuple[int, int, list]:
    """(NULL keys, keys that appear more than once, a sample of those keys): one Spark job, and
    one more for the sample only when there are duplicates."""
    per_key = df.groupBy(key).count()
    duplicated = F.col(key).isNotNull() & (F.col("count") > 1)
    row = per_key.agg(
        F.sum(F.when(F.col(key).isNull(), F.col("count"))).alias("nulls"),
        F.count(F.when(duplicated, 1)).alias("duplicated"),
    ).first()
    assert row is not None
    nulls, dups = int(row["nulls"] or 0), int(row["duplicated"])
    sample = []
    if dups:
        rows = per_key.where(duplicated).orderBy(key).limit(SAMPLE_SIZE).collect()
        sample = [r[key] for r in rows]
    return nulls, dups, sample


def build_key_check(entity: str, key: str, current_only: bool = False) -> AssetChecksDefinition:
    scope = "current row" if current_only else "row"

    @asset_check(
        asset=AssetKey([Layer.GOLD.value, entity]),
        name=f"{key}_unique_not_null" + ("_current" if current_only else ""),
        description=f"`{key}` is never NULL and identifies exactly one {scope}.",
        blocking=True,
    )
    def _check(
        context: AssetCheckExecutionContext, spark: SparkResource, lakehouse: Lakehouse
    ) -> AssetCheckResult:
        session = spark.session(context.log)
        df = delta.read(session, lakehouse.path(Layer.GOLD, entity))
        if current_only:
            df = df.where("is_current")
        nulls, duplicated, sample = key_violations(df, key)
        return AssetCheckResult(
            passed=nulls == 0 and duplicated == 0,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "null_keys": nulls,
                "duplicated_keys": duplicated,
                "sample_duplicated_keys": str(sample),
            },
        )

    return _check


def build_gold_key_checks() -> list[AssetChecksDefinition]:
    checks = []
    for entity, (key, surrogate) in GOLD_KEYS.items():
        checks.append(build_key_check(entity, key, current_only=surrogate is not None))
        if surrogate:
            checks.append(build_key_check(entity, surrogate))
    return checks
