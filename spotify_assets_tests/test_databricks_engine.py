"""SPARK_ENGINE=databricks end to end, against the Databricks REST API double that really runs the
submitted task (`spotify-lakehouse remote-step` from this environment, with a local Spark):
context in through DBFS, logs, metadata and results back, failure and cancellation."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetSelection,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    materialize,
)
from dagster._core.instance.ref import InstanceRef
from sqlalchemy import text

from spotify_assets.catalog import Layer, table_path
from spotify_assets.databricks_jobs.task import ENTRY_POINT, REMOTE_STEP, WHEEL_PACKAGE
from spotify_assets.definitions import build_definitions
from spotify_assets.lake import delta
from spotify_assets.materialize import materialize_range
from spotify_assets.source import simulator
from spotify_assets.source.resource import SourceDatabase
from spotify_assets_tests.conftest import START, make_settings
from spotify_assets_tests.fake_databricks import FakeDatabricks

pytestmark = pytest.mark.slow  # the Databricks double, runs submitted as jobs

DAY, DAY2 = date(2026, 1, 1), date(2026, 1, 2)
WHEEL = "/Volumes/spotify/ops/artifacts/spotify_lakehouse-0.1.0-py3-none-any.whl"
SILVER_DATES = AssetKey(["silver", "dim_date"])
BRONZE_STREAMS = AssetKey(["bronze", "fact_stream"])
SILVER_STREAMS = AssetKey(["silver", "fact_stream"])
CAUGHT_UP = AssetCheckKey(BRONZE_STREAMS, "caught_up_with_source")


def databricks_env(fake: FakeDatabricks) -> dict[str, str]:
    return {
        "SPARK_ENGINE": "databricks",
        "DATABRICKS_HOST": fake.url,
        "DATABRICKS_WHEEL": WHEEL,
        "DATABRICKS_POLL_SECONDS": "0.2",
    }


@pytest.fixture
def lake(tmp_path, spark):
    """A source seeded with two days."""
    settings = make_settings(tmp_path)
    source = SourceDatabase(url=settings.source_db_url)
    simulator.seed(source.engine, seed_value=5, start=START, days=2, echo=lambda _: None)
    return settings


def rows(spark, settings, layer: Layer, entity: str) -> list[tuple]:
    df = delta.read(spark, table_path(settings.lakehouse_root, layer, entity))
    return sorted(tuple(r) for r in df.collect())


def test_a_step_runs_as_a_databricks_job_and_its_results_logs_and_failure_come_back(
    spark, lake, tmp_path, monkeypatch, instance
):
    with FakeDatabricks(dbfs_root=tmp_path / "dbfs") as fake:
        monkeypatch.setenv("DATABRICKS_TOKEN", fake.token)
        remote = make_settings(tmp_path, **databricks_env(fake))
        # Silver before bronze exists: the step fails on the cluster, and says why.
        failed = materialize_range(
            remote, DAY, DAY, instance=instance, say=lambda _: None, selection=[SILVER_DATES]
        )
        assert not failed.success
        (first,) = fake.runs.values()
        assert first.state.result_state == "FAILED"
        (failure,) = [e for e in failed.all_events if e.is_step_failure]
        assert failure.step_failure_data.error.cause.message.strip() == (
            "dagster._core.errors.DagsterPipesExecutionError: Error running Databricks job: Task "
            "silver__dim_date failed with message: Workload failed, see run output for details."
        )
        # The cluster's own error: in the step's log, and as Pipes' closing event.
        logs = instance.all_logs(failed.run_id)
        cause = "[PATH_NOT_FOUND] Path does not exist: " + table_path(
            make_settings(tmp_path).lakehouse_root, Layer.BRONZE, "dim_date"
        )
        errors = [e.user_message for e in logs if e.level == logging.ERROR and not e.dagster_event]
        assert any(cause in m for m in errors), errors
        (closed,) = [
            e.dagster_event.engine_event_data.error
            for e in logs
            if e.dagster_event and e.dagster_event.event_type == DagsterEventType.ENGINE_EVENT
            and "closed with exception" in (e.dagster_event.message or "")
        ]  # fmt: skip
        assert closed.cls_name == "RemoteStepFailed" and cause in closed.message

        # Bronze's streams for two days on the local engine, then silver's for the same two
        # days as one range step (a single-run backfill) on Databricks.
        local = make_settings(tmp_path)
        assert materialize_range(
            local, DAY, DAY2, instance=instance, say=lambda _: None, selection=[BRONZE_STREAMS]
        ).success
        result = materialize_range(
            remote, DAY, DAY2, instance=instance, say=lambda _: None, selection=[SILVER_STREAMS]
        )
        assert result.success
        # A check alone, as its own step on Databricks.
        defs = build_definitions(remote)
        checked = materialize(
            [*defs.assets, *defs.asset_checks],
            selection=AssetSelection.checks(CAUGHT_UP),
            resources=defs.resources,
            instance=instance,
        )
        assert checked.success
        (submitted,) = fake.submitted[1]["tasks"]
        run_ids = list(fake.runs)
    # What was submitted: the wheel's console script on a new job cluster whose environment
    # carries the settings and Pipes' bootstrap, nothing secret.
    assert submitted["python_wheel_task"] == {
        "package_name": WHEEL_PACKAGE, "entry_point": ENTRY_POINT, "parameters": [REMOTE_STEP]
    }  # fmt: skip
    assert submitted["libraries"] == [{"whl": WHEEL}]
    env = submitted["new_cluster"]["spark_env_vars"]
    assert env["LAKEHOUSE_ROOT"] == local.lakehouse_root and env["SPARK_ENGINE"] == "local"
    assert {"DAGSTER_PIPES_CONTEXT", "DAGSTER_PIPES_MESSAGES"} <= set(env)
    assert fake.token not in str(fake.submitted)
    # One materialisation per day of the range, with the cluster's metadata exactly typed and
    # the Databricks run's link.
    mats = result.asset_materializations_for_node("silver__fact_stream")
    assert sorted(m.partition for m in mats) == [str(DAY), str(DAY2)]
    source = SourceDatabase(url=local.source_db_url)
    with source.engine.connect() as conn:
        streams = conn.execute(text('SELECT COUNT(*) FROM "FactStream"')).scalar()
    for mat in mats:
        assert mat.metadata["dagster/table_name"].value == "spark_catalog.silver.fact_stream"
        assert mat.metadata["rows_written"].value == streams
        columns = mat.metadata["dagster/column_schema"].schema.columns
        assert columns[0].name == "stream_id"
        assert mat.metadata["databricks_run_id"].value == run_ids[1]
        assert mat.metadata["databricks_run_url"].value.startswith(fake.url)
    # The step's log lines on the cluster are in the run's log.
    messages = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any(m.startswith("Started Spark ") and "with Delta Lake" in m for m in messages)
    # The check's result came back as evaluated there.
    (evaluation,) = checked.get_asset_check_evaluations()
    assert (evaluation.asset_check_key, evaluation.passed) == (CAUGHT_UP, True)
    assert evaluation.metadata["lag_days"].value == 0
    assert evaluation.metadata["databricks_run_id"].value == run_ids[2]
    # The same asset function on the local engine writes the same rows.
    remote_rows = rows(spark, local, Layer.SILVER, "fact_stream")
    assert materialize_range(
        local, DAY, DAY2, instance=instance, say=lambda _: None, selection=[SILVER_STREAMS]
    ).success
    assert rows(spark, local, Layer.SILVER, "fact_stream") == remote_rows
    assert len(remote_rows) == streams


def test_cancelling_the_dagster_run_cancels_the_databricks_run(lake, tmp_path):
    """SIGINT to the run's process is how Dagster interrupts a run it terminates."""
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    with FakeDatabricks(dbfs_root=tmp_path / "dbfs", cluster_start_seconds=0.5) as fake:
        env = {
            **os.environ,
            "SPOTIFY_SOURCE_DB_URL": lake.source_db_url,
            "LAKEHOUSE_ROOT": lake.lakehouse_root,
            "DAGSTER_HOME": str(home),
            "LAKEHOUSE_START_DATE": START.isoformat(),
            "DATABRICKS_TOKEN": fake.token,
            **databricks_env(fake),
        }
        cli = str(Path(sys.executable).parent / "spotify-lakehouse")
        run = subprocess.Popen(
            [cli, "materialize", "--start", str(DAY), "--end", str(DAY), "--group", "bronze"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 120
            while not fake.runs and time.monotonic() < deadline:
                time.sleep(0.2)
            (run_id,) = fake.runs
            fake.wait_for_state(run_id, "RUNNING", timeout=120)
            time.sleep(1.0)  # the task is starting its Spark
            task_pid = fake.process_pid(run_id)
            run.send_signal(signal.SIGINT)
            output, _ = run.communicate(timeout=120)
        finally:
            run.kill()
        state = fake.runs[run_id].state
        assert (state.life_cycle_state, state.result_state) == ("TERMINATED", "CANCELED")
        assert list(fake.runs) == [run_id]  # nothing else was submitted
        assert task_pid is not None
        with pytest.raises(ProcessLookupError):
            os.kill(task_pid, 0)
    assert run.returncode != 0
    assert "canceling Databricks job" in output
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        (record,) = instance.get_run_records()
    assert record.dagster_run.status in (DagsterRunStatus.CANCELED, DagsterRunStatus.FAILURE)
