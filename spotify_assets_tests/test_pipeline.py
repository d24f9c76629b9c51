"""End to end on local Spark: seed, backfill a range, advance, re-run an older window after a
newer one; counts and rows reconcile. make test's one whole-graph scenario (its tests share one
lake, in order); the same days built out of order through Spark Connect are make test-all's."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from dagster import DagsterInstance
from deltalake import DeltaTable
from sqlalchemy import select, text

from spotify_assets.catalog import (
    GOLD_KEYS,
    SOURCE_BY_ENTITY,
    SOURCE_TABLES,
    Layer,
    table_name,
    table_path,
)
from spotify_assets.lake import delta
from spotify_assets.materialize import materialize_range
from spotify_assets.reconcile import layer_counts
from spotify_assets.source import simulator
from spotify_assets.source.resource import SourceDatabase
from spotify_assets_tests.conftest import START, make_settings

DAY1, DAY3, DAY4 = date(2026, 1, 1), date(2026, 1, 3), date(2026, 1, 4)


@pytest.fixture(scope="module")
def lakehouse(tmp_path_factory, spark):
    settings = make_settings(tmp_path_factory.mktemp("lakehouse"))
    source = SourceDatabase(url=settings.source_db_url)
    simulator.seed(source.engine, seed_value=11, start=START, days=3, echo=lambda _: None)
    with DagsterInstance.ephemeral() as instance:
        yield settings, source, instance


def run(lakehouse, start: date, end: date):
    settings, _, instance = lakehouse
    result = materialize_range(settings, start, end, instance=instance, say=lambda _: None)
    assert result.success
    return result


SILVER_EXTRA = (
    "dim_user_versions",
    "dim_artist_versions",
    "dim_track_versions",
    "streams_enriched",
)


def snapshot(spark, settings, drop: tuple[str, ...] = ()) -> dict[str, list[tuple]]:
    """Every row of every table in every layer, sorted: equal snapshots mean equal tables."""
    tables = {}
    names = [(layer, st.entity) for layer in Layer for st in SOURCE_TABLES]
    for layer, entity in [*names, *((Layer.SILVER, e) for e in SILVER_EXTRA)]:
        df = delta.read(spark, table_path(settings.lakehouse_root, layer, entity)).drop(*drop)
        tables[str(table_name(layer, entity))] = sorted(tuple(r) for r in df.collect())
    return tables


def source_rows(source: SourceDatabase, name: str) -> set[tuple]:
    table = source.table(next(t for t in SOURCE_TABLES if t.name == name))
    with source.engine.connect() as conn:
        return {tuple(r) for r in conn.execute(select(table))}


def gold_current_rows(spark, settings, entity: str, columns: list[str]) -> set[tuple]:
    df = delta.read(spark, table_path(settings.lakehouse_root, Layer.GOLD, entity))
    real = df.where(f"is_current AND {GOLD_KEYS[entity][1]} <> -1")  # the unknown member aside
    return {tuple(r) for r in real.select(*columns).collect()}


def test_backfill_of_the_seeded_range_reconciles_every_layer(spark, lakehouse):
    """Slow because it is the scenario's first whole-graph run (3 days, 17 steps), often the
    first of its JVM: 40 s to 2 minutes on 2 cores."""
    settings, source, _ = lakehouse
    result = run(lakehouse, DAY1, DAY3)

    checks = result.get_asset_check_evaluations()
    failed = {c.check_name: c for c in checks if not c.passed}
    assert len(checks) == 23 + 15  # key checks and bronze checks, plus one per expectation
    # The only failing rule is the source's known quirk, a warning: date_key disagreeing with
    # stream_timestamp, exactly as often as the source has it.
    assert set(failed) == {"source_date_key_consistent"}
    assert failed["source_date_key_consistent"].severity.value == "WARN"
    with source.engine.connect() as conn:
        quirks = conn.execute(text(
            'SELECT COUNT(*) FROM "FactStream" '
            "WHERE date_key <> CAST(strftime('%Y%m%d', stream_timestamp) AS INTEGER)"
        )).scalar()  # fmt: skip
    metadata = failed["source_date_key_consistent"].metadata
    assert (metadata["failed_records"].value, metadata["passed_records"].value) == (
        quirks,
        1000 - quirks,
    )
    assert quirks > 0
    counts = {c.entity: c for c in layer_counts(spark, source, settings.lakehouse_root)}
    assert {e: (c.source_rows, c.bronze_versions, c.silver_rows, c.gold_rows)
            for e, c in counts.items()} == {
        "dim_user": (500, 500, 500, 500),
        "dim_artist": (500, 500, 500, 500),
        "dim_track": (500, 500, 500, 500),
        "dim_date": (3, 3, 3, 3),
        "fact_stream": (1000, 1000, 1000, 1000),
    }  # fmt: skip
    # Gold holds exactly the source's values, not only the same number of rows.
    user_columns = [c.name for c in source.table(SOURCE_BY_ENTITY["dim_user"]).columns]
    gold_users = gold_current_rows(spark, settings, "dim_user", user_columns)
    assert {_normalise(r) for r in gold_users} == {
        _normalise(r) for r in source_rows(source, "DimUser")
    }

    # Silver reports what it did with the rows, and the schema history of the table.
    silver_mats = result.asset_materializations_for_node("silver__fact_stream")
    assert len(silver_mats) == 3  # one per day of the range, with the run's figures
    silver = silver_mats[0]
    assert {k: silver.metadata[k].value for k in (
        "rows_in", "rows_written", "duplicates_removed", "rows_with_rescued_data",
        "columns_added", "evolution_mode",
    )} == {
        "rows_in": 1000, "rows_written": 1000, "duplicates_removed": 0,
        "rows_with_rescued_data": 0, "columns_added": [], "evolution_mode": "addNewColumns",
    }  # fmt: skip
    assert [e["event"] for e in silver.metadata["schema_history"].value] == ["created"]

    mats = result.asset_materializations_for_node("bronze__fact_stream")
    assert mats[0].metadata["dagster/table_name"].value == "spark_catalog.bronze.fact_stream"
    assert mats[0].metadata["dagster/row_count"].value == 1000
    assert [c.name for c in mats[0].metadata["dagster/column_schema"].schema.columns] == [
        "stream_id", "user_id", "track_id", "date_key", "listen_duration", "device_type",
        "stream_timestamp", "_rescued_data", "_ingested_at",
    ]  # fmt: skip


def costs(result) -> dict[str, tuple]:
    """Each materialised step's (Spark jobs, Delta commits, skipped) from its metadata."""
    figures = {}
    for event in result.get_asset_materialization_events():
        meta = event.materialization.metadata
        figures[event.step_key] = (
            meta["spark_jobs"].value,
            meta["delta_commits"].value,
            "unchanged_since_run" in meta,
        )
    return figures


