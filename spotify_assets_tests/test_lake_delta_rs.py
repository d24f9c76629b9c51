"""A Delta table's rows read on the driver with delta-rs (`delta.read_arrow`): the rows Spark
reads, in the types Spark's `toArrow` gives, whatever the table's layout; Spark when the files
that may hold a window hold too many rows."""

from __future__ import annotations

from datetime import date, datetime

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from spotify_assets.lake import change_log, delta
from spotify_assets.sql import delta_table

JAN_2, JAN_3 = datetime(2026, 1, 2), datetime(2026, 1, 3)
SCHEMA = "user_id INT, name STRING, updated_at TIMESTAMP, day DATE, local TIMESTAMP_NTZ"


def write_days(spark, table: str, **options: str) -> None:
    """Three commits, one file each: Jan 1, Jan 2 (with a NULL watermark), Jan 3."""
    days = [
        [(1, "a", datetime(2026, 1, 1, 23, 59, 59, 999999))],
        [(2, "b", JAN_2), (3, "c", datetime(2026, 1, 2, 12, 30, 0, 250)), (4, "d", None)],
        [(5, "e", JAN_3)],
    ]
    for rows in days:
        frame = spark.createDataFrame(
            [(k, n, t, t and t.date(), t) for k, n, t in rows], SCHEMA
        ).coalesce(1)
        writer = frame.write.format("delta").mode("append")
        for name, value in options.items():
            writer = writer.option(name, value)
        writer.save(table)


def spark_rows(spark, table: str, columns: list[str], window: delta.Window) -> pa.Table:
    return delta.read(spark, table).select(*columns).where(window.predicate()).toArrow()


def ordered(rows: pa.Table) -> list[dict]:
    return sorted(rows.to_pylist(), key=str)


def test_the_rows_and_types_are_spark_s_and_only_files_that_may_hold_the_window_count(
    spark, tmp_path
):
    table = str(tmp_path / "table")
    write_days(spark, table)
    columns = ["user_id", "updated_at"]
    window = delta.Window("updated_at", JAN_2, JAN_3)
    # The table holds 5 rows; the window's one file 3: the others' statistics rule them out.
    rows = delta.read_arrow(table, columns, window, max_rows=3)
    assert rows is not None
    assert rows.schema == pa.schema(
        [("user_id", pa.int32()), ("updated_at", pa.timestamp("us", tz="UTC"))]
    )
    assert ordered(rows) == ordered(spark_rows(spark, table, columns, window))
    assert [(r["user_id"], r["updated_at"].replace(tzinfo=None)) for r in ordered(rows)] == [
        (2, JAN_2),
        (3, datetime(2026, 1, 2, 12, 30, 0, 250)),
    ]
    assert delta.read_arrow(table, columns, window, max_rows=2) is None  # Spark reads them
    assert delta.read_arrow(table, columns, max_rows=4) is None  # the whole table: 5 rows

    # Open below (a first window), a DATE column, a TIMESTAMP_NTZ column: Spark's rows again.
    for window, columns in [
        (delta.Window("updated_at", JAN_2, JAN_3, open_below=True), ["user_id", "name"]),
        (delta.Window("day", date(2026, 1, 2), date(2026, 1, 4)), ["user_id", "day"]),
        (delta.Window("local", JAN_2, None), ["local"]),
        (delta.Window("updated_at", date(2026, 1, 2), None), ["user_id"]),  # a DATE bound
    ]:
        rows = delta.read_arrow(table, columns, window)
        assert rows is not None
        assert ordered(rows) == ordered(spark_rows(spark, table, columns, window)) != []
    empty = delta.read_arrow(table, ["name"], delta.Window("day", None, date(2025, 1, 1)))
    assert empty is not None and empty.num_rows == 0


