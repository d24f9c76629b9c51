"""The Spotify branch end to end against the local API double: raw, silver, gold, re-runs."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from dagster import DagsterInstance, EnvVar, materialize
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from spotify_assets.catalog import Layer
from spotify_assets.defs.partitions import daily_partitions
from spotify_assets.defs.spotify import RAW, build_spotify_assets, raw_path
from spotify_assets.lake import delta
from spotify_assets.resources import build_resources
from spotify_assets_tests import spotify_demo
from spotify_assets_tests.conftest import make_settings
from spotify_assets_tests.fake_spotify import FakeSpotify

PREV, DAY, NEXT = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)


class DeltaPath:
    """A lake table, read as a count of rows per value of some columns."""

    def __init__(self, spark, settings, layer, name):
        self.spark, self.path = spark, build_resources(settings)["lakehouse"].path(layer, name)

    def rows(self, *columns) -> dict:
        frame = delta.read(self.spark, self.path).groupBy(*columns).count().collect()
        return {tuple(r[:-1]): r[-1] for r in frame}


@pytest.fixture
def fake():
    server = FakeSpotify(albums=6).start()
    yield server
    server.stop()


@pytest.fixture
def branch(tmp_path, fake, monkeypatch):
    monkeypatch.setenv("SPOTIFY_CLIENT_ID", fake.client_id)
    monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", fake.client_secret)
    settings = make_settings(tmp_path, SPOTIFY_API_URL=fake.api_url,
                             SPOTIFY_TOKEN_URL=fake.token_url)  # fmt: skip
    resources = build_resources(settings)
    assert isinstance(resources["spotify"].client_secret, EnvVar)
    return {
        "settings": settings,
        "assets": build_spotify_assets(daily_partitions(settings)),
        "resources": resources,
        "lake": resources["lakehouse"],
        "instance": DagsterInstance.ephemeral(),
    }


FETCH_OLDER_DAYS = {"ops": {"bronze__spotify_new_releases": {"config": {"fetch_older_days": True}}}}


def run(branch, day, run_config=FETCH_OLDER_DAYS):  # the test's days are in the past
    result = materialize(
        branch["assets"],
        partition_key=day.isoformat(),
        resources=branch["resources"],
        instance=branch["instance"],
        run_config=run_config,
    )
    assert result.success
    return result


def table(spark, branch, layer, name, *columns):
    rows = delta.read(spark, branch["lake"].path(layer, name)).select(*columns).collect()
    return sorted((tuple(r) for r in rows), key=repr)


def messages(instance, result) -> list[str]:
    """What the run logged, as the UI shows it."""
    return [entry.user_message for entry in instance.all_logs(result.run_id)]


def test_without_credentials_the_branch_is_skipped_and_the_run_succeeds(tmp_path):
    settings = make_settings(tmp_path)
    resources = build_resources(settings)
    assert not resources["spotify"].configured
    instance = DagsterInstance.ephemeral()
    result = materialize(
        build_spotify_assets(daily_partitions(settings)),
        partition_key=DAY.isoformat(),
        resources=resources,
        instance=instance,
    )
    assert result.success
    assert result.get_asset_materialization_events() == []
    warnings = [m for m in messages(instance, result) if "not configured" in m]
    assert warnings == [
        "Spotify is not configured (set SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET): the "
        "Spotify assets are skipped for 2026-01-02"
    ]


def test_days_land_raw_silver_and_gold_reruns_change_nothing_nothing_leaks(spark, branch, fake):
    """Slow because it runs the Spotify branch (raw, silver, gold) four times: a day, its
    re-run, and the demo's two ranges; about a minute on 2 cores."""
    result = run(branch, DAY)
    raw = raw_path(branch["lake"].root, DAY)
    document = json.loads(Path(raw).read_text())
    assert document["mode"] == "development"
    meta = {
        e.asset_key.path[-1]: {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }
    assert meta["spotify_new_releases"]["days_fetched"] == [DAY.isoformat()]
    assert meta["spotify_new_releases"]["fell_back_to_development_mode"] is True
    assert meta["spotify_new_releases"]["requests"]["/browse/new-releases 403"] == 1

    tracks = [t for a in fake.album_objects.values() for t in a["_tracks"]]
    published = table(spark, branch, Layer.GOLD, "new_release_tracks", "track_id", "album_name",
                      "artist_ids", "genres", "release_date", "first_seen")  # fmt: skip
    assert len(published) == len(tracks)
    by_id = {row[0]: row for row in published}
    for album in fake.album_objects.values():
        artist_ids = [a["id"] for a in album["artists"]]
        genres = sorted({g for a in artist_ids for g in fake.artist_objects[a]["genres"]})
        for track in album["_tracks"]:
            assert by_id[track["id"]][1:] == (
                album["name"],
                artist_ids,
                genres,
                album["release_date"],
                DAY,
            )
    # Development Mode has no popularity: NULL in silver, nothing rescued.
    albums = table(spark, branch, Layer.SILVER, "spotify_albums", "popularity", "_rescued_data")
    assert {row for row in albums} == {(None, None)}

    silver_before = table(spark, branch, Layer.SILVER, "spotify_tracks", "*")
    gold_before = table(spark, branch, Layer.GOLD, "new_release_tracks", "*")
    requests_before = len(fake.requests)
    rerun = run(branch, DAY)
    assert len(fake.requests) == requests_before  # the day's answers are kept
    raw_meta = rerun.get_asset_materialization_events()[0].materialization.metadata
    assert (raw_meta["days_fetched"].value, raw_meta["days_kept"].value) == ([], [DAY.isoformat()])
    assert table(spark, branch, Layer.SILVER, "spotify_tracks", "*") == silver_before
    assert table(spark, branch, Layer.GOLD, "new_release_tracks", "*") == gold_before

    # No secret or token in anything the runs logged or recorded (metadata included).
    text = " ".join(
        [*messages(branch["instance"], rerun), *messages(branch["instance"], result)]
        + [repr(event) for event in [*result.all_events, *rerun.all_events]]
    )
    assert "requests" in text and "days_fetched" in text  # the metadata was scanned
    assert fake.client_secret not in text
    assert fake.tokens and all(token not in text for token in fake.tokens)

    # The next day Spotify returns popularity (extended quota), adds a field, and changes an
    # artist's genres: silver keeps both, the artist history gets a version.
    artist_id = next(iter(fake.artist_objects))
    before = json.dumps(fake.artist_objects[artist_id]["genres"], sort_keys=True)
    fake.mode = "extended"
    fake.added_fields = {"new_field": "x"}
    fake.artist_objects[artist_id]["genres"] = ["jazz", "pop"]
    # `make demo`'s step: the full definitions' Spotify job over DAY .. NEXT as one run (DAY's
    # answers kept, NEXT's fetched).
    albums = list(fake.album_objects.values())
    tracks = [t for a in albums for t in a["_tracks"]]
    artists = {
        a["id"] for album in albums for t in [album, *album["_tracks"]] for a in t["artists"]
    }
    requests = len(fake.requests)
    demo, rows = spotify_demo.run(branch["settings"], branch["instance"], DAY, NEXT)
    assert demo.success and fake.count("/v1/browse/new-releases") == 1 + 1  # NEXT's only
    assert len(fake.requests) > requests
    assert rows == {
        "spark_catalog.silver.spotify_albums": 2 * len(albums),
        "spark_catalog.silver.spotify_tracks": 2 * len(tracks),
        "spark_catalog.silver.spotify_artists": 2 * len(artists),
        "spark_catalog.gold.new_release_tracks": 2 * len(tracks),
        "spark_catalog.gold.spotify_artist_history": len(artists) + 1,
    }
    albums = table(spark, branch, Layer.SILVER, "spotify_albums", "seen_on", "popularity",
                   "_rescued_data")  # fmt: skip
    for seen_on, popularity, rescued in albums:
        if seen_on == DAY:
            assert (popularity, rescued) == (None, None)
        else:
            assert popularity is not None
            assert json.loads(rescued)["new_field"] == "x"
            assert json.loads(rescued)["_file_path"] == str(raw_path(branch["lake"].root, NEXT))
    history = table(spark, branch, Layer.GOLD, "spotify_artist_history", "artist_id", "genres",
                    "__START_AT", "__END_AT")  # fmt: skip
    mine = sorted((row[1:] for row in history if row[0] == artist_id), key=lambda r: r[1])
    assert mine == [(before, DAY, NEXT), ('["jazz", "pop"]', NEXT, None)]
    published = DeltaPath(spark, branch["settings"], Layer.GOLD, "new_release_tracks")
    assert published.rows("seen_on", "first_seen") == {(DAY, DAY): len(tracks),
                                                       (NEXT, DAY): len(tracks)}  # fmt: skip

    # An earlier day backfilled afterwards: the later days' first-seen dates follow.
    demo, rows = spotify_demo.run(branch["settings"], branch["instance"], PREV, PREV)
    assert demo.success and rows["spark_catalog.gold.new_release_tracks"] == 3 * len(tracks)
    assert published.rows("seen_on", "first_seen") == {
        (PREV, PREV): len(tracks),
        (DAY, PREV): len(tracks),
        (NEXT, PREV): len(tracks),
    }
    gold = demo.asset_materializations_for_node("gold__new_release_tracks")[0].metadata
    assert gold["first_seen_moved_on_later_days"].value == 2 * len(tracks)


def range_tags(first: date, last: date) -> dict[str, str]:
    return {ASSET_PARTITION_RANGE_START_TAG: str(first), ASSET_PARTITION_RANGE_END_TAG: str(last)}


def test_old_days_are_not_fetched_and_a_range_it_cannot_complete_is_refused(branch, fake):
    result = run(branch, DAY, run_config={})
    assert fake.count("/v1/") == 0
    assert result.get_asset_materialization_events() == []
    assert any(
        "not fetched: ['2026-01-02']; the API answers with the current new releases only" in m
        for m in messages(branch["instance"], result)
    )

    # NEXT's answers recorded; then a range run over PREV .. NEXT (PREV too old to fetch) is
    # refused before any request, rather than marking PREV and DAY materialised.
    raw_only = [a for a in branch["assets"] if RAW in a.keys]
    materialize(raw_only, partition_key=str(NEXT), resources=branch["resources"],
                instance=branch["instance"], run_config=FETCH_OLDER_DAYS)  # fmt: skip
    requests = len(fake.requests)
    # `refetch` cannot fetch an old day again (today's answers would pass for that day's).
    again = materialize(raw_only, partition_key=str(NEXT), resources=branch["resources"],
                        instance=branch["instance"],
                        run_config={"ops": {"bronze__spotify_new_releases": {
                            "config": {"refetch": True}}}})  # fmt: skip
    assert len(fake.requests) == requests
    metadata = again.get_asset_materialization_events()[0].materialization.metadata
    assert (metadata["days_fetched"].value, metadata["days_kept"].value) == ([], [str(NEXT)])
    refused = materialize(
        raw_only,
        resources=branch["resources"],
        instance=branch["instance"],
        tags=range_tags(PREV, NEXT),
        raise_on_error=False,
    )
    assert not refused.success and len(fake.requests) == requests
    assert refused.get_asset_materialization_events() == []
    failure = refused.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert failure.description == (
        "cannot produce 2026-01-01 .. 2026-01-02: the API answers with the current new releases "
        "only (set fetch_older_days to record today's answers as those days'). A run over "
        "2026-01-01 .. 2026-01-03 would mark every day of it materialised; run only the days "
        "it can produce (2026-01-03), or one day at a time."
    )
    # Silver, asked for DAY .. NEXT with raw answers for NEXT only, refuses the same way.
    silver_only = [a for a in branch["assets"] if a.node_def.name == "silver_spotify"]
    refused = materialize(silver_only, resources=branch["resources"], instance=branch["instance"],
                          tags=range_tags(DAY, NEXT), raise_on_error=False)  # fmt: skip
    failure = refused.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert failure.description == (
        "cannot produce 2026-01-02: no raw answers in bronze/spotify_new_releases for those "
        "days. A run over 2026-01-02 .. 2026-01-03 would mark every day of it materialised; "
        "run only the days it can produce (2026-01-03), or one day at a time."
    )
