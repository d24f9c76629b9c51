"""Crash safety: a run killed (SIGKILL to its process group: Python and its Spark JVM at once, as a
power cut would) at points inside each layer's writes, then run again, must leave every table
equal to an uninterrupted run's, and nobody reading while it was down may see a half-written
table or window.

A kill point is something the run does to the lake, seen from outside while it goes on: a
table's first new data file (its write is under way, not committed), a table's commit (the
step's later work not yet done), a state document written (watermarks, schema histories, as-of
records). The points are found by watching an uninterrupted run of each layer; a trial copies
the layer's starting lake, runs the layer, kills it the moment its point is seen, checks what a
reader would see, runs the layer again to the end, and compares every table. Nothing in the
product knows about it: the runs are the real ones.

    .venv/bin/python -m spotify_assets_tests.crash_harness      # every point (make crash)
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from benchmarks.pipeline import PROCESSING_COLUMNS

LAYERS = ("bronze", "silver", "gold")
DAYS = 2  # the run: days 1 and 2 of a 3-day source
POLL_SECONDS = 0.005


@dataclass(frozen=True, order=True)
class KillPoint:
    layer: str
    event: str  # "data file", "commit" or "document"
    target: str  # a table (bronze/fact_stream) or a document (bronze/_watermarks/x.json)

    def __str__(self) -> str:
        return f"{self.layer}: {self.event} of {self.target}"


@dataclass
class Trial:
    point: KillPoint
    killed: bool = False  # False: the run ended before the point was seen
    seconds_to_kill: float = 0.0
    half_written: list[str] = field(default_factory=list)  # tables a reader saw in between
    differing: list[str] = field(default_factory=list)  # tables unequal after the re-run
    rerun_failed: str = ""

    @property
    def survived(self) -> bool:
        return (
            self.killed and not self.half_written and not self.differing and not self.rerun_failed
        )


def lake_events(lake: Path, before: dict[str, int]) -> Iterator[tuple[str, str]]:
    """(event, target) for each file under `lake` that is new or changed since `before`."""
    for path, stamp in files(lake).items():
        if before.get(path) == stamp:
            continue
        parts = path.split("/")
        if "_delta_log" in parts:
            if path.endswith(".json") and parts[-1][:1].isdigit():
                yield "commit", "/".join(parts[: parts.index("_delta_log")])
        elif path.endswith(".parquet"):
            yield "data file", "/".join(parts[:2])
        elif path.endswith(".json") and len(parts) >= 3 and parts[1].startswith("_"):
            yield "document", path


def files(lake: Path) -> dict[str, int]:
    """Every file under the lake (relative path -> modification time in ns); Spark's temporary
    and checksum files left out."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(lake):
        dirnames[:] = [d for d in dirnames if not d.startswith((".", "_temporary", "_staging"))]
        for name in filenames:
            if name.startswith(".") or name.endswith(".crc"):
                continue
            full = os.path.join(dirpath, name)
            try:
                out[os.path.relpath(full, lake)] = os.stat(full).st_mtime_ns
            except FileNotFoundError:
                continue
    return out


def run_layer_command(root: Path, layer: str) -> list[str]:
    return [sys.executable, "-m", "spotify_assets_tests.crash_harness", "run-layer",
            "--root", str(root), "--layer", layer]  # fmt: skip


def start_layer(root: Path, layer: str, log_name: str = "run.log") -> subprocess.Popen:
    """The layer's run in its own process group (so one signal reaches its JVM too), its output
    in root/<log_name>."""
    with open(root / log_name, "w") as log:
        return subprocess.Popen(
            run_layer_command(root, layer), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=Path(__file__).resolve().parent.parent,
        )  # fmt: skip


def finish(process: subprocess.Popen, root: Path, what: str, log_name: str = "run.log") -> None:
    if process.wait() != 0:
        tail = (root / log_name).read_text()[-3000:]
        raise RuntimeError(f"{what} failed (exit {process.returncode}):\n{tail}")


def watch(root: Path, layer: str, on_event: Callable[[KillPoint], bool]) -> bool:
    """Run the layer; call on_event for each point as it is first seen; when it returns True,
    kill the run's process group at once. Returns whether the run was killed."""
    lake = root / "lake"
    before = files(lake)
    seen: set[KillPoint] = set()
    process = start_layer(root, layer)
    while True:
        ended = process.poll() is not None
        for event, target in lake_events(lake, before):
            point = KillPoint(layer, event, target)
            if point in seen:
                continue
            seen.add(point)
            if on_event(point) and not ended:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return True
        if ended:
            finish(process, root, f"the {layer} run")
            return False
        time.sleep(POLL_SECONDS)


def digest(spark, lake: Path, layer: str) -> dict[str, str]:
    """Each table of the layer as a hash of its sorted rows (processing columns left out): what
    a reader opening it now would see."""
    out = {}
    for log in sorted(lake.glob(f"{layer}/*/_delta_log")):
        table = f"{log.parent.parent.name}/{log.parent.name}"
        if not any(p.name[:1].isdigit() and p.suffix == ".json" for p in log.iterdir()):
            out[table] = "no commit"
            continue
        frame = spark.read.format("delta").load(str(log.parent))
        frame = frame.select([c for c in frame.columns if c not in PROCESSING_COLUMNS])
        rows = sorted(repr(tuple(r)) for r in frame.collect())
        out[table] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return out


