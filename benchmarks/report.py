"""The suite's table (printed, and written as suite.md) and its plots (PNGs for the docs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PARTS = {"startup", "overhead", "backfill", "incremental", "throughput", "ingestion", "scd2"}


def load(results: Path) -> dict[str, Any]:
    """The last run's figures, so a partial run (--only) keeps the other parts."""
    path = results / "suite.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _verdict(value: float, target: float) -> str:
    return "met" if value <= target else "MISSED"


def table(f: dict[str, Any], targets: dict[str, float]) -> str:
    """Markdown: measure, figure, baseline measured in the same run, and the target."""
    rows: list[tuple[str, str, str, str]] = []
    if s := f.get("startup"):
        rows += [
            (
                "Load the definitions (imports included)",
                f"{s['definitions_load_seconds']} s",
                "",
                "",
            ),
            ("First Spark session (JVM start)", f"{s['spark_first_session_seconds']} s", "", ""),
            ("Second Spark session, same JVM", f"{s['spark_second_session_seconds']} s", "", ""),
            (
                "Dagster's own cost per step (no-op assets)",
                f"{s['dagster_noop_step_ms']} ms",
                "",
                "",
            ),
        ]
    for o in f.get("overhead", []):
        t = targets["orchestration_overhead"]
        rows += [
            (
                f"Orchestration overhead: whole graph, one day of {o['streams_per_day']:,} "
                f"streams, {o['steps']} steps",
                f"{o['orchestration_overhead']}x ({o['dagster_seconds']} s)",
                f"bare PySpark {o['bare_seconds']} s",
                f"<= {t}x: {_verdict(o['orchestration_overhead'], t)}",
            ),
            *_by_layer(o.get("seconds_by_layer_median_repeat")),
            (
                "  gold rows differing from the bare script's",
                str(o["gold_rows_differing_from_bare"]),
                "",
                "must be 0",
            ),
        ]
    if b := f.get("backfill"):
        t = targets["backfill_vs_1_day"]
        rows.append(
            (
                f"Backfill: {b['days']} days ({b['streams_per_day']:,} streams a day) as one run",
                f"{b['backfill_vs_1_day']}x ({b['backfill_seconds']} s)",
                f"one day {b['one_day_seconds']} s",
                f"<= {t}x: {_verdict(b['backfill_vs_1_day'], t)} (a loop of days: {b['days']}x)",
            )
        )
    if i := f.get("incremental"):
        t = targets["long_vs_short"]
        long, short = i["long_days"], i["short_days"]
        rows.append(
            (
                f"Incremental: one day ({i['history_streams_per_day']:,} streams) on {long} days "
                "of history",
                f"{i['long_vs_short']}x ({i[f'history_{long}_days_day_run_seconds']} s)",
                f"on {short} days {i[f'history_{short}_days_day_run_seconds']} s",
                f"<= {t}x: {_verdict(i['long_vs_short'], t)}",
            )
        )
        if "next_day_vs_build" in i:
            t = targets["next_day_vs_build"]
            rows.append(
                (
                    f"Next day on {short} days of history, against building those {short} days",
                    f"{i['next_day_vs_build']}x ({i[f'history_{short}_days_day_run_seconds']} s)",
                    f"build {i[f'history_{short}_days_build_seconds']} s",
                    f"<= {t}x: {_verdict(i['next_day_vs_build'], t)}",
                )
            )
            t = targets["no_change_vs_day"]
            rows.append(
                (
                    "The same day again, nothing changed, against its first run",
                    f"{i['no_change_vs_day']}x ({i['no_change_run_seconds']} s)",
                    f"first run {i[f'history_{short}_days_day_run_seconds']} s",
                    f"<= {t}x: {_verdict(i['no_change_vs_day'], t)}",
                )
            )
    for run in f.get("throughput", []):
        rows.append(
            (
                f"Throughput, scale {run['scale']}: {run['source_rows']:,} source rows "
                f"({run['source_rows_by_table']['streams']:,} streams), peak "
                f"{run['peak_rss_mib']:,} MiB",
                f"{run['rows_per_second']:,} rows/s ({run['end_to_end_seconds']} s)",
                f"Spark Parquet copy {run['parquet_copy_rows_per_second']:,} rows/s",
                f"{run['ratio_to_parquet_copy']} of the copy",
            )
        )
    if g := f.get("ingestion"):
        rows.append(
            (
                f"Ingestion: {g['rows']:,} stream rows, source to staged Parquet (run of "
                f"{g['date'][:10]})",
                f"{g['extraction_rows_per_s']:,} rows/s",
                f"PostgreSQL COPY {g['copy_to_file_rows_per_s']:,} rows/s",
                f"{g['extraction_ratio_to_copy']} of COPY",
            )
        )
        rows.append(
            (
                "Ingestion: the bronze step (into Delta)",
                f"{g['bronze_asset_step_rows_per_s']:,} rows/s",
                f"Spark Parquet copy {g['spark_parquet_copy_rows_per_s']:,} rows/s",
                f"{g['bronze_asset_step_ratio_to_spark_parquet_copy']} of the copy",
            )
        )
    if c := f.get("scd2"):
        rows.append(
            (
                f"SCD2: {c['dimension_keys']:,} keys, {c['changed_fraction']:.0%} changed (run of "
                f"{c['date'][:10]})",
                f"{c['incremental_step_seconds']} s ({c['incremental_step_ratio_to_full_scan']}x "
                "a scan)",
                f"full scan {c['full_scan_seconds']} s; rebuild {c['full_rebuild_step_seconds']} s",
                f"{c['rows_differing_from_a_rebuild']} rows differ from a rebuild",
            )
        )
    head = ("Measure", "Figure", "Baseline (same run)", "Target / ratio")
    lines = [
        f"Benchmarks of {f.get('date', '?')} on {f.get('machine', '?')}"
        + (" (smoke sizes)" if f.get("smoke") else ""),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]
    return "\n".join(lines)


