"""Resources that wrap the outside world, built from the settings in one place."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource, EnvVar
from pyspark.sql import SparkSession

from spotify_assets.alerts.channels import AlertChannels
from spotify_assets.catalog import DEFAULT_CATALOG, Layer, TableName, table_name, table_path
from spotify_assets.settings import Settings
from spotify_assets.source.resource import SourceDatabase
from spotify_assets.spark.session import SparkOptions, get_session
from spotify_assets.spotify.client import Capability, SpotifyClient


class SparkResource(ConfigurableResource):
    """Hands assets the process's SparkSession with Delta Lake (one per run)."""

    master: str
    driver_memory: str
    shuffle_partitions: int
    jars_dir: str
    warehouse_dir: str
    remote: str = ""  # sc://...: the connect engine (may carry a token: an EnvVar when set)
    lakehouse_root: str = ""  # an abfss:// lake: the local session gets ABFS credentials

    def session(self, log: Any = None) -> SparkSession:
        options = SparkOptions(
            master=self.master,
            driver_memory=self.driver_memory,
            shuffle_partitions=self.shuffle_partitions,
            jars_dir=Path(self.jars_dir),
            warehouse_dir=Path(self.warehouse_dir),
            remote=self.remote,
            lakehouse_root=self.lakehouse_root,
        )
        spark, seconds = get_session(options)
        if seconds and log is not None:
            where = "on the Spark Connect server" if self.remote else "with Delta Lake"
            log.info(f"Started Spark {spark.version} {where} in {seconds:.1f} s")
        return spark


class Lakehouse(ConfigurableResource):
    """Where each layer's Delta tables live, and what they are called."""

    root: str
    catalog: str = DEFAULT_CATALOG
    schema_prefix: str = ""

    def path(self, layer: Layer, entity: str) -> str:
        return table_path(self.root, layer, entity)

    def name(self, layer: Layer, entity: str) -> TableName:
        return table_name(layer, entity, self.catalog, self.schema_prefix)


class SpotifyApi(ConfigurableResource):
    """The Spotify Web API. Unconfigured (no client id or secret) in the embedded default: the
    Spotify assets then skip with a message instead of failing."""

    client_id: str = ""
    client_secret: str = ""
    capability: str = "auto"
    api_url: str = "https://api.spotify.com/v1"
    token_url: str = "https://accounts.spotify.com/api/token"
    max_albums: int = 200

    @property
    def configured(self) -> bool:
        return bool(self.client_id.strip() and self.client_secret.strip())

    def client(self) -> SpotifyClient:
        return SpotifyClient(
            self.client_id,
            self.client_secret,
            capability=Capability(self.capability),
            api_url=self.api_url,
            token_url=self.token_url,
        )


def _env_var_if_set(name: str, otherwise: str = "") -> Any:
    """A Dagster EnvVar (its value never shown in the UI) when the variable is set."""
    return EnvVar(name) if os.environ.get(name, "").strip() else otherwise


def source_for_this_process(settings: Settings) -> SourceDatabase:
    """The source with its URL resolved, for work outside a run (loading the definitions, the
    command line): the resource in build_resources holds an EnvVar, which only a run resolves."""
    return SourceDatabase(url=settings.source_db_url)


def spark_for_this_process(settings: Settings) -> SparkSession:
    """The Spark session, for work outside a run (the command line, the demo), on the same
    engine the runs use."""
    return get_session(SparkOptions.from_settings(settings))[0]


def lakehouse_for(settings: Settings) -> Lakehouse:
    return Lakehouse(
        root=settings.lakehouse_root,
        catalog=settings.lakehouse_catalog,
        schema_prefix=settings.lakehouse_schema_prefix,
    )


def databricks_for(settings: Settings) -> Any:
    """The databricks engine's job submission (the SDK is imported only for that engine)."""
    from spotify_assets.databricks_jobs.submit import DatabricksJobs
    from spotify_assets.databricks_jobs.task import plain_settings, submit_task

    return DatabricksJobs(
        host=settings.databricks.host,
        token=_env_var_if_set("DATABRICKS_TOKEN"),
        task=submit_task(settings, "step"),
        settings=plain_settings(settings),
        poll_seconds=settings.databricks.poll_seconds,
    )


def alerts_for(settings: Settings) -> AlertChannels:
    a = settings.alerts
    return AlertChannels(
        webhook_url=_env_var_if_set("ALERT_WEBHOOK_URL"),
        webhook_format=a.webhook_format,
        smtp_host=a.smtp_host,
        smtp_port=a.smtp_port,
        smtp_security=a.smtp_security,
        smtp_username=a.smtp_username,
        smtp_password=_env_var_if_set("ALERT_SMTP_PASSWORD"),
        email_from=a.email_from,
        email_to=list(a.email_to),
        ui_url=a.ui_url,
        attempts=a.attempts,
        retry_seconds=a.retry_seconds,
    )


def build_resources(settings: Settings) -> dict[str, Any]:
    spark = SparkOptions.from_settings(settings)
    # The source URL may hold a password: pass it as an EnvVar so Dagster never shows its value.
    source_url = _env_var_if_set("SPOTIFY_SOURCE_DB_URL", settings.source_db_url)
    resources = {
        "source_db": SourceDatabase(url=source_url),
        "spark": SparkResource(
            master=spark.master,
            driver_memory=spark.driver_memory,
            shuffle_partitions=spark.shuffle_partitions,
            jars_dir=str(spark.jars_dir),
            warehouse_dir=str(spark.warehouse_dir),
            remote=_env_var_if_set("SPARK_CONNECT_URL", spark.remote) if spark.remote else "",
            lakehouse_root=settings.lakehouse_root,
        ),
        "lakehouse": lakehouse_for(settings),
        "alerts": alerts_for(settings),
        "spotify": SpotifyApi(
            client_id=_env_var_if_set("SPOTIFY_CLIENT_ID"),
            client_secret=_env_var_if_set("SPOTIFY_CLIENT_SECRET"),
            capability=settings.spotify_capability,
            api_url=settings.spotify_api_url,
            token_url=settings.spotify_token_url,
            max_albums=settings.spotify_max_albums,
        ),
    }
    if settings.spark_engine == "databricks":
        resources["databricks"] = databricks_for(settings)
    return resources
