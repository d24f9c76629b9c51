"""The code location loads with every asset, check, job and schedule, and runs in one process."""

from __future__ import annotations

import time

from dagster import AssetKey, DailyPartitionsDefinition, in_process_executor

from spotify_assets.definitions import build_definitions
from spotify_assets.transforms.expectations import EXPECTATIONS
from spotify_assets_tests.conftest import make_settings

LAYERS = ("bronze", "silver", "gold")
ENTITIES = ("dim_user", "dim_artist", "dim_track", "dim_date", "fact_stream")


def test_definitions_load_with_every_asset_check_job_and_schedule(tmp_path):
    started = time.monotonic()
    defs = build_definitions(make_settings(tmp_path))
    repo = defs.get_repository_def()
    print(f"definitions loaded in {time.monotonic() - started:.2f} s")

    graph = repo.asset_graph
    versions = {
        AssetKey(["silver", f"{e}_versions"]) for e in ("dim_user", "dim_artist", "dim_track")
    } | {AssetKey(["silver", "streams_enriched"])}
    spotify = {
        AssetKey(["bronze", "spotify_new_releases"]),
        *(AssetKey(["silver", t]) for t in ("spotify_albums", "spotify_tracks", "spotify_artists")),
        AssetKey(["gold", "new_release_tracks"]),
        AssetKey(["gold", "spotify_artist_history"]),
    }
    assert (
        set(graph.get_all_asset_keys())
        == {AssetKey([layer, e]) for layer in LAYERS for e in ENTITIES} | versions | spotify
    )
    assert {k for k in graph.get_all_asset_keys() if graph.get(k).group_name == "spotify"} == (
        spotify
    )
    checks = {(c.asset_key.path[1], c.name) for c in graph.asset_check_keys}
    bronze_checks = {
        (e, name)
        for e in ENTITIES
        for name in ("reconciles_with_source", "no_duplicate_versions", "caught_up_with_source")
    }
    assert checks - bronze_checks == {
        ("dim_user", "user_id_unique_not_null_current"),
        ("dim_user", "user_sk_unique_not_null"),
        ("dim_artist", "artist_id_unique_not_null_current"),
        ("dim_artist", "artist_sk_unique_not_null"),
        ("dim_track", "track_id_unique_not_null_current"),
        ("dim_track", "track_sk_unique_not_null"),
        ("dim_date", "date_key_unique_not_null"),
        ("fact_stream", "stream_id_unique_not_null"),
    } | {(entity, rule.name) for entity, rules in EXPECTATIONS.items() for rule in rules}
    assert bronze_checks <= checks
    assert {"lakehouse_job", "spotify_job"} <= set(repo.job_names)
    lakehouse_assets = repo.get_job("lakehouse_job").asset_layer.selected_asset_keys
    assert not lakehouse_assets & spotify  # the Spotify branch runs on its own schedule
    assert [s.name for s in repo.schedule_defs] == [
        "daily_lakehouse_schedule",
        "daily_spotify_schedule",
    ]
    running = {s.name: s.default_status.value for s in repo.sensor_defs}
    assert running == {
        "source_change_sensor": "RUNNING",
        "lakehouse_automation": "RUNNING",  # declarative automation of silver and gold
        "run_failure_alerts": "RUNNING",
        "run_success_alerts": "STOPPED",  # ALERT_ON_SUCCESS=on starts it
        "check_failure_alerts": "RUNNING",
    }
    assert {s.name: s.default_status.value for s in repo.schedule_defs} == {
        "daily_lakehouse_schedule": "RUNNING",
        "daily_spotify_schedule": "RUNNING",
    }
    assert repo.get_job("lakehouse_job").executor_def is in_process_executor


def test_partitioned_assets_share_daily_partitions_from_the_start_date(tmp_path):
    defs = build_definitions(make_settings(tmp_path, LAKEHOUSE_START_DATE="2026-03-05"))
    graph = defs.get_repository_def().asset_graph
    partitioned = {
        key.to_user_string()
        for key in graph.get_all_asset_keys()
        if graph.get(key).partitions_def is not None
    }
    assert partitioned == {
        "bronze/dim_user",
        "bronze/dim_artist",
        "bronze/dim_track",
        "bronze/dim_date",
        "bronze/fact_stream",
        "silver/fact_stream",
        "silver/streams_enriched",
        "gold/fact_stream",
        "bronze/spotify_new_releases",
        "silver/spotify_albums",
        "silver/spotify_tracks",
        "silver/spotify_artists",
        "gold/new_release_tracks",
    }
    partitions = graph.get(AssetKey(["bronze", "dim_user"])).partitions_def
    assert isinstance(partitions, DailyPartitionsDefinition)
    assert partitions.get_first_partition_key() == "2026-03-05"


def test_module_level_defs_load_with_zero_configuration():
    from spotify_assets.definitions import defs

    assert len(list(defs.get_repository_def().asset_graph.get_all_asset_keys())) == 25


def test_every_asset_runs_a_range_as_one_run(tmp_path):
    """`dg launch --assets '*' --partition-range A...B` needs single-run policies everywhere."""
    from dagster import BackfillPolicy

    graph = build_definitions(make_settings(tmp_path)).get_repository_def().asset_graph
    policies = {
        key.to_user_string(): graph.get(key).backfill_policy for key in graph.get_all_asset_keys()
    }
    assert len(policies) == 25
    assert {k for k, p in policies.items() if p != BackfillPolicy.single_run()} == set()


