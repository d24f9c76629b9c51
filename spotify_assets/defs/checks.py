"""Asset checks. Every gold table: its keys are unique and never NULL.

A dimension with history has one row per version: its surrogate key is unique over all rows, and
its natural key over the current rows (exactly one current version per key). The gold steps
evaluate these checks themselves, on the table they wrote.
"""

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey
from pyspark.sql import Column, DataFrame, Row
from pyspark.sql import functions as F

from spotify_assets.catalog import GOLD_KEYS, Layer
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


def key_aggregates(keys: list[tuple[str, bool]]) -> list[Column]:
    """The aggregates `violations` needs for each (key, current rows only): NULLs, non-NULL
    values and distinct values. A step adds them to an aggregation it runs anyway."""
    aggregates = []
    for i, (key, current_only) in enumerate(keys):
        scope = F.col("is_current") if current_only else F.lit(True)
        value = F.when(scope, F.col(key))
        aggregates += [
            F.count_if(scope & F.col(key).isNull()).alias(f"_key{i}_nulls"),
            F.count(value).alias(f"_key{i}_values"),
            F.count_distinct(value).alias(f"_key{i}_distinct"),
        ]
    return aggregates


def violations(
    df: DataFrame, keys: list[tuple[str, bool]], measured: Row | None = None
) -> list[tuple[int, int, list]]:
    """`key_violations` of each (key, current rows only), in one Spark job when every key is
    unique: a key is unique when its non-NULL values are as many as its distinct values, and
    only a key that is not gets the exact count and sample. `measured`: a row of `df`'s
    aggregation that holds `key_aggregates(keys)` already (no job then, keys unique)."""
    if not keys:
        return []
    row = measured if measured is not None else df.agg(*key_aggregates(keys)).first()
    assert row is not None
    results: list[tuple[int, int, list]] = []
    for i, (key, current_only) in enumerate(keys):
        nulls = int(row[f"_key{i}_nulls"])
        if row[f"_key{i}_values"] == row[f"_key{i}_distinct"]:
            results.append((nulls, 0, []))
        else:
            results.append(key_violations(df.where("is_current") if current_only else df, key))
    return results


def key_check_name(key: str, current_only: bool) -> str:
    return f"{key}_unique_not_null" + ("_current" if current_only else "")


def key_check_specs(entity: str) -> list[AssetCheckSpec]:
    """The table's key checks, blocking: a table with a broken key stops what reads it."""
    asset = AssetKey([Layer.GOLD.value, entity])
    return [
        AssetCheckSpec(
            key_check_name(key, current_only),
            asset=asset,
            description=(
                f"`{key}` is never NULL and identifies exactly one "
                f"{'current row' if current_only else 'row'}."
            ),
            blocking=True,
        )
        for key, current_only in table_keys(entity)
    ]


def key_check_results(
    table: DataFrame, entity: str, measured: Row | None = None
) -> list[AssetCheckResult]:
    """The key checks of `table` (the gold table as its step wrote it), evaluated in the step:
    one aggregation over the table, or none when the step's own aggregation `measured` holds
    `key_aggregates(table_keys(entity))`."""
    keys = table_keys(entity)
    return [
        AssetCheckResult(
            check_name=key_check_name(key, current_only),
            passed=nulls == 0 and duplicated == 0,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "null_keys": nulls,
                "duplicated_keys": duplicated,
                "sample_duplicated_keys": str(sample),
            },
        )
        for (key, current_only), (nulls, duplicated, sample) in zip(
            keys, violations(table, keys, measured), strict=True
        )
    ]


def table_keys(entity: str) -> list[tuple[str, bool]]:
    """(key, current rows only) of a gold table: a dimension's natural key over its current
    rows and its surrogate key over all rows; a table without history, its key over all rows."""
    key, surrogate = GOLD_KEYS[entity]
    return [(key, True), (surrogate, False)] if surrogate else [(key, False)]
