"""The SQL-writing machine: golden statements, lineage, and what templates refuse to render.

Regenerate the golden files after an intended change with `UPDATE_GOLDEN=1 make test`.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import pytest
from dagster import AssetKey

from spotify_assets.defs.partitions import daily_partitions
from spotify_assets.defs.silver import build_streams_enriched
from spotify_assets.sql import UnsafeTemplateValue, environment, render
from spotify_assets.transforms import enriched
from spotify_assets_tests.conftest import make_settings

GOLDEN = Path(__file__).parent / "golden"

STATEMENTS = {
    "enriched_streams": lambda: enriched.statement(),
    "insert_new_versions_first_window": lambda: render(
        "insert_new_versions.sql.j2",
        target="/lake/bronze/fact_stream",
        source="incoming_versions",
        keys=["stream_id", "stream_timestamp"],
        window_column="stream_timestamp",
        has_start=False,
        has_end=True,
        evolve_schema=False,
    ),
    "update_matched": lambda: render(
        "update_matched.sql.j2",
        target="/lake/gold/new_release_tracks",
        source="matched_updates",
        keys=["track_id", "seen_on"],
        columns=["first_seen"],
    ),
    "sync_table_with_a_new_column": lambda: render(
        "sync_table.sql.j2",
        target="/lake/silver/dim_user_versions",
        source="synced_rows",
        keys=["user_id", "updated_at"],
        columns=["user_name", "country", "subscription_type", "_ingested_at"],
        added=["popularity"],
        evolve_schema=True,
    ),
    "merge_history": lambda: render(
        "merge_history.sql.j2",
        target="/lake/gold/dim_user",
        source="changed_history",
        surrogate="user_sk",
        columns=["user_sk", "user_id", "subscription_type", "__START_AT", "__END_AT", "is_current"],
    ),
    "insert_new_versions_with_new_columns": lambda: render(
        "insert_new_versions.sql.j2",
        target="/lake/bronze/dim_user",
        source="incoming_versions",
        keys=["user_id", "updated_at"],
        window_column="updated_at",
        has_start=True,
        has_end=True,
        evolve_schema=True,
    ),
}


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_rendered_statement_matches_its_golden_file(name):
    text = STATEMENTS[name]().text
    golden = GOLDEN / f"{name}.sql"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_values_are_bound_as_parameters_never_rendered(spark):
    hostile = "x' OR 1=1 --"
    statement = environment().from_string("SELECT {{ 'v' | param }} AS v")
    row = spark.sql(statement.render(), args={"v": hostile}).first()
    assert row["v"] == hostile


@pytest.mark.parametrize(
    "column", ["user_id; DROP TABLE users", "a`b", "1abc", "x y", "", "user_id--"]
)
def test_an_identifier_that_is_not_plain_is_rejected(column):
    with pytest.raises(ValueError, match=r"^invalid identifier"):
        render(
            "insert_new_versions.sql.j2",
            target="/lake/bronze/t",
            source="incoming_versions",
            keys=[column],
            window_column="updated_at",
            has_start=True,
            has_end=True,
            evolve_schema=False,
        )


def test_a_template_cannot_print_a_raw_value_or_an_unknown_name():
    with pytest.raises(UnsafeTemplateValue, match=r"printed '1 OR 1=1' directly"):
        environment().from_string("WHERE x = {{ value }}").render(value="1 OR 1=1")
    with pytest.raises(jinja2.UndefinedError, match="'keys' is undefined"):
        render(
            "insert_new_versions.sql.j2",
            target="/lake/bronze/t",
            source="v",
            window_column="updated_at",
            has_start=True,
            has_end=True,
            evolve_schema=False,
        )
    with pytest.raises(ValueError, match=r"^invalid Delta table path"):
        render(
            "insert_new_versions.sql.j2",
            target="/lake/x` WHERE 1=1 --",
            source="v",
            keys=["k"],
            window_column="updated_at",
            has_start=True,
            has_end=True,
            evolve_schema=False,
        )


def test_column_lineage_of_enriched_streams_is_attached_to_the_asset(tmp_path):
    asset = build_streams_enriched(daily_partitions(make_settings(tmp_path)))
    lineage = asset.specs_by_key[AssetKey(["silver", "streams_enriched"])].metadata[
        "dagster/column_lineage"
    ]
    deps = {
        column: [(d.asset_key.to_user_string(), d.column_name) for d in found]
        for column, found in lineage.deps_by_column.items()
    }
    assert deps["artist_country"] == [("silver/dim_artist_versions", "country")]
    assert deps["user_country"] == [("silver/dim_user_versions", "country")]
    assert deps["duration_flag"] == [("silver/dim_track_versions", "duration_flag")]
    assert deps["stream_timestamp"] == [("silver/fact_stream", "stream_timestamp")]
    assert len(deps) == 18


def test_window_bounds_are_utc_parameters():
    from spotify_assets.lake.delta import Window

    window = Window("stream_timestamp", datetime(2026, 1, 1), datetime(2026, 1, 2))
    assert window.args() == {
        "window_start": datetime(2026, 1, 1, tzinfo=UTC),
        "window_end": datetime(2026, 1, 2, tzinfo=UTC),
    }
