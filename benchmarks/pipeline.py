"""The pipeline's measurements: runs through Dagster, the bare baseline, gold compared row for
row, and the worker processes that time start-up and end-to-end throughput in a fresh JVM.

    python -m benchmarks.pipeline startup --root DIR
    python -m benchmarks.pipeline throughput --url URL --root DIR --days N
    python -m benchmarks.pipeline copy --url URL --root DIR

Each worker prints progress lines, then its figures as one JSON line (see measure.run_worker).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from spotify_assets.transforms.conform import INTERNAL, SOURCE_FILE

START = date(2026, 1, 1)
GOLD_TABLES = ("dim_user", "dim_artist", "dim_track", "dim_date", "fact_stream")
# Columns that record when or from which file a row was processed (conform's own): they differ
# between any two runs, so the comparison of two lakes leaves them out.
PROCESSING_COLUMNS = (*INTERNAL, SOURCE_FILE)


def settings_for(root: Path, url: str, **env: str):
    from spotify_assets_tests.conftest import make_settings

    return make_settings(root, SPOTIFY_SOURCE_DB_URL=url, **env)


def settle(spark) -> None:
    """Put the JVM in the same state before every timed run: Delta's cache of table logs
    emptied (each run writes new tables, so earlier runs' entries are dead weight that only
    grows), cached frames dropped, then a full garbage collection. Without this a run pays for
    the garbage of the runs before it, so the later of two runs is the slower."""
    spark.catalog.clearCache()
    jvm = getattr(spark, "_jvm", None)  # a local session; Spark Connect has no JVM here
    if jvm is not None:
        jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()
        jvm.java.lang.System.gc()


def dagster_run(
    settings,
    first: date,
    last: date,
    layers: dict[str, float] | None = None,
    instance=None,
    per_step: list[dict] | None = None,
):
    """One run of the lakehouse job over first..last (a single-run backfill) in this process's
    Spark session, recorded in `instance` (a throw-away one when None: then no step finds an
    earlier run to skip by). Returns (seconds, steps); fills `layers`, when given, with the
    seconds its steps took by layer (see `step_seconds_by_layer`), and `per_step` with each
    step's figures (see `step_figures`)."""
    from contextlib import nullcontext

    from dagster import DagsterInstance

    from spotify_assets.materialize import materialize_range

    with nullcontext(instance) if instance is not None else DagsterInstance.ephemeral() as inst:
        started = time.perf_counter()
        result = materialize_range(settings, first, last, inst, say=lambda _: None)
        seconds = time.perf_counter() - started
        if layers is not None:
            layers.update(step_seconds_by_layer(inst, result.run_id, seconds))
        if per_step is not None:
            per_step.extend(step_figures(inst, result))
    if not result.success:
        failures = [e.message for e in result.all_events if e.is_step_failure]
        raise RuntimeError(f"the Dagster run of {first}..{last} failed: {failures}")
    steps = sum(1 for e in result.all_events if e.is_step_success)
    return seconds, steps


