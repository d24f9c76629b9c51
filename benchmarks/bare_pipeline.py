"""The orchestration benchmark's baseline: the lakehouse's transformations for one date range as a
plain PySpark script in one session, with no Dagster.

It calls the same extraction, conforming, expectation, SCD2 and star-schema functions the assets
call, in the graph's order, and writes the same Delta tables, so the suite can check that its
gold tables equal the Dagster run's, row for row. What it leaves out is what the orchestrated run
adds around the transformations: the run and its events in the instance, each step's metadata
(row counts, schemas), the asset checks, and the state documents that make the next run
incremental (watermarks, schema histories, as-of records). It suits a fresh lake only.
"""

from __future__ import annotations

import time
from datetime import date, datetime

from pyspark.sql import DataFrame, SparkSession

from spotify_assets.catalog import GOLD_KEYS, SOURCE_BY_ENTITY, Layer, SourceTable
from spotify_assets.defs.bronze import extraction_bounds, first_day, null_watermark_entity
from spotify_assets.defs.gold import AS_OF_DIMENSIONS, DIMENSIONS, quarantine_entity
from spotify_assets.defs.silver import versions_entity
from spotify_assets.ingestion.conflicts import conflicting_entity, land_versions
from spotify_assets.ingestion.staging import read_staged, stage
from spotify_assets.lake import change_log, delta, storage
from spotify_assets.resources import Lakehouse
from spotify_assets.source.resource import SourceDatabase
from spotify_assets.transforms import enriched, expectations, gold, schema_history
from spotify_assets.transforms.conform import IGNORED_VALUES, conform, with_source_file
from spotify_assets.transforms.contracts import CONTRACTS
from spotify_assets.transforms.silver import latest_per_key, versions

# The graph's order: every table after the tables it reads.
SILVER_DIMENSIONS = (*DIMENSIONS, "dim_date")


def run(
    spark: SparkSession,
    source_db: SourceDatabase,
    sources: tuple[SourceTable, ...],
    lake: Lakehouse,
    partitions_start: date,
    start: datetime,
    end: datetime,
    layers: dict[str, float] | None = None,
) -> None:
    """Bronze, silver and gold for the daily windows in [start, end) into an empty lake;
    `layers`, when given, receives the seconds each layer took."""
    clock = time.perf_counter()

    def lap(layer: str) -> None:
        nonlocal clock
        if layers is not None:
            layers[layer] = round(layers.get(layer, 0.0) + time.perf_counter() - clock, 2)
        clock = time.perf_counter()

    for source in sources:
        bronze(spark, source_db, source, lake, first_day(source, partitions_start), start, end)
    lap("bronze")
    streams = SOURCE_BY_ENTITY["fact_stream"]
    # Like the assets' windows: the first is open below (it also holds every older row).
    window = delta.Window(
        streams.watermark,
        start.replace(tzinfo=None),
        end.replace(tzinfo=None),
        open_below=start.date() <= first_day(streams, partitions_start),
    )
    for entity in SILVER_DIMENSIONS:
        silver_dimension(spark, lake, entity)
    silver_streams(spark, lake, window)
    streams_enriched(spark, lake, window)
    lap("silver")
    for entity in DIMENSIONS:
        gold_dimension(spark, lake, entity)
    gold_dim_date(spark, lake)
    gold_fact_stream(spark, lake, window)
    lap("gold")


def bronze(spark, source_db, source: SourceTable, lake: Lakehouse, first, start, end) -> None:
    bounds = extraction_bounds(source, start, end, first)
    if bounds is None:
        return
    low, high = bounds
    staging = storage.join(lake.root, "_staging", source.entity, "bare")
    try:
        schema, batches = source_db.read_window(source, low, high)
        rows = stage(batches, schema, storage.join(staging, "window.parquet"))
        frame = read_staged(spark, storage.join(staging, "window.parquet"))
        bound = SourceDatabase.bound
        target = delta.Window(source.watermark, bound(source, low), bound(source, high))
        land_versions(
            spark,
            frame,
            rows,
            lake.path(Layer.BRONZE, source.entity),
            lake.path(Layer.BRONZE, conflicting_entity(source.entity)),
            [source.key, source.watermark],
            target,
            keys_unique=source_db.keyed_by(source),
        )
        null_schema, null_batches = source_db.read_null_watermarks(source)
        if stage(null_batches, null_schema, storage.join(staging, "null.parquet")):
            delta.overwrite(
                read_staged(spark, storage.join(staging, "null.parquet")),
                lake.path(Layer.BRONZE, null_watermark_entity(source)),
            )
    finally:
        storage.delete_tree(staging)


