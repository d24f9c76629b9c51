"""What the benchmarks share: the machine they ran on, medians, the peak memory of a process tree
(Python and its Spark JVM together), throw-away source databases, and the results folder."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import psutil

RESULTS = Path(__file__).parent / "results"


def machine() -> str:
    """One line naming what the figures came from."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{os.cpu_count()} cores{f' ({model})' if model else ''}, {memory:.0f} GiB, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


class PeakMemory:
    """Samples the resident memory of a process and all its descendants (the Spark JVM is a
    child of the Python driver) every `every` seconds; `peak_mib` is the largest sum seen."""

    def __init__(self, pid: int | None = None, every: float = 0.2) -> None:
        self.process = psutil.Process(pid or os.getpid())
        self.every = every
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-memory", daemon=True)

    def _tree_rss(self) -> int:
        total = 0
        try:
            processes = [self.process, *self.process.children(recursive=True)]
        except psutil.Error:
            return 0
        for p in processes:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                continue  # ended between listing and reading
        return total

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_mib = max(self.peak_mib, self._tree_rss() / 2**20)
            self._stop.wait(self.every)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mib = max(self.peak_mib, self._tree_rss() / 2**20)


def run_worker(module: str, args: list[str], say=print) -> dict:
    """`python -m module args` in a fresh process (a fresh JVM too); its last stdout line is its
    JSON result. Its other output is passed through, so long runs show progress."""
    command = [sys.executable, "-m", module, *args]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    assert process.stdout is not None
    last = ""
    tail: list[str] = []
    for line in process.stdout:
        line = line.rstrip("\n")
        if line.startswith("{"):
            last = line
        elif line.startswith("  ") or line.startswith("bench:"):
            say(line)
        tail = [*tail[-40:], line]
    if process.wait() != 0 or not last:
        raise RuntimeError(
            f"{' '.join(command)} failed (exit {process.returncode}):\n" + "\n".join(tail)
        )
    return json.loads(last)


def database(server_url: str, name: str) -> str:
    """A new empty database on the throw-away PostgreSQL server; its SQLAlchemy URL."""
    from sqlalchemy import create_engine, text

    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def write_results(results: Path, name: str, figures: dict) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2) + "\n")
    return path
