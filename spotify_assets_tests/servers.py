"""Servers the tests start and stop (Spark Connect, Azurite, PostgreSQL, `dagster dev`, alert
peers): a free loopback port, waiting until one listens, and stopping a process."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from spotify_assets.spark.connect_server import command, server_env
from spotify_assets.spark.session import SparkOptions, check_java


class ServerFailed(RuntimeError):
    """A server this project starts (Spark Connect here; Azurite in the tests) did not come up."""


class ConnectServerFailed(ServerFailed):
    pass


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
def connect_server(options: SparkOptions, log: Path, timeout: float = 120) -> Iterator[str]:
    """A Spark Connect server on a free loopback port for the block's duration; yields its
    sc:// URL."""
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
