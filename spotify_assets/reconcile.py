"""Counts per table per layer, and whether they reconcile with the source.

Bronze holds every version observed, so it reconciles when its distinct keys equal the source's
rows; silver and gold hold one current row per key, so they must equal the source's rows exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import SparkSession

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

    @property
    def reconciles(self) -> bool:
        return self.source_rows == self.bronze_keys == self.silver_rows == self.gold_rows


def _count(spark: SparkSession, path: str, key: str | None = None) -> int:
    """Rows (current rows of a table with history, its unknown member aside), or distinct
    values of `key`."""
    if not delta.exists(path):
        return 0
    df = delta.read(spark, path)
    if key:
        return df.select(key).distinct().count()
    if "is_current" not in df.columns:
        return df.count()
    surrogate = next(c for c in df.columns if c.endswith("_sk"))
    return df.where(f"is_current AND `{surrogate}` <> {UNKNOWN_SK}").count()


def layer_counts(spark: SparkSession, source_db: SourceDatabase, root: str) -> list[LayerCounts]:
    rows = []
    for st in SOURCE_TABLES:
        bronze = table_path(root, Layer.BRONZE, st.entity)
        rows.append(
            LayerCounts(
                entity=st.entity,
                source_rows=source_db.count(st),
                bronze_versions=_count(spark, bronze),
                bronze_keys=_count(spark, bronze, st.key),
                silver_rows=_count(spark, table_path(root, Layer.SILVER, st.entity)),
                gold_rows=_count(spark, table_path(root, Layer.GOLD, st.entity)),
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
            "yes" if r.reconciles else "NO",
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=True)]

    def line(row: tuple[str, ...]) -> str:
        cells = zip(row, widths, strict=True)
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(cells))

    lines = [line(row) for row in (header, *body)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
