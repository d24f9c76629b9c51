"""Checks on every bronze table: nothing missing, nothing duplicated, caught up with the source."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pyarrow as pa
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    multi_asset_check,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)
from pyspark.sql import functions as F
from sqlalchemy import func, select

from spotify_assets.catalog import Layer, SourceTable
from spotify_assets.defs.bronze import bronze_key, extraction_bounds, first_day, stage
from spotify_assets.ingestion import watermarks
from spotify_assets.ingestion.conflicts import conflicting_entity
from spotify_assets.ingestion.windows import iso
from spotify_assets.lake import delta, storage
from spotify_assets.resources import Lakehouse, SparkResource
from spotify_assets.source.resource import SourceDatabase
from spotify_assets.transforms.expectations import SAMPLE_SIZE

RECONCILES, NO_DUPLICATES, CAUGHT_UP = (
    "reconciles_with_source",
    "no_duplicate_versions",
    "caught_up_with_source",
)


def run_range(context: AssetCheckExecutionContext) -> tuple[date, date] | None:
    """The days [first, last] of the run's partition range; None for a run without one (a
    check launched on its own, which then covers every window)."""
    tags = context.op_execution_context.run.tags
    start, end = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if start is None and PARTITION_NAME_TAG in tags:
        start = end = tags[PARTITION_NAME_TAG]
    if start is None or end is None:
        return None
    return date.fromisoformat(start), date.fromisoformat(end)


def build_bronze_check(source: SourceTable, first: date) -> AssetChecksDefinition:
    """One step per bronze table for its three checks: one read of the table serves the
    reconciliation and the duplicate count. In a partitioned run they cover the run's windows
    (the only rows it could have written), so their cost does not grow with the history."""
    key = bronze_key(source)
    specs = [
        AssetCheckSpec(
            RECONCILES,
            asset=key,
            description=(
                f"Every `{source.name}` row of every window bronze has extracted, by "
                f"({source.key}, {source.watermark}), is in bronze, or landed apart as a "
                "conflicting version: zero missing."
            ),
            blocking=True,
        ),
        AssetCheckSpec(
            NO_DUPLICATES,
            asset=key,
            description=f"No ({source.key}, {source.watermark}) pair appears twice in bronze.",
            blocking=True,
        ),
        AssetCheckSpec(
            CAUGHT_UP,
            asset=key,
            description=(
                "Freshness: bronze's high watermark is within one daily window of the source's "
                "newest complete-window watermark."
            ),
        ),
    ]

    @multi_asset_check(specs=specs, name=f"{key.to_python_identifier()}_checks", can_subset=True)
    def _checks(
        context: AssetCheckExecutionContext,
        source_db: SourceDatabase,
        spark: SparkResource,
        lakehouse: Lakehouse,
    ) -> Iterator[AssetCheckResult]:
        selected = {k.name for k in context.selected_asset_check_keys}
        doc = watermarks.load(watermarks.document_path(lakehouse.root, source), source)
        if selected & {RECONCILES, NO_DUPLICATES}:
            session = spark.session(context.log)
            scope = _scope(source, first, sorted(doc.windows), run_range(context))
            versions = _versions(session, lakehouse, source, scope)
            if RECONCILES in selected:
                yield _reconcile(
                    context, source_db, session, lakehouse, source, first, scope, versions
                )
            if NO_DUPLICATES in selected:
                yield _duplicates(source, versions)
            versions.unpersist()
        if CAUGHT_UP in selected:
            yield _caught_up(source_db, source, doc)

    return _checks


@dataclass(frozen=True)
class Scope:
    """The windows a check covers, and the watermark bounds [low, high) that hold them."""

    windows: list[str]
    low: datetime | None
    high: datetime | None


def _scope(
    source: SourceTable, first: date, extracted: list[str], days_run: tuple[date, date] | None
) -> Scope:
    if days_run is None or not extracted:
        high = None
        if extracted:
            high = datetime.combine(date.fromisoformat(extracted[-1]), datetime.min.time())
            high += timedelta(days=1)
        return Scope(extracted, None, high)
    start = datetime.combine(days_run[0], datetime.min.time())
    end = datetime.combine(days_run[1] + timedelta(days=1), datetime.min.time())
    bounds = extraction_bounds(source, start, end, first)
    if bounds is None:
        return Scope([], None, None)
    low, high = bounds
    lowest = first if low is None else low.date()
    windows = [d for d in extracted if lowest <= date.fromisoformat(d) < high.date()]
    return Scope(windows, low, high)


def _versions(session, lakehouse: Lakehouse, source: SourceTable, scope: Scope):
    """Bronze's (key, watermark) pairs in the scope's bounds, with how often each appears."""
    pairs = _pairs(session, lakehouse.path(Layer.BRONZE, source.entity), source, scope)
    return pairs.count().persist()


def _pairs(session, path: str, source: SourceTable, scope: Scope):
    """The (key, watermark) pairs of a bronze table in the scope's bounds, grouped."""
    keys = [source.key, source.watermark]
    rows = delta.read(session, path).select(*keys)
    bound = SourceDatabase.bound
    low, high = bound(source, scope.low), bound(source, scope.high)
    if low is not None:
        rows = rows.where(F.col(source.watermark) >= F.lit(low))
    if high is not None:
        rows = rows.where(F.col(source.watermark) < F.lit(high))
    return rows.groupBy(*keys)


