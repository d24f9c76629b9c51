"""`make demo`'s Spotify branch for users without a Spotify app: the API double on loopback.

Starts the local Spotify Web API double (the same one the tests use), points the Spotify
resource at it with throw-away credentials, materialises the Spotify job for the last two days
of the seeded range as one run, and prints what landed. With SPOTIFY_CLIENT_ID set, it does
nothing: `dagster dev` and the daily schedule use the real API.

    .venv/bin/python -m spotify_assets_tests.spotify_demo
"""

from __future__ import annotations

import os
import sys
from datetime import date, timedelta

from dagster import DagsterInstance

from spotify_assets.catalog import Layer
from spotify_assets.defs.spotify import ARTIST_HISTORY, NEW_RELEASE_TRACKS, SILVER_TABLES
from spotify_assets.settings import Settings

TABLES = [
    *((Layer.SILVER, table) for table in SILVER_TABLES),
    *((Layer.GOLD, key.path[-1]) for key in (NEW_RELEASE_TRACKS, ARTIST_HISTORY)),
]


def run(settings: Settings, instance: DagsterInstance, first: date, last: date):
    """The Spotify job over `first` .. `last` as one run, today's answers recorded as those
    days' (they are in the past). Returns the run's result and the rows of each table."""
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    from spotify_assets.definitions import build_definitions
    from spotify_assets.defs.spotify import SPOTIFY_JOB
    from spotify_assets.lake import delta
    from spotify_assets.resources import spark_for_this_process

    defs = build_definitions(settings)
    result = defs.resolve_job_def(SPOTIFY_JOB).execute_in_process(
        instance=instance,
        tags={
            ASSET_PARTITION_RANGE_START_TAG: first.isoformat(),
            ASSET_PARTITION_RANGE_END_TAG: last.isoformat(),
        },
        run_config={
            "ops": {"bronze__spotify_new_releases": {"config": {"fetch_older_days": True}}}
        },
        raise_on_error=False,
    )
    rows = {}
    if result.success:
        spark = spark_for_this_process(settings)
        lakehouse = defs.resources["lakehouse"]
        for layer, table in TABLES:
            path = lakehouse.path(layer, table)
            rows[str(lakehouse.name(layer, table))] = delta.read(spark, path).count()
    return result, rows


def main() -> int:
    if os.environ.get("SPOTIFY_CLIENT_ID", "").strip():
        print("SPOTIFY_CLIENT_ID is set: the real API is used by the schedule; no demo double.")
        return 0
    from spotify_assets.cli import seeded_range
    from spotify_assets.settings import load_settings
    from spotify_assets_tests.fake_spotify import FakeSpotify

    fake = FakeSpotify().start()
    try:
        os.environ.update(
            SPOTIFY_CLIENT_ID=fake.client_id,
            SPOTIFY_CLIENT_SECRET=fake.client_secret,
            SPOTIFY_API_URL=fake.api_url,
            SPOTIFY_TOKEN_URL=fake.token_url,
        )
        settings = load_settings()
        _, last = seeded_range(settings)
        first = last - timedelta(days=1)
        print(f"Spotify branch against the local API double ({fake.url}) for {first} .. {last}")
        result, rows = run(settings, DagsterInstance.get(), first, last)
        if not result.success:
            print("The Spotify run FAILED; see the run in the UI (`make dev`).")
            return 1
        for name, count in rows.items():
            print(f"  {name:<32} {count:>6,} rows")
        return 0
    finally:
        fake.stop()


if __name__ == "__main__":
    sys.exit(main())
