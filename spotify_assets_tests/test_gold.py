"""Gold: SCD Type 2 histories, point-in-time keys, and expectations that warn, drop or fail."""

from __future__ import annotations

import random
from datetime import datetime

import pytest
from pyspark.sql import Row

from spotify_assets.defs.checks import (
    key_aggregates,
    key_check_results,
    key_figures_on_driver,
    key_violations,
    table_keys,
    violations,
)
from spotify_assets.defs.gold import dimension_figures, dimension_totals, fact_totals
from spotify_assets.lake import delta, scd2_merge
from spotify_assets.sql import delta_table
from spotify_assets.transforms import gold
from spotify_assets.transforms.expectations import (
    Action,
    Expectation,
    ExpectationFailed,
    evaluate,
)

USERS = gold.SCD2["dim_user"]
T = {i: datetime(2026, 1, 1 + i, 12) for i in range(8)}
USER_DDL = (
    "user_id int, user_name string, country string, subscription_type string, updated_at timestamp"
)


def history(spark, config, rows, ddl=USER_DDL, seed=0):
    """The history built from `rows` given in a shuffled order (the result must not care)."""
    shuffled = list(rows)
    random.Random(seed).shuffle(shuffled)
    built = gold.build_scd2(config, spark.createDataFrame(shuffled, ddl), "user_sk")
    return sorted(
        ((r["user_id"], r["user_name"], r["country"], r["subscription_type"], r["__START_AT"],
          r["__END_AT"], r["is_current"]) for r in built.collect()),
        key=lambda row: (row[0], row[4]),  # by key, then start
    )  # fmt: skip


