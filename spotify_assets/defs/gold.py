"""Gold: the star schema users query (dim_user, dim_artist, dim_track, dim_date, fact_stream)."""

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    Config,
    MaterializeResult,
    PartitionsDefinition,
    asset,
)
from pydantic import Field
from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from spotify_assets.catalog import GOLD_KEYS, SOURCE_BY_ENTITY, Layer
from spotify_assets.defs import quality, unchanged
from spotify_assets.defs.bronze import source_window
from spotify_assets.defs.checks import (
    key_aggregates,
    key_check_results,
    key_check_specs,
    key_columns,
    key_figures,
    key_figures_on_driver,
    table_keys,
)
from spotify_assets.defs.policies import pool_for, retry_transient
from spotify_assets.defs.silver import versions_entity
from spotify_assets.lake import as_of, delta, scd2_merge, storage
from spotify_assets.lake.metadata import Counted, table_metadata
from spotify_assets.resources import Lakehouse, SparkResource
from spotify_assets.transforms import expectations, gold

DIMENSIONS = ("dim_user", "dim_artist", "dim_track")


def quarantine_entity(entity: str) -> str:
    return f"{entity}_quarantine"


def write_quarantine(
    session: SparkSession,
    lakehouse: Lakehouse,
    entity: str,
    rows: DataFrame,
    window: delta.Window | None = None,
) -> None:
    """Rows dropped by a rule, kept with the rules they failed; rebuilt with the table, so a
    re-run after a fix moves fixed rows back. Written once anything was ever quarantined."""
    path = lakehouse.path(Layer.GOLD, quarantine_entity(entity))
    if window is None:
        if delta.exists(path) or not rows.isEmpty():
            delta.overwrite(rows, path)
    elif delta.exists(path):
        delta.replace_window(rows, path, window)
    elif not rows.isEmpty():
        delta.overwrite(rows, path)


def replace_quarantined_keys(
    session: SparkSession,
    lakehouse: Lakehouse,
    entity: str,
    rows: DataFrame,
    keys: DataFrame,
    key: str,
) -> None:
    """The quarantine's rows of the changed keys, replaced by their new verdicts."""
    path = lakehouse.path(Layer.GOLD, quarantine_entity(entity))
    if not delta.exists(path):
        if not rows.isEmpty():
            delta.overwrite(rows, path)
        return
    held = delta.read(session, path)
    if rows.isEmpty() and scd2_merge.among(held, keys, key).isEmpty():
        return  # none of the changed keys was or is quarantined
    kept = scd2_merge.among(held, keys, key, "left_anti")
    delta.overwrite(kept.unionByName(rows, allowMissingColumns=True), path)


class HistoryConfig(Config):
    full_refresh: bool = Field(
        default=False,
        description="Rebuild the whole history from the change log instead of following the "
        "keys that changed since the last build.",
    )
    rebuild_below_versions: int = Field(
        default=scd2_merge.REBUILD_BELOW_VERSIONS,
        ge=0,
        description="Rebuild a dimension of fewer versions than this instead of MERGEing its "
        "changed keys: below it, a rebuild costs less than a MERGE's fixed cost. 0 always "
        "follows the changed keys.",
    )


def version_changes(
    session: SparkSession, path: str, surrogate: str, before: int | None, written: int
) -> tuple[int, int]:
    """Versions this materialisation opened, and versions it closed (current before, not now).
    `written`: the versions it wrote, the unknown member aside (all new in a new table)."""
    if before is None:
        return written, 0
    now = delta.read(session, path).select(surrogate, "__END_AT")
    old = session.read.format("delta").option("versionAsOf", before).load(path)
    if "__END_AT" not in old.columns:  # written by an older version of this code: all is new
        return now.where(F.col(surrogate) != gold.UNKNOWN_SK).count(), 0
    old = old.select(surrogate, F.col("__END_AT").alias("_old_end"))
    opened = now.join(old, surrogate, "left_anti").where(F.col(surrogate) != gold.UNKNOWN_SK)
    closed = now.join(old, surrogate).where("_old_end IS NULL AND __END_AT IS NOT NULL")
    return opened.count(), closed.count()


