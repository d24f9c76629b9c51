"""Gold: the star schema users query (dim_user, dim_artist, dim_track, dim_date, fact_stream)."""

from pathlib import Path

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    MaterializeResult,
    PartitionsDefinition,
    asset,
)

from spotify_assets.catalog import GOLD_KEYS, SOURCE_BY_ENTITY, Layer
from spotify_assets.defs.bronze import source_window
from spotify_assets.defs.silver import versions_entity
from spotify_assets.lake import as_of, delta
from spotify_assets.lake.metadata import table_metadata
from spotify_assets.resources import Lakehouse, SparkResource
from spotify_assets.transforms import gold

DIMENSIONS = ("dim_user", "dim_artist", "dim_track")


def build_gold_dimension(entity: str) -> AssetsDefinition:
    @asset(
        key=AssetKey([Layer.GOLD.value, entity]),
        group_name=Layer.GOLD.value,
        deps=[AssetKey([Layer.SILVER.value, versions_entity(entity)])],
        backfill_policy=BackfillPolicy.single_run(),  # lets `dg launch --partition-range` run it
        kinds={"spark", "delta"},
        description=(
            f"The `{entity}` dimension with its history (SCD Type 2): one row per version, "
            "valid over [__START_AT, __END_AT), with a surrogate key per version."
        ),
    )
    def _gold_dim(
        context: AssetExecutionContext, spark: SparkResource, lakehouse: Lakehouse
    ) -> MaterializeResult:
        session = spark.session(context.log)
        versions = delta.read(session, lakehouse.path(Layer.SILVER, versions_entity(entity)))
        path = lakehouse.path(Layer.GOLD, entity)
        delta.overwrite(gold.build_scd2(entity, versions), path)
        written = delta.read(session, path)
        current = written.where("is_current").count()
        return MaterializeResult(
            metadata=table_metadata(written.schema, written.count(), path, current_rows=current)
        )

    return _gold_dim


@asset(
    key=AssetKey([Layer.GOLD.value, "dim_date"]),
    group_name=Layer.GOLD.value,
    deps=[AssetKey([Layer.SILVER.value, "dim_date"])],
    backfill_policy=BackfillPolicy.single_run(),  # lets `dg launch --partition-range` run it
    kinds={"spark", "delta"},
    description="The calendar, with quarter and is_weekend.",
)
def gold_dim_date(
    context: AssetExecutionContext, spark: SparkResource, lakehouse: Lakehouse
) -> MaterializeResult:
    session = spark.session(context.log)
    silver = delta.read(session, lakehouse.path(Layer.SILVER, "dim_date"))
    path = lakehouse.path(Layer.GOLD, "dim_date")
    delta.overwrite(gold.build_dim_date(silver), path)
    written = delta.read(session, path)
    return MaterializeResult(metadata=table_metadata(written.schema, written.count(), path))


# How the fact reaches each dimension, for rebuilding windows when a dimension changes later.
def _via(alias: str, entity: str, join_from: str = "f") -> dict[str, str]:
    key = GOLD_KEYS[entity][0]
    return {"alias": alias, "view": entity, "key": key, "join_from": join_from, "join_column": key}


AS_OF_DIMENSIONS = [
    _via("usr", "dim_user"), _via("trk", "dim_track"), _via("art", "dim_artist", "trk")
]  # fmt: skip


def build_gold_fact_stream(partitions: PartitionsDefinition) -> AssetsDefinition:
    source = SOURCE_BY_ENTITY["fact_stream"]

    @asset(
        key=AssetKey([Layer.GOLD.value, "fact_stream"]),
        group_name=Layer.GOLD.value,
        deps=[
            AssetKey([Layer.SILVER.value, "fact_stream"]),
            *(AssetKey([Layer.GOLD.value, d]) for d in DIMENSIONS),
            AssetKey([Layer.GOLD.value, "dim_date"]),
        ],
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.single_run(),
        kinds={"spark", "delta"},
        description=(
            "One row per stream with the surrogate keys of the user, track and artist versions "
            "valid at its stream_timestamp."
        ),
    )
    def _fact_stream(
        context: AssetExecutionContext, spark: SparkResource, lakehouse: Lakehouse
    ) -> MaterializeResult:
        session = spark.session(context.log)
        window = source_window(source, context)
        streams = delta.read(session, lakehouse.path(Layer.SILVER, "fact_stream"))
        paths = {d["view"]: lakehouse.path(Layer.GOLD, d["view"]) for d in AS_OF_DIMENSIONS}
        dims = {view: delta.read(session, p) for view, p in paths.items()}
        path = lakehouse.path(Layer.GOLD, "fact_stream")
        stale = as_of.write_windows(
            session,
            path,
            Path(lakehouse.path(Layer.GOLD, "_as_of")) / "fact_stream.json",
            window,
            streams,
            AS_OF_DIMENSIONS,
            paths,
            dims.__getitem__,
            lambda span: gold.build_fact_stream(
                streams.where(span.predicate()),
                dims["dim_user"],
                dims["dim_track"],
                dims["dim_artist"],
            ),
        )
        if stale:
            context.log.info(
                f"gold.fact_stream: rebuilt {len(stale)} other window(s) whose dimension "
                f"versions changed since they were built: {[str(d) for d in stale]}"
            )
        written = delta.read(session, path)
        in_window = written.where(window.predicate())
        unresolved = in_window.where("user_sk = -1 OR track_sk = -1 OR artist_sk = -1").count()
        return MaterializeResult(
            metadata=table_metadata(
                written.schema,
                written.count(),
                path,
                unresolved_keys=unresolved,
                windows_rebuilt_for_dimension_changes=[str(d) for d in stale],
                **{"dagster/partition_row_count": in_window.count()},
            )
        )

    return _fact_stream


def build_gold_assets(partitions: PartitionsDefinition) -> list[AssetsDefinition]:
    return [
        *(build_gold_dimension(e) for e in DIMENSIONS),
        gold_dim_date,
        build_gold_fact_stream(partitions),
    ]
