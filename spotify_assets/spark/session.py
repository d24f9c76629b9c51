"""One SparkSession with Delta Lake per process, and the Dagster resource that hands it out.

Runs use the in-process executor, so a run of the whole graph starts one JVM, not one per step.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import SparkSession

from spotify_assets.lake import storage
from spotify_assets.settings import Settings
from spotify_assets.spark import delta_jars

_lock = threading.Lock()
_session: SparkSession | None = None
_created = 0  # sessions this process has created: one per run under the in-process executor
JAVA_FIX = "install Java 17 or later, e.g. `apt-get install -y openjdk-17-jre-headless`"


class JavaMissing(RuntimeError):
    pass


def check_java() -> int:
    """Return Java's major version, or raise a JavaMissing that says how to install it."""
    java = shutil.which("java")
    if java is None:
        raise JavaMissing(f"Spark needs Java 17+, and `java` is not on PATH: {JAVA_FIX}")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        raise JavaMissing(f"could not read the Java version from `java -version`: {JAVA_FIX}")
    major = int(match.group(1))
    major = int(match.group(2) or 0) if major == 1 else major
    if major < 17:
        raise JavaMissing(f"Spark 4 needs Java 17+, found Java {major}: {JAVA_FIX}")
    return major


@dataclass(frozen=True)
class SparkOptions:
    master: str
    driver_memory: str
    shuffle_partitions: int
    jars_dir: Path
    warehouse_dir: Path
    remote: str = ""  # sc://host:port: sessions come from that Spark Connect server
    lakehouse_root: str = ""  # abfss://...: the local session gets the storage credentials

    @classmethod
    def from_settings(cls, settings: Settings) -> SparkOptions:
        return cls(
            master=settings.spark_master,
            driver_memory=settings.spark_driver_memory,
            shuffle_partitions=settings.spark_shuffle_partitions,
            jars_dir=settings.delta_jars_dir,
            warehouse_dir=settings.data_dir / "spark-warehouse",
            remote=settings.spark_connect_url,
            lakehouse_root=settings.lakehouse_root,
        )


# What the code relies on in any session, local or remote (settable per session).
SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
    # Delta's SQL parser drops SQL parameters on Spark 4.1+ (delta-io/delta#7640); Spark's
    # substitution of constant parameters still binds them (apache/spark#55392).
    "spark.sql.legacy.parameterSubstitution.constantsOnly": "true",
    # Timestamps in Parquet as 64-bit microseconds, Delta's own type, not Spark's default INT96
    # (nanoseconds): delta-rs, pandas and polars read every year exactly, 1600 as 9999.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}


def delta_conf(options: SparkOptions) -> dict[str, str]:
    """A Spark with Delta Lake as this project runs it: the local session's configuration, and
    the configuration `connect-server` starts its server with."""
    # A local master's driver is the whole cluster: its RPC and block manager ports need not be
    # reachable from anywhere else (Spark binds them to the host's address by default).
    loopback = (
        {"spark.driver.bindAddress": "127.0.0.1", "spark.driver.host": "127.0.0.1"}
        if options.master.startswith("local")
        else {}
    )
    return {
        **loopback,
        "spark.jars": ",".join(str(p) for p in delta_jars.jar_paths(options.jars_dir)),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.driver.memory": options.driver_memory,
        "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.sql.shuffle.partitions": str(options.shuffle_partitions),
        "spark.default.parallelism": str(options.shuffle_partitions),
        "spark.sql.warehouse.dir": str(options.warehouse_dir),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.databricks.delta.snapshotPartitions": "2",
        "spark.databricks.delta.retentionDurationCheck.enabled": "true",
        # Redact storage credentials as well as Spark's defaults wherever Spark shows its conf.
        "spark.redaction.regex": r"(?i)secret|password|token|access[.]?key|fs\.azure\.",
        **SESSION_CONF,
    }


def on_databricks() -> bool:
    """Inside a Databricks cluster (a job the databricks engine submitted, or a bundle job)."""
    return bool(os.environ.get("DATABRICKS_RUNTIME_VERSION"))


def storage_conf(lakehouse_root: str) -> dict[str, str]:
    """Hadoop ABFS options for a lake on ADLS Gen2, with this process's Azure credentials (read
    from the environment when the session starts: never in the resource's config, nor on a
    command line). Spark passes session options that name a file system to the Hadoop
    configuration of its reads and writes. ABFS itself comes from the hadoop-azure jar, which
    Databricks has."""
    if not storage.is_azure(lakehouse_root):
        return {}
    return storage.AzureCredentials.from_env().spark_conf(storage.account_of(lakehouse_root))


def build_session(options: SparkOptions) -> SparkSession:
    if options.remote:
        return connect_session(options.remote)
    if on_databricks():
        # The cluster's own session: Delta Lake, the catalog and storage access come with it.
        session = SparkSession.builder.getOrCreate()
        for key, value in SESSION_CONF.items():
            session.conf.set(key, value)
        return session
    check_java()
    # PySpark itself reads SPARK_REMOTE: set (even empty), it refuses a local master, naming
    # the URL (and any token in it) in its error. The connect engine uses SPARK_CONNECT_URL.
    os.environ.pop("SPARK_REMOTE", None)
    builder = SparkSession.builder.appName("spotify-lakehouse").master(options.master)
    for key, value in delta_conf(options).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    # Set on the running session: options given to the builder become spark-submit arguments,
    # which any local user can read in the process list.
    for key, value in storage_conf(options.lakehouse_root).items():
        session.conf.set(key, value)
    return session


def connect_session(url: str) -> SparkSession:
    """A session on a Spark Connect server (which must have Delta Lake: see `connect-server`)."""
    session = SparkSession.builder.remote(url).getOrCreate()
    for key, value in SESSION_CONF.items():
        session.conf.set(key, value)
    return session


def _alive(session: SparkSession) -> bool:
    if hasattr(session, "is_stopped"):  # a Spark Connect session
        return not session.is_stopped
    return session.sparkContext._jsc is not None


def get_session(options: SparkOptions) -> tuple[SparkSession, float]:
    """The process's session (created on first use) and the seconds this call spent creating it."""
    global _session, _created
    with _lock:
        if _session is not None and _alive(_session):
            return _session, 0.0
        started = time.monotonic()
        _session = build_session(options)
        _created += 1
        return _session, time.monotonic() - started


def sessions_created() -> int:
    """How many Spark sessions this process has created."""
    return _created


def stop_session() -> None:
    global _session
    with _lock:
        if _session is not None:
            _session.stop()
            _session = None
