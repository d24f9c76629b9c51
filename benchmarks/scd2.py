"""SCD2 benchmark: the gold dimension step when 1% of the keys changed, beside one full scan of
the dimension (reading every column of every row), as a ratio; and beside a full rebuild.

    .venv/bin/python -m benchmarks.scd2 --keys 1000000      # the issue's size
    .venv/bin/python -m benchmarks.scd2 --keys 20000        # quick

Builds a silver `dim_user_versions` change log of `keys` users (a fifth of them with a second,
tracked version), materialises gold/dim_user through its Dagster asset, then per repetition
changes `--changed` of the keys (new tracked versions, untracked corrections, late events
before a key's first version), syncs the change log, and times the asset step following the
changed keys; the full scan is timed in the same repetition, and so is a rewrite of the table
(every row read and written to a new table): with no deletion vectors, a MERGE rewrites every
file holding a changed key, and 1% of keys spread by hash sit in every file, so the rewrite is
the least such a MERGE can cost. Ends by checking the incremental table equals a full rebuild,
row for row. Writes benchmarks/results/scd2.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.measure import machine

RESULTS = Path(__file__).parent / "results"
EPOCH = "TIMESTAMP'2026-01-01 00:00:00'"


def change_log(spark, keys: int, changed: float, round_: int):
    """All events of the log after `round_` rounds of changes; round 0 is the initial load."""
    from pyspark.sql import functions as F

    base = spark.range(keys).select(
        (F.col("id") + 1).cast("int").alias("user_id"),
        F.concat(F.lit("user "), F.col("id")).alias("user_name"),
        F.element_at(F.array(*map(F.lit, ["SE", "NO", "DK", "FI"])), (F.col("id") % 4 + 1).cast("int")).alias("country"),  # noqa: E501
        F.element_at(F.array(*map(F.lit, ["Free", "Premium", "Family", "Student"])), (F.col("id") % 4 + 1).cast("int")).alias("subscription_type"),  # noqa: E501
        F.expr(f"{EPOCH} + make_interval(0, 0, 0, 0, 0, CAST(id % 1440 AS INT), 0)").alias("updated_at"),  # noqa: E501
    )  # fmt: skip
    second = base.where(F.col("user_id") % 5 == 0).select(
        "user_id", "user_name", "country", F.lit("Premium").alias("subscription_type"),
        (F.col("updated_at") + F.expr("INTERVAL 2 DAYS")).alias("updated_at"),
    )  # fmt: skip
    events = base.unionByName(second)
    for r in range(1, round_ + 1):
        # A different 1% each round, spread over the whole key range (every file is touched).
        picked = base.where(F.xxhash64(F.col("user_id"), F.lit(r)) % int(1 / changed) == 0)
        kind = F.col("user_id") % 3
        events = events.unionByName(
            picked.select(
                "user_id",
                F.when(kind == 1, F.concat(F.col("user_name"), F.lit(f" r{r}")))
                .otherwise(F.col("user_name"))
                .alias("user_name"),
                "country",
                F.when(kind == 0, F.lit("Student"))
                .otherwise(F.col("subscription_type"))
                .alias("subscription_type"),
                F.when(kind == 2, F.col("updated_at") - F.expr(f"INTERVAL {r} HOURS"))
                .otherwise(F.col("updated_at") + F.expr(f"INTERVAL {10 + r} DAYS"))
                .alias("updated_at"),
            )
        )
    return events.withColumn("_ingested_at", F.lit(datetime(2026, 2, 1)))


def timed_run(asset, resources, full_refresh: bool = False) -> tuple[float, dict]:
    from dagster import materialize

    t = time.perf_counter()
    result = materialize(
        [asset],
        resources=resources,
        run_config={"ops": {"gold__dim_user": {"config": {"full_refresh": full_refresh}}}},
    )
    seconds = time.perf_counter() - t
    assert result.success
    [event] = result.get_asset_materialization_events()
    return seconds, {k: v.value for k, v in event.materialization.metadata.items()}


def merge_figures(path: str) -> tuple[float, int]:
    """Delta's own execution time of the table's last commit (the MERGE), and the files it
    rewrote."""
    from spotify_assets.lake import delta

    (row,) = delta.history(path, 1)
    assert row["operation"] == "MERGE", row
    metrics = row["operationMetrics"]
    return int(metrics["executionTimeMs"]) / 1000, int(metrics["numTargetFilesRemoved"])


def files_of(path: str) -> int:
    from deltalake import DeltaTable

    return len(DeltaTable(path).file_uris())


def rewrite(spark, path: str, into: Path) -> float:
    """Read every row and write it as a new Delta table: the least a MERGE costs when the
    rows it changes sit in every file (no deletion vectors: each such file is rewritten)."""
    t = time.perf_counter()
    spark.read.format("delta").load(path).write.format("delta").mode("overwrite").save(str(into))
    return time.perf_counter() - t


def full_scan(spark, path: str) -> float:
    """Read every column of every row (the largest hash over all of them)."""
    from pyspark.sql import functions as F

    t = time.perf_counter()
    table = spark.read.format("delta").load(path)
    table.agg(F.max(F.xxhash64(*table.columns))).collect()
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for the JSON")
    parser.add_argument("--json", action="store_true", help="end with the figures as one line")
    args = parser.parse_args(argv)

    from spotify_assets.catalog import Layer
    from spotify_assets.defs.gold import build_gold_dimension
    from spotify_assets.lake import change_log as log
    from spotify_assets.resources import build_resources
    from spotify_assets.spark.session import stop_session
    from spotify_assets_tests.conftest import make_settings

    work = Path(tempfile.mkdtemp(prefix="bench-scd2-"))
    settings = make_settings(work, SPARK_DRIVER_MEMORY="6g", SPARK_SHUFFLE_PARTITIONS="8")
    resources = build_resources(settings)
    spark = resources["spark"].session()
    lakehouse = resources["lakehouse"]
    log_path = lakehouse.path(Layer.SILVER, "dim_user_versions")
    gold_path = lakehouse.path(Layer.GOLD, "dim_user")
    asset = build_gold_dimension("dim_user")
    keys_sync = ["user_id", "updated_at"]

    print(f"Change log of {args.keys:,} users...")
    log.sync(spark, change_log(spark, args.keys, args.changed, 0), log_path, keys_sync)
    build_s, meta = timed_run(asset, resources)
    rows = meta["dagster/row_count"]
    print(f"  first build (full): {build_s:.1f} s, {rows:,} versions")
    timed_run(asset, resources)  # nothing changed: warms the incremental path's code

    steps, merges, scans, syncs, keys_changed, opened, builds = [], [], [], [], [], [], []
    rewrites, rewritten, files = [], [], []
    for r in range(1, args.repeats + 1):
        t = time.perf_counter()
        synced = log.sync(spark, change_log(spark, args.keys, args.changed, r), log_path, keys_sync)
        syncs.append(time.perf_counter() - t)
        scans.append(full_scan(spark, gold_path))
        rewrites.append(rewrite(spark, gold_path, work / "rewrite"))
        files.append(files_of(gold_path))
        seconds, meta = timed_run(asset, resources)
        # The step chooses by cost: a MERGE of the changed keys, or a rebuild of a small table.
        builds.append(f"{meta['build']} ({meta['build_reason']})")
        steps.append(seconds)
        merged = meta["build"] == "changed keys"
        merge_s, removed = merge_figures(gold_path) if merged else (0.0, files[-1])
        merges.append(merge_s)
        rewritten.append(removed)
        keys_changed.append(meta["keys_changed"] or 0)
        opened.append(meta["versions_opened"])
        print(
            f"  round {r}: {synced.inserted:,} events added to the log, {builds[-1]}, "
            f"{keys_changed[-1]:,} keys changed, {meta['versions_opened']:,} versions "
            f"opened, {meta['versions_closed']:,} closed; step {seconds:.1f} s, "
            f"MERGE statement {merges[-1]:.1f} s, "
            f"full scan {scans[-1]:.1f} s, rewrite {rewrites[-1]:.1f} s, "
            f"{rewritten[-1]} of {files[-1]} files rewritten"
        )
    incremental = spark.read.format("delta").load(gold_path).localCheckpoint()
    rebuild_s, _ = timed_run(asset, resources, full_refresh=True)
    rebuilt = spark.read.format("delta").load(gold_path)
    different = incremental.exceptAll(rebuilt).count() + rebuilt.exceptAll(incremental).count()
    stop_session()

    step, scan = statistics.median(steps), statistics.median(scans)
    figures = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "dimension_keys": args.keys,
        "dimension_versions": rows,
        "changed_fraction": args.changed,
        "keys_changed_per_round": keys_changed,
        "build_per_round": builds,
        "versions_opened_per_round": opened,
        "repetitions_median_of": args.repeats,
        "incremental_step_seconds": round(step, 2),
        "full_scan_seconds": round(scan, 2),
        "incremental_step_ratio_to_full_scan": round(step / scan, 2),
        "merge_statement_seconds": round(statistics.median(merges), 2),
        "merge_statement_ratio_to_full_scan": round(statistics.median(merges) / scan, 2),
        "rewrite_seconds": round(statistics.median(rewrites), 2),
        "rewrite_ratio_to_full_scan": round(statistics.median(rewrites) / scan, 2),
        "files_rewritten_per_round": rewritten,
        "files_in_table_per_round": files,
        "full_rebuild_step_seconds": round(rebuild_s, 2),
        "full_rebuild_ratio_to_full_scan": round(rebuild_s / scan, 2),
        "silver_change_log_sync_seconds": round(statistics.median(syncs), 2),
        "rows_differing_from_a_rebuild": different,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "scd2.json").write_text(json.dumps(figures, indent=2) + "\n")
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key.ljust(width)}  {value}")
    if args.json:
        print(json.dumps(figures), flush=True)
    return 0 if different == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
