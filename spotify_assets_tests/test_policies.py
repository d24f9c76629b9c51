"""Operational policies: a table's pool makes a second writer wait, transient failures are
retried and others are not, silver and gold follow their upstreams, gold has a freshness policy."""

from __future__ import annotations

import errno
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetKey,
    AssetMaterialization,
    AssetSelection,
    DagsterEventType,
    DagsterInstance,
    asset,
    evaluate_automation_conditions,
    materialize,
)

from spotify_assets.definitions import build_definitions
from spotify_assets.defs import policies
from spotify_assets.instance import instance_yaml
from spotify_assets.lake import delta
from spotify_assets.materialize import materialize_range
from spotify_assets.source import simulator
from spotify_assets.source.resource import SourceDatabase, SourceUnavailable
from spotify_assets.transforms.conform import NewColumnsRejected
from spotify_assets_tests.conftest import START, make_settings

BRONZE_USER = AssetKey(["bronze", "dim_user"])


def test_a_second_writer_of_a_table_waits_for_the_first(tmp_path, spark):
    """The repository's dagster.yaml gives each table's pool one slot: while another run holds
    bronze/dim_user's, a run that writes it waits, writing nothing, and goes on once freed."""
    settings = make_settings(tmp_path)
    source = SourceDatabase(url=settings.source_db_url)
    simulator.seed(source.engine, seed_value=3, start=START, days=1, echo=lambda _: None)
    config = yaml.safe_load(instance_yaml({}))
    assert config["concurrency"]["pools"] == {"default_limit": 1, "granularity": "op"}
    pool = policies.pool_for(BRONZE_USER)
    assert pool == "lakehouse/bronze/dim_user"
    (tmp_path / "home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "home"), overrides=config) as instance:
        storage = instance.event_log_storage
        assert storage.initialize_concurrency_limit_to_default(pool)  # what a run does first
        assert storage.get_concurrency_info(pool).slot_count == 1
        held = storage.claim_concurrency_slot(pool, "another-run", "bronze__dim_user")
        assert held.is_claimed
        result: dict = {}

        def second_writer():
            result["run"] = materialize_range(
                settings, START, START, instance, say=lambda _: None, selection=[BRONZE_USER]
            )

        writer = threading.Thread(target=second_writer)
        writer.start()
        deadline = time.monotonic() + 120
        while not storage.get_concurrency_info(pool).pending_step_count:
            assert writer.is_alive() and time.monotonic() < deadline, "the step never waited"
            time.sleep(0.2)
        time.sleep(2)  # it keeps waiting, and writes nothing meanwhile
        assert writer.is_alive()
        assert not delta.exists(f"{settings.lakehouse_root}/bronze/dim_user")

        storage.free_concurrency_slot_for_step("another-run", "bronze__dim_user")
        writer.join(timeout=180)
        assert not writer.is_alive() and result["run"].success
        assert delta.read(spark, f"{settings.lakehouse_root}/bronze/dim_user").count() > 0
        assert storage.get_concurrency_info(pool).claimed_slots == []  # released at the end


def _flaky(error: Exception, failures: int):
    attempts: list[int] = []

    @asset(name="flaky")
    @policies.retry_transient
    def _asset(context) -> None:
        attempts.append(context.retry_number)
        if len(attempts) <= failures:
            raise error

    return _asset, attempts


def test_transient_failures_are_retried_with_backoff_and_others_fail_at_once(monkeypatch):
    monkeypatch.setattr(policies, "FIRST_RETRY_SECONDS", 0.01)
    with DagsterInstance.ephemeral() as instance:
        flaky, attempts = _flaky(SourceUnavailable("the source did not answer"), failures=2)
        result = materialize([flaky], instance=instance)
        assert result.success and attempts == [0, 1, 2]
        restarts = instance.all_logs(result.run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY)
        assert len(restarts) == 2
        logs = [r.user_message for r in instance.all_logs(result.run_id)]
        assert "Transient failure (SourceUnavailable): retry 1 of 3 in 0.01 s" in logs
        assert "Transient failure (SourceUnavailable): retry 2 of 3 in 0.02 s" in logs

        # Always failing: three retries, then the step fails with the original error as cause.
        flaky, attempts = _flaky(ConnectionResetError(errno.ECONNRESET, "reset"), failures=9)
        result = materialize([flaky], instance=instance, raise_on_error=False)
        assert not result.success and attempts == [0, 1, 2, 3]

        # A data or configuration error is not retried.
        rejected = NewColumnsRejected("silver.dim_user: new columns [plan] are not accepted")
        flaky, attempts = _flaky(rejected, failures=9)
        result = materialize([flaky], instance=instance, raise_on_error=False)
        assert not result.success and attempts == [0]
        [failure] = instance.all_logs(result.run_id, of_type=DagsterEventType.STEP_FAILURE)
        error = failure.dagster_event.step_failure_data.error
        assert "new columns [plan] are not accepted" in error.cause.message


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (SourceUnavailable("x"), True),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), True),
        (OSError(errno.ETIMEDOUT, "timed out"), True),
        (TimeoutError(), True),
        (RuntimeError("io.delta.exceptions.ConcurrentAppendException: Files were added"), True),
        (RuntimeError("[DELTA_CONCURRENT_APPEND] ConcurrentAppendException"), True),
        (
            type("SparkConnectGrpcException", (Exception,), {})(
                "<_MultiThreadedRendezvous status = StatusCode.UNAVAILABLE>"
            ),
            True,
        ),
        (ValueError("bad"), False),
        (OSError(errno.ENOENT, "no such file"), False),
        (NewColumnsRejected("new columns"), False),
        (type("SparkConnectGrpcException", (Exception,), {})("INVALID_ARGUMENT"), False),
    ],
)
def test_what_counts_as_transient(error, transient):
    assert policies.is_transient(error) is transient
    try:  # the cause of a wrapping error counts too
        raise RuntimeError("wrapped") from error
    except RuntimeError as wrapped:
        assert policies.is_transient(wrapped) is transient


