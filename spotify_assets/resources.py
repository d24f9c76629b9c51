"""Resources that wrap the outside world, built from the settings in one place."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource, EnvVar
from pyspark.sql import SparkSession

from spotify_assets.catalog import Layer, table_path
from spotify_assets.settings import Settings
from spotify_assets.source.resource import SourceDatabase
from spotify_assets.spark.session import SparkOptions, get_session


class SparkResource(ConfigurableResource):
    """Hands assets the process's SparkSession with Delta Lake (one per run)."""

    master: str
    driver_memory: str
    shuffle_partitions: int
    jars_dir: str
    warehouse_dir: str

    def session(self, log: Any = None) -> SparkSession:
        options = SparkOptions(
            master=self.master,
            driver_memory=self.driver_memory,
            shuffle_partitions=self.shuffle_partitions,
            jars_dir=Path(self.jars_dir),
            warehouse_dir=Path(self.warehouse_dir),
        )
        spark, seconds = get_session(options)
        if seconds and log is not None:
            log.info(f"Started Spark {spark.version} with Delta Lake in {seconds:.1f} s")
        return spark


class Lakehouse(ConfigurableResource):
    """Where each layer's Delta tables live."""

    root: str

    def path(self, layer: Layer, entity: str) -> str:
        return table_path(self.root, layer, entity)


def build_resources(settings: Settings) -> dict[str, Any]:
    spark = SparkOptions.from_settings(settings)
    # The source URL may hold a password: pass it as an EnvVar so Dagster never shows its value.
    source_url: Any = (
        EnvVar("SPOTIFY_SOURCE_DB_URL")
        if os.environ.get("SPOTIFY_SOURCE_DB_URL", "").strip()
        else settings.source_db_url
    )
    return {
        "source_db": SourceDatabase(url=source_url),
        "spark": SparkResource(
            master=spark.master,
            driver_memory=spark.driver_memory,
            shuffle_partitions=spark.shuffle_partitions,
            jars_dir=str(spark.jars_dir),
            warehouse_dir=str(spark.warehouse_dir),
        ),
        "lakehouse": Lakehouse(root=settings.lakehouse_root),
    }
