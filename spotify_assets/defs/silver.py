"""Silver: bronze conformed to each table's contract, deduplicated, written exactly once.

- Dimensions are recomputed whole from bronze into `<entity>_versions` (every distinct version:
  the change log gold's history is built from) and `<entity>` (the current version per key). A
  recompute reads every version bronze holds, so re-runs, in any order, give the same tables.
  The change log is synced by a MERGE that touches only the versions that differ, so its change
  data feed tells gold exactly which keys changed.
- `dim_date` likewise, one row per date_key.
- `fact_stream` follows bronze's daily windows; each window is replaced atomically.
- `streams_enriched`: each window's streams joined as-of to the dimension versions, by the SQL
  rendered from jinja_templates/enriched_streams.sql.j2.

Every materialisation reports rows in and written, duplicates removed, rows with rescued data
and schema changes; each table's schema history sits beside it (silver/_schemas/).
"""

from dataclasses import dataclass, replace
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    asset,
    multi_asset,
)
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from spotify_assets.catalog import SOURCE_BY_ENTITY, Layer, TableName
from spotify_assets.defs import unchanged
from spotify_assets.defs.bronze import source_window
from spotify_assets.defs.policies import pool_for, retry_transient
from spotify_assets.lake import as_of, change_log, delta, storage
from spotify_assets.lake.metadata import Counted, table_metadata
from spotify_assets.lineage import column_lineage
from spotify_assets.resources import Lakehouse, SparkResource
from spotify_assets.transforms import enriched, schema_history
from spotify_assets.transforms.conform import IGNORED_VALUES, Conformed, conform, with_source_file
from spotify_assets.transforms.contracts import CONTRACTS, RESCUED, Contract
from spotify_assets.transforms.silver import latest_per_key, versions

# Dimensions whose history gold keeps (SCD Type 2); dim_date is a calendar and has none.
DIMENSIONS = ("dim_user", "dim_artist", "dim_track")


def versions_entity(entity: str) -> str:
    return f"{entity}_versions"


def silver_key(entity: str) -> AssetKey:
    return AssetKey([Layer.SILVER.value, entity])


@dataclass
class Conforming:
    """Bronze rows conformed to a contract, with what the UI reports about them."""

    contract: Contract
    table: TableName
    result: Conformed
    history: schema_history.SchemaHistory
    history_path: str
    rows_in: int
    ignored_values: int

    @property
    def frame(self) -> DataFrame:
        return self.result.frame.drop(IGNORED_VALUES)

    def save_history(self) -> None:
        """After the write: the history says what the table holds."""
        schema_history.save(self.history_path, self.history)

    def log(self, context: AssetExecutionContext) -> None:
        table, r = self.table, self.result
        if r.columns_added:
            context.log.info(f"{table}: new column(s) {r.columns_added} added (addNewColumns)")
        if r.columns_rescued:
            context.log.warning(f"{table}: column(s) {r.columns_rescued} go to {RESCUED}")
        if r.columns_ignored:
            context.log.warning(
                f"{table}: column(s) {r.columns_ignored} ignored (evolution mode none): "
                f"{self.ignored_values} value(s) not kept"
            )
        if r.columns_missing:
            context.log.warning(f"{table}: column(s) {r.columns_missing} not in bronze: NULL")

    def metadata(
        self, schema: StructType, rows_written: int, rescued: int, path: str, name: TableName,
        **extra: Any,
    ) -> dict:  # fmt: skip
        """What a materialisation wrote: `rows_written` rows, `rescued` of them with rescued
        data (counted as they were written, see Counted)."""
        r = self.result
        return table_metadata(
            schema,
            rows_written,
            path,
            name,
            rows_in=self.rows_in,
            rows_written=rows_written,
            duplicates_removed=self.rows_in - rows_written,
            rows_with_rescued_data=rescued,
            columns_added=r.columns_added,
            columns_rescued=r.columns_rescued,
            columns_ignored=r.columns_ignored,
            ignored_values=self.ignored_values,
            columns_missing_in_bronze=r.columns_missing,
            evolution_mode=self.contract.evolution.value,
            schema_history=MetadataValue.json(self.history.events),
            **extra,
        )

    def release(self) -> None:
        self.result.frame.unpersist()


def counts(frame: DataFrame) -> tuple[int, int]:
    """(rows, rows with rescued data) of a frame, in one Spark job."""
    totals = frame.agg(F.count(F.lit(1)), F.count(RESCUED)).first()
    assert totals is not None
    return int(totals[0]), int(totals[1])


