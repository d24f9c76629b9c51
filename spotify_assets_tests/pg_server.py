"""A throw-away PostgreSQL server on loopback, for the tests and the benchmarks.

Runs the Debian server binaries as the `postgres` user in a new temporary folder, with trust
authentication on 127.0.0.1 only, and removes everything when it stops.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from spotify_assets_tests.servers import free_port


class PostgresUnavailable(RuntimeError):
    pass


def server_bin() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    return candidates[0].parent if candidates else None


@contextmanager
def throwaway_postgres() -> Iterator[tuple[str, Path]]:
    """Yield (SQLAlchemy URL, the server's folder) of a fresh server; stop and delete it after."""
    bin_dir = server_bin()
    if bin_dir is None or shutil.which("runuser") is None:
        raise PostgresUnavailable(
            "PostgreSQL server binaries not found: run `make setup` (installs postgresql)"
        )
    # Outside pytest's 0700 temp tree: the server runs as the postgres user.
    base = Path(tempfile.mkdtemp(prefix="spotify-lakehouse-pg-"))
    shutil.chown(base, "postgres")
    data, log = base / "data", base / "server.log"
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_pg, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
         "-E", "UTF8", "--no-locale"],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {data} -c fsync=off"
    subprocess.run(
        [*as_pg, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-o", options,
         "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", base
    finally:
        subprocess.run(
            [*as_pg, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False, capture_output=True,
        )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)