@dataclass
class Prepared:
    """The lake before each layer's run (a copy per layer) and every table after each."""

    work: Path
    starts: dict[str, Path]
    before: dict[str, dict[str, str]]  # the layer's tables before its run
    after: dict[str, dict[str, str]]
    points: dict[str, list[KillPoint]]


def prepare(spark, work: Path, layers: tuple[str, ...] = LAYERS, say=print) -> Prepared:
    """Seed a small source, run the layers in order uninterrupted (recording each layer's kill
    points as they happen), and keep the lake before each layer."""
    from spotify_assets.source import simulator
    from spotify_assets.source.resource import SourceDatabase
    from spotify_assets_tests.conftest import START, make_settings

    base = work / "reference"
    base.mkdir(parents=True)
    settings = make_settings(base)
    simulator.seed(SourceDatabase(url=settings.source_db_url).engine, seed_value=5, scale=1,
                   start=START, days=DAYS + 1, echo=lambda _: None)  # fmt: skip
    (base / "lake").mkdir()
    starts, before, after, points = {}, {}, {}, {}
    for layer in layers:
        starts[layer] = work / f"before_{layer}"
        shutil.copytree(base, starts[layer])
        before[layer] = digest(spark, base / "lake", layer)
        found: list[KillPoint] = []
        started = time.monotonic()
        watch(base, layer, lambda p, found=found: found.append(p) or False)
        points[layer] = sorted(found)
        after[layer] = digest(spark, base / "lake", layer)
        say(f"  {layer}: {len(found)} kill points, run {time.monotonic() - started:.0f} s")
    return Prepared(work, starts, before, after, points)


def trial(spark, prepared: Prepared, point: KillPoint) -> Trial:
    result = Trial(point)
    root = prepared.work / "trial"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(prepared.starts[point.layer], root)
    before = prepared.before[point.layer]
    started = time.monotonic()
    result.killed = watch(root, point.layer, lambda p: p == point)
    result.seconds_to_kill = time.monotonic() - started
    if not result.killed:
        return result
    reference = prepared.after[point.layer]
    for table, content in digest(spark, root / "lake", point.layer).items():
        # A table is as before the run, or as the run leaves it: never anything in between.
        if content not in (before.get(table, "no commit"), reference.get(table), "no commit"):
            result.half_written.append(table)
    try:
        finish(start_layer(root, point.layer), root, f"the {point.layer} re-run")
    except RuntimeError as error:
        result.rerun_failed = str(error)[-2000:]
        return result
    now = digest(spark, root / "lake", point.layer)
    result.differing = sorted(t for t in reference if now.get(t) != reference[t])
    result.differing += sorted(t for t in now if t not in reference and now[t] != "no commit")
    return result


def run_layer(root: Path, layer: str) -> int:
    """The layer's assets over days 1..2 as one run (the child process of a trial)."""
    from dagster import DagsterInstance

    from spotify_assets.materialize import group_selection, materialize_range
    from spotify_assets_tests.conftest import START, make_settings

    settings = make_settings(root)
    with DagsterInstance.ephemeral() as instance:
        result = materialize_range(
            settings, START, START + timedelta(days=DAYS - 1), instance=instance,
            selection=group_selection(settings, layer),
        )  # fmt: skip
    return 0 if result.success else 1


def spread(points: list[KillPoint], limit: int | None) -> list[KillPoint]:
    """The first `limit` points taking each kind in turn (commit, data file, document): a sample
    covers every kind of point, not the first kind's alone."""
    kinds = [[p for p in points if p.event == kind] for kind in sorted({p.event for p in points})]
    turns = [p for turn in itertools.zip_longest(*kinds) for p in turn if p is not None]
    return turns[:limit]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    child = sub.add_parser("run-layer")
    child.add_argument("--root", type=Path, required=True)
    child.add_argument("--layer", choices=LAYERS, required=True)
    parser.add_argument(
        "--per-layer", type=int, default=0, help="try at most this many points of each layer"
    )
    args = parser.parse_args(argv)
    if args.command == "run-layer":
        return run_layer(args.root, args.layer)

    from spotify_assets.spark.session import SparkOptions, get_session
    from spotify_assets_tests.conftest import make_settings

    work = Path(tempfile.mkdtemp(prefix="crash-harness-"))
    spark, _ = get_session(SparkOptions.from_settings(make_settings(work / "reader")))
    print("Preparing: the uninterrupted runs")
    prepared = prepare(spark, work)
    trials = []
    limit = args.per_layer or None
    every = [p for layer in LAYERS for p in spread(prepared.points[layer], limit)]
    for number, point in enumerate(every, 1):
        t = trial(spark, prepared, point)
        trials.append(t)
        verdict = "survived" if t.survived else ("not reached" if not t.killed else "FAILED")
        print(f"[{number}/{len(every)}] {point}: {verdict}"
              + (f" {t.half_written or ''} {t.differing or ''} {t.rerun_failed[:200]}"
                 if t.killed and not t.survived else ""), flush=True)  # fmt: skip
    killed = [t for t in trials if t.killed]
    survived = [t for t in killed if t.survived]
    for layer in LAYERS:
        in_layer = [t for t in killed if t.point.layer == layer]
        print(
            f"{layer}: {sum(t.survived for t in in_layer)} of {len(in_layer)} kill points survived"
        )
    print(f"kill points tried {len(killed)}, survived {len(survived)}")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if len(survived) == len(killed) and killed else 1


if __name__ == "__main__":
    sys.exit(main())
