"""Materialise the whole graph over a date range as one run, recorded in the Dagster instance."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

from dagster import AssetKey, DagsterInstance, ExecuteInProcessResult
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from spotify_assets.catalog import GOLD_KEYS, Layer
from spotify_assets.defs.jobs import LAKEHOUSE_JOB
from spotify_assets.defs.unchanged import RECOMPUTE_TAG
from spotify_assets.settings import Settings
from spotify_assets.spark.session import on_databricks


def materialize_range(
    settings: Settings,
    start: date,
    end: date,
    instance: DagsterInstance | None = None,
    say=print,
    selection: list[AssetKey] | None = None,
    full_refresh: bool = False,
) -> ExecuteInProcessResult:
    """One run over the partitions start..end (inclusive), like a single-run backfill in the UI.
    `full_refresh` rebuilds the gold histories instead of following the changed keys, and
    recomputes the steps whose inputs did not change (defs.unchanged)."""
    from spotify_assets.definitions import build_definitions

    job = build_definitions(settings).resolve_job_def(LAKEHOUSE_JOB)
    if instance is None:
        # On a Databricks cluster (a bundle job) there is no DAGSTER_HOME: the run is recorded
        # in a throw-away instance, its figures in the job's output.
        instance = DagsterInstance.ephemeral() if on_databricks() else DagsterInstance.get()
    say(f"Materialising every asset for {start} .. {end} as one run")
    started = time.monotonic()
    result = job.execute_in_process(
        instance=instance,
        tags={
            ASSET_PARTITION_RANGE_START_TAG: start.isoformat(),
            ASSET_PARTITION_RANGE_END_TAG: end.isoformat(),
            **({RECOMPUTE_TAG: "true"} if full_refresh else {}),
        },
        run_config={
            "loggers": {"console": {"config": {"log_level": "INFO"}}},
            **({"ops": full_refresh_config()} if full_refresh else {}),
        },
        raise_on_error=False,
        asset_selection=selection,
    )
    seconds = time.monotonic() - started
    steps = [e for e in result.all_events if e.is_step_success]
    status = "succeeded" if result.success else "FAILED"
    say(f"Run {result.run_id} {status}: {len(steps)} steps in {seconds:.1f} s")
    return result


def group_selection(settings: Settings, group: str) -> list[AssetKey]:
    """The assets of one layer (an asset group) in the lakehouse job, for a run of that layer."""
    from spotify_assets.definitions import build_definitions

    graph = build_definitions(settings).get_repository_def().asset_graph
    return sorted(k for k in graph.get_all_asset_keys() if graph.get(k).group_name == group)


def last_complete_day() -> date:
    """The day that ended, in UTC: what the daily schedule runs."""
    return datetime.now(UTC).date() - timedelta(days=1)


def full_refresh_config() -> dict:
    """Run config rebuilding every gold history (the dimensions with a surrogate key)."""
    return {
        f"{Layer.GOLD.value}__{entity}": {"config": {"full_refresh": True}}
        for entity, (_, surrogate) in GOLD_KEYS.items()
        if surrogate is not None
    }
