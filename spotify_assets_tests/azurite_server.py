"""Azurite, the Azure Storage emulator, on loopback for the tests (`make azurite` installs it).

Its Blob API is what adlfs speaks, to Azurite and to ADLS Gen2 alike; Azurite has no DFS API
(../shared/reference/local-infra.md), which the storage layer does not use.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from spotify_assets_tests.servers import ServerFailed, free_port, stop, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
AZURITE = ROOT / ".ci" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
# Azurite's documented development account and its well-known, public key.
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class AzuriteUnavailable(ServerFailed):
    pass


@contextmanager
def azurite() -> Iterator[str]:
    """Yield the connection string of a fresh in-memory Azurite; stop it after."""
    if not AZURITE.exists():
        raise AzuriteUnavailable(f"{AZURITE} not found: run `make azurite` (npm ci)")
    port = free_port()
    process = subprocess.Popen(
        [str(AZURITE), "--inMemoryPersistence", "--blobHost", "127.0.0.1",
         "--blobPort", str(port), "--skipApiVersionCheck", "--loose", "--disableTelemetry"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(process, "127.0.0.1", port, 30, "Azurite", AzuriteUnavailable)
        yield (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
        )
    finally:
        stop(process, timeout=10)