EVENTS = [
    (1, "Ann", "SE", "Free", T[1]),
    (1, "Anna", "SE", "Free", T[2]),  # untracked change: updates the version in place
    (1, "Anna", "SE", "Premium", T[3]),  # tracked: closes it, opens another
    (1, "Anna", "NO", "Premium", T[4]),
    (1, "Anna", "NO", "Premium", T[5]),  # nothing tracked changed
    (2, "Bo", "DK", "Family", T[2]),
]
EXPECTED = [
    (1, "Anna", "SE", "Free", T[1], T[3], False),
    (1, "Anna", "SE", "Premium", T[3], T[4], False),
    (1, "Anna", "NO", "Premium", T[4], None, True),
    (2, "Bo", "DK", "Family", T[2], None, True),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_history_is_exact_whatever_order_events_arrive_in(spark, seed):
    assert history(spark, USERS, EVENTS, seed=seed) == EXPECTED


def test_a_late_event_takes_its_place_in_the_sequence(spark):
    late = (1, "Ann", "SE", "Family", T[0])  # arrives last, happened first
    assert history(spark, USERS, [*EVENTS, late]) == [
        (1, "Ann", "SE", "Family", T[0], T[1], False),
        *EXPECTED,
    ]


def test_several_changes_to_one_key_in_one_window_each_open_a_version(spark):
    same_day = [
        (3, "Cy", "FI", "Free", datetime(2026, 1, 2, 8)),
        (3, "Cy", "FI", "Premium", datetime(2026, 1, 2, 9)),
        (3, "Cy", "FI", "Family", datetime(2026, 1, 2, 10)),
    ]
    assert [(r[3], r[4], r[5]) for r in history(spark, USERS, same_day)] == [
        ("Free", datetime(2026, 1, 2, 8), datetime(2026, 1, 2, 9)),
        ("Premium", datetime(2026, 1, 2, 9), datetime(2026, 1, 2, 10)),
        ("Family", datetime(2026, 1, 2, 10), None),
    ]


def test_a_delete_closes_the_current_version_and_the_key_can_return(spark):
    config = gold.Scd2("dim_user", "user_id", "updated_at", ("subscription_type", "country"),
                       deletes="operation = 'DELETE'")  # fmt: skip
    ddl = USER_DDL + ", operation string"
    rows = [
        (4, "Di", "SE", "Free", T[1], "UPSERT"),
        (4, "Di", "SE", "Free", T[2], "DELETE"),
        (4, "Di", "SE", "Premium", T[4], "UPSERT"),
    ]
    built = gold.build_scd2(config, spark.createDataFrame(rows, ddl), "user_sk")
    found = sorted(
        (r["subscription_type"], r["__START_AT"], r["__END_AT"]) for r in built.collect()
    )
    assert found == [
        ("Free", T[1], T[2]),
        ("Premium", T[4], None),
    ]  # fmt: skip


def test_every_attribute_is_tracked_by_default(spark):
    tracks = gold.SCD2["dim_track"]
    ddl = "track_id int, track_name string, duration_sec int, updated_at timestamp"
    rows = [(7, "Song", 200, T[1]), (7, "Song", 210, T[2]), (7, "Song", 210, T[3])]
    built = gold.build_scd2(tracks, spark.createDataFrame(rows, ddl), "track_sk")
    assert sorted((r["duration_sec"], r["__START_AT"], r["__END_AT"]) for r in built.collect()) == [
        (200, T[1], T[2]),
        (210, T[2], None),
    ]


def test_null_keys_or_sequences_are_rejected_with_a_clear_error(spark):
    rows = [(None, "X", "SE", "Free", T[1]), (5, "Y", "SE", "Free", None)]
    with pytest.raises(gold.InvalidChangeEvents) as error:
        gold.build_scd2(USERS, spark.createDataFrame(rows, USER_DDL), "user_sk")
    assert str(error.value) == (
        "spark_catalog.gold.dim_user: 2 change event(s) with a NULL user_id or updated_at; "
        "an event needs both to take its place in the history"
    )


def test_surrogate_keys_are_deterministic_and_streams_get_the_version_valid_then(spark):
    users = gold.with_unknown_member(
        gold.build_scd2(USERS, spark.createDataFrame(EVENTS, USER_DDL), "user_sk"),
        "user_id", "user_sk",
    )  # fmt: skip
    again = gold.build_scd2(USERS, spark.createDataFrame(EVENTS[::-1], USER_DDL), "user_sk")
    sk = {(r["user_id"], r["__START_AT"]): r["user_sk"] for r in users.collect()}
    assert {(r["user_id"], r["__START_AT"]): r["user_sk"] for r in again.collect()} == {
        k: v for k, v in sk.items() if k[0] != -1
    }
    assert sk[(-1, None)] == -1
    tracks = spark.createDataFrame(
        [(1, 10, -100, "Song", 9, T[0], None, True), (-1, -1, -1, None, None, None, None, True)],
        "track_sk long, track_id int, artist_id int, track_name string, duration_sec int, "
        "__START_AT timestamp, __END_AT timestamp, is_current boolean",
    )
    artists = spark.createDataFrame(
        [(2, -100, T[0], None, True)],
        "artist_sk long, artist_id int, __START_AT timestamp, __END_AT timestamp, "
        "is_current boolean",
    )
    streams = spark.createDataFrame(
        [(s, u, 10, 0, 60, "Mobile", ts) for s, u, ts in (
            (100, 1, datetime(2025, 12, 1)),  # before the first version: takes the first
            (101, 1, datetime(2026, 1, 2, 13)),  # inside the first version
            (102, 1, T[3]),  # exactly when the second version starts
            (103, 1, T[7]),  # after the last change
            (104, 9, T[3]),  # a user the dimension does not know
        )],
        "stream_id long, user_id int, track_id int, date_key int, listen_duration int, "
        "device_type string, stream_timestamp timestamp",
    )  # fmt: skip
    fact = gold.build_fact_stream(streams, users, tracks, artists)
    assert sorted((r["stream_id"], r["user_sk"]) for r in fact.collect()) == [
        (100, sk[(1, T[1])]), (101, sk[(1, T[1])]), (102, sk[(1, T[3])]),
        (103, sk[(1, T[4])]), (104, -1),
    ]  # fmt: skip


RULES = (
    Expectation("duration_positive", "duration > 0", Action.DROP),
    Expectation("duration_short", "duration < 250", Action.WARN),
)


def test_warn_keeps_drop_quarantines_and_null_results_count_as_failed(spark):
    rows = spark.createDataFrame([(1, 200), (2, -5), (3, None), (4, 300)], "id int, duration int")
    checked = evaluate("gold.t", rows, RULES, "id")
    assert sorted(tuple(r) for r in checked.clean.collect()) == [(1, 200), (4, 300)]
    assert sorted(tuple(r) for r in checked.quarantine.collect()) == [
        (2, -5, ["duration_positive"]),
        (3, None, ["duration_positive", "duration_short"]),
    ]
    assert [(o.expectation.name, o.passed_records, o.failed_records, o.dropped_records,
             o.sample_failing_keys) for o in checked.outcomes] == [
        ("duration_positive", 2, 2, 2, [2, 3]),
        ("duration_short", 2, 2, 0, [3, 4]),
    ]  # fmt: skip
    # Replay after a fix: with the rule corrected, the quarantined row returns to the table.
    fixed = (Expectation("duration_positive", "duration > 0 OR id = 2", Action.DROP),)
    assert sorted(r["id"] for r in evaluate("gold.t", rows, fixed, "id").clean.collect()) == [
        1,
        2,
        4,
    ]


def test_a_fail_expectation_stops_before_anything_is_written(spark):
    rows = spark.createDataFrame([(1, 200), (2, -5)], "id int, duration int")
    rules = (Expectation("duration_positive", "duration > 0", Action.FAIL),)
    with pytest.raises(ExpectationFailed) as error:
        evaluate("gold.t", rows, rules, "id")
    assert str(error.value) == (
        "gold.t: expectation duration_positive (duration > 0) failed for 1 row(s), sample id: "
        "[2]; nothing was written"
    )


def test_dim_date_covers_every_date_a_stream_falls_on(spark):
    calendar = spark.createDataFrame(
        [(20260102, datetime(2026, 1, 2).date(), 2, 1, 2026, "Friday")],
        "date_key int, date date, day int, month int, year int, weekday string",
    )
    streams = spark.createDataFrame(
        [(datetime(2026, 1, 2, 9),), (datetime(2026, 1, 3, 23, 59),), (None,)],
        "stream_timestamp timestamp",
    )
    rows = sorted(tuple(r) for r in gold.build_dim_date(calendar, streams).collect())
    assert rows == [
        (20260102, datetime(2026, 1, 2).date(), 2, 1, 2026, "Friday", 1, False),
        (20260103, datetime(2026, 1, 3).date(), 3, 1, 2026, "Saturday", 1, True),
    ]


def test_key_check_counts_null_and_duplicated_keys_with_a_sorted_sample(spark):
    keys = [9, 9, 2, None, None, 3, 3, 3, 4, 8, 8, 7, 7, 6, 6, 5, 5]
    df = spark.createDataFrame([(k,) for k in keys], "user_sk int")
    assert key_violations(df, "user_sk") == (2, 6, [3, 5, 6, 7, 8])
    clean = spark.createDataFrame([(1,), (2,)], "user_sk int")
    assert key_violations(clean, "user_sk") == (0, 0, [])


def test_key_checks_of_one_table_agree_with_the_exact_count_in_one_pass(spark):
    """Natural key over current rows, surrogate over all rows: a unique key is settled by the
    single aggregation, a duplicated one gets the exact count and sample."""
    rows = [  # (user_id, user_sk, is_current)
        (1, 10, False), (1, 11, True), (2, 12, True), (None, 13, True), (3, 13, True),
        (3, 14, False), (4, None, True),
    ]  # fmt: skip
    df = spark.createDataFrame(rows, "user_id int, user_sk int, is_current boolean")
    assert violations(df, [("user_id", True), ("user_sk", False)]) == [
        (1, 0, []),
        (1, 1, [13]),
    ]
    current = df.where("user_id <> 1 OR is_current")
    assert violations(current, [("user_id", False)]) == [(1, 1, [3])]
    assert violations(df, []) == []
    # As the gold step reports them: one result per key check, blocking ones failing.
    results = {r.check_name: r for r in key_check_results(df, "dim_user")}
    assert {name: (r.passed, r.severity.value) for name, r in results.items()} == {
        "user_id_unique_not_null_current": (False, "ERROR"),
        "user_sk_unique_not_null": (False, "ERROR"),
    }
    sk = results["user_sk_unique_not_null"].metadata
    assert {k: v.value for k, v in sk.items()} == {
        "null_keys": 1, "duplicated_keys": 1, "sample_duplicated_keys": "[13]"
    }  # fmt: skip


def test_key_figures_read_on_the_driver_are_spark_s(spark, tmp_path):
    """The figures of the key checks, from a small table's files on the driver: the same as
    Spark's aggregation, a NULL is_current out of the current rows as there."""
    rows = [  # (user_id, user_sk, is_current)
        (1, 10, False), (1, 11, True), (2, 12, True), (None, 13, True), (3, 13, True),
        (3, 14, None), (3, 15, True), (4, None, True),
    ]  # fmt: skip
    df = spark.createDataFrame(rows, "user_id int, user_sk int, is_current boolean")
    path = str(tmp_path / "dim_user")
    df.write.format("delta").save(path)
    keys = table_keys("dim_user")
    figures = key_figures_on_driver(path, "dim_user")
    assert figures == df.agg(*key_aggregates(keys)).first().asDict() == {
        "_key0_nulls": 1, "_key0_values": 5, "_key0_distinct": 4,
        "_key1_nulls": 1, "_key1_values": 7, "_key1_distinct": 6,
    }  # fmt: skip
    assert violations(df, keys, figures) == violations(df, keys) == [(1, 1, [3]), (1, 1, [13])]


def test_a_dimension_s_totals_are_the_same_read_on_the_driver_or_by_spark(
    spark, tmp_path, monkeypatch
):
    """Versions and current versions, the unknown member (surrogate -1) not counted, a NULL
    surrogate counted and a NULL is_current not current; and the key checks' figures."""
    rows = [  # (user_id, user_sk, is_current)
        (-1, -1, True), (1, 10, False), (1, 11, True), (2, 12, True), (3, None, True),
        (4, 14, None), (5, 15, False),
    ]  # fmt: skip
    path = str(tmp_path / "dim_user")
    spark.createDataFrame(rows, "user_id int, user_sk bigint, is_current boolean").write.format(
        "delta"
    ).save(path)
    totals, figures = dimension_figures(spark, path, "dim_user")
    assert isinstance(figures, dict)  # counted on the driver
    assert totals == scd2_merge.Totals(rows=6, current=3)
    assert dimension_totals(spark, path, "user_sk") == totals
    assert figures == {
        "_key0_nulls": 0, "_key0_values": 4, "_key0_distinct": 4,
        "_key1_nulls": 1, "_key1_values": 6, "_key1_distinct": 6,
    }  # fmt: skip

    spark.sql(f"DELETE FROM {delta_table(path)} WHERE user_sk = 11")
    monkeypatch.setattr(delta, "MAX_ROWS", 5)  # 6 rows: more than the driver reads
    assert delta.read_arrow(path, ["user_sk", "is_current"]) is None
    totals, figures = dimension_figures(spark, path, "dim_user")
    assert isinstance(figures, Row)  # so Spark counted
    assert totals == scd2_merge.Totals(rows=5, current=2)
    assert dimension_totals(spark, path, "user_sk") == totals
    assert [figures[f"_key{i}_{f}"] for i in (0, 1) for f in ("nulls", "values", "distinct")] == [
        0, 3, 3, 1, 5, 5
    ]  # fmt: skip


def test_the_fact_s_totals_are_the_same_read_on_the_driver_or_by_spark(
    spark, tmp_path, monkeypatch
):
    """Rows, rows in the window, the window's rows with an unresolved dimension (-1; a NULL
    beside a -1 still counts, as SQL's OR has it), and the key's figures."""
    day, before = datetime(2026, 1, 2, 8), datetime(2026, 1, 1, 10)
    rows = [  # (stream_id, stream_timestamp, user_sk, track_sk, artist_sk)
        (1, day, 10, 20, 30), (2, day, -1, 20, 30), (3, day, 10, None, -1),
        (3, before, 10, 20, 30), (None, day, 10, None, 30), (5, None, -1, 20, 30),
    ]  # fmt: skip
    ddl = "stream_id long, stream_timestamp timestamp, user_sk int, track_sk int, artist_sk int"
    path = str(tmp_path / "fact_stream")
    spark.createDataFrame(rows, ddl).write.format("delta").save(path)
    window = delta.Window("stream_timestamp", datetime(2026, 1, 2), datetime(2026, 1, 3))
    columns = ["stream_id"]
    assert delta.read_arrow(path, columns) is not None
    totals = fact_totals(delta.read(spark, path), path, window)
    assert isinstance(totals, dict)  # counted on the driver
    assert {k: totals[k] for k in ("rows", "in_window", "unresolved")} == {
        "rows": 6, "in_window": 4, "unresolved": 2
    }  # fmt: skip
    assert [totals[f"_key0_{f}"] for f in ("nulls", "values", "distinct")] == [1, 5, 4]

    spark.sql(f"DELETE FROM {delta_table(path)} WHERE stream_id = 2")
    monkeypatch.setattr(delta, "MAX_ROWS", 4)  # 5 rows: more than the driver reads
    assert delta.read_arrow(path, columns) is None
    totals = fact_totals(delta.read(spark, path), path, window)
    assert isinstance(totals, Row)  # so Spark counted
    assert {k: totals[k] for k in ("rows", "in_window", "unresolved")} == {
        "rows": 5, "in_window": 3, "unresolved": 1
    }  # fmt: skip
    assert [totals[f"_key0_{f}"] for f in ("nulls", "values", "distinct")] == [1, 4, 3]