@pytest.mark.slow  # a Spark Connect server, and two whole-graph runs on a second lake
def test_partitions_run_out_of_order_and_on_either_engine_give_the_same_tables(
    spark, lakehouse, tmp_path, spark_connect_url
):
    """Day 3, then days 1-2, on a second lakehouse equal one ordered run (ingestion times aside,
    which differ between two lakehouses by nature). Day 3 goes through a Spark Connect server
    (`spotify-lakehouse materialize` in a process of its own with SPARK_ENGINE=connect): every
    layer built there from nothing, then days 1-2 on the local engine over the same tables."""
    settings = make_settings(tmp_path)
    source = SourceDatabase(url=settings.source_db_url)
    simulator.seed(source.engine, seed_value=11, start=START, days=3, echo=lambda _: None)
    done = through_spark_connect(
        settings, spark_connect_url, "--start", str(DAY3), "--end", str(DAY3)
    )
    assert "on the Spark Connect server" in done.stdout + done.stderr
    with DagsterInstance.ephemeral() as instance:
        result = materialize_range(
            settings, DAY1, date(2026, 1, 2), instance=instance, say=lambda _: None
        )
        assert result.success
    # The second run rebuilt day 3's joined windows: their dimension versions had changed.
    mats = result.asset_materializations_for_node("silver__streams_enriched")
    assert mats[0].metadata["windows_rebuilt_for_dimension_changes"].value == ["2026-01-03"]
    assert snapshot(spark, settings, drop=("_ingested_at",)) == snapshot(
        spark, lakehouse[0], drop=("_ingested_at",)
    )


