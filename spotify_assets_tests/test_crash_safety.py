"""A run killed with SIGKILL inside bronze's writes loses nothing and shows nothing half written
(spotify_assets_tests/crash_harness.py). The tests try bronze's most telling points; `make crash`
tries every point of every layer (about 40; each trial is two runs in fresh processes)."""

from __future__ import annotations

from spotify_assets_tests import crash_harness
from spotify_assets_tests.crash_harness import KillPoint


def test_a_bronze_run_killed_inside_its_writes_recovers_to_the_uninterrupted_tables(
    spark, tmp_path
):
    prepared = crash_harness.prepare(spark, tmp_path, layers=("bronze",))
    # The watcher sees bronze's writes: data files before a commit, commits, state documents.
    found = {(p.event, p.target) for p in prepared.points["bronze"]}
    for entity in ("fact_stream", "dim_user", "dim_artist", "dim_track", "dim_date"):
        assert ("data file", f"bronze/{entity}") in found
        assert ("commit", f"bronze/{entity}") in found
        assert ("document", f"bronze/_watermarks/{entity}.json") in found
    for point in (
        KillPoint("bronze", "data file", "bronze/fact_stream"),  # inside the Delta write
        KillPoint("bronze", "commit", "bronze/fact_stream"),  # committed, watermarks not saved
    ):
        trial = crash_harness.trial(spark, prepared, point)
        assert trial.killed, f"{point}: the run ended before the point was seen"
        assert trial.half_written == [], f"{point}: a reader saw {trial.half_written}"
        assert trial.rerun_failed == "", trial.rerun_failed
        assert trial.differing == [], f"{point}: after the re-run {trial.differing} differ"
