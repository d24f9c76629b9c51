"""The one place that turns environment variables into configuration.

Zero configuration means the embedded default: a SQLite source and a lake folder under `.data/`,
Dagster's instance under `.dagster_home/`, and a local Spark. Relative paths are resolved against
the working directory (the repository root for `make`, `dagster dev` and `dg`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from spotify_assets.catalog import validate_identifier

DEFAULT_START_DATE = date(2026, 1, 1)


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class DatabricksSettings:
    """Where and how the databricks engine submits each step (Dagster Pipes)."""

    host: str
    cluster_id: str  # an existing cluster; empty: a new job cluster per step
    wheel: str  # the project's wheel on the workspace (a Volume or workspace file)
    spark_version: str
    node_type: str
    workers: int
    secret_scope: str  # holds the secrets the cluster's environment refers to
    poll_seconds: float


@dataclass(frozen=True)
class AlertSettings:
    """Where alerts go and which runs and checks send one. The webhook URL and the SMTP password
    are secrets: the alert resource reads them as EnvVars, they are not kept here."""

    webhook: bool  # ALERT_WEBHOOK_URL is set
    webhook_format: str  # logic_app | slack | teams
    smtp_host: str
    smtp_port: int
    smtp_security: str  # starttls | ssl
    smtp_username: str
    email_from: str
    email_to: tuple[str, ...]
    on_success: bool
    check_severity: str  # error | warn: the lowest severity of a failed check that alerts
    ui_url: str  # the Dagster UI as the alert's reader reaches it, for the run's link
    attempts: int
    retry_seconds: float

    @property
    def email(self) -> bool:
        return bool(self.smtp_host and self.email_to)


@dataclass(frozen=True)
class Settings:
    source_db_url: str
    lakehouse_root: str
    dagster_home: Path
    start_date: date
    spark_engine: str
    spark_connect_url: str
    spark_master: str
    spark_driver_memory: str
    spark_shuffle_partitions: int
    delta_jars_dir: Path
    maven_repository_url: str
    source_sensor_interval_seconds: int
    daily_schedule_hour: int
    automation: bool  # the schedules and automation sensors start RUNNING
    spotify_capability: str
    spotify_api_url: str
    spotify_token_url: str
    spotify_max_albums: int
    lakehouse_catalog: str
    lakehouse_schema_prefix: str
    databricks: DatabricksSettings
    alerts: AlertSettings

    @property
    def data_dir(self) -> Path:
        return Path(self.lakehouse_root).parent


# Each variable, its default and what it means: README's configuration table is written from this.
VARIABLES: dict[str, tuple[str, str]] = {
    "SPOTIFY_SOURCE_DB_URL": ("sqlite:///.data/source.db", "SQLAlchemy URL of the SQL source"),
    "LAKEHOUSE_ROOT": (".data/lake", "folder holding <layer>/<table> Delta tables"),
    "DAGSTER_HOME": (".dagster_home", "Dagster instance folder (run history, schedules)"),
    "DAGSTER_POSTGRES_URL": (
        "",
        "postgresql+psycopg2://user:password@host:port/db: the Dagster instance's storage in "
        "PostgreSQL (unset: SQLite files under DAGSTER_HOME)",
    ),
    "LAKEHOUSE_CATALOG": (
        "spark_catalog",
        "catalog of the tables' three-level names (a Unity Catalog catalog on Databricks)",
    ),
    "LAKEHOUSE_SCHEMA_PREFIX": (
        "",
        "prefix of the layer schemas, e.g. dev_ gives dev_bronze, dev_silver, dev_gold",
    ),
    "LAKEHOUSE_START_DATE": (DEFAULT_START_DATE.isoformat(), "first daily partition (YYYY-MM-DD)"),
    "SPARK_ENGINE": (
        "local",
        "local (a Spark inside the run's process), connect (the Spark Connect server at "
        "SPARK_CONNECT_URL) or databricks (each step a Databricks job, through Dagster Pipes): "
        "the same asset code runs on all three",
    ),
    "SPARK_CONNECT_URL": (
        "",
        "Spark Connect URL for the connect engine, sc://host:port[/;token=...] (read as a "
        "Dagster EnvVar: a token in it is never shown)",
    ),
    "DATABRICKS_HOST": ("", "workspace URL for the databricks engine (https://adb-....net)"),
    "DATABRICKS_TOKEN": (
        "",
        "personal access token, read by the Databricks SDK and never shown; unset: the SDK's "
        "other authentication (Azure CLI, managed identity, service principal ARM_*)",
    ),
    "DATABRICKS_CLUSTER_ID": ("", "run steps on this cluster; unset: a new job cluster per step"),
    "DATABRICKS_WHEEL": (
        "",
        "the project's wheel on the workspace: the one `databricks bundle deploy` uploads "
        "(under the bundle's artifact path) or a copy in a Volume, e.g. "
        "/Volumes/spotify/ops/artifacts/spotify_lakehouse-0.1.0-py3-none-any.whl",
    ),
    "DATABRICKS_SPARK_VERSION": ("17.3.x-scala2.13", "Databricks Runtime of new job clusters"),
    "DATABRICKS_NODE_TYPE": ("Standard_D4ds_v5", "VM type of new job clusters"),
    "DATABRICKS_WORKERS": ("1", "workers of each new job cluster"),
    "DATABRICKS_SECRET_SCOPE": (
        "",
        "secret scope holding source-db-url, spotify-client-id and spotify-client-secret: the "
        "cluster's environment refers to them, the job's definition never holds them",
    ),
    "DATABRICKS_POLL_SECONDS": ("5", "how often Dagster asks Databricks about a submitted run"),
    "SPARK_MASTER": ("local[2]", "Spark master for the local engine"),
    "SPARK_DRIVER_MEMORY": ("2g", "driver memory of the local Spark JVM"),
    "SPARK_SHUFFLE_PARTITIONS": ("4", "spark.sql.shuffle.partitions (small data wants few)"),
    "DELTA_JARS_DIR": ("~/.cache/spotify-lakehouse/jars", "cache of Delta Lake's jars"),
    "MAVEN_REPOSITORY_URL": (
        "https://repo1.maven.org/maven2",
        "where set-up fetches Delta's jars (a mirror works)",
    ),
    "SOURCE_SENSOR_INTERVAL_SECONDS": (
        "300",
        "how often the source-change sensor compares the source with bronze",
    ),
    "DAILY_SCHEDULE_HOUR": ("1", "UTC hour at which the daily schedule runs the day that ended"),
    "LAKEHOUSE_AUTOMATION": (
        "on",
        "on: the daily schedules, the source-change sensor and declarative automation start "
        "running with the daemon; off: they start stopped (turn them on in the UI)",
    ),
    "DAGSTER_UI_URL": (
        "http://127.0.0.1:3000",
        "the Dagster UI as people reach it: alerts link to the run there",
    ),
    "ALERT_WEBHOOK_URL": (
        "",
        "HTTP webhook for alerts: an Azure Logic App HTTP trigger, a Teams workflow or a Slack "
        "incoming webhook (a secret: read as a Dagster EnvVar, never logged)",
    ),
    "ALERT_WEBHOOK_FORMAT": (
        "logic_app",
        "the webhook's JSON body: logic_app (every field, for a Logic App's schema), slack "
        "(text) or teams (an Adaptive Card message)",
    ),
    "ALERT_SMTP_HOST": ("", "SMTP server for e-mail alerts, e.g. smtp.office365.com"),
    "ALERT_SMTP_PORT": ("587", "SMTP port (587 with STARTTLS, 465 with ssl)"),
    "ALERT_SMTP_SECURITY": ("starttls", "starttls or ssl: mail is never sent unencrypted"),
    "ALERT_SMTP_USERNAME": ("", "SMTP login; unset: no login"),
    "ALERT_SMTP_PASSWORD": ("", "SMTP password (a secret: read as a Dagster EnvVar)"),
    "ALERT_EMAIL_FROM": ("", "sender address; unset: ALERT_SMTP_USERNAME"),
    "ALERT_EMAIL_TO": ("", "recipients, comma-separated; unset: no e-mail alerts"),
    "ALERT_ON_SUCCESS": ("off", "on: an alert for every successful run as well"),
    "ALERT_CHECK_SEVERITY": (
        "error",
        "error or warn: the lowest severity of a failed asset check that sends an alert",
    ),
    "ALERT_ATTEMPTS": ("4", "delivery attempts per channel before the alert is logged as lost"),
    "ALERT_RETRY_SECONDS": ("2", "wait before the first retry, doubled after each attempt"),
    "SPOTIFY_CLIENT_ID": ("", "Spotify app's client id; unset: the Spotify assets are skipped"),
    "SPOTIFY_CLIENT_SECRET": ("", "Spotify app's client secret (read as a Dagster EnvVar)"),
    "SPOTIFY_CAPABILITY": (
        "auto",
        "extended (new-releases, batch gets), development (search tag:new, single gets) or "
        "auto (extended, falling back when refused)",
    ),
    "SPOTIFY_API_URL": ("https://api.spotify.com/v1", "Spotify Web API base URL"),
    "SPOTIFY_TOKEN_URL": ("https://accounts.spotify.com/api/token", "Spotify token endpoint"),
    "SPOTIFY_MAX_ALBUMS": ("200", "new-release albums fetched per day at most"),
}


def _get(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    return value or VARIABLES[name][0]


def _sqlite_url_absolute(url: str) -> str:
    """Make a relative SQLite path absolute so every process opens the same file."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str(Path(url[len(prefix) :]).resolve())
    return url


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    start_raw = _get(env, "LAKEHOUSE_START_DATE")
    try:
        start_date = date.fromisoformat(start_raw)
    except ValueError as exc:
        raise ConfigError(
            f"LAKEHOUSE_START_DATE={start_raw!r} is not a date in the form YYYY-MM-DD"
        ) from exc
    shuffle_partitions = _whole_number(env, "SPARK_SHUFFLE_PARTITIONS", 1, 10_000)
    interval = _whole_number(env, "SOURCE_SENSOR_INTERVAL_SECONDS", 1, 86_400)
    hour = _whole_number(env, "DAILY_SCHEDULE_HOUR", 0, 23)
    engine = _choice(env, "SPARK_ENGINE", ("local", "connect", "databricks"))
    remote = _get(env, "SPARK_CONNECT_URL")
    if engine == "connect" and not remote.startswith("sc://"):
        raise ConfigError(
            "SPARK_ENGINE=connect needs SPARK_CONNECT_URL, the Spark Connect URL "
            "(sc://host:port), e.g. sc://127.0.0.1:15002 for `spotify-lakehouse connect-server`"
        )
    databricks = _databricks(env, engine)
    root = _get(env, "LAKEHOUSE_ROOT")
    if "://" not in root:
        root = str(Path(root).expanduser().resolve())
    return Settings(
        source_db_url=_sqlite_url_absolute(_get(env, "SPOTIFY_SOURCE_DB_URL")),
        lakehouse_root=root,
        dagster_home=Path(_get(env, "DAGSTER_HOME")).expanduser().resolve(),
        start_date=start_date,
        spark_engine=engine,
        spark_connect_url=remote if engine == "connect" else "",
        spark_master=_get(env, "SPARK_MASTER"),
        spark_driver_memory=_get(env, "SPARK_DRIVER_MEMORY"),
        spark_shuffle_partitions=shuffle_partitions,
        delta_jars_dir=Path(_get(env, "DELTA_JARS_DIR")).expanduser(),
        maven_repository_url=_get(env, "MAVEN_REPOSITORY_URL").rstrip("/"),
        source_sensor_interval_seconds=interval,
        daily_schedule_hour=hour,
        automation=_choice(env, "LAKEHOUSE_AUTOMATION", ("on", "off")) == "on",
        spotify_capability=_choice(env, "SPOTIFY_CAPABILITY", ("auto", "extended", "development")),
        spotify_api_url=_get(env, "SPOTIFY_API_URL").rstrip("/"),
        spotify_token_url=_get(env, "SPOTIFY_TOKEN_URL"),
        spotify_max_albums=_whole_number(env, "SPOTIFY_MAX_ALBUMS", 1, 10_000),
        lakehouse_catalog=_identifier(env, "LAKEHOUSE_CATALOG"),
        lakehouse_schema_prefix=_identifier(env, "LAKEHOUSE_SCHEMA_PREFIX", empty_ok=True),
        databricks=databricks,
        alerts=_alerts(env),
    )


