"""The code location's root: it assembles the definitions, it does not implement them."""

from __future__ import annotations

from dagster import Definitions, in_process_executor

from spotify_assets.defs.alerts import build_alert_sensors
from spotify_assets.defs.bronze import bronze_key, build_bronze_assets
from spotify_assets.defs.bronze_checks import build_caught_up_check
from spotify_assets.defs.gold import build_gold_assets
from spotify_assets.defs.jobs import LAKEHOUSE_JOB, build_daily_schedule, build_lakehouse_job
from spotify_assets.defs.partitions import daily_partitions
from spotify_assets.defs.policies import build_automation_sensor, with_automation
from spotify_assets.defs.sensors import build_source_change_sensor
from spotify_assets.defs.silver import build_silver_assets
from spotify_assets.defs.spotify import (
    build_spotify_assets,
    build_spotify_job,
    build_spotify_schedule,
)
from spotify_assets.ingestion.config import IngestionCatalog, load_catalog
from spotify_assets.resources import build_resources, source_for_this_process
from spotify_assets.settings import Settings, load_settings


def ingestion_catalog(settings: Settings) -> IngestionCatalog:
    """The tables bronze ingests, read from the source's ingestion_config (cached)."""
    source_db = source_for_this_process(settings)
    cache = settings.dagster_home / "spotify_lakehouse" / "ingestion_config.json"
    return load_catalog(source_db.engine, source_db.schema_name, cache)


def build_definitions(settings: Settings) -> Definitions:
    partitions = daily_partitions(settings)
    resources = build_resources(settings)
    catalog = ingestion_catalog(settings)
    job = build_lakehouse_job()
    spotify_job = build_spotify_job()
    assets = with_automation(
        [
            *build_bronze_assets(partitions, catalog),
            *build_silver_assets(partitions),
            *build_gold_assets(partitions),
            *build_spotify_assets(partitions),
        ]
    )
    checks = [build_caught_up_check(catalog.tables, bronze_key)]
    if settings.spark_engine == "databricks":  # each step a Databricks job
        from spotify_assets.databricks_jobs.submit import submitted

        assets, checks = submitted(assets, checks)
    return Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=[job, spotify_job],
        schedules=[
            build_daily_schedule(job, settings.daily_schedule_hour, settings.automation),
            build_spotify_schedule(spotify_job, settings.daily_schedule_hour, settings.automation),
        ],
        sensors=[
            build_source_change_sensor(
                catalog.tables,
                LAKEHOUSE_JOB,
                settings.start_date,
                settings.source_sensor_interval_seconds,
                settings.automation,
            ),
            build_automation_sensor(settings.automation),
            *build_alert_sensors(settings.alerts),
        ],
        resources=resources,
        # One process and one Spark session per run: the multiprocess executor would start a JVM
        # for every step (5-10 s each).
        executor=in_process_executor,
    )


defs = build_definitions(load_settings())
