"""A Spark Connect server with Delta Lake, from the pyspark package itself (no Spark download).

`spotify-lakehouse connect-server` runs one in the foreground; SPARK_ENGINE=connect with
SPARK_CONNECT_URL=sc://127.0.0.1:15002 then runs every asset through it. Any other Spark Connect
server works the same if it has Delta Lake's jars and extensions (Databricks has them).
The tests start one with `start()` to run the pipeline through Spark Connect for real.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyspark

from spotify_assets.spark.session import SparkOptions, check_java, delta_conf

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"


class ServerFailed(RuntimeError):
    """A server this project starts (Spark Connect here; Azurite in the tests) did not come up."""


class ConnectServerFailed(ServerFailed):
    pass


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    process: subprocess.Popen,
    host: str,
    port: int,
    timeout: float,
    name: str = "the Spark Connect server",
    error: type[ServerFailed] = ConnectServerFailed,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise error(f"{name} exited with {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise error(f"{name} did not listen on {port} in {timeout} s")


def stop(process: subprocess.Popen, timeout: float = 30) -> None:
    """Terminate a server, and kill it if it does not stop in `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def start(options: SparkOptions, log: Path, timeout: float = 120) -> Iterator[str]:
    """A server on a free loopback port for the block's duration; yields its sc:// URL."""
    check_java()
    port = free_port()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command(options, port), stdout=out, stderr=subprocess.STDOUT, env=server_env()
        )
    try:
        wait_for_port(process, "127.0.0.1", port, timeout)
        yield f"sc://127.0.0.1:{port}"
    finally:
        stop(process)
