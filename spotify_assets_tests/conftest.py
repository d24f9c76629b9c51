"""Shared fixtures: one Spark session for the whole test session, and throw-away lakehouses;
the two tiers (`make test`: not `slow`; `make test-all`: everything, with `--no-skips`)."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest
from dagster import DagsterInstance
from pyspark.sql import SparkSession

from spotify_assets.settings import Settings, load_settings
from spotify_assets.spark import connect_server
from spotify_assets.spark.session import SparkOptions, get_session
from spotify_assets_tests.pg_server import PostgresUnavailable, throwaway_postgres

START = date(2026, 1, 1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-skips", action="store_true",
        help="a skipped test fails the run, with its reason (make test-all: a server that "
        "could not start, a missing browser or a suite left out is a failure, not a skip)",
    )  # fmt: skip


# A test of make test's tier that takes longer says why in its docstring ("Slow because ..."),
# or moves to the slow tier: the summary names those that do neither.
FAST_TIER_SECONDS = 60
_unexplained: list[str] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Under --no-skips, a skip becomes a failure that says what was skipped and why."""
    outcome = yield
    report = outcome.get_result()
    if (
        report.skipped
        and not hasattr(report, "wasxfail")  # an expected failure is not a skip
        and item.config.getoption("--no-skips")
    ):
        _fail_skip(report)
    doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
    if (
        report.when == "call"
        and report.duration > FAST_TIER_SECONDS
        and item.get_closest_marker("slow") is None
        and "slow because" not in doc.lower()
    ):
        report.user_properties.append(("unexplained_seconds", report.duration))


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """A module skipped whole (importorskip, allow_module_level) fails under --no-skips too."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and collector.config.getoption("--no-skips"):
        _fail_skip(report)


def _fail_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
    report.outcome = "failed"
    report.longrepr = f"skipped, which make test-all does not allow: {reason}"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collected where the summary is written (the controller, under pytest-xdist)."""
    for name, seconds in report.user_properties:
        if name == "unexplained_seconds":
            _unexplained.append(f"{seconds:.0f} s {report.nodeid}")


def pytest_terminal_summary(terminalreporter) -> None:
    if _unexplained:
        terminalreporter.section(f"make test's tests over {FAST_TIER_SECONDS} s with no reason")
        for line in _unexplained:
            terminalreporter.write_line(line + ": say why in its docstring, or mark it slow")


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
    with connect_server.start(options, log=root / "server.log") as url:
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
