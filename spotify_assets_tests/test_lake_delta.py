"""Delta table metadata, read from the log's files or through SQL (what works the same over
Spark Connect)."""

from __future__ import annotations

import json
from pathlib import Path

from spotify_assets.lake import change_log, delta
from spotify_assets.sql import delta_table


def test_exists_is_true_only_for_a_delta_table(spark, tmp_path):
    empty, parquet, table = tmp_path / "empty", tmp_path / "parquet", tmp_path / "table"
    empty.mkdir()
    spark.range(3).write.parquet(str(parquet))
    spark.range(3).write.format("delta").save(str(table))
    first_write = tmp_path / "first_write"  # data files and a log folder, no commit yet
    spark.range(3).write.parquet(str(first_write))
    (first_write / "_delta_log").mkdir()
    places = (tmp_path / "missing", empty, parquet, first_write, table)
    assert [delta.exists(str(p)) for p in places] == [False, False, False, False, True]


def test_a_table_whose_first_commits_were_cleaned_up_still_exists(spark, tmp_path):
    table = str(tmp_path / "table")
    spark.range(3).write.format("delta").option("delta.checkpointInterval", "1").save(table)
    spark.range(2).write.format("delta").mode("append").save(table)  # checkpoint at version 1
    (tmp_path / "table" / "_delta_log" / f"{0:020d}.json").unlink()  # as log clean-up does
    assert delta.exists(table)
    assert delta.read(spark, table).count() == 5


def test_version_and_rows_of_the_last_commit(spark, tmp_path):
    table = tmp_path / "table"
    spark.range(3).write.format("delta").save(str(table))
    assert delta.table_version(spark, str(table)) == 0
    assert delta.last_commit_rows(spark, str(table)) == 3
    spark.range(2).write.format("delta").mode("append").save(str(table))
    assert [h["version"] for h in delta.history(spark, str(table), 5)] == [1, 0]  # newest first
    assert delta.table_version(spark, str(tmp_path / "missing")) == -1


def test_the_history_read_from_the_log_is_what_describe_history_says(spark, tmp_path):
    table = str(tmp_path / "table")
    spark.range(3).write.format("delta").option("delta.checkpointInterval", "3").save(table)
    spark.range(2).write.format("delta").mode("append").save(table)
    spark.range(5).createOrReplaceTempView("changes")
    with change_log.recording(spark, "built_from", {"version": 7}):
        spark.sql(
            f"MERGE INTO delta.`{table}` t USING changes s ON t.id = s.id "
            "WHEN MATCHED THEN UPDATE SET id = s.id WHEN NOT MATCHED THEN INSERT *"
        )
    spark.range(4).write.format("delta").mode("overwrite").save(table)  # checkpoint at 3
    expected = [
        {k: row[k] for k in FIELDS}
        for row in spark.sql(f"DESCRIBE HISTORY delta.`{table}`").collect()
    ]
    assert [{k: h[k] for k in FIELDS} for h in delta.history(spark, table, 10)] == expected
    assert [h["version"] for h in expected] == [3, 2, 1, 0]
    assert json.loads(expected[1]["userMetadata"]) == {"built_from": {"version": 7}}
    assert [h["version"] for h in delta.history(spark, table, 2)] == [3, 2]
    assert delta.last_commit_rows(spark, table) == 4
    for version in range(3):  # as log clean-up does, the checkpoint kept
        (tmp_path / "table" / "_delta_log" / f"{version:020d}.json").unlink()
    assert delta.table_version(spark, table) == 3
    assert [h["version"] for h in delta.history(spark, table, 10)] == [3]


def test_commits_a_catalog_has_not_copied_into_the_log_send_the_history_to_delta(
    spark, tmp_path, monkeypatch
):
    """Delta 4 creates `_delta_log/_staged_commits` empty; a commit staged there (a table whose
    catalog accepts its commits) may be newer than the log's files, so Delta is asked."""
    table = str(tmp_path / "table")
    spark.range(3).write.format("delta").save(table)
    staged = tmp_path / "table" / "_delta_log" / "_staged_commits"
    assert staged.is_dir() and not any(staged.iterdir())
    assert [h["version"] for h in delta.history(spark, table, 5)] == [0]  # from the log's files
    (staged / f"{1:020d}.3f2c.json").write_text("{}")

    def read_the_log(*_):
        raise AssertionError("the log's files were read")

    monkeypatch.setattr(delta, "_commit", read_the_log)
    assert [h["version"] for h in delta.history(spark, table, 5)] == [0]
    assert delta.table_version(spark, table) == 0


FIELDS = ("version", "operation", "operationParameters", "operationMetrics", "userMetadata")


def checksum(table: str, version: int) -> dict:
    return json.loads((Path(table) / "_delta_log" / f"{version:020d}.crc").read_text())


def test_the_row_count_adds_up_the_checksum_and_spark_counts_when_it_cannot(spark, tmp_path):
    table = str(tmp_path / "table")
    rows = spark.range(10).repartition(2)
    rows.write.format("delta").option("delta.enableDeletionVectors", "true").save(table)
    spark.range(10, 15).write.format("delta").mode("append").save(table)
    spark.sql(f"DELETE FROM {delta_table(table)} WHERE id % 3 = 0")  # 0, 3, 6, 9, 12
    latest = checksum(table, 2)
    assert any(f.get("deletionVector") for f in latest["allFiles"])  # rows deleted in place
    assert delta._rows_in_checksum(latest) == 10
    assert delta.row_count(spark, table) == delta.read(spark, table).count() == 10
    (Path(table) / "_delta_log" / f"{2:020d}.crc").unlink()  # a writer that left none
    assert delta.row_count(spark, table) == 10

    many = str(tmp_path / "many")
    spark.conf.set("spark.databricks.delta.allFilesInCrc.thresholdNumFiles", "2")
    try:  # a table of more files than the checksum lists
        spark.range(7).repartition(3).write.format("delta").save(many)
    finally:
        spark.conf.unset("spark.databricks.delta.allFilesInCrc.thresholdNumFiles")
    assert delta._rows_in_checksum(checksum(many, 0)) is None
    assert delta.row_count(spark, many) == 7
