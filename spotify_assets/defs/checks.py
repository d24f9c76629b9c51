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


def key_violations(df, key: str) -> tuple[int, int, list]:
    """(NULL keys, keys that appear more than once, a sample of those keys)."""
    nulls = df.where(F.col(key).isNull()).count()
    dups = df.where(F.col(key).isNotNull()).groupBy(key).count().where("count > 1")
    sample = [r[key] for r in dups.orderBy(key).limit(5).collect()]
    return nulls, dups.count(), sample


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