def test_definitions_load_when_the_source_url_comes_from_the_environment(tmp_path, monkeypatch):
    """The resource then holds an EnvVar that only runs resolve; loading the definitions (the
    ingestion catalog) and the command line use the resolved URL instead."""
    from dagster import EnvVar

    from spotify_assets.settings import load_settings

    monkeypatch.setenv("SPOTIFY_SOURCE_DB_URL", f"sqlite:///{tmp_path / 'source.db'}")
    monkeypatch.setenv("LAKEHOUSE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    defs = build_definitions(load_settings())
    assert isinstance(defs.resources["source_db"].url, EnvVar)
    assert len(list(defs.get_repository_def().asset_graph.get_all_asset_keys())) == 25


def test_a_spark_connect_url_is_passed_as_an_env_var_and_never_shown(tmp_path, monkeypatch):
    from dagster import EnvVar

    from spotify_assets.settings import load_settings

    remote = "sc://spark.example.com:443/;token=dapi-not-for-your-eyes"
    monkeypatch.setenv("SPARK_ENGINE", "connect")
    monkeypatch.setenv("SPARK_CONNECT_URL", remote)
    monkeypatch.setenv("LAKEHOUSE_ROOT", str(tmp_path / "lake"))
    defs = build_definitions(load_settings())
    spark = defs.resources["spark"]
    assert isinstance(spark.remote, EnvVar) and spark.remote.env_var_name == "SPARK_CONNECT_URL"
    assert "dapi-not-for-your-eyes" not in repr(spark)


def test_the_databricks_engine_keeps_the_graph_and_submits_every_step(tmp_path, monkeypatch):
    """Same assets, checks, partitions, policies and config: only the step bodies differ."""
    from spotify_assets.databricks_jobs.task import ENTRY_POINT, REMOTE_STEP, WHEEL_PACKAGE

    local = build_definitions(make_settings(tmp_path))
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-not-for-your-eyes")
    remote = build_definitions(make_settings(
        tmp_path,
        SPARK_ENGINE="databricks",
        DATABRICKS_HOST="https://adb-1.2.azuredatabricks.net",
        DATABRICKS_WHEEL="/Volumes/spotify/ops/artifacts/spotify_lakehouse-0.1.0-py3-none-any.whl",
    ))  # fmt: skip

    def shape(defs):
        graph = defs.get_repository_def().asset_graph
        nodes = {
            k: (
                graph.get(k).group_name,
                graph.get(k).partitions_def,
                graph.get(k).backfill_policy,
                tuple(sorted(p.to_user_string() for p in graph.get(k).parent_keys)),
            )
            for k in graph.get_all_asset_keys()
        }
        checks = {
            spec.key: (spec.blocking, spec.description)
            for definition in [*defs.assets, *defs.asset_checks]
            for spec in definition.check_specs
        }
        assert len(checks) == len(graph.asset_check_keys) > 0
        return nodes, checks

    assert shape(remote) == shape(local)
    history = remote.resolve_assets_def(AssetKey(["gold", "dim_user"])).node_def
    assert history.config_schema.as_field().config_type.fields.keys() == {
        "full_refresh",
        "rebuild_below_versions",
    }
    jobs = remote.resources["databricks"]
    assert jobs.token.env_var_name == "DATABRICKS_TOKEN"
    assert "dapi-not-for-your-eyes" not in repr(jobs)
    task = jobs.task
    assert task["python_wheel_task"] == {
        "package_name": WHEEL_PACKAGE, "entry_point": ENTRY_POINT, "parameters": [REMOTE_STEP]
    }  # fmt: skip
    assert task["libraries"] == [
        {"whl": "/Volumes/spotify/ops/artifacts/spotify_lakehouse-0.1.0-py3-none-any.whl"}
    ]
    env = task["new_cluster"]["spark_env_vars"]
    assert env["SPARK_ENGINE"] == "local" and env["LAKEHOUSE_CATALOG"] == "spark_catalog"


def test_automation_and_alerts_start_as_configured(tmp_path, monkeypatch):
    """LAKEHOUSE_AUTOMATION=off stops what would launch runs by itself; alerts stay on, and
    their secrets are EnvVars that the UI never shows."""
    from dagster import EnvVar

    monkeypatch.setenv("ALERT_WEBHOOK_URL", "https://hooks.example.com/services/T0/B0/not-shown")
    monkeypatch.setenv("ALERT_SMTP_PASSWORD", "smtp-password-not-shown")
    settings = make_settings(tmp_path, LAKEHOUSE_AUTOMATION="off", ALERT_ON_SUCCESS="on")
    defs = build_definitions(settings)
    repo = defs.get_repository_def()
    assert {s.name: s.default_status.value for s in repo.schedule_defs} == {
        "daily_lakehouse_schedule": "STOPPED",
        "daily_spotify_schedule": "STOPPED",
    }
    assert {s.name: s.default_status.value for s in repo.sensor_defs} == {
        "source_change_sensor": "STOPPED",
        "lakehouse_automation": "STOPPED",
        "run_failure_alerts": "RUNNING",
        "run_success_alerts": "RUNNING",
        "check_failure_alerts": "RUNNING",
    }
    alerts = defs.resources["alerts"]
    assert isinstance(alerts.webhook_url, EnvVar)
    assert alerts.webhook_url.env_var_name == "ALERT_WEBHOOK_URL"
    assert isinstance(alerts.smtp_password, EnvVar)
    assert "not-shown" not in repr(alerts)