def build_gold_dimension(entity: str) -> AssetsDefinition:
    scd2 = gold.SCD2[entity]
    key = AssetKey([Layer.GOLD.value, entity])
    surrogate = GOLD_KEYS[entity][1]
    assert surrogate is not None

    @asset(
        key=key,
        group_name=Layer.GOLD.value,
        deps=[AssetKey([Layer.SILVER.value, versions_entity(entity)])],
        backfill_policy=BackfillPolicy.single_run(),  # lets `dg launch --partition-range` run it
        kinds={"spark", "delta"},
        check_specs=[*quality.check_specs(key, entity), *key_check_specs(entity)],
        description=(
            f"The `{entity}` dimension with its history (SCD Type 2, tracking "
            f"{', '.join(scd2.track) if scd2.track else 'every attribute'}): one row per "
            "version, valid over [__START_AT, __END_AT), a surrogate key per version, and the "
            f"unknown member ({surrogate} = -1). Runs recompute only the keys whose change "
            "events changed; `full_refresh: true` rebuilds the whole history."
        ),
        pool=pool_for(key),
    )
    @retry_transient
    def _gold_dim(
        context: AssetExecutionContext,
        config: HistoryConfig,
        spark: SparkResource,
        lakehouse: Lakehouse,
    ) -> MaterializeResult:
        session = spark.session(context.log)
        log_path = lakehouse.path(Layer.SILVER, versions_entity(entity))
        path, table = lakehouse.path(Layer.GOLD, entity), lakehouse.name(Layer.GOLD, entity)
        quarantine_path = lakehouse.path(Layer.GOLD, quarantine_entity(entity))
        step = unchanged.Step(
            context,
            session,
            reads=[log_path],
            writes=[path, quarantine_path],
            recompute=config.full_refresh,
        )
        if (same := step.unchanged([key])) is not None:
            return same[0]
        events = delta.read(session, log_path)
        depends_on = scd2_merge.fingerprint(
            scd2, expectations.EXPECTATIONS[entity], surrogate, events.schema.simpleString()
        )
        plan = scd2_merge.plan(
            session,
            log_path,
            path,
            scd2.key,
            depends_on,
            config.full_refresh,
            config.rebuild_below_versions,
        )
        if not plan.full:
            assert plan.keys is not None
            # Few events: keep them, so the rules and the history do not re-read the log.
            events = scd2_merge.among(events, plan.keys, scd2.key).persist()
        how = "rebuilding the whole history" if plan.full else "following changed keys"
        context.log.info(f"{table}: {how} ({plan.reason})")
        checked = expectations.evaluate(
            str(table), events, expectations.EXPECTATIONS[entity], scd2.key
        )
        history = gold.build_scd2(scd2, checked.clean, surrogate, table)
        measured: Row | Mapping[str, int] | None  # the key checks' figures
        if plan.full:
            before = delta.table_version(path) if delta.exists(path) else None
            unknown = gold.unknown_member(history, scd2.key, surrogate)
            # The quarantine first: the table's commit records the log version consumed, so a
            # crash between the two must leave the table behind (a re-run redoes both).
            write_quarantine(session, lakehouse, entity, checked.quarantine)
            scd2_merge.write_full(session, history, unknown, path, plan)
            totals, measured = dimension_figures(session, path, entity)
            opened, closed = version_changes(session, path, surrogate, before, totals.rows)
            keys_changed: int | None = None
            # Its last commit is the overwrite just made: its row count needs no scan.
            quarantined_now = (
                delta.last_commit_rows(quarantine_path) if delta.exists(quarantine_path) else 0
            )
        else:
            if plan.totals is None:  # the first MERGE since a rebuild: count its baseline
                plan = replace(plan, totals=dimension_totals(session, path, surrogate))
            assert plan.keys is not None
            replace_quarantined_keys(
                session, lakehouse, entity, checked.quarantine, plan.keys, scd2.key
            )
            applied = scd2_merge.merge_changes(
                session, history, path, plan, scd2.key, surrogate, gold.UNKNOWN_SK
            )
            opened, closed, keys_changed = applied.opened, applied.closed, applied.keys
            totals, measured = applied.totals, key_figures_on_driver(path, entity)
            quarantined_now = (
                delta.row_count(quarantine_path) if delta.exists(quarantine_path) else 0
            )
        events.unpersist()
        dropped = quality.dropped_by_rule(checked.outcomes)
        return MaterializeResult(
            metadata=table_metadata(
                history.schema,
                totals.rows,
                path,
                table,
                current_rows=totals.current,
                closed_versions=totals.rows - totals.current,
                versions_opened=opened,
                versions_closed=closed,
                build="full" if plan.full else "changed keys",
                build_reason=plan.reason,
                keys_changed=keys_changed,
                change_log_version=plan.source_version,
                tracked_columns=list(scd2.track or ["every attribute"]),
                rows_quarantined=sum(dropped.values()),
                rows_dropped_per_rule=dropped,
                rows_in_quarantine_table=quarantined_now,
                **step.record(),
            ),
            check_results=[
                *quality.check_results(checked.outcomes),
                *key_check_results(delta.read(session, path), entity, measured),
            ],
        )

    return _gold_dim


