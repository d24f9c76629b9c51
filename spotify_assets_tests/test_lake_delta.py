"""Delta table metadata on the driver, with delta-rs: what DESCRIBE HISTORY and a Spark count
say, without a Spark job."""

from __future__ import annotations

import json

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
    assert delta.table_version(table) == 1
    assert delta.row_count(table) == delta.read(spark, table).count() == 5


def test_version_and_rows_of_the_last_commit(spark, tmp_path):
    table = tmp_path / "table"
    spark.range(3).write.format("delta").save(str(table))
    assert delta.table_version(str(table)) == 0
    assert delta.last_commit_rows(str(table)) == 3
    spark.range(2).write.format("delta").mode("append").save(str(table))
    assert [h["version"] for h in delta.history(str(table), 5)] == [1, 0]  # newest first
    assert delta.table_version(str(tmp_path / "missing")) == -1


FIELDS = ("version", "operation", "operationParameters", "operationMetrics", "userMetadata")


def test_the_history_is_what_describe_history_says(spark, tmp_path):
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
    described = spark.sql(f"DESCRIBE HISTORY delta.`{table}`").collect()
    ours = delta.history(table, 10)
    assert [(h["version"], h["operation"], h["userMetadata"]) for h in ours] == [
        (r["version"], r["operation"], r["userMetadata"]) for r in described
    ]
    for mine, theirs in zip(ours, described, strict=True):  # the values, as strings or not
        assert {k: str(v) for k, v in mine["operationMetrics"].items()} == {
            k: str(v) for k, v in (theirs["operationMetrics"] or {}).items()
        }
        assert mine["operationParameters"].get("mode") == (theirs["operationParameters"] or {}).get(
            "mode"
        )
    assert [h["version"] for h in ours] == [3, 2, 1, 0]
    assert json.loads(ours[1]["userMetadata"]) == {"built_from": {"version": 7}}
    assert [h["version"] for h in delta.history(table, 2)] == [3, 2]
    assert delta.last_commit_rows(table) == 4


def test_the_row_count_is_spark_s_count(spark, tmp_path):
    table = str(tmp_path / "table")
    spark.range(10).repartition(2).write.format("delta").save(table)
    spark.range(10, 15).write.format("delta").mode("append").save(table)
    spark.sql(f"DELETE FROM {delta_table(table)} WHERE id % 3 = 0")  # 0, 3, 6, 9, 12
    assert delta.row_count(table) == delta.read(spark, table).count() == 10

    vectors = str(tmp_path / "vectors")  # rows deleted in place: the files' counts include them
    spark.range(10).write.format("delta").option("delta.enableDeletionVectors", "true").save(
        vectors
    )
    spark.sql(f"DELETE FROM {delta_table(vectors)} WHERE id % 3 = 0")
    assert delta.row_count(vectors) == delta.read(spark, vectors).count() == 6


def test_tables_are_written_without_deletion_vectors(spark, tmp_path):
    """So every Delta reader opens them (delta-rs reads none): a MERGE rewrites files."""
    table = str(tmp_path / "table")
    change_log.create(spark.range(10).selectExpr("id", "id AS v"), table)
    changed = spark.range(3).selectExpr("id", "id + 100 AS v")
    change_log.sync(spark, changed, table, ["id"])
    assert "deletionVectors" not in delta.reader_features(table)
    assert delta.properties(table)["delta.enableDeletionVectors"] == "false"
    assert delta.row_count(table) == 3


def test_a_table_created_again_at_its_path_is_another_table(spark, tmp_path):
    """What a skipped step compares (defs.unchanged): the version alone would say nothing
    changed, as a new table starts at version 0 again."""
    import shutil

    table = str(tmp_path / "table")
    assert delta.table_state(table) == "none@-1"
    spark.range(3).write.format("delta").save(table)
    first = delta.table_state(table)
    shutil.rmtree(table)
    spark.range(4).write.format("delta").save(table)
    again = delta.table_state(table)
    assert first.endswith("@0") and again.endswith("@0") and first != again