def test_a_rerun_does_the_work_of_what_changed_and_no_more(spark, lakehouse):
    """Slow because it is two whole-graph runs of the seeded range: one with nothing changed
    (seconds), one after changes in old windows (about a minute)."""
    settings, source, _ = lakehouse
    before = snapshot(spark, settings)
    first = run(lakehouse, DAY1, DAY3)
    figures = costs(first)
    later = {k: v for k, v in figures.items() if not k.startswith("bronze")}
    assert len(later) == 11 and all(v == (0, 0, True) for v in later.values()), later
    assert all(v[1] == 0 for k, v in figures.items() if k.startswith("bronze")), figures
    assert snapshot(spark, settings) == before
    (fact,) = {
        e.materialization.metadata["unchanged_since_run"].value
        for e in first.get_asset_materialization_events()
        if e.step_key == "gold__fact_stream"
    }
    assert fact != first.run_id  # the figures are those of the run that computed them
    assert len(first.get_asset_check_evaluations()) == 23 + 15  # verdicts reported again

    # Changes inside the old windows: a late stream on day 2, an artist's new genre dated day 2.
    with source.engine.begin() as conn:
        conn.execute(text(
            'INSERT INTO "FactStream" SELECT MAX(stream_id) + 1, 7, 9, 20260102, 200, '
            "'mobile', '2026-01-02 23:59:00.000000' FROM \"FactStream\""
        ))  # fmt: skip
        conn.execute(text(
            'UPDATE "DimArtist" SET genre = \'Polka\', updated_at = \'2026-01-02 18:00:00.000000\' '
            "WHERE artist_id = 3"
        ))  # fmt: skip
        late_id = conn.execute(text('SELECT MAX(stream_id) FROM "FactStream"')).scalar()
    second = run(lakehouse, DAY1, DAY3)
    skipped = {k for k, (_, _, skip) in costs(second).items() if skip}
    assert skipped == {
        "silver_dim_user", "silver_dim_track", "silver__dim_date",
        "gold__dim_user", "gold__dim_track",
    }  # fmt: skip
    gold_fact = delta.read(spark, table_path(settings.lakehouse_root, Layer.GOLD, "fact_stream"))
    assert gold_fact.where(f"stream_id = {late_id}").count() == 1
    assert gold_current_rows(spark, settings, "dim_artist", ["artist_id", "genre"]) >= {
        (3, "Polka")
    }


def test_enriched_streams_carry_the_versions_valid_when_each_stream_happened(spark, lakehouse):
    settings = lakehouse[0]
    path = lambda entity: table_path(settings.lakehouse_root, Layer.SILVER, entity)  # noqa: E731
    users: dict[int, list] = {}
    for row in delta.read(spark, path("dim_user_versions")).orderBy("updated_at").collect():
        users.setdefault(row["user_id"], []).append(row)

    def as_of(user_id, when):
        valid = [v for v in users.get(user_id, []) if v["updated_at"] <= when]
        found = valid[-1] if valid else (users[user_id][0] if user_id in users else None)
        return None if found is None else (found["country"], found["subscription_type"])

    enriched = delta.read(spark, path("streams_enriched")).collect()
    assert len(enriched) == delta.read(spark, path("fact_stream")).count()
    for row in enriched:
        expected = as_of(row["user_id"], row["stream_timestamp"])
        assert (row["user_country"], row["subscription_type"]) == (expected or (None, None))