def conform_bronze(
    session: SparkSession, lakehouse: Lakehouse, entity: str, window: delta.Window | None = None
) -> Conforming:
    contract = CONTRACTS[entity]
    bronze = with_source_file(delta.read(session, lakehouse.path(Layer.BRONZE, entity)))
    if window is not None:
        bronze = bronze.where(window.predicate())
    path = schema_history.history_path(lakehouse.root, entity)
    history = schema_history.load(path, entity)
    table = lakehouse.name(Layer.SILVER, entity)
    result = conform(bronze, contract, history, table)
    # Kept for the run's several uses (the counts below, each table written from it): bronze
    # is read and conformed once. `release` frees it.
    result = replace(result, frame=result.frame.persist())
    totals = [F.count(F.lit(1)).alias("rows")]
    if IGNORED_VALUES in result.frame.columns:
        totals.append(F.sum(IGNORED_VALUES).alias("ignored"))
    row = result.frame.agg(*totals).first()
    assert row is not None
    ignored = int(row["ignored"] or 0) if IGNORED_VALUES in result.frame.columns else 0
    return Conforming(contract, table, result, history, path, int(row["rows"]), ignored)


def build_silver_dimension(entity: str) -> AssetsDefinition:
    current_key, versions_key = silver_key(entity), silver_key(versions_entity(entity))
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
                description=f"Current version of every `{entity}` key, conformed to its contract.",
            ),
            AssetSpec(
                versions_key,
                deps=[bronze_key],
                kinds={"spark", "delta"},
                description=(
                    f"Every distinct version of `{entity}` rows bronze has observed, conformed "
                    "to the contract: the change log gold's history is built from."
                ),
            ),
        ],
        pool=pool_for(current_key),
    )
    @retry_transient
    def _silver(context: AssetExecutionContext, spark: SparkResource, lakehouse: Lakehouse):
        session = spark.session(context.log)
        log_path = lakehouse.path(Layer.SILVER, versions_entity(entity))
        current_path = lakehouse.path(Layer.SILVER, entity)
        step = unchanged.Step(
            context,
            session,
            reads=[lakehouse.path(Layer.BRONZE, entity)],
            writes=[log_path, current_path],
        )
        if (same := step.unchanged([versions_key, current_key])) is not None:
            yield from same
            return
        conforming = conform_bronze(session, lakehouse, entity)
        conforming.log(context)
        frame, contract = conforming.frame, conforming.contract
        all_versions = versions(frame, contract)
        synced = change_log.sync(session, all_versions, log_path, [contract.key, contract.sequence])
        current = Counted(latest_per_key(frame, contract), rescued=RESCUED)
        delta.overwrite(current.frame, current_path)
        conforming.save_history()
        # The change log now holds exactly these versions (sync), counted from the kept rows.
        log_rows, log_rescued = counts(all_versions)
        conforming.release()
        log_changes = {
            "versions_inserted": synced.inserted,
            "versions_updated": synced.updated,
            "versions_deleted": synced.deleted,
        }
        log_name = lakehouse.name(Layer.SILVER, versions_entity(entity))
        recorded = step.record()
        yield MaterializeResult(
            asset_key=versions_key,
            metadata=conforming.metadata(
                delta.read(session, log_path).schema,
                log_rows,
                log_rescued,
                log_path,
                log_name,
                **log_changes,
                **recorded,
            ),
        )
        yield MaterializeResult(
            asset_key=current_key,
            metadata=conforming.metadata(
                current.frame.schema,
                current.rows,
                current.rescued,
                current_path,
                conforming.table,
                **recorded,
            ),
        )

    return _silver


def build_silver_dim_date() -> AssetsDefinition:
    @asset(
        key=silver_key("dim_date"),
        group_name=Layer.SILVER.value,
        deps=[AssetKey([Layer.BRONZE.value, "dim_date"])],
        backfill_policy=BackfillPolicy.single_run(),  # see silver_<entity>
        kinds={"spark", "delta"},
        description="The calendar, one row per date_key, conformed to its contract.",
        pool=pool_for(silver_key("dim_date")),
    )
    @retry_transient
    def _silver_dim_date(
        context: AssetExecutionContext, spark: SparkResource, lakehouse: Lakehouse
    ) -> MaterializeResult:
        session = spark.session(context.log)
        path = lakehouse.path(Layer.SILVER, "dim_date")
        step = unchanged.Step(
            context, session, reads=[lakehouse.path(Layer.BRONZE, "dim_date")], writes=[path]
        )
        if (same := step.unchanged([context.assets_def.key])) is not None:
            return same[0]
        conforming = conform_bronze(session, lakehouse, "dim_date")
        conforming.log(context)
        written = Counted(latest_per_key(conforming.frame, conforming.contract), rescued=RESCUED)
        delta.overwrite(written.frame, path)
        conforming.save_history()
        conforming.release()
        return MaterializeResult(
            metadata=conforming.metadata(
                written.frame.schema,
                written.rows,
                written.rescued,
                path,
                conforming.table,
                **step.record(),
            )
        )

    return _silver_dim_date