def step_figures(instance, result) -> list[dict]:
    """Each step of a run in order: its seconds, the Spark jobs it ran and the Delta commits it
    made (from its materialisations' metadata), and whether it found its inputs unchanged."""
    from dagster import DagsterEventType

    started: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for entry in instance.all_logs(result.run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            started[event.step_key] = entry.timestamp
        elif event.event_type == DagsterEventType.STEP_SUCCESS:
            seconds[event.step_key] = entry.timestamp - started[event.step_key]
    metadata: dict[str, dict] = {}
    for event in result.get_asset_materialization_events():
        metadata.setdefault(event.step_key, event.materialization.metadata)
    figures = []
    for step, spent in seconds.items():
        meta = metadata.get(step, {})
        figures.append(
            {
                "step": step,
                "seconds": round(spent, 2),
                "spark_jobs": getattr(meta.get("spark_jobs"), "value", None),
                "delta_commits": getattr(meta.get("delta_commits"), "value", None),
                "unchanged": "unchanged_since_run" in meta,
            }
        )
    return figures


def step_table(figures: list[dict]) -> str:
    """The per-step figures as a text table, the slowest first."""
    lines = [f"{'step':32} {'s':>7} {'jobs':>5} {'commits':>7}  unchanged"]
    for f in sorted(figures, key=lambda f: -f["seconds"]):
        jobs, commits = f["spark_jobs"], f["delta_commits"]
        lines.append(
            f"{f['step']:32} {f['seconds']:7.2f} {'-' if jobs is None else jobs:>5} "
            f"{'-' if commits is None else commits:>7}  {'yes' if f['unchanged'] else ''}"
        )
    return "\n".join(lines)


def layer_of(step_key: str) -> str:
    """bronze, silver or gold for an asset's step; checks for a stand-alone check step."""
    if step_key.endswith("_checks"):
        return "checks"
    return next((n for n in ("bronze", "silver", "gold") if step_key.startswith(n)), "other")


def step_seconds_by_layer(instance, run_id: str, run_seconds: float) -> dict[str, float]:
    """Seconds from each step's start to its end, summed by layer (the in-process executor runs
    one step at a time, so they add up; a retried step's includes its wait), and `outside_steps`:
    the rest of the run's time (loading the definitions, planning, the run's own events)."""
    from dagster import DagsterEventType

    started: dict[str, float] = {}
    totals: dict[str, float] = {}
    ends = {DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            started[event.step_key] = entry.timestamp
        elif event.event_type in ends and event.step_key in started:
            layer = layer_of(event.step_key)
            spent = entry.timestamp - started.pop(event.step_key)
            totals[layer] = totals.get(layer, 0.0) + spent
    totals["outside_steps"] = max(run_seconds - sum(totals.values()), 0.0)
    return {k: round(v, 2) for k, v in totals.items()}


def bare_run(settings, first: date, last: date, layers: dict[str, float] | None = None) -> float:
    """The bare PySpark baseline over the same days, in this process's Spark session; fills
    `layers`, when given, with its seconds by layer."""
    from benchmarks import bare_pipeline
    from spotify_assets.definitions import ingestion_catalog
    from spotify_assets.resources import (
        lakehouse_for,
        source_for_this_process,
        spark_for_this_process,
    )

    spark = spark_for_this_process(settings)
    source_db = source_for_this_process(settings)
    sources = ingestion_catalog(settings).tables
    lake = lakehouse_for(settings)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
    started = time.perf_counter()
    bare_pipeline.run(spark, source_db, sources, lake, settings.start_date, start, end, layers)
    return time.perf_counter() - started


def gold_differences(spark, root_a: str, root_b: str) -> dict[str, int]:
    """Rows of each gold table in one lake and not in the other (both ways; 0 when equal)."""
    from spotify_assets.catalog import Layer
    from spotify_assets.lake import delta
    from spotify_assets.resources import Lakehouse

    a, b = Lakehouse(root=root_a), Lakehouse(root=root_b)
    out = {}
    for table in GOLD_TABLES:
        left = delta.read(spark, a.path(Layer.GOLD, table))
        right = delta.read(spark, b.path(Layer.GOLD, table))
        columns = [c for c in left.columns if c not in PROCESSING_COLUMNS]
        left, right = left.select(columns), right.select(columns)
        out[table] = left.exceptAll(right).count() + right.exceptAll(left).count()
    return out


def source_rows(url: str, last_day: date) -> dict[str, int]:
    """Rows of each source table up to the end of last_day: what a run over the range reads."""
    from sqlalchemy import create_engine, text

    end = (last_day + timedelta(days=1)).isoformat()
    queries = {
        "streams": f"SELECT count(*) FROM \"FactStream\" WHERE stream_timestamp < '{end}'",
        "users": 'SELECT count(*) FROM "DimUser"',
        "artists": 'SELECT count(*) FROM "DimArtist"',
        "tracks": 'SELECT count(*) FROM "DimTrack"',
        "dates": 'SELECT count(*) FROM "DimDate"',
    }
    engine = create_engine(url)
    with engine.connect() as conn:
        counts = {name: int(conn.execute(text(sql)).scalar_one()) for name, sql in queries.items()}
    engine.dispose()
    return counts


def noop_step_seconds(steps: int = 40) -> float:
    """Dagster's own cost of a step: a chain of `steps` assets that do nothing, run in process
    against an instance on disk (SQLite storage, as `dagster dev` keeps it), per step."""
    from dagster import AssetsDefinition, DagsterInstance, asset, materialize

    chain: list[AssetsDefinition] = []
    for i in range(steps):
        deps = [chain[-1]] if chain else []

        @asset(name=f"noop_{i}", deps=deps)
        def _noop() -> None:
            return None

        chain.append(_noop)
    with DagsterInstance.local_temp() as instance:
        materialize(chain, instance=instance)  # imports and storage set-up: not counted
        started = time.perf_counter()
        result = materialize(chain, instance=instance)
        seconds = time.perf_counter() - started
    assert result.success
    return seconds / steps


# Workers: each in a fresh process, so a JVM start and its memory are the measurement's own.


def worker_startup(args: argparse.Namespace) -> dict:
    """Loading the definitions (imports included, as a code server does), the first Spark
    session in a fresh JVM, a second session on the same JVM, and Dagster's per-step cost."""
    from benchmarks.measure import PeakMemory

    root = Path(args.root)
    started = time.perf_counter()
    from spotify_assets.definitions import build_definitions  # Dagster, PySpark: the imports

    settings = settings_for(root, args.url)
    imported = time.perf_counter() - started
    build_definitions(settings)
    defs_seconds = time.perf_counter() - started
    from spotify_assets.spark.session import SparkOptions, get_session, stop_session

    with PeakMemory() as memory:
        _, first = get_session(SparkOptions.from_settings(settings))
    stop_session()
    _, second = get_session(SparkOptions.from_settings(settings))
    stop_session()
    return {
        "import_seconds": round(imported, 2),
        "definitions_load_seconds": round(defs_seconds, 2),
        "spark_first_session_seconds": round(first, 2),
        "spark_second_session_seconds": round(second, 2),
        "spark_idle_session_rss_mib": round(memory.peak_mib),
        "dagster_noop_step_ms": round(noop_step_seconds() * 1000, 1),
    }


def worker_throughput(args: argparse.Namespace) -> dict:
    """One Dagster run over the whole seeded range into an empty lake, end to end: the Spark
    session's start included, as a scheduled run pays it."""
    from benchmarks.measure import PeakMemory
    from spotify_assets.resources import spark_for_this_process

    settings = settings_for(Path(args.root), args.url, **_engine(args))
    first, last = START, START + timedelta(days=args.days - 1)
    counts = source_rows(args.url, last)
    rows = sum(counts.values())
    print(f"  {rows:,} source rows ({counts['streams']:,} streams)", flush=True)
    with PeakMemory() as memory:
        started = time.perf_counter()
        spark_for_this_process(settings)
        session_seconds = time.perf_counter() - started
        run_seconds, steps = dagster_run(settings, first, last)
        total = time.perf_counter() - started
    print(f"  pipeline: {total:.1f} s ({steps} steps), peak {memory.peak_mib:,.0f} MiB", flush=True)
    return {
        "source_rows": rows,
        "source_rows_by_table": counts,
        "steps": steps,
        "end_to_end_seconds": round(total, 2),
        "spark_session_seconds": round(session_seconds, 2),
        "run_seconds": round(run_seconds, 2),
        "peak_rss_mib": round(memory.peak_mib),
        "driver_memory": args.driver_memory,
    }


def worker_copy(args: argparse.Namespace) -> dict:
    """The machine's limit on the same rows, in a fresh process of the same configuration:
    Spark reading every bronze table of the lake and writing it as plain Parquet, nothing else."""
    from benchmarks.measure import PeakMemory
    from spotify_assets.catalog import Layer
    from spotify_assets.lake import delta
    from spotify_assets.resources import lakehouse_for, spark_for_this_process

    root = Path(args.root)
    settings = settings_for(root, args.url, **_engine(args))
    lake = lakehouse_for(settings)
    copied = 0
    with PeakMemory() as memory:
        started = time.perf_counter()
        spark = spark_for_this_process(settings)
        for entity in ("fact_stream", "dim_user", "dim_artist", "dim_track", "dim_date"):
            frame = delta.read(spark, lake.path(Layer.BRONZE, entity))
            frame.write.mode("overwrite").parquet(str(root / "parquet_copy" / entity))
            copied += spark.read.parquet(str(root / "parquet_copy" / entity)).count()
        seconds = time.perf_counter() - started
    shutil.rmtree(root / "parquet_copy", ignore_errors=True)
    print(f"  Spark Parquet copy of the same rows: {seconds:.1f} s", flush=True)
    return {
        "copied_rows": copied,
        "parquet_copy_seconds": round(seconds, 2),
        "parquet_copy_peak_rss_mib": round(memory.peak_mib),
    }


def _engine(args: argparse.Namespace) -> dict[str, str]:
    return {"SPARK_DRIVER_MEMORY": args.driver_memory, "SPARK_SHUFFLE_PARTITIONS": "8"}


WORKERS = {"startup": worker_startup, "throughput": worker_throughput, "copy": worker_copy}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="worker", required=True)
    for name in WORKERS:
        sp = sub.add_parser(name)
        sp.add_argument("--root", required=True)
        sp.add_argument("--url", required=True)
        sp.add_argument("--days", type=int, default=10)
        sp.add_argument("--driver-memory", default="2g")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    figures = WORKERS[args.worker](args)
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
