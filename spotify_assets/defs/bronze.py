"""Bronze: one asset per source table, daily partitions on its watermark column.

Bronze is the append-only record of every row version ever observed. A run over a window reads the
source rows whose watermark falls in it and inserts the (key, watermark) versions not yet captured;
it never removes a version, because the source keeps only the current state.
"""

import pyarrow as pa
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    MaterializeResult,
    PartitionsDefinition,
    asset,
)
from pyspark.sql import functions as F

from spotify_assets.catalog import SOURCE_TABLES, Layer, SourceTable
from spotify_assets.lake import delta
from spotify_assets.lake.metadata import table_metadata
from spotify_assets.resources import Lakehouse, SparkResource
from spotify_assets.source.resource import SourceDatabase


def source_window(source: SourceTable, context: AssetExecutionContext) -> delta.Window:
    window = context.partition_time_window
    if source.watermark_is_date:
        return delta.Window(source.watermark, window.start.date(), window.end.date())
    return delta.Window(
        source.watermark, window.start.replace(tzinfo=None), window.end.replace(tzinfo=None)
    )


def build_bronze_asset(source: SourceTable, partitions: PartitionsDefinition) -> AssetsDefinition:
    @asset(
        key=AssetKey([Layer.BRONZE.value, source.entity]),
        group_name=Layer.BRONZE.value,
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.single_run(),
        kinds={"spark", "delta", "sql"},
        description=(
            f"Every version of `{source.name}` rows observed in the source, by "
            f"({source.key}, {source.watermark}); daily windows on `{source.watermark}`."
        ),
        metadata={"source_table": source.name, "key": source.key, "watermark": source.watermark},
    )
    def _bronze(
        context: AssetExecutionContext,
        source_db: SourceDatabase,
        spark: SparkResource,
        lakehouse: Lakehouse,
    ) -> MaterializeResult:
        session = spark.session(context.log)
        window = context.partition_time_window
        batches = list(source_db.read_window(source, window.start, window.end))
        schema = source_db.arrow_schema(source.name)
        arrow = pa.Table.from_batches(batches, schema=schema)
        df = session.createDataFrame(arrow).withColumn("_ingested_at", F.current_timestamp())
        path = lakehouse.path(Layer.BRONZE, source.entity)
        inserted = delta.insert_new_versions(
            session, df, path, [source.key, source.watermark], source_window(source, context)
        )
        stored = delta.read(session, path)
        context.log.info(
            f"{source.name} [{window.start:%Y-%m-%d}, {window.end:%Y-%m-%d}): "
            f"{arrow.num_rows} source rows, {inserted} new versions"
        )
        return MaterializeResult(
            metadata=table_metadata(
                stored.schema,
                stored.count(),
                path,
                source_rows_in_window=arrow.num_rows,
                new_versions=inserted,
                **{"dagster/partition_row_count": arrow.num_rows},
            )
        )

    return _bronze


def build_bronze_assets(partitions: PartitionsDefinition) -> list[AssetsDefinition]:
    return [build_bronze_asset(source, partitions) for source in SOURCE_TABLES]
