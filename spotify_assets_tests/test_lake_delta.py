"""Delta table metadata through SQL (what works the same over Spark Connect)."""

from __future__ import annotations

from spotify_assets.lake import delta


def test_exists_is_true_only_for_a_delta_table(spark, tmp_path):
    empty, parquet, table = tmp_path / "empty", tmp_path / "parquet", tmp_path / "table"
    empty.mkdir()
    spark.range(3).write.parquet(str(parquet))
    spark.range(3).write.format("delta").save(str(table))
    assert [delta.exists(spark, str(p)) for p in (tmp_path / "missing", empty, parquet, table)] == [
        False,
        False,
        False,
        True,
    ]
    assert delta.table_version(spark, str(table)) == 0
    assert delta.last_commit_rows(spark, str(table)) == 3
    spark.range(2).write.format("delta").mode("append").save(str(table))
    assert [h["version"] for h in delta.history(spark, str(table), 5)] == [1, 0]  # newest first
