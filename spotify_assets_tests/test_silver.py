"""Silver contracts: evolution modes, rescued data, schema history, deduplication."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from pathlib import Path

import pytest

from spotify_assets.lake import delta
from spotify_assets.transforms import schema_history
from spotify_assets.transforms.conform import NewColumnsRejected, conform, with_source_file
from spotify_assets.transforms.contracts import CONTRACTS, Evolution
from spotify_assets.transforms.silver import latest_per_key, versions

TRACKS = CONTRACTS["dim_track"]
T1, T2 = datetime(2026, 1, 1, 8), datetime(2026, 1, 2, 9)
TRACK_DDL = (
    "track_id int, track_name string, artist_id int, album_name string, duration_sec {duration},"
    " release_date date, updated_at timestamp{extra}, _ingested_at timestamp"
)


def bronze(spark, tmp_path, rows, duration="int", extra="", name="bronze"):
    """A real bronze Delta table of dim_track rows, read back with each row's data file."""
    path = str(tmp_path / name)
    schema = TRACK_DDL.format(duration=duration, extra=extra)
    spark.createDataFrame(rows, schema).coalesce(1).write.format("delta").save(path)
    return with_source_file(delta.read(spark, path)), path


def track(track_id, duration, *extra, name="Song", updated=T1):
    return (track_id, name, 7, "Album", duration, None, updated, *extra, T1)


def compact(value: dict) -> str:
    return json.dumps(value, separators=(",", ":"))


def rows_of(conformed, *columns):
    return sorted(tuple(r) for r in conformed.frame.select(*columns).collect())


def test_values_that_do_not_fit_their_type_are_rescued_with_the_bronze_file(spark, tmp_path):
    frame, path = bronze(
        spark, tmp_path,
        [track(1, "200"), track(2, "abc"), track(3, " 95 "), track(4, ""), track(5, None)],
        duration="string",
    )  # fmt: skip
    history = schema_history.SchemaHistory("dim_track")
    result = conform(frame, TRACKS, history)
    rows = rows_of(result, "track_id", "duration_sec", "duration_flag", "_rescued_data")
    data_file = frame.select("_source_file").first()[0]
    assert data_file.startswith(f"file:{path}/") and data_file.endswith(".parquet")
    assert rows == [
        (1, 200, "medium", None),
        (2, None, None, compact({"duration_sec": "abc", "_file_path": data_file})),
        (3, 95, "low", None),  # trimmed, then typed
        (4, None, None, None),  # empty is NULL, not a rescued value
        (5, None, None, None),
    ]  # fmt: skip
    assert [e["event"] for e in history.events] == ["created"]


def test_a_column_differing_only_in_case_is_rescued_and_the_contract_column_is_null(
    spark, tmp_path
):
    path = str(tmp_path / "users")
    spark.createDataFrame(
        [(1, "Ann", "SE", "premium", None, None, T1, T1)],
        "user_id int, user_name string, Country string, subscription_type string, "
        "start_date date, end_date date, updated_at timestamp, _ingested_at timestamp",
    ).write.format("delta").save(path)
    frame = with_source_file(delta.read(spark, path))
    result = conform(frame, CONTRACTS["dim_user"], schema_history.SchemaHistory("dim_user"))
    (row,) = result.frame.collect()
    assert (row["country"], row["subscription_type"]) == (None, "Premium")  # INITCAP rule
    assert json.loads(row["_rescued_data"])["Country"] == "SE"
    assert result.columns_rescued == ["Country"] and result.columns_missing == ["country"]