def _alerts(env: Mapping[str, str]) -> AlertSettings:
    recipients = tuple(a.strip() for a in _get(env, "ALERT_EMAIL_TO").split(",") if a.strip())
    for address in recipients:
        if not re.fullmatch(r"[^@\s,;<>]+@[^@\s,;<>]+", address):
            raise ConfigError(f"ALERT_EMAIL_TO: {address!r} is not an e-mail address")
    username = _get(env, "ALERT_SMTP_USERNAME")
    settings = AlertSettings(
        webhook=bool(_get(env, "ALERT_WEBHOOK_URL")),
        webhook_format=_choice(env, "ALERT_WEBHOOK_FORMAT", ("logic_app", "slack", "teams")),
        smtp_host=_get(env, "ALERT_SMTP_HOST"),
        smtp_port=_whole_number(env, "ALERT_SMTP_PORT", 1, 65_535),
        smtp_security=_choice(env, "ALERT_SMTP_SECURITY", ("starttls", "ssl")),
        smtp_username=username,
        email_from=_get(env, "ALERT_EMAIL_FROM") or username,
        email_to=recipients,
        on_success=_choice(env, "ALERT_ON_SUCCESS", ("on", "off")) == "on",
        check_severity=_choice(env, "ALERT_CHECK_SEVERITY", ("error", "warn")),
        ui_url=_get(env, "DAGSTER_UI_URL").rstrip("/"),
        attempts=_whole_number(env, "ALERT_ATTEMPTS", 1, 20),
        retry_seconds=_seconds(env, "ALERT_RETRY_SECONDS"),
    )
    webhook_url = _get(env, "ALERT_WEBHOOK_URL")
    if webhook_url and not webhook_url.startswith(("https://", "http://")):
        raise ConfigError("ALERT_WEBHOOK_URL must be an http(s) URL (its value is not shown)")
    if settings.email and not settings.email_from:
        raise ConfigError(
            "ALERT_EMAIL_TO needs a sender: set ALERT_EMAIL_FROM or ALERT_SMTP_USERNAME"
        )
    if recipients and not settings.smtp_host:
        raise ConfigError("ALERT_EMAIL_TO needs ALERT_SMTP_HOST, the SMTP server to send through")
    return settings