def dimension_figures(
    session: SparkSession, path: str, entity: str
) -> tuple[scd2_merge.Totals, Row | Mapping[str, int]]:
    """A dimension's totals (`dimension_totals`) and its key figures: from its files on the
    driver when few, else in one Spark aggregation."""
    keys, surrogate = table_keys(entity), GOLD_KEYS[entity][1]
    assert surrogate is not None
    rows = delta.read_arrow(path, key_columns(keys))
    if rows is not None:
        return _totals_in_arrow(rows, surrogate), key_figures(rows, keys)
    row = delta.read(session, path).agg(*_totals_aggregates(surrogate), *key_aggregates(keys))
    first = row.first()
    assert first is not None
    return scd2_merge.Totals(int(first["_rows"]), int(first["_current"])), first


def dimension_totals(session: SparkSession, path: str, surrogate: str) -> scd2_merge.Totals:
    """Versions and current versions of a dimension, the unknown member not counted (a NULL
    is_current is not current): from its files on the driver when few, else counted by Spark."""
    rows = delta.read_arrow(path, [surrogate, "is_current"])
    if rows is not None:
        return _totals_in_arrow(rows, surrogate)
    first = delta.read(session, path).agg(*_totals_aggregates(surrogate)).first()
    assert first is not None
    return scd2_merge.Totals(int(first["_rows"]), int(first["_current"]))


def _totals_in_arrow(rows: pa.Table, surrogate: str) -> scd2_merge.Totals:
    known = pc.fill_null(pc.not_equal(rows[surrogate], gold.UNKNOWN_SK), True)
    current = pc.and_(known, pc.fill_null(rows["is_current"], False))
    return scd2_merge.Totals(pc.sum(known).as_py() or 0, pc.sum(current).as_py() or 0)


def _totals_aggregates(surrogate: str) -> list[Column]:
    known = ~F.col(surrogate).eqNullSafe(gold.UNKNOWN_SK)
    return [
        F.count_if(known).alias("_rows"),
        F.count_if(known & F.col("is_current")).alias("_current"),
    ]


DIM_DATE = AssetKey([Layer.GOLD.value, "dim_date"])


