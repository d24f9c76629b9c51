"""`make bench`: every benchmark in one run, each figure a ratio or a rate against a baseline
measured in the same run; prints a table, writes benchmarks/results/suite.json and the plots.

    .venv/bin/python -m benchmarks.suite                 # the full run (about an hour on 2 cores)
    .venv/bin/python -m benchmarks.suite --smoke --results /tmp/bench   # what CI runs (minutes)

Measured, on sources the simulator seeds into a throw-away PostgreSQL server:
1. start-up: loading the definitions, the first and a second Spark session, Dagster's own cost
   per step;
2. orchestration overhead: the whole graph for one day through Dagster against
   benchmarks/bare_pipeline.py (the same transformations as a plain PySpark script) in the same
   Spark session, alternating, medians of three, at two day sizes; their gold tables must be
   equal row for row;
3. backfill efficiency: 30 days as one run against one day of the same source (alternating,
   each from a settled JVM);
4. incremental independence: one day's run on a lake holding 365 days of history against the
   same on 7 days (equal daily volume; the median of the next days, each day run on both lakes
   in alternating order from a settled JVM);
5. throughput at scales 1, 100 and 1000 (10,000 streams per scale: 10M at 1000): source rows
   per second end to end in a fresh process, its peak memory (Python and JVM), against Spark
   copying the same rows as plain Parquet in that process;
6. ingestion and SCD2: benchmarks/ingestion.py and benchmarks/scd2.py, their headline figures
   in the same table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from benchmarks import measure
from benchmarks.pipeline import START


@dataclass(frozen=True)
class Sizes:
    """How big each measurement is: the full run's, or the smoke run's (CI, minutes)."""

    repeats: int
    overhead_repeats: int  # 3 or more: the median then ignores one disturbed run (a shared VM)
    backfill_repeats: int
    warm_up: bool  # a first run of each kind in the JVM, not counted (JIT, class loading)
    scale: int  # x 500 users, artists and tracks, for items 2 to 4
    overhead_streams_per_day: tuple[int, ...]  # item 2, one measurement per day size
    backfill_days: int
    backfill_streams_per_day: int
    history_long: int
    history_short: int
    history_streams_per_day: int
    measured_days: int
    throughput_scales: tuple[int, ...]
    throughput_streams_per_scale: int
    throughput_days: int
    driver_memory: str
    ingestion_scale: int
    scd2_keys: int


FULL = Sizes(
    repeats=2,
    overhead_repeats=3,
    backfill_repeats=2,
    warm_up=True,
    scale=20,  # 10,000 users, artists and tracks
    overhead_streams_per_day=(10_000, 100_000),
    backfill_days=30,
    backfill_streams_per_day=5_000,
    history_long=365,
    history_short=7,
    history_streams_per_day=2_000,
    measured_days=2,
    throughput_scales=(1, 100, 1000),
    throughput_streams_per_scale=10_000,  # 10M streams at scale 1000
    throughput_days=10,
    driver_memory="8g",
    ingestion_scale=1000,
    scd2_keys=1_000_000,
)
# Keeps every part of the suite working (CI, in make test-all): each part once, at the smallest
# sizes that still exercise it (a range of several days, a history longer than another); its
# figures mean nothing.
SMOKE = Sizes(
    repeats=1,
    overhead_repeats=1,
    backfill_repeats=1,
    warm_up=False,
    scale=1,
    overhead_streams_per_day=(100,),
    backfill_days=3,
    backfill_streams_per_day=20,
    history_long=3,
    history_short=2,
    history_streams_per_day=20,
    measured_days=1,
    throughput_scales=(1,),
    throughput_streams_per_scale=10_000,
    throughput_days=2,
    driver_memory="2g",
    ingestion_scale=1,
    scd2_keys=2_000,
)
TARGETS = {
    "orchestration_overhead": 1.2,
    "backfill_vs_1_day": 3.0,
    "long_vs_short": 1.3,
    "next_day_vs_build": 0.5,
    "no_change_vs_day": 0.25,
}


def seed(url: str, scale: int, days: int, streams_per_scale: int, say) -> None:
    from spotify_assets.source import simulator
    from spotify_assets.source.resource import SourceDatabase

    engine = SourceDatabase(url=url).engine
    simulator.seed(
        engine, seed_value=7, scale=scale, start=START, days=days,
        streams_per_scale=streams_per_scale, echo=lambda m: say(f"  {m}"),
    )  # fmt: skip
    engine.dispose()


def startup(url: str, work: Path, sizes: Sizes, say) -> dict:
    say("bench: start-up (fresh processes)")
    runs = [
        measure.run_worker(
            "benchmarks.pipeline", ["startup", "--root", str(work / f"s{i}"), "--url", url], say
        )
        for i in range(sizes.repeats)
    ]
    return {k: round(measure.median([r[k] for r in runs]), 2) for k in runs[0]}


def overhead(server: str, work: Path, sizes: Sizes, say) -> dict:
    """Item 2 for each day size, in this process's Spark session."""
    from benchmarks import pipeline
    from spotify_assets.resources import spark_for_this_process

    runs = []
    for per_day in sizes.overhead_streams_per_day:
        url = measure.database(server, f"overhead_{per_day}")
        say(f"bench: orchestration overhead, one day of {per_day:,} streams")
        seed(url, sizes.scale, 2, per_day * 2 // sizes.scale, say)
        spark = spark_for_this_process(pipeline.settings_for(work / "session", url))
        at = work / str(per_day)
        if sizes.warm_up and not runs:  # each kind once in this JVM, uncounted: JIT, classes
            pipeline.bare_run(pipeline.settings_for(at / "warm_bare", url), START, START)
            pipeline.dagster_run(pipeline.settings_for(at / "warm_dagster", url), START, START)
        dagster: list[float] = []
        bare: list[float] = []
        steps = 0
        layers: list[dict[str, dict[str, float]]] = []
        for i in range(sizes.overhead_repeats):
            layers.append({"dagster": {}, "bare": {}})
            # Which kind goes first alternates (DB, BD, DB...), so a drift of the JVM or the
            # host over the repeats weighs on both alike; each starts from a settled JVM.
            for kind in ("dagster", "bare") if i % 2 == 0 else ("bare", "dagster"):
                pipeline.settle(spark)
                settings = pipeline.settings_for(at / f"{kind[0]}{i}", url)
                timed = layers[-1][kind]
                if kind == "dagster":
                    seconds, steps = pipeline.dagster_run(settings, START, START, layers=timed)
                    dagster.append(seconds)
                else:
                    bare.append(pipeline.bare_run(settings, START, START, layers=timed))
            say(f"  Dagster {dagster[-1]:.1f} s, bare PySpark {bare[-1]:.1f} s")
        by_layer = layers[sorted(range(len(dagster)), key=dagster.__getitem__)[len(dagster) // 2]]
        say(f"  by layer, median repeat: Dagster {by_layer['dagster']}, bare {by_layer['bare']}")
        differences = pipeline.gold_differences(
            spark, str(at / "d0" / "lake"), str(at / "b0" / "lake")
        )
        say(f"  gold rows differing between the two lakes: {differences}")
        d, b = (measure.median(x) for x in (dagster, bare))
        runs.append(
            {
                "streams_per_day": pipeline.source_rows(url, START)["streams"],
                "dagster_seconds": round(d, 2),
                "bare_seconds": round(b, 2),
                "steps": steps,
                "orchestration_overhead": round(d / b, 2),
                "extra_seconds_per_step": round((d - b) / steps, 2),
                "dagster_seconds_each": [round(x, 2) for x in dagster],
                "bare_seconds_each": [round(x, 2) for x in bare],
                "seconds_by_layer_median_repeat": by_layer,
                "gold_rows_differing_from_bare": sum(differences.values()),
            }
        )
        shutil.rmtree(at, ignore_errors=True)
    return {"overhead": runs}


def backfill(server: str, work: Path, sizes: Sizes, say) -> dict:
    """Item 3: the whole graph over N days as one run against one day, each into an empty lake,
    from a settled JVM, the order alternating over the repeats."""
    from benchmarks import pipeline
    from spotify_assets.resources import spark_for_this_process

    days = sizes.backfill_days
    url = measure.database(server, "backfill")
    say(f"bench: backfill, {days} days against one")
    seed(url, sizes.scale, days, sizes.backfill_streams_per_day * days // sizes.scale, say)
    spark = spark_for_this_process(pipeline.settings_for(work / "session", url))
    last = START + timedelta(days=days - 1)
    if sizes.warm_up:  # once in this JVM, uncounted: JIT and class loading weigh on no run
        pipeline.dagster_run(pipeline.settings_for(work / "warm", url), START, START)
    seconds: dict[str, list[float]] = {"one": [], "many": []}
    for i in range(sizes.backfill_repeats):
        for kind in ("one", "many") if i % 2 == 0 else ("many", "one"):
            pipeline.settle(spark)
            settings = pipeline.settings_for(work / f"{kind}{i}", url)
            seconds[kind].append(
                pipeline.dagster_run(settings, START, START if kind == "one" else last)[0]
            )
        one, many = seconds["one"][-1], seconds["many"][-1]
        say(f"  one day {one:.1f} s, {days} days as one run {many:.1f} s")
    o, m = measure.median(seconds["one"]), measure.median(seconds["many"])
    return {
        "backfill": {
            "days": days,
            "streams_per_day": sizes.backfill_streams_per_day,
            "one_day_seconds": round(o, 2),
            "backfill_seconds": round(m, 2),
            "backfill_vs_1_day": round(m / o, 2),
            "per_day_loop_estimate_vs_1_day": days,
        }
    }


def incremental(server: str, work: Path, sizes: Sizes, say) -> dict:
    """Item 4 and the incremental targets: the next days' runs on a lake with a long history
    against a short one; the next day against a first build of the short history; the same
    day run again with nothing changed against that day's first run. Both histories are built
    first; then each next day runs on both lakes, from a settled JVM, the order alternating from
    day to day, so a drift of the host weighs on both alike. Each lake's runs share a Dagster
    instance, as a user's do: a step finds its own last run there. The short lake's last day
    and no-change runs are printed step by step (seconds, Spark jobs, Delta commits)."""
    from dagster import DagsterInstance

    from benchmarks import pipeline
    from spotify_assets.resources import spark_for_this_process
    from spotify_assets.source import simulator
    from spotify_assets.source.resource import SourceDatabase

    figures: dict = {}
    lakes = {}
    for label, history in (("short", sizes.history_short), ("long", sizes.history_long)):
        url = measure.database(server, f"history_{label}")
        streams_per_scale = sizes.history_streams_per_day * history // sizes.scale
        say(f"bench: incremental, {history} days of history")
        seed(url, sizes.scale, history, streams_per_scale, say)
        settings = pipeline.settings_for(work / f"history_{label}", url)
        instance = DagsterInstance.ephemeral()
        built, _ = pipeline.dagster_run(
            settings, START, START + timedelta(days=history - 1), instance=instance
        )
        say(f"  history built in one run: {built:.1f} s")
        figures[f"history_{history}_days_build_seconds"] = round(built, 2)
        lakes[label] = (history, settings, SourceDatabase(url=url).engine, instance)
    spark = spark_for_this_process(lakes["short"][1])
    runs: dict[str, list[float]] = {"short": [], "long": []}
    unchanged: list[float] = []
    steps: dict[str, list[dict]] = {}
    for i in range(sizes.measured_days):
        for label in ("short", "long") if i % 2 == 0 else ("long", "short"):
            history, settings, engine, instance = lakes[label]
            # The next day as a product makes it: new streams, users, artists and tracks, and
            # changed ones (a seeded history has streams of users created later: rebuilds).
            simulator.advance(engine, days=1, echo=lambda _: None)
            day = START + timedelta(days=history + i)
            pipeline.settle(spark)
            per_step: list[dict] = []  # printed for the short lake only
            if label == "short":
                steps["day"] = per_step
            seconds, _ = pipeline.dagster_run(
                settings, day, day, instance=instance, per_step=per_step
            )
            runs[label].append(seconds)
            say(f"  {day} on {history + i} days of history: {runs[label][-1]:.1f} s")
            if label == "short":  # the same day again, nothing changed in the source
                pipeline.settle(spark)
                steps["no_change"] = []
                again, _ = pipeline.dagster_run(
                    settings, day, day, instance=instance, per_step=steps["no_change"]
                )
                unchanged.append(again)
                say(f"  {day} again, nothing changed: {again:.1f} s")
    for name, title in (("day", "the next day"), ("no_change", "the same day, nothing changed")):
        say(f"  steps of {title} (short history):\n{pipeline.step_table(steps[name])}")
        figures[f"steps_{name}_run"] = steps[name]
    for label, history in (("short", sizes.history_short), ("long", sizes.history_long)):
        figures[f"history_{history}_days_day_run_seconds"] = round(measure.median(runs[label]), 2)
    short_day = figures[f"history_{sizes.history_short}_days_day_run_seconds"]
    figures["history_streams_per_day"] = sizes.history_streams_per_day
    figures["long_days"], figures["short_days"] = sizes.history_long, sizes.history_short
    figures["long_vs_short"] = round(
        figures[f"history_{sizes.history_long}_days_day_run_seconds"] / short_day, 2
    )
    figures["next_day_vs_build"] = round(
        short_day / figures[f"history_{sizes.history_short}_days_build_seconds"], 2
    )
    figures["no_change_run_seconds"] = round(measure.median(unchanged), 2)
    figures["no_change_vs_day"] = round(figures["no_change_run_seconds"] / short_day, 2)
    for _, _, _, instance in lakes.values():
        instance.dispose()
    return figures


def throughput(server: str, work: Path, sizes: Sizes, say) -> dict:
    """Item 5: each scale in a fresh process."""
    runs = []
    for scale in sizes.throughput_scales:
        url = measure.database(server, f"scale_{scale}")
        say(f"bench: throughput at scale {scale}")
        seed(url, scale, sizes.throughput_days, sizes.throughput_streams_per_scale, say)
        run = measure.run_worker(
            "benchmarks.pipeline",
            ["throughput", "--root", str(work / f"scale_{scale}"), "--url", url,
             "--days", str(sizes.throughput_days), "--driver-memory", sizes.driver_memory],
            say,
        )  # fmt: skip
        run |= measure.run_worker(
            "benchmarks.pipeline",
            ["copy", "--root", str(work / f"scale_{scale}"), "--url", url,
             "--driver-memory", sizes.driver_memory],
            say,
        )  # fmt: skip
        shutil.rmtree(work / f"scale_{scale}", ignore_errors=True)
        run["scale"] = scale
        run["rows_per_second"] = round(run["source_rows"] / run["end_to_end_seconds"])
        run["parquet_copy_rows_per_second"] = round(
            run["copied_rows"] / run["parquet_copy_seconds"]
        )
        run["ratio_to_parquet_copy"] = round(
            run["rows_per_second"] / run["parquet_copy_rows_per_second"], 3
        )
        runs.append(run)
    return {"throughput": runs}


def component(module: str, args: list[str], results: Path, say) -> dict:
    """benchmarks/ingestion.py or scd2.py in their own process, into the same results folder."""
    measure.run_worker(module, [*args, "--results", str(results), "--json"], say)
    return json.loads((results / f"{module.rsplit('.', 1)[1]}.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="the smallest sizes (CI)")
    parser.add_argument("--results", type=Path, default=measure.RESULTS)
    parser.add_argument(
        "--only", default="startup,overhead,backfill,incremental,throughput,ingestion,scd2",
        help="comma-separated parts to run (the others keep their last figures)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    parts = set(args.only.split(","))
    say = print
    from benchmarks import report
    from spotify_assets_tests.pg_server import throwaway_postgres

    figures = report.load(args.results) if parts != report.PARTS else {}
    figures.update({"date": measure.now(), "machine": measure.machine(), "smoke": args.smoke})
    work = Path(tempfile.mkdtemp(prefix="bench-suite-"))
    try:
        with throwaway_postgres() as (server, _):

            def save() -> None:  # after each part: a long run stopped early keeps its figures
                measure.write_results(args.results, "suite", figures)

            if "startup" in parts:
                figures["startup"] = startup(
                    measure.database(server, "startup"), work / "startup", sizes, say
                )
                save()
            if "overhead" in parts:
                figures.update(overhead(server, work / "overhead", sizes, say))
                save()
            if "backfill" in parts:
                figures.update(backfill(server, work / "backfill", sizes, say))
                save()
            if "incremental" in parts:
                figures["incremental"] = incremental(server, work / "incremental", sizes, say)
                save()
            if "throughput" in parts:
                figures.update(throughput(server, work / "throughput", sizes, say))
                save()
        if "ingestion" in parts:
            say("bench: ingestion (benchmarks/ingestion.py)")
            figures["ingestion"] = component(
                "benchmarks.ingestion", ["--scale", str(sizes.ingestion_scale)], args.results, say
            )
        if "scd2" in parts:
            say("bench: SCD2 merge (benchmarks/scd2.py)")
            scd2_args = ["--keys", str(sizes.scd2_keys), "--repeats", str(sizes.repeats)]
            figures["scd2"] = component("benchmarks.scd2", scd2_args, args.results, say)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name in ("ingestion", "scd2"):  # not run this time: their own last run's figures
        if name not in parts and (args.results / f"{name}.json").exists():
            figures[name] = json.loads((args.results / f"{name}.json").read_text())
    measure.write_results(args.results, "suite", figures)
    table = report.table(figures, TARGETS)
    print(table)
    (args.results / "suite.md").write_text(table + "\n")
    report.plots(figures, TARGETS, args.results)
    say(f"figures: {args.results / 'suite.json'}, plots: {args.results}/*.png")
    differing = sum(run["gold_rows_differing_from_bare"] for run in figures.get("overhead", []))
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
