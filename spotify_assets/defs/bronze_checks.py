"""Checks on every bronze table: nothing missing, nothing duplicated, caught up with the source.

The two blocking checks run inside the bronze step, on what it already holds: the window's
source rows, staged for the insert, against bronze's (key, watermark) pairs in the same bounds.
So they cost one Spark job over the run's windows, not a second read of the source in a step of
their own, and they cover exactly what the run could have written. The freshness check
(`caught_up_with_source`, a warning) is one step for all tables, runnable on its own.
"""

from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from functools import reduce

import pyarrow as pa
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    multi_asset_check,
)
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from sqlalchemy import func, select

from spotify_assets.catalog import SourceTable
from spotify_assets.ingestion import watermarks
from spotify_assets.ingestion.staging import stage
from spotify_assets.ingestion.windows import iso
from spotify_assets.lake import delta
from spotify_assets.resources import Lakehouse
from spotify_assets.source.resource import SourceDatabase
from spotify_assets.transforms.expectations import SAMPLE_SIZE

RECONCILES, NO_DUPLICATES, CAUGHT_UP = (
    "reconciles_with_source",
    "no_duplicate_versions",
    "caught_up_with_source",
)


def blocking_specs(source: SourceTable, key: AssetKey) -> list[AssetCheckSpec]:
    """The checks the bronze step evaluates itself: a failure stops silver and gold."""
    return [
        AssetCheckSpec(
            RECONCILES,
            asset=key,
            description=(
                f"Every `{source.name}` row of the run's windows, by ({source.key}, "
                f"{source.watermark}), is in bronze, or landed apart as a conflicting version: "
                "zero missing."
            ),
            blocking=True,
        ),
        AssetCheckSpec(
            NO_DUPLICATES,
            asset=key,
            description=f"No ({source.key}, {source.watermark}) pair appears twice in bronze.",
            blocking=True,
        ),
    ]


def stage_source_pairs(
    source_db: SourceDatabase,
    source: SourceTable,
    low: datetime | None,
    high: datetime,
    path: str,
) -> None:
    """The source's (key, watermark) pairs in [low, high), read again after the insert and
    staged as Parquet at `path`: a row committed during the extraction with a watermark in the
    window (which the extraction's snapshot could not see) is then found missing."""
    table = source_db.table(source)
    cols = [c for c in source_db.columns(table) if c.name in (source.key, source.watermark)]
    stmt = select(*cols).where(*source_db.window_filter(table, source, low, high))
    full = source_db.arrow_schema(table)
    schema = pa.schema([full.field(source.key), full.field(source.watermark)])
    batches = source_db.stream(stmt, schema, f"reconciling {source.name}", schema.names)
    stage(batches, schema, path)


def evaluate_blocking(
    session: SparkSession,
    source: SourceTable,
    source_pairs: DataFrame,
    path: str,
    apart_path: str,
    window: delta.Window,
    windows: int,
) -> list[AssetCheckResult]:
    """Both blocking checks over `window` (the run's bounds, `windows` daily windows), in one
    Spark job: `source_pairs` are the source's (see stage_source_pairs), `path` and
    `apart_path` bronze and its conflicting versions. The samples of keys take a second job, on
    failure only."""
    keys = [source.key, source.watermark]

    def tagged(rows: DataFrame, tag: str) -> DataFrame:
        others = [t for t in ("_source", "_bronze", "_apart") if t != tag]
        return rows.select(*keys, F.lit(1).alias(tag), *(F.lit(0).alias(other) for other in others))

    parts = [
        tagged(source_pairs, "_source"),
        tagged(_in_window(session, path, keys, window), "_bronze"),
    ]
    if delta.exists(apart_path):  # conflicting versions are landed, apart
        parts.append(tagged(_in_window(session, apart_path, keys, window), "_apart"))
    # One row per pair: how often the source, bronze and the conflicting versions hold it. A
    # union and one aggregation (no join): the cheapest plan for both checks at once.
    pairs = (
        reduce(DataFrame.unionByName, parts)
        .groupBy(*keys)
        .agg(
            F.sum("_source").alias("in_source"),
            F.sum("_bronze").alias("in_bronze"),
            F.sum("_apart").alias("apart"),
        )
    )
    lost = (F.col("in_source") > 0) & (F.col("in_bronze") == 0) & (F.col("apart") == 0)
    duplicated = F.col("in_bronze") > 1
    totals = pairs.agg(
        F.sum("in_source").alias("checked"),
        F.sum(F.when(lost, F.col("in_source"))).alias("missing"),
        F.sum(F.when(F.col("apart") > 0, F.col("in_source"))).alias("apart"),
        F.count_if(duplicated).alias("duplicated"),
    ).first()
    assert totals is not None
    missing, copies = int(totals["missing"] or 0), int(totals["duplicated"])
    missing_sample, duplicated_sample = [], []
    if missing:
        lost_keys = pairs.where(lost).select(source.key).orderBy(source.key).limit(SAMPLE_SIZE)
        missing_sample = [iso(r[0]) for r in lost_keys.collect()]
    if copies:
        copied = pairs.where(duplicated).orderBy(source.key).limit(SAMPLE_SIZE)
        duplicated_sample = [str(r[0]) for r in copied.collect()]
    return [
        AssetCheckResult(
            check_name=RECONCILES,
            passed=missing == 0,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "windows_checked": windows,
                "source_rows_checked": int(totals["checked"] or 0),
                "missing_rows": missing,
                "rows_in_conflicting_versions": int(totals["apart"] or 0),
                "sample_missing_keys": str(missing_sample),
            },
        ),
        AssetCheckResult(
            check_name=NO_DUPLICATES,
            passed=copies == 0,
            severity=AssetCheckSeverity.ERROR,
            metadata={"duplicated_versions": copies, "sample_keys": str(duplicated_sample)},
        ),
    ]


