from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

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
