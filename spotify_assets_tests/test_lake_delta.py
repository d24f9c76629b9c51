"""Delta table metadata through SQL (what works the same over Spark Connect)."""

from __future__ import annotations

from spotify_assets.lake import delta


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
