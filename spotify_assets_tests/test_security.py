"""The servers the project starts listen on loopback only: the local Spark driver (its RPC and
block manager ports) and the Spark Connect server (its gRPC port and its driver's ports)."""

from __future__ import annotations

import psutil
import pytest

LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def listening(process: psutil.Process) -> list[str]:
    """host:port of every TCP socket the process listens on."""
    return sorted(
        f"{c.laddr.ip}:{c.laddr.port}"
        for c in process.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    )


def java_children(marker: str) -> list[psutil.Process]:
    return [
        p
        for p in psutil.Process().children(recursive=True)
        if p.name() == "java" and any(marker in part for part in p.cmdline())
    ]


def test_the_local_spark_driver_listens_on_loopback_only(spark):
    [jvm] = java_children("pyspark-shell")  # the test session's driver, started by PySpark
    sockets = listening(jvm)
    assert len(sockets) >= 2, sockets  # py4j's gateway, the driver's RPC, its block manager
    assert [s for s in sockets if s.rsplit(":", 1)[0] not in LOOPBACK] == []


@pytest.mark.slow  # a Spark Connect server
def test_the_spark_connect_server_listens_on_loopback_only(spark_connect_url):
    [server] = java_children("SparkConnectServer")
    sockets = listening(server)
    port = spark_connect_url.rsplit(":", 1)[1]
    assert any(s.endswith(f":{port}") for s in sockets), sockets
    assert [s for s in sockets if s.rsplit(":", 1)[0] not in LOOPBACK] == []
