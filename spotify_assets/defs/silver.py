"""Silver: typed, cleaned, latest version per key, plus each dimension's change log.

Dimensions are recomputed whole from bronze (small, and always consistent with every version bronze
holds) into two tables: `<entity>` (current state) and `<entity>_versions` (every distinct version,
which gold's history is built from). The stream fact follows bronze's daily windows and replaces
each window atomically.
"""

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    MaterializeResult,
    PartitionsDefinition,
    asset,
    multi_asset,
)

from spotify_assets.catalog import SOURCE_BY_ENTITY, Layer
from spotify_assets.defs.bronze import source_window
from spotify_assets.lake import delta
from spotify_assets.lake.metadata import table_metadata
from spotify_assets.resources import Lakehouse, SparkResource
from spotify_assets.transforms.silver import refine, versions

# Dimensions whose history gold keeps (SCD Type 2); dim_date is a calendar and has none.
DIMENSIONS = ("dim_user", "dim_artist", "dim_track")


def versions_entity(entity: str) -> str:
    return f"{entity}_versions"


def build_silver_dimension(entity: str) -> AssetsDefinition:
    current_key = AssetKey([Layer.SILVER.value, entity])
    versions_key = AssetKey([Layer.SILVER.value, versions_entity(entity)])
    bronze_key = AssetKey([Layer.BRONZE.value, entity])

    @multi_asset(
        name=f"silver_{entity}",
        group_name=Layer.SILVER.value,
        # Unpartitioned, but a range launched from the CLI (`dg launch --partition-range`)
        # needs every selected asset to run as one run.
        backfill_policy=BackfillPolicy.single_run(),
        specs=[
            AssetSpec(
                current_key,
                deps=[bronze_key],
                kinds={"spark", "delta"},
                description=f"Current version of every `{entity}` key, typed and cleaned.",
            ),
            AssetSpec(
                versions_key,
                deps=[bronze_key],
                kinds={"spark", "delta"},
                description=(
                    f"Every distinct version of `{entity}` rows bronze has observed, typed and "
                    "cleaned: the change log gold's history is built from."
                ),
            ),
        ],
    )
    def _silver(context: AssetExecutionContext, spark: SparkResource, lakehouse: Lakehouse):
        session = spark.session(context.log)
        bronze = delta.read(session, lakehouse.path(Layer.BRONZE, entity))
        rows_in = bronze.count()
        for key, frame, table in (
            (versions_key, versions(entity, bronze), versions_entity(entity)),
            (current_key, refine(entity, bronze), entity),
        ):
            path = lakehouse.path(Layer.SILVER, table)
            delta.overwrite(frame, path)
            written = delta.read(session, path)
            rows_out = written.count()
            yield MaterializeResult(
                asset_key=key,
                metadata=table_metadata(
                    written.schema, rows_out, path, rows_in=rows_in, rows_removed=rows_in - rows_out
                ),
            )

    return _silver


def build_silver_dim_date() -> AssetsDefinition:
    @asset(
        key=AssetKey([Layer.SILVER.value, "dim_date"]),
        group_name=Layer.SILVER.value,
        deps=[AssetKey([Layer.BRONZE.value, "dim_date"])],
        backfill_policy=BackfillPolicy.single_run(),  # see silver_<entity>
        kinds={"spark", "delta"},
        description="The calendar, one row per date_key.",
    )
    def _silver_dim_date(
        context: AssetExecutionContext, spark: SparkResource, lakehouse: Lakehouse
    ) -> MaterializeResult:
        session = spark.session(context.log)
        bronze = delta.read(session, lakehouse.path(Layer.BRONZE, "dim_date"))
        path = lakehouse.path(Layer.SILVER, "dim_date")
        delta.overwrite(refine("dim_date", bronze), path)
        written = delta.read(session, path)
        return MaterializeResult(metadata=table_metadata(written.schema, written.count(), path))

    return _silver_dim_date


def build_silver_streams(partitions: PartitionsDefinition) -> AssetsDefinition:
    source = SOURCE_BY_ENTITY["fact_stream"]

    @asset(
        key=AssetKey([Layer.SILVER.value, "fact_stream"]),
        group_name=Layer.SILVER.value,
        deps=[AssetKey([Layer.BRONZE.value, "fact_stream"])],
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.single_run(),
        kinds={"spark", "delta"},
        description="Streams, cleaned, one row per stream_id; each day replaced atomically.",
    )
    def _silver_streams(
        context: AssetExecutionContext, spark: SparkResource, lakehouse: Lakehouse
    ) -> MaterializeResult:
        session = spark.session(context.log)
        window = source_window(source, context)
        bronze = delta.read(session, lakehouse.path(Layer.BRONZE, "fact_stream"))
        in_window = bronze.where(window.predicate())
        refined = refine("fact_stream", in_window)
        path = lakehouse.path(Layer.SILVER, "fact_stream")
        delta.replace_window(refined, path, window)
        written = delta.read(session, path)
        rows_in, rows_out = in_window.count(), written.where(window.predicate()).count()
        return MaterializeResult(
            metadata=table_metadata(
                written.schema,
                written.count(),
                path,
                rows_in=rows_in,
                older_versions_removed=rows_in - rows_out,
                **{"dagster/partition_row_count": rows_out},
            )
        )

    return _silver_streams


def build_silver_assets(partitions: PartitionsDefinition) -> list[AssetsDefinition]:
    return [
        *(build_silver_dimension(e) for e in DIMENSIONS),
        build_silver_dim_date(),
        build_silver_streams(partitions),
    ]
