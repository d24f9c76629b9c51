"""`spotify-lakehouse summary`: gold's deliberate additions and quarantines reconcile in words;
a row lost behind the pipeline's back is a NO with its size. (On a real lake: test_pipeline's
advance, where the source's calendar lacks the new day and a gold row is deleted.)"""

from __future__ import annotations

from spotify_assets.reconcile import LayerCounts, format_counts


def counts(source, bronze_keys, silver, gold, generated=0, quarantined=0, entity="dim_user"):
    return LayerCounts(entity, source, bronze_keys, bronze_keys, silver, gold, generated,
                       quarantined)  # fmt: skip


def test_the_verdict_names_what_gold_left_out_and_where_rows_went_missing():
    assert counts(10, 10, 10, 10).verdict == "yes"
    assert counts(10, 10, 10, 8, quarantined=2).verdict == "yes (-2 quarantined)"
    assert counts(10, 10, 10, 13, generated=3).verdict == "yes (+3 generated days)"
    assert counts(10, 10, 10, 12, generated=3, quarantined=1).verdict == (
        "yes (+3 generated days, -1 quarantined)"
    )
    assert counts(10, 10, 10, 9).verdict == "NO (gold -1)"
    assert counts(10, 10, 10, 10, quarantined=2).verdict == "NO (gold +2)"
    assert counts(10, 11, 9, 9).verdict == "NO (bronze keys +1, silver -1)"
    assert counts(1200, 1200, 0, 0).verdict == "NO (silver -1,200)"


def test_the_table_shows_the_original_database_s_calendar_as_reconciled():
    """The original project's database: 365 calendar days, streams on a 366th."""
    table = format_counts([
        counts(365, 365, 365, 366, generated=1, entity="dim_date"),
        counts(5000, 5000, 5000, 4999, entity="fact_stream"),
    ])  # fmt: skip
    assert table.splitlines() == [
        "table        source  bronze versions  bronze keys  silver   gold  reconciles",
        "-----------  ------  ---------------  -----------  ------  -----  ----------------------",
        "dim_date        365              365          365     365    366  yes (+1 generated day)",
        "fact_stream   5,000            5,000        5,000   5,000  4,999  NO (gold -1)",
    ]
