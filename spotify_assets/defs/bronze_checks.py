"""Checks on every bronze table: nothing missing, nothing duplicated, caught up with the source.

The two blocking checks run inside the bronze step, on what it already holds: the window's
source rows, staged for the insert, against bronze's (key, watermark) pairs in the same bounds.
They cover exactly what the run could have written, in no step of their own. Few pairs are
compared on the driver in Arrow, bronze's read with delta-rs (delta.read_arrow) with no Spark
query; many in one Spark job. The freshness check
(`caught_up_with_source`, a warning) is one step for all tables, runnable on its own.
"""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import reduce

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    multi_asset_check,
)
from pyspark.sql import Column, DataFrame, SparkSession
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
) -> int:
    """The source's (key, watermark) pairs in [low, high), read again after the insert and
    staged as Parquet at `path`: a row committed during the extraction with a watermark in the
    window (which the extraction's snapshot could not see) is then found missing. Returns how
    many pairs."""
    table = source_db.table(source)
    cols = [c for c in source_db.columns(table) if c.name in (source.key, source.watermark)]
    stmt = select(*cols).where(*source_db.window_filter(table, source, low, high))
    full = source_db.arrow_schema(table)
    schema = pa.schema([full.field(source.key), full.field(source.watermark)])
    batches = source_db.stream(stmt, schema, f"reconciling {source.name}", schema.names)
    return stage(batches, schema, path)


# Up to this many source pairs the checks compare pairs on the driver, in Arrow: a few hundred
# thousand pairs take milliseconds there, where a Spark aggregation pays its stages' fixed cost
# (about a second on a laptop). Above it, Spark compares them.
DRIVER_PAIRS = delta.MAX_ROWS
_TAGS = ("_source", "_bronze", "_apart")


@dataclass(frozen=True)
class Verdict:
    """What both blocking checks report: figures over the run's windows, samples of keys."""

    checked: int
    missing: int
    apart: int
    duplicated: int
    missing_sample: list[str | None]
    duplicated_sample: list[str]


def evaluate_blocking(
    session: SparkSession,
    source: SourceTable,
    source_pairs: DataFrame | pa.Table,
    path: str,
    apart_path: str,
    window: delta.Window,
    windows: int,
) -> list[AssetCheckResult]:
    """Both blocking checks over `window` (the run's bounds, `windows` daily windows):
    `source_pairs` are the source's (see stage_source_pairs; an Arrow table is compared on
    the driver, a Spark frame in Spark), `path` and `apart_path` bronze and its conflicting
    versions."""
    keys = [source.key, source.watermark]
    paths = {"_bronze": path}
    if delta.exists(apart_path):  # conflicting versions are landed, apart
        paths["_apart"] = apart_path
    if isinstance(source_pairs, pa.Table):
        sides = {t: _in_window_on_driver(session, p, keys, window) for t, p in paths.items()}
        verdict = _on_driver(keys, source_pairs, sides)
    else:
        frames = {t: _in_window(session, p, keys, window) for t, p in paths.items()}
        verdict = _in_spark(keys, source_pairs, frames)
    return [
        AssetCheckResult(
            check_name=RECONCILES,
            passed=verdict.missing == 0,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "windows_checked": windows,
                "source_rows_checked": verdict.checked,
                "missing_rows": verdict.missing,
                "rows_in_conflicting_versions": verdict.apart,
                "sample_missing_keys": str(verdict.missing_sample),
            },
        ),
        AssetCheckResult(
            check_name=NO_DUPLICATES,
            passed=verdict.duplicated == 0,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "duplicated_versions": verdict.duplicated,
                "sample_keys": str(verdict.duplicated_sample),
            },
        ),
    ]


