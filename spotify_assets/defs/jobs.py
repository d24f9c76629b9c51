"""The job that materialises the whole graph and its daily schedule."""

from __future__ import annotations

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    ScheduleDefinition,
    build_schedule_from_partitioned_job,
    define_asset_job,
)
from dagster._core.definitions.partitions.partitioned_schedule import (
    UnresolvedPartitionedAssetScheduleDefinition,
)
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

LAKEHOUSE_JOB = "lakehouse_job"


def build_lakehouse_job() -> UnresolvedAssetJobDefinition:
    return define_asset_job(
        LAKEHOUSE_JOB,
        # The Spotify Web API branch has its own job and schedule (defs/spotify.py).
        selection=AssetSelection.all() - AssetSelection.groups("spotify"),
        description="Bronze, silver and gold for a date range: one run, one Spark session.",
    )


def build_daily_schedule(
    job: UnresolvedAssetJobDefinition, hour: int = 1, running: bool = True
) -> ScheduleDefinition | UnresolvedPartitionedAssetScheduleDefinition:
    """Each day at `hour` UTC, the lakehouse for the latest complete day."""
    return build_schedule_from_partitioned_job(
        job,
        name="daily_lakehouse_schedule",
        hour_of_day=hour,
        default_status=schedule_status(running),
    )


def schedule_status(running: bool) -> DefaultScheduleStatus:
    return DefaultScheduleStatus.RUNNING if running else DefaultScheduleStatus.STOPPED