def build_silver_streams(partitions: PartitionsDefinition) -> AssetsDefinition:
    source = CONTRACTS["fact_stream"]

    @asset(
        key=silver_key("fact_stream"),
        group_name=Layer.SILVER.value,
        deps=[AssetKey([Layer.BRONZE.value, "fact_stream"])],
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.single_run(),
        kinds={"spark", "delta"},
        description=(
            "Streams conformed to their contract, one row per stream_id (its latest version); "
            "each day replaced atomically."
        ),
        pool=pool_for(silver_key("fact_stream")),
    )
    @retry_transient
    def _silver_streams(
        context: AssetExecutionContext, spark: SparkResource, lakehouse: Lakehouse
    ) -> MaterializeResult:
        session = spark.session(context.log)
        window = stream_window(context)
        path = lakehouse.path(Layer.SILVER, "fact_stream")
        step = unchanged.Step(
            context, session, reads=[lakehouse.path(Layer.BRONZE, "fact_stream")], writes=[path]
        )
        if (same := step.unchanged([context.assets_def.key])) is not None:
            return same[0]
        conforming = conform_bronze(session, lakehouse, "fact_stream", window)
        conforming.log(context)
        refined = Counted(latest_per_key(conforming.frame, source), rescued=RESCUED)
        delta.replace_window(refined.frame, path, window)  # the window now holds these rows
        conforming.save_history()
        conforming.release()
        metadata = conforming.metadata(
            refined.frame.schema,
            refined.rows,
            refined.rescued,
            path,
            conforming.table,
            **step.record(),
        )
        metadata["dagster/partition_row_count"] = metadata["rows_written"]
        return MaterializeResult(metadata=metadata)

    return _silver_streams


def stream_window(context: AssetExecutionContext) -> delta.Window:
    return source_window(SOURCE_BY_ENTITY["fact_stream"], context)


def build_streams_enriched(partitions: PartitionsDefinition) -> AssetsDefinition:
    views = {view: AssetKey([layer.value, t]) for view, (layer, t) in enriched.VIEWS.items()}
    lineage = column_lineage(enriched.statement().text, views, enriched.view_schemas())

    @asset(
        key=silver_key("streams_enriched"),
        group_name=Layer.SILVER.value,
        deps=list(views.values()),
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.single_run(),
        kinds={"spark", "delta", "sql"},
        description=(
            "Each stream with the user, track and artist attributes valid when it happened; "
            "SQL rendered from jinja_templates/enriched_streams.sql.j2."
        ),
        metadata={"dagster/column_lineage": lineage},
        pool=pool_for(silver_key("streams_enriched")),
    )
    @retry_transient
    def _streams_enriched(
        context: AssetExecutionContext, spark: SparkResource, lakehouse: Lakehouse
    ) -> MaterializeResult:
        session = spark.session(context.log)
        paths = {view: lakehouse.path(layer, t) for view, (layer, t) in enriched.VIEWS.items()}
        path = lakehouse.path(Layer.SILVER, "streams_enriched")
        step = unchanged.Step(context, session, reads=list(paths.values()), writes=[path])
        if (same := step.unchanged([context.assets_def.key])) is not None:
            return same[0]
        frames = {view: delta.read(session, p) for view, p in paths.items()}
        for view, frame in frames.items():
            frame.createOrReplaceTempView(view)
        window = stream_window(context)
        table = lakehouse.name(Layer.SILVER, "streams_enriched")
        fact = enriched.PARAMETERS["fact"]
        stale = as_of.write_windows(
            session,
            path,
            storage.join(lakehouse.path(Layer.SILVER, "_as_of"), "streams_enriched.json"),
            window,
            frames[fact["view"]],
            enriched.DIMENSIONS,
            paths,
            frames.__getitem__,
            # The window is a filter on the result (Spark pushes it down to the fact scan), not
            # a SQL parameter: Spark Connect cannot bind parameters in a query that is written.
            lambda span: enriched.statement().run(session).where(span.predicate()),
        )
        if stale:
            context.log.info(
                f"{table}: rebuilt {len(stale)} other window(s) whose dimension "
                f"versions changed since they were built: {[str(d) for d in stale]}"
            )
        in_window = delta.read(session, path).where(window.predicate())
        unmatched_row = "user_name IS NULL OR track_name IS NULL OR artist_name IS NULL"
        totals = in_window.agg(
            F.count(F.lit(1)).alias("rows"), F.count_if(F.expr(unmatched_row)).alias("unmatched")
        ).first()
        assert totals is not None
        rows, unmatched = int(totals["rows"]), int(totals["unmatched"])
        return MaterializeResult(
            metadata=table_metadata(
                in_window.schema,
                rows,
                path,
                table,
                streams_without_a_dimension_version=unmatched,
                windows_rebuilt_for_dimension_changes=[str(d) for d in stale],
                **{"dagster/partition_row_count": rows, "dagster/column_lineage": lineage},
                **step.record(),
            )
        )

    return _streams_enriched


def build_silver_assets(partitions: PartitionsDefinition) -> list[AssetsDefinition]:
    return [
        *(build_silver_dimension(e) for e in DIMENSIONS),
        build_silver_dim_date(),
        build_silver_streams(partitions),
        build_streams_enriched(partitions),
    ]
