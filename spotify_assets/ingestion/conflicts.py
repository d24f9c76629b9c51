"""Landing a window's source rows as bronze versions, one row per (key, watermark).

A source table whose primary key is the configured key cannot hold two rows for one pair. A view,
or a table created without a primary key, can. Exact copies of a row are then one version (the
copies are counted). Rows that share a pair but differ are conflicting versions. No rule can
choose between them, so none of them enters bronze: they are landed apart, in bronze's
`<table>_conflicting_versions`, window by window, until the source settles them. The next run of
the window then inserts the surviving row and clears the conflict.

As for any change that keeps its watermark, a conflict on a pair bronze already holds from an
earlier run leaves bronze's version as it is: a version is its (key, watermark). A source settled
by an UPDATE keeps the window's fingerprint, so the sensor does not see it: re-run the window.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from spotify_assets.lake import delta

_ROWS = "__rows_of_version"


@dataclass(frozen=True)
class Landed:
    inserted: int  # new versions in bronze
    change: delta.SchemaChange
    copies: int = 0  # exact copies of a source row, collapsed into its version
    conflicting: int = 0  # rows of conflicting versions, landed apart


def conflicting_entity(entity: str) -> str:
    return f"{entity}_conflicting_versions"


def land_versions(
    spark: SparkSession,
    frame: DataFrame,
    rows: int,
    path: str,
    apart_path: str,
    keys: list[str],
    window: delta.Window,
    keys_unique: bool,
) -> Landed:
    """Insert the window's new versions into bronze at `path`; `rows` is the frame's row count.

    `keys_unique`: the source's primary key is the key, so no pair repeats and the checks below
    are skipped (the usual case, and the cheap one)."""
    if keys_unique:
        inserted, change = delta.insert_new_versions(spark, frame, path, keys, window)
        if delta.exists(apart_path):  # the table has gained a primary key since: none left
            delta.replace_window(frame.limit(0), apart_path, window)
        return Landed(inserted, change)
    counted = frame.dropDuplicates().withColumn(
        _ROWS, F.count(F.lit(1)).over(Window.partitionBy(*keys))
    )
    counted.persist()  # read three times: the totals, the insert, the rows landed apart
    try:
        totals = counted.agg(
            F.count(F.lit(1)).alias("distinct"),
            F.count(F.when(F.col(_ROWS) > 1, 1)).alias("apart"),
        ).first()
        assert totals is not None
        distinct, apart = int(totals["distinct"]), int(totals["apart"])
        single = counted.where(F.col(_ROWS) == 1).drop(_ROWS)
        inserted, change = delta.insert_new_versions(spark, single, path, keys, window)
        if apart or delta.exists(apart_path):
            # Replacing the window also clears the conflicts the source has settled since.
            delta.replace_window(counted.where(F.col(_ROWS) > 1).drop(_ROWS), apart_path, window)
    finally:
        counted.unpersist()
    return Landed(inserted, change, copies=rows - distinct, conflicting=apart)
