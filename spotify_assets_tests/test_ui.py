"""The UI, verified in a real browser (issue 8): `dagster dev` on loopback runs a backfill launched
through its GraphQL API, and headless Chromium shows what a user would see afterwards.

One `dagster dev` and one backfill (one run over two days of a small seed) for the whole module:
the run dominates the test's time. With UPDATE_SCREENSHOTS=1 the asset-graph picture is also
written to docs/asset-graph.png (the README shows it).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, sync_playwright
from sqlalchemy import text

from spotify_assets.defs.jobs import LAKEHOUSE_JOB
from spotify_assets.defs.partitions import daily_partitions
from spotify_assets.settings import VARIABLES, Settings
from spotify_assets.source import simulator
from spotify_assets.source.resource import SourceDatabase
from spotify_assets_tests.alert_peers import Receiver, http_receiver
from spotify_assets_tests.conftest import START, make_settings
from spotify_assets_tests.dagster_dev import LOCATION, ROOT, dagster_dev, graphql, log_tail

pytestmark = pytest.mark.slow  # dagster dev, a backfill and headless Chromium

DAYS = [START + timedelta(days=i) for i in range(2)]
PARTITION_KEYS = [d.isoformat() for d in DAYS]
BACKFILL_TIMEOUT = 600  # the run takes about 140 s on an idle 2-core machine
ALERT_TIMEOUT = 90  # the alert sensors run every 15 s
HOOK_SIGNATURE = "sig-UiTestHookSECRET"
UI_URL = "http://lakehouse.example.com:3000"  # DAGSTER_UI_URL: what the alerts link to
# The source's known quirk: streams whose date_key disagrees with their timestamp's day.
QUIRKS = (
    'SELECT COUNT(*) FROM "FactStream" '
    "WHERE date_key <> CAST(strftime('%Y%m%d', stream_timestamp) AS INTEGER)"
)
ERROR_LEVELS = ("ERROR", "CRITICAL")
SCREENSHOT = ROOT / "docs" / "asset-graph.png"
CHROMIUM = "/usr/bin/chromium"  # Debian's (make chromium); playwright never downloads one
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
# Machine set-up the runs need from the caller's environment; every other setting is the test's.
MACHINE_VARIABLES = {"DELTA_JARS_DIR", "MAVEN_REPOSITORY_URL"}

# Everything upstream of gold/fact_stream (Assets > gold/fact_stream > Lineage, Upstream), by layer.
UPSTREAM_OF_GOLD_FACT = {
    "bronze": ["dim_artist", "dim_date", "dim_track", "dim_user", "fact_stream"],
    "silver": [
        "dim_artist_versions", "dim_date", "dim_track_versions", "dim_user_versions", "fact_stream",
    ],
    "gold": ["dim_artist", "dim_date", "dim_track", "dim_user", "fact_stream"],
}  # fmt: skip
# Of those, the unpartitioned ones: materialised as a whole, so the graph colours them green.
UNPARTITIONED = {
    "silver": {"dim_artist_versions", "dim_date", "dim_track_versions", "dim_user_versions"},
    "gold": {"dim_artist", "dim_date", "dim_track", "dim_user"},
}

ASSETS_QUERY = "{ assetNodes { assetKey { path } groupName jobNames } }"
RUNS_QUERY = "{ runsOrError { __typename ... on Runs { results { runId } } } }"
LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message stack }
  ... on PartitionSetNotFoundError { message } ... on UnauthorizedError { message } } }
"""
BACKFILL_QUERY = """
query($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
  ... on PartitionBackfill { status error { message }
    runs { runId status tags { key value } } }
  ... on PythonError { message } } }
"""
RUN_EVENTS_QUERY = """
query($runId: ID!) { runOrError(runId: $runId) { __typename
  ... on Run { status eventConnection { events { __typename
    ... on MessageEvent { message level stepKey }
    ... on ErrorEvent { error { message stack cause { message stack } } } } } } } }
"""
# The graph's boxes: [text, x, y, width, height, background] of every node and group in the SVG.
GRAPH_BOXES = """() => Array.from(document.querySelectorAll('svg foreignObject')).map(fo => {
  const r = fo.getBoundingClientRect();
  const box = fo.querySelector('[style*="--minimal-bg"]');
  return [fo.textContent.trim(), r.x, r.y, r.width, r.height,
          box ? box.style.getPropertyValue('--minimal-bg') : ''];
})"""
GREEN_NODES = """n => Array.from(
  document.querySelectorAll('svg foreignObject [style*="--minimal-bg"]')
).filter(b => b.style.getPropertyValue('--minimal-bg').includes('green')).length >= n"""


