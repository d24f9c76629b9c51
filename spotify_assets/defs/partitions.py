"""Daily time-window partitions: every partitioned asset shares one definition."""

from __future__ import annotations

from dagster import DailyPartitionsDefinition

from spotify_assets.settings import Settings


def daily_partitions(settings: Settings) -> DailyPartitionsDefinition:
    return DailyPartitionsDefinition(start_date=settings.start_date.isoformat(), timezone="UTC")