def _in_spark(keys: list[str], source_pairs: DataFrame, sides: dict[str, DataFrame]) -> Verdict:
    """One Spark job: a union of the sides and one aggregation by pair (no join), then the
    totals; the samples of keys take a second job, on failure only."""

    def tagged(rows: DataFrame, tag: str) -> DataFrame:
        return rows.select(*keys, *(F.lit(int(t == tag)).alias(t) for t in _TAGS))

    parts = [tagged(source_pairs, "_source"), *(tagged(f, t) for t, f in sides.items())]
    # One row per pair: how often the source, bronze and the conflicting versions hold it.
    pairs = (
        reduce(DataFrame.unionByName, parts).groupBy(*keys).agg(*(F.sum(t).alias(t) for t in _TAGS))
    )
    lost = (F.col("_source") > 0) & (F.col("_bronze") == 0) & (F.col("_apart") == 0)
    duplicated = F.col("_bronze") > 1
    totals = pairs.agg(
        F.sum("_source").alias("checked"),
        F.sum(F.when(lost, F.col("_source"))).alias("missing"),
        F.sum(F.when(F.col("_apart") > 0, F.col("_source"))).alias("apart"),
        F.count_if(duplicated).alias("duplicated"),
    ).first()
    assert totals is not None

    def sample(condition: Column) -> list:
        rows = pairs.where(condition).select(keys[0]).orderBy(keys[0]).limit(SAMPLE_SIZE)
        return [r[0] for r in rows.collect()]

    missing, copies = int(totals["missing"] or 0), int(totals["duplicated"])
    return Verdict(
        checked=int(totals["checked"] or 0),
        missing=missing,
        apart=int(totals["apart"] or 0),
        duplicated=copies,
        missing_sample=[iso(k) for k in sample(lost)] if missing else [],
        duplicated_sample=[str(k) for k in sample(duplicated)] if copies else [],
    )


def _on_driver(keys: list[str], source_pairs: pa.Table, sides: dict[str, pa.Table]) -> Verdict:
    """The same figures as `_in_spark`, from Arrow tables on the driver (few pairs)."""
    schema = sides["_bronze"].schema  # bronze's types: the source's are cast to them

    def tagged(rows: pa.Table, tag: str) -> pa.Table:
        rows = rows.select(keys).cast(pa.schema([schema.field(k) for k in keys]))
        ones = [pa.repeat(pa.scalar(int(t == tag), pa.int64()), rows.num_rows) for t in _TAGS]
        return pa.table([*rows.columns, *ones], names=[*keys, *_TAGS])

    parts = [tagged(source_pairs, "_source"), *(tagged(f, t) for t, f in sides.items())]
    pairs = pa.concat_tables(parts).group_by(keys).aggregate([(t, "sum") for t in _TAGS])
    in_source, in_bronze, apart = (pairs[f"{t}_sum"] for t in _TAGS)
    lost = pc.and_(pc.greater(in_source, 0), pc.and_(pc.equal(in_bronze, 0), pc.equal(apart, 0)))
    duplicated = pc.greater(in_bronze, 1)

    def total(values: pa.ChunkedArray) -> int:
        return int(pc.sum(values).as_py() or 0)

    def sample(condition: pa.ChunkedArray) -> list:
        chosen = pairs.filter(condition).select([keys[0]]).sort_by(keys[0])
        return chosen.column(0).slice(0, SAMPLE_SIZE).to_pylist()

    missing = total(pc.if_else(lost, in_source, 0))
    copies = total(pc.cast(duplicated, pa.int64()))
    return Verdict(
        checked=total(in_source),
        missing=missing,
        apart=total(pc.if_else(pc.greater(apart, 0), in_source, 0)),
        duplicated=copies,
        missing_sample=[iso(k) for k in sample(lost)] if missing else [],
        duplicated_sample=[str(k) for k in sample(duplicated)] if copies else [],
    )


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


def _in_window_on_driver(
    session: SparkSession, path: str, keys: list[str], window: delta.Window
) -> pa.Table:
    """The same pairs in Arrow: read from the table's files when few (no Spark query's fixed
    cost), else collected from Spark."""
    pairs = delta.read_arrow(path, keys, window, max_rows=DRIVER_PAIRS)
    return pairs if pairs is not None else _in_window(session, path, keys, window).toArrow()


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
