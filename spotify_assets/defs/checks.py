"""Asset checks. Every gold table: its keys are unique and never NULL.

A dimension with history has one row per version: its surrogate key is unique over all rows, and
its natural key over the current rows (exactly one current version per key). The gold steps
evaluate these checks themselves, on the table they wrote.
"""

from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey
from pyspark.sql import Column, DataFrame, Row
from pyspark.sql import functions as F

from spotify_assets.catalog import GOLD_KEYS, Layer
from spotify_assets.lake import delta
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


def key_figures(rows: pa.Table, keys: list[tuple[str, bool]]) -> dict[str, int]:
    """What `key_aggregates` computes, over the table's rows in Arrow."""
    figures = {}
    for i, (key, current_only) in enumerate(keys):
        scope = rows.filter(pc.fill_null(rows["is_current"], False)) if current_only else rows
        values = scope.column(key)
        figures[f"_key{i}_nulls"] = values.null_count
        figures[f"_key{i}_values"] = len(values) - values.null_count
        figures[f"_key{i}_distinct"] = pc.count_distinct(values, mode="only_valid").as_py()
    return figures


def key_columns(keys: list[tuple[str, bool]]) -> list[str]:
    """The columns `key_figures` reads."""
    return [key for key, _ in keys] + (["is_current"] if any(c for _, c in keys) else [])


def key_figures_on_driver(path: str, entity: str) -> dict[str, int] | None:
    """`key_figures` of the gold table at `path`, read from its files on the driver (a small
    table: no Spark job, which would first rebuild the state of a table just written); None
    when Spark must read it."""
    keys = table_keys(entity)
    rows = delta.read_arrow(path, key_columns(keys))
    return None if rows is None else key_figures(rows, keys)


def violations(
    df: DataFrame, keys: list[tuple[str, bool]], measured: Row | Mapping[str, int] | None = None
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
    table: DataFrame, entity: str, measured: Row | Mapping[str, int] | None = None
) -> list[AssetCheckResult]:
    """The key checks of `table` (the gold table as its step wrote it), evaluated in the step:
    one aggregation over the table, or none when `measured` holds the figures of
    `key_aggregates(table_keys(entity))` (the step's own aggregation, or `key_figures`)."""
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
