from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from spotify_assets.catalog import Layer, table_name
from spotify_assets.databricks_jobs.task import cluster_env
from spotify_assets.resources import lakehouse_for
from spotify_assets.settings import ConfigError, load_settings


def test_zero_configuration_is_the_embedded_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings({})
    assert s.source_db_url == f"sqlite:///{tmp_path / '.data' / 'source.db'}"
    assert s.lakehouse_root == str(tmp_path / ".data" / "lake")
    assert s.dagster_home == tmp_path / ".dagster_home"
    assert s.start_date == date(2026, 1, 1)
    assert s.spark_master == "local[2]"
    assert s.delta_jars_dir == Path("~/.cache/spotify-lakehouse/jars").expanduser()


def test_variables_override_defaults():
    s = load_settings(
        {
            "SPOTIFY_SOURCE_DB_URL": "postgresql+psycopg://u:p@127.0.0.1:5432/db",
            "LAKEHOUSE_ROOT": "abfss://lake@acct.dfs.core.windows.net/spotify",
            "LAKEHOUSE_START_DATE": "2025-06-01",
        }
    )
    assert s.source_db_url == "postgresql+psycopg://u:p@127.0.0.1:5432/db"
    assert s.lakehouse_root == "abfss://lake@acct.dfs.core.windows.net/spotify"
    assert s.start_date == date(2025, 6, 1)


def test_malformed_values_name_the_variable():
    with pytest.raises(ConfigError, match=r"LAKEHOUSE_START_DATE='2026-13-01' is not a date"):
        load_settings({"LAKEHOUSE_START_DATE": "2026-13-01"})
    with pytest.raises(
        ConfigError, match=r"SPARK_SHUFFLE_PARTITIONS='0' must be a whole number from 1 to 10000"
    ):
        load_settings({"SPARK_SHUFFLE_PARTITIONS": "0"})
    with pytest.raises(ConfigError, match=r"DAILY_SCHEDULE_HOUR='25' must be a whole number"):
        load_settings({"DAILY_SCHEDULE_HOUR": "25"})
    with pytest.raises(ConfigError, match=r"SPARK_ENGINE='spark' must be one of local, connect"):
        load_settings({"SPARK_ENGINE": "spark"})
    with pytest.raises(
        ConfigError,
        match=r"^SPARK_ENGINE=connect needs SPARK_CONNECT_URL, the Spark Connect URL \(sc://host:port\)",
    ):
        load_settings({"SPARK_ENGINE": "connect", "SPARK_CONNECT_URL": "127.0.0.1:15002"})


def test_the_connect_engine_takes_its_url_and_the_local_engine_ignores_it():
    remote = "sc://127.0.0.1:15002/;token=not-shown"
    connect = load_settings({"SPARK_ENGINE": "connect", "SPARK_CONNECT_URL": remote})
    assert (connect.spark_engine, connect.spark_connect_url) == ("connect", remote)
    assert load_settings({"SPARK_CONNECT_URL": remote}).spark_connect_url == ""


def test_tables_have_three_level_names_from_one_function_and_configured_names_are_checked():
    assert str(table_name(Layer.GOLD, "dim_user")) == "spark_catalog.gold.dim_user"
    dev = table_name(Layer.SILVER, "fact_stream", "spotify", "dev_")
    assert (str(dev), dev.sql) == (
        "spotify.dev_silver.fact_stream",
        "`spotify`.`dev_silver`.`fact_stream`",
    )
    settings = load_settings({"LAKEHOUSE_CATALOG": "spotify", "LAKEHOUSE_SCHEMA_PREFIX": "dev_"})
    assert str(lakehouse_for(settings).name(Layer.BRONZE, "dim_user")) == (
        "spotify.dev_bronze.dim_user"
    )
    with pytest.raises(ConfigError) as error:
        load_settings({"LAKEHOUSE_CATALOG": "spotify`; DROP TABLE x; --"})
    assert str(error.value) == (
        "LAKEHOUSE_CATALOG='spotify`; DROP TABLE x; --' must be a plain SQL identifier: "
        "letters, digits and underscores, starting with a letter or underscore"
    )
    with pytest.raises(ConfigError, match=r"^LAKEHOUSE_SCHEMA_PREFIX='dev-' must be a plain"):
        load_settings({"LAKEHOUSE_SCHEMA_PREFIX": "dev-"})