def test_advance_adds_versions_and_reruns_never_remove_history(spark, lakehouse):
    """Slow because it is the scenario's second half: two whole-graph runs (the next day, then
    an older window re-run with a full refresh) and every table read twice, about 2 minutes."""
    settings, source, _ = lakehouse
    changes = simulator.advance(source.engine, days=1, echo=lambda _: None)
    # The source's calendar lacks the new day, as the original's database lacks its last one:
    # gold's dim_date generates it for the streams that fall on it.
    with source.engine.begin() as conn:
        conn.execute(text('DELETE FROM "DimDate" WHERE date_key = 20260104'))
    # The source gains a column: bronze and silver (addNewColumns) take it, and say so.
    with source.engine.begin() as conn:
        conn.execute(text('ALTER TABLE "DimTrack" ADD COLUMN popularity INTEGER'))
        conn.execute(text(
            'UPDATE "DimTrack" SET popularity = 57, updated_at = \'2026-01-04 12:00:00.000000\' '
            "WHERE track_id = 1"
        ))  # fmt: skip
    gold_users = table_path(settings.lakehouse_root, Layer.GOLD, "dim_user")
    users_before = delta.read(spark, gold_users).collect()
    result = run(lakehouse, DAY4, DAY4)
    # The history only grows: every new row is a version this run opened, and every version it
    # closed was current before.
    (users,) = result.asset_materializations_for_node("gold__dim_user")
    users_after = delta.read(spark, gold_users).collect()
    current_before = {r["user_sk"] for r in users_before if r["is_current"]}
    closed_now = {r["user_sk"] for r in users_after if not r["is_current"]}
    assert users.metadata["versions_opened"].value == len(users_after) - len(users_before) > 0
    assert users.metadata["versions_closed"].value == len(current_before & closed_now) > 0
    tracks = {
        m.asset_key.path[-1]: m for m in result.asset_materializations_for_node("silver_dim_track")
    }
    assert tracks["dim_track"].metadata["columns_added"].value == ["popularity"]
    assert tracks["dim_track"].metadata["schema_history"].value[-1]["columns"] == ["popularity int"]
    silver_tracks = delta.read(
        spark, table_path(settings.lakehouse_root, Layer.SILVER, "dim_track")
    )
    assert {
        tuple(r)
        for r in silver_tracks.where("popularity IS NOT NULL")
        .select("track_id", "popularity")
        .collect()
    } == {(1, 57)}

    counts = {c.entity: c for c in layer_counts(spark, source, settings.lakehouse_root)}
    assert all(c.reconciles for c in counts.values()), counts
    assert {e: c.verdict for e, c in counts.items()} == {
        "dim_user": "yes", "dim_artist": "yes", "dim_track": "yes",
        "dim_date": "yes (+1 generated day)", "fact_stream": "yes",
    }  # fmt: skip
    assert (counts["dim_date"].source_rows, counts["dim_date"].gold_rows) == (3, 4)
    user_versions = (
        500 + changes["new_users"] + changes["subscription_changes"] + changes["country_changes"]
    )
    assert counts["dim_user"].source_rows == 502
    assert counts["dim_user"].bronze_versions <= user_versions  # a user may change twice in a day
    assert counts["dim_user"].bronze_versions > 502
    # Silver and gold show each user's current subscription, exactly as the source has it.
    current = {(r[0], r[3]) for r in source_rows(source, "DimUser")}
    assert (
        gold_current_rows(spark, settings, "dim_user", ["user_id", "subscription_type"]) == current
    )

    # Re-materialising a seeded partition changes no row of any table (idempotent re-runs),
    # although re-extracting it finds old versions gone from the source: bronze keeps them,
    # history is never removed; every gold history rebuilt from scratch is the same too.
    before = snapshot(spark, settings)
    rerun = materialize_range(
        settings, DAY3, DAY3, instance=lakehouse[2], say=lambda _: None, full_refresh=True
    )
    assert rerun.success
    assert snapshot(spark, settings) == before
    assert not any(skipped for *_, skipped in costs(rerun).values())  # a full refresh recomputes
    (users,) = rerun.asset_materializations_for_node("gold__dim_user")
    assert users.metadata["build_reason"].value == "full refresh requested"

    # A current row deleted from gold behind the pipeline's back: the summary says NO, and how
    # many rows gold lacks.
    spark.sql(f"DELETE FROM delta.`{gold_users}` WHERE is_current AND user_id = 1")
    counts = {c.entity: c for c in layer_counts(spark, source, settings.lakehouse_root)}
    assert counts["dim_user"].verdict == "NO (gold -1)"
    assert [e for e, c in counts.items() if not c.reconciles] == ["dim_user"]


def test_every_table_opens_in_delta_rs_with_the_rows_spark_reads(spark, lakehouse):
    """Every Delta table of the lake, after the scenario's runs, MERGEs and a DELETE: what a
    pandas or polars user reads with delta-rs is what Spark reads, row for row."""
    settings, _, _ = lakehouse
    root = Path(settings.lakehouse_root)
    tables = sorted(p.parent for p in root.rglob("_delta_log"))
    assert len(tables) >= 19  # 5 bronze, 9 silver, 5 gold (and side tables, when any)

    def plain(value):
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.astimezone(UTC).replace(tzinfo=None)
        return value.asDict(recursive=True) if hasattr(value, "asDict") else value

    for table in tables:
        by_spark = [
            {k: plain(v) for k, v in row.asDict().items()}
            for row in delta.read(spark, str(table)).collect()
        ]
        by_delta_rs = [
            {k: plain(v) for k, v in row.items()}
            for row in DeltaTable(str(table)).to_pyarrow_table().to_pylist()
        ]
        assert sorted(map(repr, by_delta_rs)) == sorted(map(repr, by_spark)), table


def through_spark_connect(settings, url: str, *args: str) -> subprocess.CompletedProcess:
    """`spotify-lakehouse materialize ARGS` on the lake of `settings`, in a process of its own
    whose engine is the Spark Connect server at `url`."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SPOTIFY_SOURCE_DB_URL": settings.source_db_url,
        "LAKEHOUSE_ROOT": settings.lakehouse_root,
        "DAGSTER_HOME": str(settings.dagster_home),
        "LAKEHOUSE_START_DATE": START.isoformat(),
        "SPARK_ENGINE": "connect",
        "SPARK_CONNECT_URL": url,
    }
    cli = str(Path(sys.executable).parent / "spotify-lakehouse")
    done = subprocess.run(
        [cli, "materialize", *args], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _normalise(row: tuple) -> tuple:
    """Spark returns timestamps as naive local (UTC) datetimes, like SQLAlchemy: compare as is."""
    return tuple(v.replace(tzinfo=None) if hasattr(v, "tzinfo") and v.tzinfo else v for v in row)