@asset(
    key=DIM_DATE,
    group_name=Layer.GOLD.value,
    deps=[AssetKey([Layer.SILVER.value, e]) for e in ("dim_date", "fact_stream")],
    backfill_policy=BackfillPolicy.single_run(),  # lets `dg launch --partition-range` run it
    kinds={"spark", "delta"},
    check_specs=[*quality.check_specs(DIM_DATE, "dim_date"), *key_check_specs("dim_date")],
    description=(
        "The calendar: the original's columns plus quarter and is_weekend, covering every date "
        "a stream falls on (dates the source's calendar lacks are generated)."
    ),
    pool=pool_for(DIM_DATE),
)
@retry_transient
def gold_dim_date(
    context: AssetExecutionContext, spark: SparkResource, lakehouse: Lakehouse
) -> MaterializeResult:
    session = spark.session(context.log)
    path, table = lakehouse.path(Layer.GOLD, "dim_date"), lakehouse.name(Layer.GOLD, "dim_date")
    step = unchanged.Step(
        context,
        session,
        reads=[lakehouse.path(Layer.SILVER, e) for e in ("dim_date", "fact_stream")],
        writes=[path, lakehouse.path(Layer.GOLD, quarantine_entity("dim_date"))],
    )
    if (same := step.unchanged([DIM_DATE])) is not None:
        return same[0]
    silver = delta.read(session, lakehouse.path(Layer.SILVER, "dim_date"))
    checked = expectations.evaluate(
        str(table), silver, expectations.EXPECTATIONS["dim_date"], "date_key"
    )
    streams = delta.read(session, lakehouse.path(Layer.SILVER, "fact_stream"))
    written = Counted(gold.build_dim_date(checked.clean, streams))
    delta.overwrite(written.frame, path)
    write_quarantine(session, lakehouse, "dim_date", checked.quarantine)
    dropped = quality.dropped_by_rule(checked.outcomes)
    return MaterializeResult(
        metadata=table_metadata(
            written.frame.schema,
            written.rows,
            path,
            table,
            rows_quarantined=sum(dropped.values()),
            rows_dropped_per_rule=dropped,
            **step.record(),
        ),
        check_results=[
            *quality.check_results(checked.outcomes),
            *key_check_results(
                delta.read(session, path), "dim_date", key_figures_on_driver(path, "dim_date")
            ),
        ],
    )


# How the fact reaches each dimension, for rebuilding windows when a dimension changes later.
def _via(alias: str, entity: str, join_from: str = "f", *reads: str) -> dict[str, Any]:
    key, surrogate = GOLD_KEYS[entity]
    return {
        "alias": alias, "view": entity, "key": key, "join_from": join_from, "join_column": key,
        "start": "__START_AT", "end": "__END_AT", "reads": [surrogate, *reads],
    }  # fmt: skip


AS_OF_DIMENSIONS = [
    _via("usr", "dim_user"), _via("trk", "dim_track", "f", "artist_id"),
    _via("art", "dim_artist", "trk"),
]  # fmt: skip


FACT = AssetKey([Layer.GOLD.value, "fact_stream"])
RULES = expectations.EXPECTATIONS["fact_stream"]