def _databricks(env: Mapping[str, str], engine: str) -> DatabricksSettings:
    settings = DatabricksSettings(
        host=_get(env, "DATABRICKS_HOST").rstrip("/"),
        cluster_id=_get(env, "DATABRICKS_CLUSTER_ID"),
        wheel=_get(env, "DATABRICKS_WHEEL"),
        spark_version=_get(env, "DATABRICKS_SPARK_VERSION"),
        node_type=_get(env, "DATABRICKS_NODE_TYPE"),
        workers=_whole_number(env, "DATABRICKS_WORKERS", 1, 1000),
        secret_scope=_get(env, "DATABRICKS_SECRET_SCOPE"),
        poll_seconds=_seconds(env, "DATABRICKS_POLL_SECONDS"),
    )
    if engine == "databricks":
        required = {"DATABRICKS_HOST": settings.host, "DATABRICKS_WHEEL": settings.wheel}
        for name, value in required.items():
            if not value:
                raise ConfigError(f"SPARK_ENGINE=databricks needs {name}: {VARIABLES[name][1]}")
    return settings


def _seconds(env: Mapping[str, str], name: str) -> float:
    raw = _get(env, name)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.05 <= value <= 600:
        raise ConfigError(f"{name}={raw!r} must be a number of seconds from 0.05 to 600")
    return value


def _identifier(env: Mapping[str, str], name: str, empty_ok: bool = False) -> str:
    """A name that goes into SQL: letters, digits and underscores only."""
    raw = _get(env, name)
    if raw or not empty_ok:
        try:
            validate_identifier(raw, name)
        except ValueError as exc:
            raise ConfigError(
                f"{name}={raw!r} must be a plain SQL identifier: letters, digits and "
                "underscores, starting with a letter or underscore"
            ) from exc
    return raw


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    raw = _get(env, name).lower()
    if raw not in allowed:
        raise ConfigError(f"{name}={raw!r} must be one of {', '.join(allowed)}")
    return raw


def _whole_number(env: Mapping[str, str], name: str, low: int, high: int) -> int:
    raw = _get(env, name)
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ConfigError(f"{name}={raw!r} must be a whole number from {low} to {high}")
    return int(raw)