def test_a_backfill_launched_through_graphql_is_what_the_ui_shows(tmp_path):
    timer = Timer()
    settings = make_settings(tmp_path)
    source = SourceDatabase(url=settings.source_db_url)
    simulator.seed(source.engine, seed_value=11, start=START, days=len(DAYS), echo=lambda _: None)
    log = tmp_path / "dagster-dev.log"
    with (
        http_receiver(f"/alerts?sig={HOOK_SIGNATURE}") as receiver,
        dagster_dev({**dagster_env(settings), **alerts_env(receiver.url)}, log) as url,
    ):
        timer.lap("seed and dagster dev up")
        layers = lakehouse_assets(url)
        assert {group: len(names) for group, names in layers.items()} == {
            "bronze": 5, "silver": 9, "gold": 5,
        }  # fmt: skip
        backfill(url, log)
        timer.lap("backfill")
        with chromium() as browser:
            context = browser.new_context(
                viewport={"width": 1400, "height": 900}, device_scale_factor=1.25
            )
            context.set_default_timeout(30_000)
            page = context.new_page()
            global_lineage_shows_every_layer(page, url, layers)
            bronze_checks_pass(page, url)
            gold_checks_pass_but_the_source_quirk_warns(page, url, source)
            partitions_show_the_backfilled_days(page, url, settings)
            upstream_graph_of_gold_fact_stream(page, url, tmp_path)
        timer.lap("browser")
        the_daemon_sent_the_alerts(receiver, source, log)
        timer.lap("alerts")
    timer.lap("dagster dev stopped")
    print(f"UI test: {timer}")


class Timer:
    def __init__(self) -> None:
        self.started = self.last = time.monotonic()
        self.laps: list[str] = []

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps.append(f"{name} {now - self.last:.0f} s")
        self.last = now

    def __str__(self) -> str:
        return f"{time.monotonic() - self.started:.0f} s ({', '.join(self.laps)})"


def dagster_env(settings: Settings) -> dict[str, str]:
    """The caller's environment without any lakehouse setting (a developer's DAGSTER_HOME,
    PostgreSQL or engine must not leak in), plus the test's lakehouse; automation off, so the
    schedules and the source-change sensor start stopped and only the test's backfill runs."""
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES or k in MACHINE_VARIABLES}
    env.pop("SPARK_REMOTE", None)
    env.update(
        SPOTIFY_SOURCE_DB_URL=settings.source_db_url,
        LAKEHOUSE_ROOT=settings.lakehouse_root,
        DAGSTER_HOME=str(settings.dagster_home),
        LAKEHOUSE_START_DATE=settings.start_date.isoformat(),
        SPARK_SHUFFLE_PARTITIONS=str(settings.spark_shuffle_partitions),
        LAKEHOUSE_AUTOMATION="off",
    )
    return env


def alerts_env(webhook_url: str) -> dict[str, str]:
    """Alerts to the test's receiver: on success too, and for WARN checks."""
    return {
        "ALERT_WEBHOOK_URL": webhook_url,
        "ALERT_ON_SUCCESS": "on",
        "ALERT_CHECK_SEVERITY": "warn",
        "DAGSTER_UI_URL": UI_URL,
    }


