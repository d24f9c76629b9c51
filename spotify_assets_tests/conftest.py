"""Shared fixtures: one Spark session for the whole test session, and throw-away lakehouses.
The two tiers (`make test`: not `slow`; `make test-all`: everything, with `--no-skips`) have
their rules in tiers.py."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest
from dagster import DagsterInstance
from pyspark.sql import SparkSession

from spotify_assets.settings import Settings, load_settings
from spotify_assets.spark.session import SparkOptions, get_session
from spotify_assets_tests import servers
from spotify_assets_tests.pg_server import PostgresUnavailable, throwaway_postgres

START = date(2026, 1, 1)


pytest_plugins = ["spotify_assets_tests.tiers"]  # the two tiers' rules


def pytest_configure(config: pytest.Config) -> None:
    """Every Spark JVM of the test session, and of the processes it starts, takes the tests'
    Spark defaults (spark_conf/spark-defaults.conf), whatever the developer's environment
    says. A hook, not an import-time line: the benchmarks import this module's helpers and
    must measure production's defaults."""
    os.environ["SPARK_CONF_DIR"] = str(Path(__file__).resolve().parent / "spark_conf")


def make_settings(root: Path, **env: str) -> Settings:
    """Settings for an isolated lakehouse under `root`, with the machine's jar cache."""
    base = {
        "SPOTIFY_SOURCE_DB_URL": f"sqlite:///{root / 'source.db'}",
        "LAKEHOUSE_ROOT": str(root / "lake"),
        "DAGSTER_HOME": str(root / "dagster_home"),
        "LAKEHOUSE_START_DATE": START.isoformat(),
        "SPARK_SHUFFLE_PARTITIONS": "2",
    }
    base.update(env)
    return load_settings(base)


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> SparkSession:
    """The one Spark session of the test session; the assets' resource gets the same one."""
    settings = make_settings(tmp_path_factory.mktemp("spark"))
    session, _ = get_session(SparkOptions.from_settings(settings))
    return session


@pytest.fixture(scope="session")
def spark_connect_url(tmp_path_factory: pytest.TempPathFactory):
    """A Spark Connect server with Delta Lake on loopback (`spotify-lakehouse connect-server`),
    started for the tests that need one and stopped with the session."""
    root = tmp_path_factory.mktemp("spark-connect")
    options = SparkOptions.from_settings(make_settings(root))
    with servers.connect_server(options, log=root / "server.log") as url:
        yield url


@pytest.fixture
def instance() -> DagsterInstance:
    with DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture(scope="session")
def postgres_url():
    """A throw-away PostgreSQL server on loopback, started and stopped by the test session."""
    try:
        with throwaway_postgres() as (url, _):
            yield url
    except PostgresUnavailable as exc:
        pytest.fail(str(exc))