@pytest.mark.parametrize(
    "layout",
    ["column mapping", "partitioned", "widened"],
)
def test_every_layout_reads_as_spark_reads_it(spark, tmp_path, layout):
    """Where the hand-written reader it replaced had to give up and ask Spark."""
    table = str(tmp_path / "table")
    if layout == "column mapping":  # the files' column names are not the table's
        write_days(spark, table, **{"delta.columnMapping.mode": "name"})
    elif layout == "partitioned":  # `day` is in the folder names, not the files
        spark.createDataFrame([(1, "a", JAN_2, JAN_2.date(), JAN_2)], SCHEMA).write.format(
            "delta"
        ).partitionBy("day").save(table)
    else:  # a column the older files lack
        write_days(spark, table)
        spark.createDataFrame(
            [(8, JAN_2, "SE")], "user_id INT, updated_at TIMESTAMP, c STRING"
        ).write.format("delta").mode("append").option("mergeSchema", "true").save(table)
    for columns in (
        (["user_id", "day"], ["user_id"]) if layout != "widened" else (["user_id", "c"],)
    ):
        window = delta.Window("updated_at", JAN_2, JAN_3)
        rows = delta.read_arrow(table, columns, window)
        assert rows is not None
        assert ordered(rows) == ordered(spark_rows(spark, table, columns, window)) != []


@pytest.mark.parametrize("mode", ["append", "overwrite"])
def test_the_newest_version_is_read(spark, tmp_path, mode):
    table = str(tmp_path / "table")
    write_days(spark, table)
    spark.createDataFrame([(8, "h", JAN_2, JAN_2.date(), JAN_2)], SCHEMA).write.format(
        "delta"
    ).mode(mode).save(table)
    rows = delta.read_arrow(table, ["user_id"], delta.Window("updated_at", JAN_2, JAN_3))
    assert rows is not None
    assert sorted(rows.column("user_id").to_pylist()) == ([2, 3, 8] if mode == "append" else [8])
    assert delta.row_count(table) == (6 if mode == "append" else 1)


def test_timestamps_far_from_today_read_as_spark_reads_them(spark, tmp_path):
    """Outside the years nanoseconds hold (1677-2262): a first window, open below, holds a
    row of 1600; a file whose newest statistic is the last millisecond of 9999 is not skipped
    by mistake, nor does it overflow."""
    table = str(tmp_path / "table")
    last = datetime(9999, 12, 31, 23, 59, 59, 999000)
    far = [(1, datetime(1600, 1, 1, 12)), (2, JAN_2), (3, last)]
    spark.createDataFrame(far, "user_id INT, updated_at TIMESTAMP").coalesce(1).write.format(
        "delta"
    ).save(table)
    for window in (
        delta.Window("updated_at", JAN_2, JAN_3, open_below=True),
        delta.Window("updated_at", datetime(9999, 1, 1), None),
    ):
        rows = delta.read_arrow(table, ["user_id", "updated_at"], window)
        assert rows is not None
        assert ordered(rows) == ordered(spark_rows(spark, table, ["user_id", "updated_at"], window))


@pytest.mark.slow
def test_a_table_older_code_gave_deletion_vectors_loses_them_and_nothing_else(spark, tmp_path):
    """delta-rs cannot read a table with deletion vectors: the change log's properties drop
    the feature (rewriting the files that have one), and every row stays. Slow because DROP
    FEATURE takes about 30 s (make test-all)."""
    table = str(tmp_path / "table")
    write_days(spark, table, **{"delta.enableDeletionVectors": "true"})
    spark.sql(f"DELETE FROM {delta_table(table)} WHERE user_id = 3")
    assert "deletionVectors" in delta.reader_features(table)
    with pytest.raises(Exception, match="deletionVectors"):
        DeltaTable(table).to_pandas()  # what a pandas user of the lake reads with
    change_log.ensure_properties(spark, table)
    assert "deletionVectors" not in delta.reader_features(table)
    assert sorted(DeltaTable(table).to_pandas()["user_id"]) == [1, 2, 4, 5]
    rows = delta.read_arrow(table, ["user_id"])
    assert rows is not None and sorted(rows.column("user_id").to_pylist()) == [1, 2, 4, 5]
    assert delta.properties(table)["delta.enableChangeDataFeed"] == "true"
