"""ingestion_config drives bronze: validation, caching, registration of an existing database."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import create_engine, func, select, text, update

from spotify_assets.catalog import SOURCE_TABLES, SourceTable
from spotify_assets.definitions import build_definitions
from spotify_assets.ingestion.config import load_catalog
from spotify_assets.ingestion.register import RegistrationError, register
from spotify_assets.source import simulator
from spotify_assets.source.schema import build_metadata
from spotify_assets_tests.conftest import START, make_settings

CONFIG = build_metadata().tables["ingestion_config"]


@pytest.fixture
def seeded(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'source.db'}")
    simulator.seed(engine, seed_value=2, start=START, days=2, echo=lambda _: None)
    return engine


def test_catalog_is_read_from_ingestion_config_and_cached(seeded, tmp_path):
    cache = tmp_path / "cache.json"
    catalog = load_catalog(seeded, None, cache)
    assert catalog.origin == "source" and catalog.problems == ()
    expected = tuple(
        SourceTable(t.name, t.entity, t.key, t.watermark, t.watermark_is_date, None, START)
        for t in sorted(SOURCE_TABLES, key=lambda t: t.name)
    )
    assert catalog.tables == expected
    assert cache.is_file()

    unreachable = create_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'no.db'}")
    cached = load_catalog(unreachable, None, cache)
    assert cached.origin == "cache" and cached.tables == expected
    assert cached.note.startswith(f"source sqlite:///{tmp_path}/missing-dir/no.db unreachable")
    assert "using the ingestion metadata cached at" in cached.note

    nothing = load_catalog(unreachable, None, tmp_path / "no-cache.json")
    assert nothing.origin == "built-in" and nothing.tables == SOURCE_TABLES
    assert nothing.note.endswith("and no cached metadata: using the original project's five tables")


def test_bad_rows_are_reported_by_name_and_the_others_keep_working(seeded, tmp_path):
    with seeded.begin() as conn:
        conn.execute(
            update(CONFIG).where(CONFIG.c.source_table == "DimUser")
            .values(primary_key="user_id; DROP TABLE DimUser")
        )  # fmt: skip
        conn.execute(
            update(CONFIG).where(CONFIG.c.source_table == "DimArtist")
            .values(watermark_column="modified")
        )  # fmt: skip
        conn.execute(
            CONFIG.insert().values(
                source_table="DimPodcast", primary_key="podcast_id", watermark_column="updated_at",
                enabled=True, partition_start=START, options="{}",
            )
        )  # fmt: skip
    catalog = load_catalog(seeded, None, tmp_path / "cache.json")
    assert [t.name for t in catalog.tables] == ["DimDate", "DimTrack", "FactStream"]
    assert catalog.problems == (
        "ingestion_config row 'DimArtist': watermark column 'modified' does not exist in "
        "DimArtist (columns: artist_id, artist_name, genre, country, updated_at)",
        "ingestion_config row 'DimPodcast': table DimPodcast does not exist in the source",
        "ingestion_config row 'DimUser': invalid primary key column 'user_id; DROP TABLE DimUser': "
        "use letters, digits and underscores, starting with a letter",
    )
    with seeded.connect() as conn:  # the injection attempt never reached SQL
        assert conn.execute(select(func.count()).select_from(text('"DimUser"'))).scalar() == 500


def test_a_new_row_adds_a_bronze_asset_without_code_change(seeded, tmp_path):
    with seeded.begin() as conn:
        conn.execute(text('CREATE TABLE "DimPodcast" (podcast_id INTEGER PRIMARY KEY, '
                          'title VARCHAR(100), modified_at DATETIME)'))  # fmt: skip
        conn.execute(
            CONFIG.insert().values(
                source_table="DimPodcast", primary_key="podcast_id",
                watermark_column="modified_at", enabled=True, partition_start=START, options="{}",
            )
        )  # fmt: skip
    settings = make_settings(tmp_path, SPOTIFY_SOURCE_DB_URL=str(seeded.url))
    graph = build_definitions(settings).get_repository_def().asset_graph
    keys = {k.to_user_string() for k in graph.get_all_asset_keys() if k.path[0] == "bronze"}
    assert keys == {
        "bronze/dim_user", "bronze/dim_artist", "bronze/dim_track", "bronze/dim_date",
        "bronze/fact_stream", "bronze/dim_podcast",
        "bronze/spotify_new_releases",  # the Spotify branch's raw answers, not a SQL table
    }  # fmt: skip
    podcast_checks = {
        c.name for c in graph.asset_check_keys if c.asset_key.path[-1] == "dim_podcast"
    }
    assert podcast_checks == {
        "reconciles_with_source", "no_duplicate_versions", "caught_up_with_source",
    }  # fmt: skip


# The original project's tables as its published SQL scripts create them (no ingestion_config).
TUTORIAL_DDL = [
    "CREATE TABLE DimUser (user_id INT PRIMARY KEY, user_name VARCHAR(255), country "
    "VARCHAR(255), subscription_type VARCHAR(50), start_date DATE, end_date DATE, updated_at "
    "DATETIME)",
    "CREATE TABLE DimArtist (artist_id INT PRIMARY KEY, artist_name VARCHAR(255), genre "
    "VARCHAR(100), country VARCHAR(100), updated_at DATETIME)",
    "CREATE TABLE DimDate (date_key INT PRIMARY KEY, date DATE, day INT, month INT, year INT, "
    "weekday VARCHAR(20))",
    "CREATE TABLE FactStream (stream_id BIGINT PRIMARY KEY, user_id INT, track_id INT, date_key "
    "INT, listen_duration INT, device_type VARCHAR(50), stream_timestamp DATETIME)",
    "INSERT INTO DimUser VALUES (1, 'Ann O''Neill', 'Lao People''s Democratic Republic', 'Free', "
    "'2024-01-01', NULL, '2026-01-02 10:00:00')",
]


def test_register_tables_inspects_an_existing_database_without_touching_its_data(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'tutorial.db'}")
    with engine.begin() as conn:
        for ddl in TUTORIAL_DDL:
            conn.execute(text(ddl))
    with pytest.raises(RegistrationError) as excinfo:
        register(engine, None, None, {}, {}, START, echo=lambda _: None)
    assert str(excinfo.value) == (
        "cannot register: DimDate: no watermark column found; give --watermark DimDate=COLUMN"
    )
    rows = register(
        engine, None, None, {}, {"DimDate": "date"}, date(2026, 1, 1), echo=lambda _: None
    )
    assert [(r["source_table"], r["primary_key"], r["watermark_column"]) for r in rows] == [
        ("DimArtist", "artist_id", "updated_at"),
        ("DimDate", "date_key", "date"),
        ("DimUser", "user_id", "updated_at"),
        ("FactStream", "stream_id", "stream_timestamp"),
    ]
    catalog = load_catalog(engine, None, tmp_path / "cache.json")
    assert catalog.problems == ()
    assert [(t.entity, t.watermark_is_date) for t in catalog.tables] == [
        ("dim_artist", False), ("dim_date", True), ("dim_user", False), ("fact_stream", False),
    ]  # fmt: skip
    with engine.connect() as conn:
        assert conn.execute(text("SELECT user_name FROM DimUser")).fetchall() == [("Ann O'Neill",)]
    # Registering again replaces the rows instead of duplicating them.
    register(engine, None, ["DimUser"], {}, {}, START, echo=lambda _: None)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(CONFIG)).scalar() == 4


def test_source_change_sensor_requests_each_changed_range_with_everything_downstream(
    seeded, tmp_path
):
    from dagster import build_sensor_context

    settings = make_settings(tmp_path, SPOTIFY_SOURCE_DB_URL=str(seeded.url))
    defs = build_definitions(settings)
    repo = defs.get_repository_def()
    sensor = repo.get_sensor_def("source_change_sensor")
    context = build_sensor_context(repository_def=repo, resources=defs.resources)
    requests = list(sensor(context))
    assert len(requests) == 5
    user = next(r for r in requests if r.run_key.startswith("dim_user:"))
    assert user.run_key.startswith("dim_user:2026-01-01:2026-01-02:")
    assert user.tags["dagster/asset_partition_range_start"] == "2026-01-01"
    assert user.tags["dagster/asset_partition_range_end"] == "2026-01-02"
    assert {k.to_user_string() for k in user.asset_selection} == {
        "bronze/dim_user", "silver/dim_user", "silver/dim_user_versions", "gold/dim_user",
        "silver/streams_enriched", "gold/fact_stream",
    }  # fmt: skip
