"""The benchmark suite's report: the table states each figure beside its same-run baseline and
target, the plots are real PNGs, and docs/benchmarks.md shows the committed figures and plots.
(The suite itself runs at its smallest sizes in CI: `make bench-smoke`.)"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from benchmarks import report
from benchmarks.suite import TARGETS

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

FIGURES = {
    "date": "2026-11-27T00:00:00+00:00",
    "machine": "2 cores, 24 GiB",
    "overhead": [
        {
            "streams_per_day": 10_000,
            "dagster_seconds": 60.0,
            "bare_seconds": 40.0,
            "steps": 39,
            "orchestration_overhead": 1.5,
            "extra_seconds_per_step": 0.51,
            "seconds_by_layer_median_repeat": {
                "dagster": {
                    "bronze": 9.5,
                    "silver": 20.0,
                    "gold": 25.0,
                    "checks": 0.5,
                    "outside_steps": 5.0,
                },
                "bare": {"bronze": 5.0, "silver": 15.0, "gold": 20.0},
            },
            "gold_rows_differing_from_bare": 0,
        }
    ],
    "backfill": {
        "days": 30,
        "streams_per_day": 5_000,
        "one_day_seconds": 60.0,
        "backfill_seconds": 150.0,
        "backfill_vs_1_day": 2.5,
        "per_day_loop_estimate_vs_1_day": 30,
    },
    "throughput": [
        {
            "scale": s,
            "source_rows": 10_000 * s,
            "source_rows_by_table": {"streams": 9_000 * s},
            "peak_rss_mib": 900 + s,
            "rows_per_second": 1000 * s,
            "end_to_end_seconds": 10.0,
            "parquet_copy_rows_per_second": 4000 * s,
            "parquet_copy_peak_rss_mib": 800 + s,
            "ratio_to_parquet_copy": 0.25,
        }
        for s in (1, 100)
    ],
}


def test_the_table_puts_each_figure_beside_its_baseline_and_target():
    lines = report.table(FIGURES, TARGETS).splitlines()
    assert lines[0] == "Benchmarks of 2026-11-27T00:00:00+00:00 on 2 cores, 24 GiB"
    assert lines[2] == "| Measure | Figure | Baseline (same run) | Target / ratio |"
    assert (
        "| Orchestration overhead: whole graph, one day of 10,000 streams, 39 steps | 1.5x (60.0 s)"
        " | bare PySpark 40.0 s | <= 1.2x: MISSED |"
    ) in lines
    assert "|   bronze steps | 9.5 s | bare 5.0 s |  |" in lines
    assert "|   stand-alone check steps | 0.5 s |  |  |" in lines
    assert "|   outside any step | 5.0 s |  |  |" in lines
    assert (
        "| Backfill: 30 days (5,000 streams a day) as one run | 2.5x (150.0 s) | one day 60.0 s "
        "| <= 3.0x: met (a loop of days: 30x) |"
    ) in lines
    assert (
        "| Throughput, scale 100: 1,000,000 source rows (900,000 streams), peak 1,000 MiB "
        "| 100,000 rows/s (10.0 s) | Spark Parquet copy 400,000 rows/s | 0.25 of the copy |"
    ) in lines
    assert not any("Incremental" in line or "SCD2" in line for line in lines)  # not measured


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_the_plots_are_pngs_of_the_measured_parts_only(tmp_path):
    written = report.plots(FIGURES, TARGETS, tmp_path)
    assert [p.name for p in written] == ["ratios.png", "throughput.png"]
    assert png_size(tmp_path / "ratios.png") == (840, 432)
    assert png_size(tmp_path / "throughput.png") == (1200, 456)
    assert report.plots({"date": "x"}, TARGETS, tmp_path / "none") == []


def test_the_docs_show_the_committed_figures_and_plots():
    figures = json.loads((RESULTS / "suite.json").read_text())
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    for plot in ("ratios.png", "throughput.png"):
        assert f"](../benchmarks/results/{plot})" in page
        png_size(RESULTS / plot)
    assert "](benchmarks/results/ratios.png)" in (ROOT / "README.md").read_text()
    assert (RESULTS / "suite.md").read_text() == report.table(figures, TARGETS) + "\n"
    assert figures["smoke"] is False
    # The page's table is the committed run's table.
    table = report.table(figures, TARGETS).split("\n", 2)[2]
    assert table in page


def test_the_incremental_targets_are_stated_beside_their_baselines():
    incremental = {
        "history_streams_per_day": 2_000, "long_days": 365, "short_days": 7,
        "history_7_days_build_seconds": 50.0, "history_365_days_build_seconds": 400.0,
        "history_7_days_day_run_seconds": 20.0, "history_365_days_day_run_seconds": 24.0,
        "long_vs_short": 1.2, "next_day_vs_build": 0.4, "no_change_run_seconds": 6.0,
        "no_change_vs_day": 0.3,
    }  # fmt: skip
    lines = report.table({"date": "d", "machine": "m", "incremental": incremental}, TARGETS)
    assert (
        "| Next day on 7 days of history, against building those 7 days | 0.4x (20.0 s) "
        "| build 50.0 s | <= 0.5x: met |"
    ) in lines.splitlines()
    assert (
        "| The same day again, nothing changed, against its first run | 0.3x (6.0 s) "
        "| first run 20.0 s | <= 0.25x: MISSED |"
    ) in lines.splitlines()