def conformed(spark, lake: Lakehouse, entity: str, window: delta.Window | None = None):
    contract = CONTRACTS[entity]
    rows = with_source_file(delta.read(spark, lake.path(Layer.BRONZE, entity)))
    if window is not None:
        rows = rows.where(window.predicate())
    history = schema_history.load(schema_history.history_path(lake.root, entity), entity)
    result = conform(rows, contract, history, lake.name(Layer.SILVER, entity))
    return result.frame.drop(IGNORED_VALUES), contract


def silver_dimension(spark, lake: Lakehouse, entity: str) -> None:
    frame, contract = conformed(spark, lake, entity)
    if entity in DIMENSIONS:
        change_log.sync(
            spark,
            versions(frame, contract),
            lake.path(Layer.SILVER, versions_entity(entity)),
            [contract.key, contract.sequence],
        )
    delta.overwrite(latest_per_key(frame, contract), lake.path(Layer.SILVER, entity))


def silver_streams(spark, lake: Lakehouse, window: delta.Window) -> None:
    frame, contract = conformed(spark, lake, "fact_stream", window)
    delta.replace_window(
        latest_per_key(frame, contract), lake.path(Layer.SILVER, "fact_stream"), window
    )


def streams_enriched(spark, lake: Lakehouse, window: delta.Window) -> None:
    for view, (layer, table) in enriched.VIEWS.items():
        delta.read(spark, lake.path(layer, table)).createOrReplaceTempView(view)
    rows = enriched.statement().run(spark).where(window.predicate())
    delta.replace_window(rows, lake.path(Layer.SILVER, "streams_enriched"), window)


def checked(lake: Lakehouse, entity: str, rows: DataFrame, key: str) -> expectations.Evaluated:
    table = str(lake.name(Layer.GOLD, entity))
    return expectations.evaluate(table, rows, expectations.EXPECTATIONS[entity], key)


def quarantine(lake: Lakehouse, entity: str, rows: DataFrame) -> None:
    if not rows.isEmpty():
        delta.overwrite(rows, lake.path(Layer.GOLD, quarantine_entity(entity)))


def gold_dimension(spark, lake: Lakehouse, entity: str) -> None:
    scd2, surrogate = gold.SCD2[entity], GOLD_KEYS[entity][1]
    assert surrogate is not None
    events = delta.read(spark, lake.path(Layer.SILVER, versions_entity(entity)))
    result = checked(lake, entity, events, scd2.key)
    history = gold.build_scd2(scd2, result.clean, surrogate, lake.name(Layer.GOLD, entity))
    quarantine(lake, entity, result.quarantine)
    delta.overwrite(
        gold.with_unknown_member(history, scd2.key, surrogate), lake.path(Layer.GOLD, entity)
    )


def gold_dim_date(spark, lake: Lakehouse) -> None:
    result = checked(
        lake, "dim_date", delta.read(spark, lake.path(Layer.SILVER, "dim_date")), "date_key"
    )
    streams = delta.read(spark, lake.path(Layer.SILVER, "fact_stream"))
    delta.overwrite(gold.build_dim_date(result.clean, streams), lake.path(Layer.GOLD, "dim_date"))
    quarantine(lake, "dim_date", result.quarantine)


def gold_fact_stream(spark, lake: Lakehouse, window: delta.Window) -> None:
    streams = delta.read(spark, lake.path(Layer.SILVER, "fact_stream")).where(window.predicate())
    dims = {
        d["view"]: delta.read(spark, lake.path(Layer.GOLD, d["view"])) for d in AS_OF_DIMENSIONS
    }
    fact = gold.build_fact_stream(
        streams, dims["dim_user"], dims["dim_track"], dims["dim_artist"]
    ).persist()
    result = checked(lake, "fact_stream", fact, "stream_id")
    quarantine(lake, "fact_stream", result.quarantine)
    delta.replace_window(result.clean, lake.path(Layer.GOLD, "fact_stream"), window)
    fact.unpersist()