def _reconcile(context, source_db, session, lakehouse, source, first, scope, versions):
    if not scope.windows:
        return AssetCheckResult(check_name=RECONCILES, passed=True, metadata={"windows_checked": 0})
    run_id = context.op_execution_context.run_id
    staging = storage.join(lakehouse.root, "_staging", source.entity, f"check-{run_id}.parquet")
    table = source_db.table(source)
    cols = [c for c in source_db.columns(table) if c.name in (source.key, source.watermark)]
    stmt = select(*cols).where(*source_db.window_filter(table, source, scope.low, scope.high))
    full = source_db.arrow_schema(table)
    schema = pa.schema([full.field(source.key), full.field(source.watermark)])
    try:
        batches = source_db.stream(stmt, schema, f"reconciling {source.name}", schema.names)
        stage(batches, schema, staging)
        src = session.read.parquet(staging)
        if source.watermark_is_date:
            day = F.col(source.watermark)
        else:
            day = F.to_date(F.col(source.watermark))
        src = src.where(
            F.greatest(day, F.lit(first)).isin([date.fromisoformat(d) for d in scope.windows])
        )
        keys = [source.key, source.watermark]
        landed = versions.select(*keys).withColumn("_landed", F.lit(True))
        apart_path = lakehouse.path(Layer.BRONZE, conflicting_entity(source.entity))
        if delta.exists(session, apart_path):  # conflicting versions are landed, apart
            apart = _pairs(session, apart_path, source, scope).agg(
                F.max(F.lit(True)).alias("_apart")
            )
            landed = landed.join(apart, keys, "full")
        else:
            landed = landed.withColumn("_apart", F.lit(None).cast("boolean"))
        joined = src.join(landed, keys, "left")
        lost = F.col("_landed").isNull() & F.col("_apart").isNull()
        totals = joined.agg(
            F.count(F.lit(1)).alias("checked"),
            F.count(F.when(lost, 1)).alias("missing"),
            F.count("_apart").alias("apart"),
        ).first()
        assert totals is not None
        checked, count = int(totals["checked"]), int(totals["missing"])
        apart_rows = int(totals["apart"])
        sample = []
        if count:
            missing = joined.where(lost).select(source.key)
            rows = missing.orderBy(source.key).limit(SAMPLE_SIZE).collect()
            sample = [iso(r[0]) for r in rows]
    finally:
        storage.delete(staging)
    return AssetCheckResult(
        check_name=RECONCILES,
        passed=count == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "windows_checked": len(scope.windows),
            "source_rows_checked": checked,
            "missing_rows": count,
            "rows_in_conflicting_versions": apart_rows,
            "sample_missing_keys": str(sample),
        },
    )


def _duplicates(source: SourceTable, versions) -> AssetCheckResult:
    dups = versions.where("count > 1")
    count = dups.count()
    sample = []
    if count:
        sample = [str(r[0]) for r in dups.orderBy(source.key).limit(SAMPLE_SIZE).collect()]
    return AssetCheckResult(
        check_name=NO_DUPLICATES,
        passed=count == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={"duplicated_versions": count, "sample_keys": str(sample)},
    )


def _caught_up(source_db: SourceDatabase, source: SourceTable, doc) -> AssetCheckResult:
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


def build_bronze_checks(tables, partitions_start: date) -> list[AssetChecksDefinition]:
    return [build_bronze_check(source, first_day(source, partitions_start)) for source in tables]