def the_daemon_sent_the_alerts(receiver: Receiver, source: SourceDatabase, log: Path) -> None:
    """The daemon's alert sensors (running by default) saw the backfill's run: one success
    alert, and one check alert for gold's warning about the source quirk (ALERT_CHECK_SEVERITY
    =warn); the webhook's secret is nowhere in dagster dev's log."""
    deadline = time.monotonic() + ALERT_TIMEOUT
    while len(receiver.requests) < 2 and time.monotonic() < deadline:
        time.sleep(1)
    bodies = {body["kind"]: body for body in receiver.requests}
    assert sorted(bodies) == ["check_failure", "run_success"], (receiver.requests, log_tail(log))
    assert len(receiver.requests) == 2
    success, checks = bodies["run_success"], bodies["check_failure"]
    assert success["run_id"] == checks["run_id"]
    assert success["run_url"] == f"{UI_URL}/runs/{success['run_id']}"
    assert success["title"] == (
        f"[Spotify Lakehouse] {LAKEHOUSE_JOB}: run succeeded for "
        f"{PARTITION_KEYS[0]}..{PARTITION_KEYS[-1]}"
    )
    with source.engine.connect() as conn:
        quirks = conn.execute(text(QUIRKS)).scalar()
    assert checks["failed_checks"] == [
        {
            "asset": "gold/fact_stream",
            "check": "source_date_key_consistent",
            "severity": "WARN",
            "counts": {
                "passed_records": 1000 - quirks,
                "failed_records": quirks,
                "dropped_records": 0,
            },
        }
    ]
    assert HOOK_SIGNATURE not in log.read_text()


def lakehouse_assets(url: str) -> dict[str, list[str]]:
    """The lakehouse job's assets by group, as the code location reports them."""
    layers: dict[str, list[str]] = {}
    for node in graphql(url, ASSETS_QUERY)["assetNodes"]:
        if LAKEHOUSE_JOB in node["jobNames"]:
            layers.setdefault(node["groupName"], []).append("/".join(node["assetKey"]["path"]))
    return {group: sorted(names) for group, names in layers.items()}


def backfill(url: str, log: Path) -> None:
    """Launch the lakehouse job's backfill of DAYS and wait for its run to succeed: one run over
    the range (the assets' BackfillPolicy.single_run), picked up by the daemon."""
    params = {
        "selector": {
            "partitionSetName": f"{LAKEHOUSE_JOB}_partition_set",
            "repositorySelector": {
                "repositoryLocationName": LOCATION,
                "repositoryName": "__repository__",
            },
        },
        "partitionNames": PARTITION_KEYS,
        "title": "UI test",
    }
    launched = graphql(url, LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]
    deadline = time.monotonic() + BACKFILL_TIMEOUT
    while True:
        state = graphql(url, BACKFILL_QUERY, {"id": backfill_id})["partitionBackfillOrError"]
        assert state["__typename"] == "PartitionBackfill", state
        runs = state["runs"]
        statuses = [r["status"] for r in runs]
        broken = {"FAILURE", "CANCELING", "CANCELED"} & set(statuses) or state["status"] in (
            "FAILED", "FAILING", "CANCELING", "CANCELED", "COMPLETED_FAILED",
        )  # fmt: skip
        if broken or time.monotonic() > deadline:
            why = "failed" if broken else f"did not finish in {BACKFILL_TIMEOUT} s"
            pytest.fail(
                f"backfill {backfill_id} {why}: {state['status']} {state['error']}, runs "
                f"{statuses}\n{run_errors(url, [r['runId'] for r in runs])}\n"
                f"the end of {log}:\n{log_tail(log)}"
            )
        if runs and all(s == "SUCCESS" for s in statuses):
            break
        time.sleep(2)
    assert len(runs) == 1, "a single-run backfill: one run over the whole range"
    tags = {t["key"]: t["value"] for t in runs[0]["tags"]}
    assert [tags[f"dagster/asset_partition_range_{end}"] for end in ("start", "end")] == [
        PARTITION_KEYS[0], PARTITION_KEYS[-1],
    ]  # fmt: skip
    # With LAKEHOUSE_AUTOMATION=off nothing else ran: no schedule, sensor or automation run.
    every_run = graphql(url, RUNS_QUERY)["runsOrError"]["results"]
    assert [r["runId"] for r in every_run] == [runs[0]["runId"]]


