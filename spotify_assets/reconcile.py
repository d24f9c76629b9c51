"""Counts per table per layer, and whether they reconcile with the source.

Bronze holds every version observed, so it reconciles when its distinct keys equal the source's
rows; silver holds one current row per key, so it must equal the source's rows exactly. Gold holds
silver's rows plus what it adds on purpose (the calendar days streams fall on that the source's
calendar lacks; each dimension's unknown member, never counted) and less what an expectation
quarantined (keys whose every version is in `<table>_quarantine`): the summary says so in words,
and a difference beyond those is a NO with its size.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spotify_assets.catalog import SOURCE_TABLES, Layer, table_path
from spotify_assets.lake import delta
from spotify_assets.source.resource import SourceDatabase
from spotify_assets.transforms.gold import UNKNOWN_SK


@dataclass(frozen=True)
class LayerCounts:
    entity: str
    source_rows: int
    bronze_versions: int
    bronze_keys: int
    silver_rows: int
    gold_rows: int
    gold_generated: int = 0  # calendar days gold added for the streams that fall on them
    gold_quarantined: int = 0  # silver's keys gold left out: every version quarantined

    @property
    def gold_expected(self) -> int:
        return self.silver_rows + self.gold_generated - self.gold_quarantined

    @property
    def reconciles(self) -> bool:
        return (
            self.source_rows == self.bronze_keys == self.silver_rows
            and self.gold_rows == self.gold_expected
        )

    @property
    def verdict(self) -> str:
        """`yes`, with what gold added or left out on purpose, or `NO` with the differences."""
        if not self.reconciles:
            layers = (
                ("bronze keys", self.bronze_keys, self.source_rows),
                ("silver", self.silver_rows, self.source_rows),
                ("gold", self.gold_rows, self.gold_expected),
            )
            return "NO (" + ", ".join(
                f"{name} {have - want:+,}" for name, have, want in layers if have != want
            ) + ")"  # fmt: skip
        notes = []
        if self.gold_generated:
            notes.append(f"+{_plural(self.gold_generated, 'generated day')}")
        if self.gold_quarantined:
            notes.append(f"-{self.gold_quarantined:,} quarantined")
        return "yes" + (f" ({', '.join(notes)})" if notes else "")


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _table(spark: SparkSession, path: str) -> DataFrame | None:
    return delta.read(spark, path) if delta.exists(path) else None


def _current(df: DataFrame) -> DataFrame:
    """A gold table's current rows, its unknown member aside (tables without history: all)."""
    if "is_current" not in df.columns:
        return df
    surrogate = next(c for c in df.columns if c.endswith("_sk"))
    return df.where(f"is_current AND `{surrogate}` <> {UNKNOWN_SK}")


def _gold_counts(spark: SparkSession, root: str, entity: str, key: str) -> tuple[int, int, int]:
    """Gold's current rows, the calendar days it generated, and silver's keys it quarantined."""
    gold = _table(spark, table_path(root, Layer.GOLD, entity))
    if gold is None:
        return 0, 0, 0
    current = _current(gold)
    silver = _table(spark, table_path(root, Layer.SILVER, entity))
    generated = 0
    if entity == "dim_date" and silver is not None:
        streams = _table(spark, table_path(root, Layer.SILVER, "fact_stream"))
        if streams is not None:
            stream_days = streams.select(F.to_date("stream_timestamp").alias("date")).distinct()
            generated = (
                current.join(silver.select(key), key, "left_anti")
                .join(stream_days, "date", "left_semi")
                .count()
            )
    quarantine = _table(spark, table_path(root, Layer.GOLD, f"{entity}_quarantine"))
    quarantined = 0
    if quarantine is not None and silver is not None:
        quarantined = (
            silver.select(key)
            .join(quarantine.select(key), key, "left_semi")
            .join(current.select(key), key, "left_anti")
            .count()
        )
    return current.count(), generated, quarantined


def _count(spark: SparkSession, path: str, key: str | None = None) -> int:
    """Rows, or distinct values of `key`."""
    df = _table(spark, path)
    if df is None:
        return 0
    return df.select(key).distinct().count() if key else df.count()


def layer_counts(spark: SparkSession, source_db: SourceDatabase, root: str) -> list[LayerCounts]:
    rows = []
    for st in SOURCE_TABLES:
        bronze = table_path(root, Layer.BRONZE, st.entity)
        gold_rows, generated, quarantined = _gold_counts(spark, root, st.entity, st.key)
        rows.append(
            LayerCounts(
                entity=st.entity,
                source_rows=source_db.count(st),
                bronze_versions=_count(spark, bronze),
                bronze_keys=_count(spark, bronze, st.key),
                silver_rows=_count(spark, table_path(root, Layer.SILVER, st.entity)),
                gold_rows=gold_rows,
                gold_generated=generated,
                gold_quarantined=quarantined,
            )
        )
    return rows


def format_counts(rows: list[LayerCounts]) -> str:
    header = ("table", "source", "bronze versions", "bronze keys", "silver", "gold", "reconciles")
    body = [
        (
            r.entity,
            f"{r.source_rows:,}",
            f"{r.bronze_versions:,}",
            f"{r.bronze_keys:,}",
            f"{r.silver_rows:,}",
            f"{r.gold_rows:,}",
            r.verdict,
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=True)]

    def line(row: tuple[str, ...]) -> str:  # figures right-aligned, the words left-aligned
        cells = enumerate(zip(row, widths, strict=True))
        text = "  ".join(c.rjust(w) if 0 < i < len(row) - 1 else c.ljust(w) for i, (c, w) in cells)
        return text.rstrip()

    lines = [line(row) for row in (header, *body)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