def _report(instance, key: AssetKey, day: str | None = None, checks_pass: bool = True):
    """A materialisation of `key` (one window, or the whole table) and its checks' results, as
    a run would record them."""
    instance.report_runless_asset_event(AssetMaterialization(key, partition=day))
    for check in CHECKS.get(key.to_user_string(), ()):
        instance.report_runless_asset_event(
            AssetCheckEvaluation(
                asset_key=key,
                check_name=check,
                passed=checks_pass,
                severity=AssetCheckSeverity.ERROR,
            )
        )


# The blocking checks of the assets the automation test reports.
CHECKS = {
    "bronze/dim_user": ("reconciles_with_source", "no_duplicate_versions"),
    "bronze/fact_stream": ("reconciles_with_source", "no_duplicate_versions"),
    "gold/dim_user": ("user_id_unique_not_null_current", "user_sk_unique_not_null"),
    "gold/dim_artist": ("artist_id_unique_not_null_current", "artist_sk_unique_not_null"),
    "gold/dim_track": ("track_id_unique_not_null_current", "track_sk_unique_not_null"),
    "gold/dim_date": ("date_key_unique_not_null",),
}


def test_silver_and_gold_follow_their_upstream_windows(tmp_path: Path):
    defs = build_definitions(make_settings(tmp_path))
    graph = defs.get_repository_def().asset_graph
    keys = sorted(graph.get_all_asset_keys())
    selection = AssetSelection.groups("silver", "gold")

    def requested(result) -> dict[str, list]:
        return {
            k.to_user_string(): sorted(result.get_requested_partitions(k), key=str)
            for k in keys
            if result.get_num_requested(k)
        }

    with DagsterInstance.ephemeral() as instance:

        def tick(previous):
            """One evaluation of the automation sensor, after `previous`."""
            cursor = previous.cursor if previous else None
            return evaluate_automation_conditions(
                defs, instance, asset_selection=selection, cursor=cursor
            )

        result = tick(None)
        assert requested(result) == {}  # nothing upstream yet: nothing to follow

        _report(instance, BRONZE_USER, "2026-01-01")
        result = tick(result)
        assert requested(result) == {
            "silver/dim_user": [None],
            "silver/dim_user_versions": [None],
            "gold/dim_user": [None],
        }
        # Handled: the same update is not followed twice.
        result = tick(result)
        assert requested(result) == {}

        # An old window of bronze's fact_stream: silver follows that window, not the latest.
        _report(instance, AssetKey(["bronze", "fact_stream"]), "2026-01-02")
        result = tick(result)
        assert requested(result)["silver/fact_stream"] == ["2026-01-02"]
        assert "gold/fact_stream" not in requested(result)  # its other parents are missing

        # A blocking check that failed upstream stops the following.
        _report(instance, BRONZE_USER, "2026-01-02", checks_pass=False)
        result = tick(result)
        assert requested(result) == {}

        # gold/fact_stream's window follows once its silver window and the histories are there,
        histories = ("dim_user", "dim_artist", "dim_track", "dim_date")
        for entity in histories:
            _report(instance, AssetKey(["gold", entity]))
        _report(instance, AssetKey(["silver", "fact_stream"]), "2026-01-03")
        result = tick(result)
        assert requested(result)["gold/fact_stream"] == ["2026-01-03"]
        # but once built, a history's daily update does not rebuild every window that reads it.
        _report(instance, AssetKey(["gold", "fact_stream"]), "2026-01-03")
        _report(instance, BRONZE_USER, "2026-01-03")
        result = tick(result)
        assert requested(result) == {
            "silver/dim_user": [None],
            "silver/dim_user_versions": [None],
            "gold/dim_user": [None],
        }


def test_gold_tables_carry_a_daily_freshness_policy(tmp_path: Path):
    graph = build_definitions(make_settings(tmp_path)).get_repository_def().asset_graph
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        policy = node.freshness_policy
        if node.group_name == "gold":
            assert policy is not None, key
            assert policy.fail_window.to_timedelta() == timedelta(hours=26)
            assert policy.warn_window.to_timedelta() == timedelta(hours=25)
        else:
            assert policy is None, key
        # One pool per table writer: a multi-asset step has the pool of its first table.
        table = key.to_user_string().removesuffix("_versions")
        if table in ("silver/spotify_albums", "silver/spotify_tracks", "silver/spotify_artists"):
            table = "silver/spotify"
        assert node.pools == {f"lakehouse/{table}"}, key