def run_errors(url: str, run_ids: list[str], shown: int = 12) -> str:
    """The runs' error events (failed steps, the run's failure): the first with its stack
    traces, the others by their messages."""
    lines = []
    for run_id in run_ids:
        run = graphql(url, RUN_EVENTS_QUERY, {"runId": run_id})["runOrError"]
        if run["__typename"] != "Run":
            lines.append(f"run {run_id}: {run}")
            continue
        events = run["eventConnection"]["events"]
        # Failures (with the Python error) first, then the other error-level messages.
        errors = [e for e in events if e.get("error")]
        errors += [e for e in events if e.get("level") in ERROR_LEVELS and not e.get("error")]
        for index, event in enumerate(errors[:shown]):
            lines.append(f"run {run_id} {event.get('stepKey') or ''}: {event.get('message')}")
            error = event.get("error")
            while error:
                lines.append("    " + error["message"].strip())
                if not index:
                    lines.append("".join(error.get("stack") or []).rstrip())
                error = error.get("cause")
        if len(errors) > shown:
            lines.append(f"... and {len(errors) - shown} more error events")
    return "\n".join(lines) or "(no error events)"


@contextmanager
def chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: the UI test needs Debian's Chromium (make chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def global_lineage_shows_every_layer(page: Page, url: str, layers: dict[str, list[str]]) -> None:
    """Lineage: one node per asset group, with its assets counted by status."""
    page.goto(f"{url}/asset-groups")
    page.get_by_text("Global asset lineage", exact=True).wait_for()
    for group in (*layers, "spotify"):
        page.locator("svg foreignObject").get_by_text(group, exact=True).wait_for()
    page.get_by_text("(fetching statuses)").first.wait_for(state="detached")
    for group, names in layers.items():
        node = page.locator("svg foreignObject").filter(has=page.get_by_text(group, exact=True))
        counts = [int(n) for n in node.get_by_text(re.compile(r"^\d+$")).all_inner_texts()]
        assert sum(counts) == len(names), f"{group}: {counts}"
    # The unpartitioned assets count as materialised. (Dagster counts the partitioned ones, with
    # 2 of their daily partitions materialised, as "never been materialized".)
    for group, count in (("silver", 7), ("gold", 4)):
        node = page.locator("svg foreignObject").filter(has=page.get_by_text(group, exact=True))
        node.get_by_text(str(count), exact=True).hover()
        page.get_by_role("tooltip").filter(has_text=f"{count} materialized assets").first.wait_for()
    page.mouse.move(0, 0)


def check_row(page: Page, name: str) -> Locator:
    """A check in the asset's list of checks: its name and its latest result."""
    return page.get_by_title(name, exact=True).first.locator("xpath=..")


def bronze_checks_pass(page: Page, url: str) -> None:
    page.goto(f"{url}/assets/bronze/fact_stream?view=checks")
    page.get_by_text("Checks (3)", exact=True).wait_for()
    for name in ("caught_up_with_source", "no_duplicate_versions", "reconciles_with_source"):
        check_row(page, name).get_by_text("Succeeded", exact=True).wait_for()
    check_row(page, "reconciles_with_source").click()
    page.get_by_text("This is a blocking asset check.").wait_for()
    page.get_by_text("Passed", exact=True).first.wait_for()
    assert metadata(page, "missing_rows") == "0"
    assert metadata(page, "windows_checked") == str(len(DAYS))
    assert metadata(page, "source_rows_checked") == "1000"


def gold_checks_pass_but_the_source_quirk_warns(
    page: Page, url: str, source: SourceDatabase
) -> None:
    """gold/fact_stream: every check passes except the warning about the source's known quirk,
    whose failed records are the source's rows with a date_key that disagrees with the time."""
    page.goto(f"{url}/assets/gold/fact_stream?view=checks")
    page.get_by_text("Checks (8)", exact=True).wait_for()
    passing = [
        "artist_resolvable", "device_type_known", "listen_duration_positive", "stream_id_not_null",
        "stream_id_unique_not_null", "track_resolvable", "user_resolvable",
    ]  # fmt: skip
    for name in passing:
        check_row(page, name).get_by_text("Succeeded", exact=True).wait_for()
    check_row(page, "source_date_key_consistent").get_by_text("Failed", exact=True).wait_for()
    check_row(page, "source_date_key_consistent").click()
    page.get_by_text("This is a non-blocking asset check.").wait_for()
    page.get_by_text("warn: source_date_key = date_key", exact=True).wait_for()
    with source.engine.connect() as conn:
        quirks = conn.execute(text(QUIRKS)).scalar()
    assert quirks
    assert metadata(page, "failed_records") == str(quirks)
    assert metadata(page, "passed_records") == str(1000 - quirks)