def passed_without_windows() -> list[AssetCheckResult]:
    """A run whose range ends before the table's first window checks nothing."""
    return [
        AssetCheckResult(check_name=RECONCILES, passed=True, metadata={"windows_checked": 0}),
        AssetCheckResult(
            check_name=NO_DUPLICATES, passed=True, metadata={"duplicated_versions": 0}
        ),
    ]


def _in_window(session: SparkSession, path: str, keys: list[str], window: delta.Window):
    """The (key, watermark) pairs of a bronze table's rows in the window, one per row."""
    return delta.read(session, path).select(*keys).where(window.predicate())


def build_caught_up_check(
    tables: Sequence[SourceTable], key_of: Callable[[SourceTable], AssetKey]
) -> AssetChecksDefinition:
    """Freshness of every bronze table in one step: a few SQL queries, no Spark."""
    by_key = {key_of(source): source for source in tables}
    specs = [
        AssetCheckSpec(
            CAUGHT_UP,
            asset=key,
            description=(
                "Freshness: bronze's high watermark is within one daily window of the source's "
                "newest complete-window watermark."
            ),
        )
        for key in by_key
    ]

    @multi_asset_check(specs=specs, name="bronze_freshness_checks", can_subset=True)
    def _caught_up_checks(
        context: AssetCheckExecutionContext, source_db: SourceDatabase, lakehouse: Lakehouse
    ) -> Iterator[AssetCheckResult]:
        for check in context.selected_asset_check_keys:
            source = by_key[check.asset_key]
            doc = watermarks.load(watermarks.document_path(lakehouse.root, source), source)
            yield _caught_up(source_db, source, doc, check.asset_key)

    return _caught_up_checks


def _caught_up(source_db: SourceDatabase, source: SourceTable, doc, key: AssetKey):
    table = source_db.table(source)
    wm = table.c[source.watermark]
    extracted_until = max(doc.windows) if doc.windows else None

    def newest():
        with source_db.engine.connect() as conn:
            placed = source_db.placeable(table, source)  # unplaceable rows sort apart
            return conn.execute(select(func.max(wm)).where(*placed)).scalar()

    source_high = iso(source_db.with_retries(f"reading the newest {source.name}", newest))
    bronze_high = doc.high_watermark
    lag_days = None
    if source_high and bronze_high:
        lag_days = (
            date.fromisoformat(source_high[:10]) - date.fromisoformat(bronze_high[:10])
        ).days
    passed = source_high is None or (lag_days is not None and lag_days <= 1)
    return AssetCheckResult(
        asset_key=key,
        check_name=CAUGHT_UP,
        passed=passed,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "source_high_watermark": source_high or "",
            "bronze_high_watermark": bronze_high or "",
            "lag_days": lag_days if lag_days is not None else -1,
            "last_window_extracted": extracted_until or "",
        },
    )
