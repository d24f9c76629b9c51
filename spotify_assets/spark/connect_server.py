"""A Spark Connect server with Delta Lake, from the pyspark package itself (no Spark download).

`spotify-lakehouse connect-server` runs one in the foreground; SPARK_ENGINE=connect with
SPARK_CONNECT_URL=sc://127.0.0.1:15002 then runs every asset through it. Any other Spark Connect
server works the same if it has Delta Lake's jars and extensions (Databricks has them).
The tests start one (spotify_assets_tests/servers.py) to run the pipeline through it for real.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyspark

from spotify_assets.spark.session import SparkOptions, delta_conf

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"


def command(options: SparkOptions, port: int, host: str = "127.0.0.1") -> list[str]:
    """spark-submit's command line for a server bound to `host` (loopback unless told)."""
    spark_submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    conf = {
        **delta_conf(options),
        "spark.connect.grpc.binding.address": host,
        "spark.connect.grpc.binding.port": str(port),
    }
    jars = conf.pop("spark.jars")
    driver_memory = conf.pop("spark.driver.memory")
    args = [str(spark_submit), "--class", SERVER_CLASS, "--name", "spotify-lakehouse connect"]
    args += ["--master", options.master, "--driver-memory", driver_memory, "--jars", jars]
    for key, value in conf.items():
        args += ["--conf", f"{key}={value}"]
    return args


def server_env() -> dict[str, str]:
    """The server's environment: without SPARK_REMOTE, which spark-submit refuses beside a
    master."""
    return {k: v for k, v in os.environ.items() if k != "SPARK_REMOTE"}
