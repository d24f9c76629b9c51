"""Checks on every bronze table: nothing missing, nothing duplicated, caught up with the source."""

from datetime import date, datetime, timedelta

import pyarrow as pa
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    asset_check,
)
from pyspark.sql import functions as F
from sqlalchemy import func, select

from spotify_assets.catalog import Layer, SourceTable
from spotify_assets.defs.bronze import bronze_key, first_day, stage
from spotify_assets.ingestion import watermarks
from spotify_assets.ingestion.windows import iso
from spotify_assets.lake import delta, storage
from spotify_assets.resources import Lakehouse, SparkResource
from spotify_assets.source.resource import SourceDatabase
from spotify_assets.transforms.expectations import SAMPLE_SIZE


def build_reconciliation_check(source: SourceTable, first: date) -> AssetChecksDefinition:
    @asset_check(
        asset=bronze_key(source),
        name="reconciles_with_source",
        description=(
            f"Every `{source.name}` row of every window bronze has extracted, by "
            f"({source.key}, {source.watermark}), is in bronze: zero missing."
        ),
        blocking=True,
    )
    def _check(
        context: AssetCheckExecutionContext,
        source_db: SourceDatabase,
        spark: SparkResource,
        lakehouse: Lakehouse,
    ) -> AssetCheckResult:
        session = spark.session(context.log)
        doc = watermarks.load(watermarks.document_path(lakehouse.root, source), source)
        extracted = sorted(doc.windows)
        if not extracted:
            return AssetCheckResult(passed=True, metadata={"windows_checked": 0})
        end = date.fromisoformat(extracted[-1]) + timedelta(days=1)
        high = datetime.combine(end, datetime.min.time())
        run_id = context.op_execution_context.run_id
        staging = storage.join(lakehouse.root, "_staging", source.entity, f"check-{run_id}.parquet")
        table = source_db.table(source)
        cols = [table.c[source.key], table.c[source.watermark]]
        stmt = select(*cols).where(*source_db.window_filter(table, source, None, high))
        full = source_db.arrow_schema(table)
        schema = pa.schema([full.field(source.key), full.field(source.watermark)])
        try:
            stage(source_db.stream(stmt, schema, f"reconciling {source.name}"), schema, staging)
            src = session.read.parquet(staging)
            if source.watermark_is_date:
                day = F.col(source.watermark)
            else:
                day = F.to_date(F.col(source.watermark))
            src = src.where(
                F.greatest(day, F.lit(first)).isin([date.fromisoformat(d) for d in extracted])
            )
            keys = [source.key, source.watermark]
            bronze = delta.read(session, lakehouse.path(Layer.BRONZE, source.entity))
            landed = bronze.select(*keys).distinct().withColumn("_landed", F.lit(True))
            joined = src.join(landed, keys, "left")
            totals = joined.agg(
                F.count(F.lit(1)).alias("checked"),
                F.count(F.when(F.col("_landed").isNull(), 1)).alias("missing"),
            ).first()
            assert totals is not None
            checked, count = int(totals["checked"]), int(totals["missing"])
            sample = []
            if count:
                missing = joined.where(F.col("_landed").isNull()).select(source.key)
                rows = missing.orderBy(source.key).limit(SAMPLE_SIZE).collect()
                sample = [iso(r[0]) for r in rows]
        finally:
            storage.delete(staging)
        return AssetCheckResult(
            passed=count == 0,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "windows_checked": len(extracted),
                "source_rows_checked": checked,
                "missing_rows": count,
                "sample_missing_keys": str(sample),
            },
        )

    return _check


def build_duplicate_check(source: SourceTable) -> AssetChecksDefinition:
    @asset_check(
        asset=bronze_key(source),
        name="no_duplicate_versions",
        description=f"No ({source.key}, {source.watermark}) pair appears twice in bronze.",
        blocking=True,
    )
    def _check(
        context: AssetCheckExecutionContext, spark: SparkResource, lakehouse: Lakehouse
    ) -> AssetCheckResult:
        session = spark.session(context.log)
        df = delta.read(session, lakehouse.path(Layer.BRONZE, source.entity))
        dups = df.groupBy(source.key, source.watermark).count().where("count > 1")
        count = dups.count()
        sample = []
        if count:
            sample = [str(r[0]) for r in dups.orderBy(source.key).limit(SAMPLE_SIZE).collect()]
        return AssetCheckResult(
            passed=count == 0,
            severity=AssetCheckSeverity.ERROR,
            metadata={"duplicated_versions": count, "sample_keys": str(sample)},
        )

    return _check


def build_caught_up_check(source: SourceTable) -> AssetChecksDefinition:
    @asset_check(
        asset=bronze_key(source),
        name="caught_up_with_source",
        description=(
            "Freshness: bronze's high watermark is within one daily window of the source's "
            "newest complete-window watermark."
        ),
    )
    def _check(
        context: AssetCheckExecutionContext, source_db: SourceDatabase, lakehouse: Lakehouse
    ) -> AssetCheckResult:
        doc = watermarks.load(watermarks.document_path(lakehouse.root, source), source)
        table = source_db.table(source)
        wm = table.c[source.watermark]
        extracted_until = max(doc.windows) if doc.windows else None

        def newest():
            with source_db.engine.connect() as conn:
                return conn.execute(select(func.max(wm))).scalar()

        source_high = iso(source_db.with_retries(f"reading the newest {source.name}", newest))
        bronze_high = doc.high_watermark
        lag_days = None
        if source_high and bronze_high:
            lag_days = (
                date.fromisoformat(source_high[:10]) - date.fromisoformat(bronze_high[:10])
            ).days
        passed = source_high is None or (lag_days is not None and lag_days <= 1)
        return AssetCheckResult(
            passed=passed,
            severity=AssetCheckSeverity.WARN,
            metadata={
                "source_high_watermark": source_high or "",
                "bronze_high_watermark": bronze_high or "",
                "lag_days": lag_days if lag_days is not None else -1,
                "last_window_extracted": extracted_until or "",
            },
        )

    return _check


def build_bronze_checks(tables, partitions_start: date) -> list[AssetChecksDefinition]:
    checks = []
    for source in tables:
        checks.append(build_reconciliation_check(source, first_day(source, partitions_start)))
        checks.append(build_duplicate_check(source))
        checks.append(build_caught_up_check(source))
    return checks
