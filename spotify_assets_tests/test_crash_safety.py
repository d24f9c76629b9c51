"""Runs killed with SIGKILL, and runs that collide, lose nothing and show nothing half written
(spotify_assets_tests/crash_harness.py).

- A bronze run killed inside its writes: the tests try bronze's most telling points; `make crash`
  tries every point of every layer (50; each trial is two runs in fresh processes).
- Two runs of the same bronze windows at once, in two processes, with no pool between them (a
  second code location, or a run launched by hand): Delta's optimistic concurrency refuses the
  later commit, the step retries it as a transient failure, and the tables equal one run's.
"""

from __future__ import annotations

import shutil

import pytest

from spotify_assets_tests import crash_harness
from spotify_assets_tests.crash_harness import KillPoint


def test_a_sample_of_kill_points_takes_each_kind_in_turn():
    points = sorted(
        [KillPoint("silver", "commit", f"silver/t{i}") for i in range(3)]
        + [KillPoint("silver", "data file", f"silver/t{i}") for i in range(3)]
        + [KillPoint("silver", "document", "silver/_schema/t0.json")]
    )
    assert [(p.event, p.target) for p in crash_harness.spread(points, 5)] == [
        ("commit", "silver/t0"),
        ("data file", "silver/t0"),
        ("document", "silver/_schema/t0.json"),
        ("commit", "silver/t1"),
        ("data file", "silver/t1"),
    ]
    assert crash_harness.spread(points, None) == crash_harness.spread(points, 99)
    assert sorted(crash_harness.spread(points, None)) == points


@pytest.fixture(scope="module")
def prepared(spark, tmp_path_factory):
    """A seeded source, the lake before bronze, and one uninterrupted bronze run's tables."""
    return crash_harness.prepare(spark, tmp_path_factory.mktemp("crash"), layers=("bronze",))


@pytest.mark.slow  # runs in fresh processes, killed and re-run
def test_a_bronze_run_killed_inside_its_writes_recovers_to_the_uninterrupted_tables(
    spark, prepared
):
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


@pytest.mark.slow  # two runs in processes of their own, at once
def test_two_runs_of_the_same_windows_at_once_leave_what_one_run_leaves(spark, prepared):
    root = prepared.work / "together"
    shutil.copytree(prepared.starts["bronze"], root)
    logs = ("first.log", "second.log")
    runs = [crash_harness.start_layer(root, "bronze", log) for log in logs]
    for run, log in zip(runs, logs, strict=True):
        crash_harness.finish(run, root, f"the run logging to {log}", log)
    now = crash_harness.digest(spark, root / "lake", "bronze")
    assert now == prepared.after["bronze"]  # no version twice, none missing
    retried = [log for log in logs if "Transient failure" in (root / log).read_text()]
    print(f"runs that met the other's commit and retried: {retried or 'none'}")
