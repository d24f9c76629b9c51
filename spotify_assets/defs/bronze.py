"""Bronze: one asset per row of ingestion_config, daily partitions on its watermark column.

Bronze is the append-only record of every row version ever observed. A run over a range reads the
source rows whose watermark falls in it (one streaming query, staged as Parquet in bounded chunks),
inserts the (key, watermark) versions not yet captured, and never removes a version: the source
keeps only the current state, and an old version is the history gold needs. Then it evaluates
its blocking checks (defs.bronze_checks) and records what it copied in the table's watermark
document. Rows no window can hold (a NULL or unreadable
watermark or key) land in `bronze/<table>_null_watermark`, counted, never silently skipped; rows
of a source without a primary key that share a (key, watermark) but differ land in
`bronze/<table>_conflicting_versions` (see ingestion.conflicts).
"""

from datetime import date, datetime

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    MaterializeResult,
    PartitionsDefinition,
    asset,
)

from spotify_assets.catalog import Layer, SourceTable
from spotify_assets.defs import bronze_checks, unchanged
from spotify_assets.defs.policies import pool_for, retry_transient
from spotify_assets.ingestion import watermarks
from spotify_assets.ingestion.config import IngestionCatalog
from spotify_assets.ingestion.conflicts import conflicting_entity, land_versions
from spotify_assets.ingestion.staging import read_staged, stage
from spotify_assets.ingestion.windows import EMPTY, StatsAccumulator, days
from spotify_assets.lake import delta, storage
from spotify_assets.lake.metadata import table_metadata
from spotify_assets.resources import Lakehouse, SparkResource
from spotify_assets.source.resource import SourceDatabase


def bronze_key(source: SourceTable) -> AssetKey:
    return AssetKey([Layer.BRONZE.value, source.entity])


def null_watermark_entity(source: SourceTable) -> str:
    return f"{source.entity}_null_watermark"


def first_day(source: SourceTable, partitions_start: date) -> date:
    """The table's first window: its own partition start, never before the partitions' start."""
    return max(source.partition_start or partitions_start, partitions_start)


def extraction_bounds(
    source: SourceTable, start: datetime, end: datetime, first: date
) -> tuple[datetime | None, datetime] | None:
    """The watermark bounds a run over [start, end) extracts: None when the range ends before the
    table's first window; an open lower bound when it includes the first window, which also holds
    every older row."""
    if end.date() <= first:
        return None
    return (None if start.date() <= first else start), end


def source_window(source: SourceTable, context: AssetExecutionContext) -> delta.Window:
    """The run's window as a predicate on the watermark column (for silver and gold). The
    table's first window is open below, as its extraction is: it also holds every older row."""
    window = context.partition_time_window
    partitions = context.assets_def.partitions_def
    assert partitions is not None
    first_key = partitions.get_first_partition_key()
    assert first_key is not None
    open_below = window.start.date() <= first_day(source, date.fromisoformat(first_key))
    if source.watermark_is_date:
        start: date | datetime = window.start.date()
        end: date | datetime = window.end.date()
    else:
        start, end = window.start.replace(tzinfo=None), window.end.replace(tzinfo=None)
    return delta.Window(source.watermark, start, end, open_below=open_below)


