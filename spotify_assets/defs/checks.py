"""Asset checks. Every gold table: its keys are unique and never NULL.

A dimension with history has one row per version: its surrogate key is unique over all rows, and
its natural key over the current rows (exactly one current version per key).
"""

from collections.abc import Iterator

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    multi_asset_check,
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


def violations(df, keys: list[tuple[str, bool]]) -> list[tuple[int, int, list]]:
    """`key_violations` of each (key, current rows only), in one Spark job when every key is
    unique: a key is unique when its non-NULL values are as many as its distinct values, and
    only a key that is not gets the exact count and sample."""
    aggregates = []
    for i, (key, current_only) in enumerate(keys):
        scope = F.col("is_current") if current_only else F.lit(True)
        value = F.when(scope, F.col(key))
        aggregates += [
            F.count_if(scope & F.col(key).isNull()).alias(f"nulls_{i}"),
            F.count(value).alias(f"values_{i}"),
            F.count_distinct(value).alias(f"distinct_{i}"),
        ]
    if not aggregates:
        return []
    row = df.agg(*aggregates).first()
    assert row is not None
    results: list[tuple[int, int, list]] = []
    for i, (key, current_only) in enumerate(keys):
        nulls = int(row[f"nulls_{i}"])
        if row[f"values_{i}"] == row[f"distinct_{i}"]:
            results.append((nulls, 0, []))
        else:
            results.append(key_violations(df.where("is_current") if current_only else df, key))
    return results


def key_check_name(key: str, current_only: bool) -> str:
    return f"{key}_unique_not_null" + ("_current" if current_only else "")


def build_key_checks(entity: str, keys: list[tuple[str, bool]]) -> AssetChecksDefinition:
    """The table's key checks, (key, current rows only) each, in one step over one read."""
    asset = AssetKey([Layer.GOLD.value, entity])
    specs = [
        AssetCheckSpec(
            key_check_name(key, current_only),
            asset=asset,
            description=(
                f"`{key}` is never NULL and identifies exactly one "
                f"{'current row' if current_only else 'row'}."
            ),
            blocking=True,
        )
        for key, current_only in keys
    ]

    @multi_asset_check(
        specs=specs, name=f"{asset.to_python_identifier()}_key_checks", can_subset=True
    )
    def _checks(
        context: AssetCheckExecutionContext, spark: SparkResource, lakehouse: Lakehouse
    ) -> Iterator[AssetCheckResult]:
        selected = {k.name for k in context.selected_asset_check_keys}
        chosen = [(k, c) for k, c in keys if key_check_name(k, c) in selected]
        session = spark.session(context.log)
        table = delta.read(session, lakehouse.path(Layer.GOLD, entity))
        for (key, current_only), (nulls, duplicated, sample) in zip(
            chosen, violations(table, chosen), strict=True
        ):
            yield AssetCheckResult(
                check_name=key_check_name(key, current_only),
                passed=nulls == 0 and duplicated == 0,
                severity=AssetCheckSeverity.ERROR,
                metadata={
                    "null_keys": nulls,
                    "duplicated_keys": duplicated,
                    "sample_duplicated_keys": str(sample),
                },
            )

    return _checks


def build_gold_key_checks() -> list[AssetChecksDefinition]:
    """A dimension's natural key over its current rows, and its surrogate key over all rows; a
    table without history, its key over all rows."""
    return [
        build_key_checks(entity, [(key, True), (surrogate, False)] if surrogate else [(key, False)])
        for entity, (key, surrogate) in GOLD_KEYS.items()
    ]
