"""A small Delta table's window read on the driver from its files: the rows Spark reads, in the
types Spark's `toArrow` gives, or None wherever plain Parquet does not hold the table exactly."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from spotify_assets.lake import delta, driver_read
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


def test_the_rows_and_types_are_spark_s_and_files_outside_the_window_are_not_read(
    spark, tmp_path, monkeypatch
):
    table = str(tmp_path / "table")
    write_days(spark, table)
    opened: list[str] = []
    real = driver_read._read_file

    def spied(location, columns, schema):
        opened.append(Path(location).name)
        return real(location, columns, schema)

    monkeypatch.setattr(driver_read, "_read_file", spied)
    columns = ["user_id", "updated_at"]
    window = delta.Window("updated_at", JAN_2, JAN_3)
    rows = driver_read.read_window(table, columns, window, max_rows=100)
    assert rows is not None
    assert rows.schema == pa.schema(
        [("user_id", pa.int32()), ("updated_at", pa.timestamp("us", tz="UTC"))]
    )
    assert ordered(rows) == ordered(spark_rows(spark, table, columns, window))
    assert [(r["user_id"], r["updated_at"].replace(tzinfo=None)) for r in ordered(rows)] == [
        (2, JAN_2),
        (3, datetime(2026, 1, 2, 12, 30, 0, 250)),
    ]
    assert len(opened) == 1  # Jan 1's and Jan 3's files lie outside the window

    # Open below (a first window), a DATE column, a TIMESTAMP_NTZ column: Spark's rows again.
    for window, columns in [
        (delta.Window("updated_at", JAN_2, JAN_3, open_below=True), ["user_id", "name"]),
        (delta.Window("day", date(2026, 1, 2), date(2026, 1, 4)), ["user_id", "day"]),
        (delta.Window("local", JAN_2, None), ["local"]),
    ]:
        rows = driver_read.read_window(table, columns, window, max_rows=100)
        assert rows is not None
        expected = spark_rows(spark, table, columns, window)
        assert ordered(rows) == ordered(expected.cast(rows.schema)) != []
    empty = driver_read.read_window(table, ["name"], delta.Window("day", None, date(2025, 1, 1)), 9)
    assert empty is not None and empty.num_rows == 0


def test_spark_reads_what_plain_parquet_does_not_hold(spark, tmp_path):
    window = delta.Window("updated_at", JAN_2, JAN_3)

    def read(table: str, columns=("user_id",), max_rows: int = 100, at=window):
        return driver_read.read_window(table, list(columns), at, max_rows)

    plain = str(tmp_path / "plain")
    write_days(spark, plain)
    assert read(plain) is not None
    assert read(plain, max_rows=1) is None  # the window's file holds 3 rows
    assert read(plain, at=delta.Window("updated_at", date(2026, 1, 2), None)) is None  # a DATE
    assert read(plain, columns=("nothing",)) is None

    vectors = str(tmp_path / "vectors")  # a row deleted in place, by a deletion vector
    write_days(spark, vectors, **{"delta.enableDeletionVectors": "true"})
    assert read(vectors) is not None
    spark.sql(f"DELETE FROM {delta_table(vectors)} WHERE user_id = 3")
    assert read(vectors) is None

    mapped = str(tmp_path / "mapped")  # the files' column names are not the table's
    write_days(spark, mapped, **{"delta.columnMapping.mode": "name"})
    assert read(mapped) is None

    partitioned = str(tmp_path / "partitioned")  # `day` is in the folder names, not the files
    spark.createDataFrame([(1, "a", JAN_2, JAN_2.date(), JAN_2)], SCHEMA).write.format(
        "delta"
    ).partitionBy("day").save(partitioned)
    assert read(partitioned) is None

    widened = str(tmp_path / "widened")  # a column the older files lack
    write_days(spark, widened)
    added = spark.createDataFrame([(8, JAN_2, "SE")], "user_id INT, updated_at TIMESTAMP, c STRING")
    added.write.format("delta").mode("append").option("mergeSchema", "true").save(widened)
    assert "allFiles" not in delta.latest_checksum(widened)  # the commit that changed the schema
    assert read(widened) is None
    added.write.format("delta").mode("append").save(widened)  # the next one lists them again
    assert read(widened) is not None
    assert read(widened, columns=("user_id", "c")) is None

    (Path(plain) / "_delta_log" / f"{2:020d}.crc").unlink()  # a writer that left none
    assert read(plain) is None


def test_a_table_of_more_files_than_its_checksum_lists_is_read_by_spark(spark, tmp_path):
    table = str(tmp_path / "table")
    spark.conf.set("spark.databricks.delta.allFilesInCrc.thresholdNumFiles", "2")
    try:
        write_days(spark, table)
    finally:
        spark.conf.unset("spark.databricks.delta.allFilesInCrc.thresholdNumFiles")
    assert (
        driver_read.read_window(table, ["user_id"], delta.Window("updated_at", JAN_2, JAN_3), 100)
        is None
    )


@pytest.mark.parametrize("mode", ["append", "overwrite"])
def test_the_newest_version_is_read(spark, tmp_path, mode):
    table = str(tmp_path / "table")
    write_days(spark, table)
    spark.createDataFrame([(8, "h", JAN_2, JAN_2.date(), JAN_2)], SCHEMA).write.format(
        "delta"
    ).mode(mode).save(table)
    window = delta.Window("updated_at", JAN_2, JAN_3)
    rows = driver_read.read_window(table, ["user_id"], window, 100)
    assert rows is not None
    assert sorted(rows.column("user_id").to_pylist()) == ([2, 3, 8] if mode == "append" else [8])


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
        rows = driver_read.read_window(table, ["user_id", "updated_at"], window, 100)
        assert rows is not None
        assert ordered(rows) == ordered(spark_rows(spark, table, ["user_id", "updated_at"], window))
    first = driver_read.read_window(
        table, ["user_id"], delta.Window("updated_at", JAN_2, JAN_3, open_below=True), 100
    )
    assert first is not None and sorted(first.column("user_id").to_pylist()) == [1, 2]