def build_bronze_asset(
    source: SourceTable, partitions: PartitionsDefinition, catalog: IngestionCatalog
) -> AssetsDefinition:
    partitions_start = partitions.get_first_partition_key()
    assert partitions_start is not None
    first = first_day(source, date.fromisoformat(partitions_start))
    note = f"\n\nIngestion metadata: {catalog.note}" if catalog.note else ""

    @asset(
        key=bronze_key(source),
        group_name=Layer.BRONZE.value,
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.single_run(),
        kinds={"spark", "delta", "sql"},
        description=(
            f"Every version of `{source.name}` rows observed in the source, by "
            f"({source.key}, {source.watermark}); daily windows on `{source.watermark}`, the "
            f"first ({first}) holding every older row.{note}"
        ),
        metadata={
            "source_table": f"{source.schema}.{source.name}" if source.schema else source.name,
            "key": source.key,
            "watermark": source.watermark,
            "first_window": first.isoformat(),
            "ingestion_metadata_origin": catalog.origin,
        },
        pool=pool_for(bronze_key(source)),
        check_specs=bronze_checks.blocking_specs(source, bronze_key(source)),
    )
    @retry_transient
    def _bronze(
        context: AssetExecutionContext,
        source_db: SourceDatabase,
        spark: SparkResource,
        lakehouse: Lakehouse,
    ) -> MaterializeResult:
        if catalog.note:
            context.log.warning(f"Ingestion metadata: {catalog.note}")
        window = context.partition_time_window
        bounds = extraction_bounds(source, window.start, window.end, first)
        path = lakehouse.path(Layer.BRONZE, source.entity)
        doc_path = watermarks.document_path(lakehouse.root, source)
        doc = watermarks.load(doc_path, source)  # a corrupt document fails before any work
        if bounds is None:
            context.log.info(f"{source.name}: the range ends before its first window {first}")
            return MaterializeResult(
                metadata={"source_rows_in_window": 0, "new_versions": 0},
                check_results=bronze_checks.passed_without_windows(),
            )
        low, high = bounds
        session = spark.session(context.log)
        null_path = lakehouse.path(Layer.BRONZE, null_watermark_entity(source))
        apart_path = lakehouse.path(Layer.BRONZE, conflicting_entity(source.entity))
        step = unchanged.Step(context, session, reads=[], writes=[path, null_path, apart_path])
        staging = storage.join(lakehouse.root, "_staging", source.entity, context.run_id)
        window_days = days(max(window.start.date(), first), window.end.date())
        try:
            stats = StatsAccumulator(source, first)
            schema, batches = source_db.read_window(source, low, high)
            extracted = stage(batches, schema, storage.join(staging, "window.parquet"), stats)
            frame = read_staged(session, storage.join(staging, "window.parquet"))
            bound = SourceDatabase.bound
            target = delta.Window(source.watermark, bound(source, low), bound(source, high))
            landed = land_versions(
                session,
                frame,
                extracted,
                path,
                apart_path,
                [source.key, source.watermark],
                target,
                keys_unique=source_db.keyed_by(source),
            )
            null_schema, null_batches = source_db.read_null_watermarks(source)
            null_rows = stage(null_batches, null_schema, storage.join(staging, "null.parquet"))
            if null_rows or delta.exists(null_path):
                delta.overwrite(
                    read_staged(session, storage.join(staging, "null.parquet")), null_path
                )
            pairs_path = storage.join(staging, "source_pairs.parquet")
            pairs = bronze_checks.stage_source_pairs(source_db, source, low, high, pairs_path)
            checks = bronze_checks.evaluate_blocking(
                session,
                source,
                storage.read_parquet(pairs_path)
                if pairs <= bronze_checks.DRIVER_PAIRS
                else session.read.parquet(pairs_path),
                path,
                apart_path,
                target,
                len(window_days),
            )
        finally:
            storage.delete_tree(staging)
        inserted, change = landed.inserted, landed.change
        if change.added:
            context.log.info(f"{source.name}: new source column(s) {list(change.added)} added")
        if landed.copies:
            context.log.warning(
                f"{source.name}: {landed.copies} row(s) exact copies of another row (the source "
                f"has no primary key on {source.key}): kept once"
            )
        if landed.conflicting:
            context.log.warning(
                f"{source.name}: {landed.conflicting} row(s) share a ({source.key}, "
                f"{source.watermark}) with a different row; none can be chosen, so they landed "
                f"in bronze/{conflicting_entity(source.entity)} until the source settles them"
            )
        if change.missing:
            context.log.warning(
                f"{source.name}: column(s) {list(change.missing)} no longer in the source; "
                "new rows have NULL there"
            )
        if null_rows:
            context.log.warning(
                f"{source.name}: {null_rows} row(s) no daily window can hold (a NULL or "
                f"unreadable {source.watermark} or {source.key}) landed in "
                f"bronze/{null_watermark_entity(source)}"
            )
        doc.record({d: stats.by_day.get(d, EMPTY) for d in window_days}, stats.max_watermark)
        doc.null_watermark_rows = null_rows
        watermarks.save(doc_path, doc)
        stored = delta.read(session, path)
        context.log.info(
            f"{source.name} [{window.start:%Y-%m-%d}, {window.end:%Y-%m-%d}): "
            f"{extracted} source rows, {inserted} new versions"
        )
        return MaterializeResult(
            metadata=table_metadata(
                stored.schema,
                delta.row_count(path),
                path,
                lakehouse.name(Layer.BRONZE, source.entity),
                source_rows_in_window=extracted,
                new_versions=inserted,
                null_watermark_rows=null_rows,
                duplicate_source_rows=landed.copies,
                conflicting_version_rows=landed.conflicting,
                high_watermark=doc.high_watermark or "",
                columns_added=list(change.added),
                columns_missing_in_source=list(change.missing),
                **{"dagster/partition_row_count": extracted},
                **step.costs(),
            ),
            check_results=checks,
        )

    return _bronze


def build_bronze_assets(
    partitions: PartitionsDefinition, catalog: IngestionCatalog
) -> list[AssetsDefinition]:
    return [build_bronze_asset(source, partitions, catalog) for source in catalog.tables]