@pytest.mark.parametrize("mode", list(Evolution))
def test_each_evolution_mode_meets_a_new_column(spark, tmp_path, mode):
    frame, _ = bronze(
        spark, tmp_path, [track(1, 200, 57), track(2, 100, None)], extra=", popularity int"
    )
    contract = dataclasses.replace(TRACKS, evolution=mode)
    history = schema_history.SchemaHistory("dim_track")
    if mode is Evolution.FAIL_ON_NEW_COLUMNS:
        with pytest.raises(NewColumnsRejected) as error:
            conform(frame, contract, history)
        assert str(error.value) == (
            "spark_catalog.silver.dim_track: bronze has new column(s) ['popularity'] that the "
            "contract does not declare, and its evolution mode is failOnNewColumns. Accept them "
            "with `spotify-lakehouse accept-columns dim_track popularity`, or declare them in "
            "spotify_assets/transforms/contracts.py."
        )
        # Accepting the column lets the next run take it, with bronze's type.
        root = str(tmp_path / "lake")
        schema_history.accept(root, contract, ["popularity"])
        history = schema_history.load(schema_history.history_path(root, "dim_track"), "dim_track")
        assert [e["event"] for e in history.events] == ["created", "columns accepted"]
    result = conform(frame, contract, history)
    columns = result.frame.columns
    if mode in (Evolution.ADD_NEW_COLUMNS, Evolution.FAIL_ON_NEW_COLUMNS):
        assert rows_of(result, "track_id", "popularity", "_rescued_data") == [
            (1, 57, None), (2, None, None)
        ]  # fmt: skip
        assert dict(result.frame.dtypes)["popularity"] == "int"
        assert history.extra == [["popularity", "int"]]
    elif mode is Evolution.RESCUE:
        assert "popularity" not in columns
        rescued = [
            json.loads(r[1]) if r[1] else None for r in rows_of(result, "track_id", "_rescued_data")
        ]
        assert rescued[0]["popularity"] == "57" and rescued[1] is None
        assert result.columns_rescued == ["popularity"]
    else:
        assert "popularity" not in columns and result.columns_ignored == ["popularity"]
        ignored = result.frame.agg({"_ignored_values": "sum"}).first()[0]
        assert ignored == 1  # counted, not kept
    if mode is Evolution.ADD_NEW_COLUMNS:
        assert result.columns_added == ["popularity"]
        assert history.events[-1]["event"] == "columns added"
        assert history.events[-1]["columns"] == ["popularity int"]


def test_a_dropped_column_is_null_and_reported(spark, tmp_path):
    path = str(tmp_path / "tracks")
    spark.createDataFrame(
        [(1, "Song", 7, 200, None, T1, T1)],
        "track_id int, track_name string, artist_id int, duration_sec int, release_date date, "
        "updated_at timestamp, _ingested_at timestamp",
    ).write.format("delta").save(path)
    result = conform(
        with_source_file(delta.read(spark, path)), TRACKS, schema_history.SchemaHistory("dim_track")
    )
    assert result.columns_missing == ["album_name"]
    assert rows_of(result, "track_id", "album_name", "_rescued_data") == [(1, None, None)]


def test_dedup_keeps_the_latest_version_and_every_distinct_version_once(spark, tmp_path):
    frame, _ = bronze(
        spark, tmp_path,
        [track(1, 200, name="Old"), track(1, 210, name="New", updated=T2),
         track(1, 200, name="Old"), track(2, 90)],
    )  # fmt: skip
    result = conform(frame, TRACKS, schema_history.SchemaHistory("dim_track"))
    current = latest_per_key(result.frame, TRACKS).select("track_id", "track_name")
    assert sorted(tuple(r) for r in current.collect()) == [(1, "New"), (2, "Song")]
    kept = versions(result.frame, TRACKS).select("track_id", "track_name", "updated_at")
    assert sorted(tuple(r) for r in kept.collect()) == [
        (1, "New", T2),
        (1, "Old", T1),
        (2, "Song", T1),
    ]


def test_schema_history_survives_a_reload_and_names_a_corrupt_file(tmp_path):
    root = str(tmp_path)
    path = schema_history.history_path(root, "fact_stream")
    history = schema_history.SchemaHistory("fact_stream")
    history.follow_contract(CONTRACTS["fact_stream"])
    history.add({"skipped": "boolean"}, "columns added")
    schema_history.save(path, history)
    assert schema_history.load(path, "fact_stream") == history
    Path(path).write_text("{not json")
    with pytest.raises(
        schema_history.SchemaHistoryCorrupt, match=r"silver\.fact_stream is corrupt"
    ):
        schema_history.load(path, "fact_stream")


def test_a_window_written_by_an_older_schema_takes_the_new_columns(spark, tmp_path):
    """Upgrading: a table written before `_rescued_data` existed gets it on the next window."""
    path = str(tmp_path / "streams")
    spark.createDataFrame([(1, T1)], "stream_id long, stream_timestamp timestamp").write.format(
        "delta"
    ).save(path)
    newer = spark.createDataFrame(
        [(2, T2, '{"x":"1"}')], "stream_id long, stream_timestamp timestamp, _rescued_data string"
    )
    delta.replace_window(newer, path, delta.Window("stream_timestamp", T2, datetime(2026, 1, 3)))
    assert sorted(tuple(r) for r in delta.read(spark, path).collect()) == [
        (1, T1, None),
        (2, T2, '{"x":"1"}'),
    ]