def metadata(page: Page, label: str) -> str:
    """The value of a row of the metadata table on the page."""
    row = page.get_by_role("row").filter(has=page.get_by_text(label, exact=True)).first
    cells = [c.strip() for c in row.get_by_role("cell").all_inner_texts()]
    assert cells[0] == label, cells
    return cells[1]


def partitions_show_the_backfilled_days(page: Page, url: str, settings: Settings) -> None:
    """The partitions page: the two backfilled days materialised, every other day missing."""
    total_before = len(daily_partitions(settings).get_partition_keys())
    page.goto(f"{url}/assets/gold/fact_stream?view=partitions")
    page.get_by_text(f"Materialized ({len(DAYS)})", exact=True).wait_for()
    selected = page.get_by_text(re.compile(r"^\d+ Partitions Selected$")).inner_text()
    total = int(selected.split()[0])
    total_after = len(daily_partitions(settings).get_partition_keys())
    assert total in (total_before, total_after)  # every day since LAKEHOUSE_START_DATE
    page.get_by_text(f"Missing ({total - len(DAYS)})", exact=True).wait_for()
    page.get_by_text("Failed (0)", exact=True).wait_for()
    # Without the missing days the list holds exactly the backfilled ones, newest first.
    page.get_by_text(f"Missing ({total - len(DAYS)})", exact=True).click()
    page.get_by_text(f"{len(DAYS)} Partitions Selected", exact=True).wait_for()
    listed = page.get_by_title(re.compile(r"^\d{4}-\d\d-\d\d$"))
    assert [t.splitlines()[0] for t in listed.all_inner_texts()] == PARTITION_KEYS[::-1]
    page.get_by_title(PARTITION_KEYS[0], exact=True).click()
    page.get_by_text("Materialized", exact=True).first.wait_for()
    page.get_by_role("link", name=LAKEHOUSE_JOB).first.wait_for()
    assert metadata(page, "dagster/table_name") == "spark_catalog.gold.fact_stream"


def upstream_graph_of_gold_fact_stream(page: Page, url: str, tmp_path: Path) -> None:
    """Assets > gold/fact_stream > Lineage, Upstream: bronze, silver and gold side by side, each
    asset in its layer's box, the materialised unpartitioned ones green; the README's picture."""
    page.goto(f"{url}/assets/gold/fact_stream?view=lineage&lineageScope=upstream&lineageDepth=3")
    green = sum(len(names) for names in UNPARTITIONED.values())
    page.wait_for_function(GREEN_NODES, arg=green)
    boxes = page.evaluate(GRAPH_BOXES)
    groups = {b[0]: b for b in boxes if b[0] in UPSTREAM_OF_GOLD_FACT}
    assert sorted(groups) == sorted(UPSTREAM_OF_GOLD_FACT)
    seen: dict[str, list[str]] = {group: [] for group in groups}
    greens: dict[str, set[str]] = {group: set() for group in groups}
    for label, x, y, width, height, background in boxes:
        if not label or label in groups:
            continue
        group = next((g for g, b in groups.items() if inside((x, y, width, height), b[1:5])), "")
        assert group, f"node {label!r} is in no layer's box"
        name = full_name(label, UPSTREAM_OF_GOLD_FACT[group])
        seen[group].append(name)
        if "green" in background:
            greens[group].add(name)
    assert {g: sorted(n) for g, n in seen.items()} == UPSTREAM_OF_GOLD_FACT
    assert {g: n for g, n in greens.items() if n} == UNPARTITIONED
    page.mouse.move(0, 0)
    shot = tmp_path / "asset-graph.png"
    page.screenshot(path=shot)
    print(f"asset graph screenshot: {shot}")
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, SCREENSHOT)
        print(f"updated {SCREENSHOT}")


def inside(box: tuple[float, ...], outer: tuple[float, ...]) -> bool:
    x, y, width, height = box
    ox, oy, owidth, oheight = outer
    return ox <= x and oy <= y and x + width <= ox + owidth and y + height <= oy + oheight


def full_name(label: str, names: list[str]) -> str:
    """The asset a node's label names: the UI shortens long names in the middle (a…b)."""
    for name in names:
        head, dots, tail = label.partition("…")
        if label == name or (dots and name.startswith(head) and name.endswith(tail)):
            return name
    raise AssertionError(f"node {label!r} is none of {names}")
