"""The code location's root: it assembles the definitions, it does not implement them."""

from __future__ import annotations

from dagster import Definitions, in_process_executor

from spotify_assets.defs.bronze import build_bronze_assets
from spotify_assets.defs.checks import build_gold_key_checks
from spotify_assets.defs.gold import build_gold_assets
from spotify_assets.defs.jobs import build_daily_schedule, build_lakehouse_job
from spotify_assets.defs.partitions import daily_partitions
from spotify_assets.defs.silver import build_silver_assets
from spotify_assets.resources import build_resources
from spotify_assets.settings import Settings, load_settings


def build_definitions(settings: Settings) -> Definitions:
    partitions = daily_partitions(settings)
    job = build_lakehouse_job()
    return Definitions(
        assets=[
            *build_bronze_assets(partitions),
            *build_silver_assets(partitions),
            *build_gold_assets(partitions),
        ],
        asset_checks=build_gold_key_checks(),
        jobs=[job],
        schedules=[build_daily_schedule(job)],
        resources=build_resources(settings),
        # One process and one Spark session per run: the multiprocess executor would start a JVM
        # for every step (5-10 s each).
        executor=in_process_executor,
    )


defs = build_definitions(load_settings())