def test_no_code_but_table_name_builds_a_table_name():
    """Names like `gold.dim_user` written by hand would miss the catalog and the prefix."""
    package = Path(__file__).resolve().parent.parent / "spotify_assets"
    by_hand = re.compile(r"f[\"'](bronze|silver|gold)\.|\{layer(\.value)?\}\.\{")
    offenders = [
        f"{path.relative_to(package)}:{number}"
        for path in package.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if by_hand.search(line)
    ]
    assert offenders == []


def test_the_databricks_engine_needs_its_workspace_and_never_writes_a_secret_into_a_job():
    with pytest.raises(ConfigError) as error:
        load_settings({"SPARK_ENGINE": "databricks", "DATABRICKS_WHEEL": "/Volumes/a/b/c/w.whl"})
    assert str(error.value) == (
        "SPARK_ENGINE=databricks needs DATABRICKS_HOST: workspace URL for the databricks engine "
        "(https://adb-....net)"
    )
    base = {
        "SPARK_ENGINE": "databricks",
        "DATABRICKS_HOST": "https://adb-1.2.azuredatabricks.net",
        "DATABRICKS_WHEEL": "/Volumes/a/b/c/w.whl",
    }
    url = "postgresql+psycopg://etl:s3cret-pw@db.example.com/spotify"
    settings = load_settings({**base, "SPOTIFY_SOURCE_DB_URL": url})
    with pytest.raises(ConfigError) as error:
        cluster_env(settings, {"SPOTIFY_SOURCE_DB_URL": url})
    assert str(error.value) == (
        "SPOTIFY_SOURCE_DB_URL is set, and a job cluster's environment is readable by anyone who "
        "can see the job: put it in a secret scope as `source-db-url` and set "
        "DATABRICKS_SECRET_SCOPE (the job then refers to it)"
    )
    scoped = load_settings({**base, "SPOTIFY_SOURCE_DB_URL": url, "DATABRICKS_SECRET_SCOPE": "s"})
    env = cluster_env(scoped, {"SPOTIFY_SOURCE_DB_URL": url, "SPOTIFY_CLIENT_SECRET": "x"})
    assert env["SPOTIFY_SOURCE_DB_URL"] == "{{secrets/s/source-db-url}}"
    assert env["SPOTIFY_CLIENT_SECRET"] == "{{secrets/s/spotify-client-secret}}"
    assert "s3cret-pw" not in str(env) and "SPOTIFY_CLIENT_ID" not in env


def test_alert_settings_are_checked_and_name_the_variable():
    with pytest.raises(ConfigError, match=r"^ALERT_EMAIL_TO: 'oncall' is not an e-mail address$"):
        load_settings({"ALERT_SMTP_HOST": "smtp.example.com", "ALERT_EMAIL_TO": "oncall"})
    with pytest.raises(ConfigError, match=r"^ALERT_EMAIL_TO needs ALERT_SMTP_HOST, the SMTP"):
        load_settings({"ALERT_EMAIL_TO": "oncall@example.com"})
    with pytest.raises(ConfigError, match=r"^ALERT_EMAIL_TO needs a sender: set ALERT_EMAIL_FROM"):
        load_settings({"ALERT_SMTP_HOST": "smtp.example.com", "ALERT_EMAIL_TO": "a@example.com"})
    with pytest.raises(
        ConfigError,
        match=r"^ALERT_WEBHOOK_URL must be an http\(s\) URL \(its value is not shown\)$",
    ):
        load_settings({"ALERT_WEBHOOK_URL": "hooks.example.com/secret-path"})
    with pytest.raises(
        ConfigError, match=r"^ALERT_SMTP_SECURITY='none' must be one of starttls, ssl$"
    ):
        load_settings({"ALERT_SMTP_SECURITY": "none"})
    with pytest.raises(
        ConfigError, match=r"^ALERT_CHECK_SEVERITY='info' must be one of error, warn$"
    ):
        load_settings({"ALERT_CHECK_SEVERITY": "info"})
    alerts = load_settings(
        {
            "ALERT_SMTP_HOST": "smtp.office365.com",
            "ALERT_SMTP_USERNAME": "lakehouse@contoso.com",
            "ALERT_EMAIL_TO": " oncall@contoso.com, data@contoso.com ",
        }
    ).alerts
    assert alerts.email and alerts.email_from == "lakehouse@contoso.com"
    assert alerts.email_to == ("oncall@contoso.com", "data@contoso.com")
    assert (alerts.smtp_port, alerts.smtp_security, alerts.check_severity) == (
        587,
        "starttls",
        "error",
    )