def build_gold_fact_stream(partitions: PartitionsDefinition) -> AssetsDefinition:
    source = SOURCE_BY_ENTITY["fact_stream"]

    @asset(
        key=FACT,
        check_specs=[*quality.check_specs(FACT, "fact_stream"), *key_check_specs("fact_stream")],
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
        pool=pool_for(FACT),
    )
    @retry_transient
    def _fact_stream(
        context: AssetExecutionContext, spark: SparkResource, lakehouse: Lakehouse
    ) -> MaterializeResult:
        session = spark.session(context.log)
        window = source_window(source, context)
        paths = {d["view"]: lakehouse.path(Layer.GOLD, d["view"]) for d in AS_OF_DIMENSIONS}
        path = lakehouse.path(Layer.GOLD, "fact_stream")
        step = unchanged.Step(
            context,
            session,
            reads=[lakehouse.path(Layer.SILVER, "fact_stream"), *paths.values()],
            writes=[path, lakehouse.path(Layer.GOLD, quarantine_entity("fact_stream"))],
        )
        if (same := step.unchanged([FACT])) is not None:
            return same[0]
        streams = delta.read(session, lakehouse.path(Layer.SILVER, "fact_stream"))
        dims = {view: delta.read(session, p) for view, p in paths.items()}
        table = lakehouse.name(Layer.GOLD, "fact_stream")
        outcomes: list[list[expectations.Outcome]] = []
        built: list[DataFrame] = []

        def checked_window(span: delta.Window) -> DataFrame:
            """A window's fact rows after the expectations; its quarantine written beside."""
            fact = gold.build_fact_stream(
                streams.where(span.predicate()),
                dims["dim_user"],
                dims["dim_track"],
                dims["dim_artist"],
            ).persist()  # evaluated by the rules, then written: computed once
            built.append(fact)
            checked = expectations.evaluate(str(table), fact, RULES, "stream_id")
            write_quarantine(session, lakehouse, "fact_stream", checked.quarantine, span)
            outcomes.append(checked.outcomes)
            return checked.clean

        stale = as_of.write_windows(
            session,
            path,
            storage.join(lakehouse.path(Layer.GOLD, "_as_of"), "fact_stream.json"),
            window,
            streams,
            AS_OF_DIMENSIONS,
            paths,
            dims.__getitem__,
            checked_window,
        )
        for frame in built:
            frame.unpersist()
        if stale:
            context.log.info(
                f"{table}: rebuilt {len(stale)} other window(s) whose dimension "
                f"versions changed since they were built: {[str(d) for d in stale]}"
            )
        combined = quality.combine(outcomes)
        dropped = quality.dropped_by_rule(combined)
        written = delta.read(session, path)
        totals = fact_totals(written, path, window)
        return MaterializeResult(
            metadata=table_metadata(
                written.schema,
                int(totals["rows"]),
                path,
                table,
                unresolved_keys=int(totals["unresolved"]),
                windows_rebuilt_for_dimension_changes=[str(d) for d in stale],
                rows_quarantined=sum(dropped.values()),
                rows_dropped_per_rule=dropped,
                **{"dagster/partition_row_count": int(totals["in_window"])},
                **step.record(),
            ),
            check_results=[
                *quality.check_results(combined),
                *key_check_results(written, "fact_stream", totals),
            ],
        )

    return _fact_stream


_SURROGATES = ("user_sk", "track_sk", "artist_sk")


def fact_totals(written: DataFrame, path: str, window: delta.Window) -> Row | Mapping[str, int]:
    """The fact's metadata counts (rows, rows in the window, the window's rows with an
    unresolved dimension) and its key figures: from its files on the driver when few, else in
    one Spark aggregation."""
    keys = table_keys("fact_stream")
    columns = [*key_columns(keys), window.column, *_SURROGATES]
    rows = delta.read_arrow(path, columns)
    if rows is not None:
        inside = delta.in_window(rows, window)
        unresolved = pc.or_kleene(
            pc.or_kleene(pc.equal(rows["user_sk"], -1), pc.equal(rows["track_sk"], -1)),
            pc.equal(rows["artist_sk"], -1),
        )
        return {
            "rows": rows.num_rows,
            "in_window": pc.sum(inside).as_py() or 0,
            "unresolved": pc.sum(pc.fill_null(pc.and_kleene(inside, unresolved), False)).as_py()
            or 0,
            **key_figures(rows, keys),
        }
    unresolved_row = " OR ".join(f"{c} = -1" for c in _SURROGATES)
    totals = written.agg(  # in one pass
        F.count(F.lit(1)).alias("rows"),
        F.count_if(F.expr(window.predicate())).alias("in_window"),
        F.count_if(F.expr(f"({window.predicate()}) AND ({unresolved_row})")).alias("unresolved"),
        *key_aggregates(keys),
    ).first()
    assert totals is not None
    return totals


def build_gold_assets(partitions: PartitionsDefinition) -> list[AssetsDefinition]:
    return [
        *(build_gold_dimension(e) for e in DIMENSIONS),
        gold_dim_date,
        build_gold_fact_stream(partitions),
    ]