def plots(f: dict[str, Any], targets: dict[str, float], results: Path) -> list[Path]:
    """ratios.png (each ratio against its target) and throughput.png (rows per second and peak
    memory per scale, beside the Parquet copy)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    present: dict[str, tuple[float, float]] = {}
    for o in f.get("overhead", []):
        present[f"orchestration\n(1 day, {o['streams_per_day']:,}\nstreams, vs bare)"] = (
            o["orchestration_overhead"], targets["orchestration_overhead"])  # fmt: skip
    if b := f.get("backfill"):
        present[f"backfill\n({b['days']} days vs 1)"] = (
            b["backfill_vs_1_day"], targets["backfill_vs_1_day"])  # fmt: skip
    if i := f.get("incremental"):
        present[f"incremental\n({i['long_days']} vs {i['short_days']}\ndays of history)"] = (
            i["long_vs_short"], targets["long_vs_short"])  # fmt: skip
    if present:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        names = list(present)
        values = [v for v, _ in present.values()]
        met = [v <= t for v, t in present.values()]  # a missed target shows in another colour
        bars = ax.bar(names, values, color=["#1DB954" if ok else "#e67e22" for ok in met])
        ax.scatter(names, [t for _, t in present.values()], marker="_", s=2000, color="#c0392b",
                   label="target (at most)", zorder=3)  # fmt: skip
        for bar, value in zip(bars, values, strict=True):
            ax.annotate(f"{value}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom")  # fmt: skip
        ax.set_ylim(0, max(values + [t for _, t in present.values()]) * 1.3)  # room for the legend
        ax.set_ylabel("time ratio")
        ax.set_title("Cost ratios, each against a baseline measured in the same run")
        ax.legend(loc="upper right")
        fig.tight_layout()
        written.append(results / "ratios.png")
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)
    runs = f.get("throughput", [])
    if runs:
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
        rows = [r["source_rows"] for r in runs]
        left.plot(rows, [r["rows_per_second"] for r in runs], "o-", color="#1DB954",
                  label="pipeline, end to end")  # fmt: skip
        left.plot(rows, [r["parquet_copy_rows_per_second"] for r in runs], "s--",
                  color="#555555", label="Spark Parquet copy (the limit)")  # fmt: skip
        left.set_xscale("log")
        left.set_yscale("log")
        left.set_xlabel("source rows")
        left.set_ylabel("rows per second")
        left.legend()
        left.set_title("Throughput by scale")
        right.plot(rows, [r["peak_rss_mib"] for r in runs], "o-", color="#1DB954",
                   label="pipeline")  # fmt: skip
        right.plot(rows, [r["parquet_copy_peak_rss_mib"] for r in runs], "s--",
                   color="#555555", label="Parquet copy")  # fmt: skip
        right.set_xscale("log")
        right.set_xlabel("source rows")
        right.set_ylabel("peak memory, MiB (Python + JVM)")
        right.legend()
        right.set_title("Peak memory by scale")
        fig.tight_layout()
        written.append(results / "throughput.png")
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)
    return written


def _by_layer(layers: dict[str, dict[str, float]] | None) -> list[tuple[str, str, str, str]]:
    """Where the two runs' time went (the repeat whose Dagster run took the median time): each
    layer's steps, then Dagster's stand-alone check steps and its time outside any step."""
    if not layers:
        return []
    dagster, bare = layers["dagster"], layers["bare"]
    rows = [
        (f"  {layer} steps", f"{dagster.get(layer, 0.0)} s", f"bare {bare.get(layer, 0.0)} s", "")
        for layer in ("bronze", "silver", "gold")
    ]
    names = {"checks": "  stand-alone check steps", "outside_steps": "  outside any step"}
    rows += [(names.get(k, f"  {k}"), f"{v} s", "", "") for k, v in dagster.items()
             if k not in ("bronze", "silver", "gold")]  # fmt: skip
    return rows
