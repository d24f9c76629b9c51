"""The Dagster instance: SQLite files by default, PostgreSQL (a real server) by environment."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, asset, materialize
from dagster._core.instance.ref import InstanceRef

from spotify_assets.instance import instance_yaml, write_dagster_home
from spotify_assets.settings import ConfigError


@asset
def probe() -> int:
    return 1


def test_the_default_instance_keeps_its_storage_in_sqlite_files(tmp_path):
    assert write_dagster_home(tmp_path / "home", env={}) == "sqlite"
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path / "home"))) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert materialize([probe], instance=instance).success
    assert (tmp_path / "home" / "history" / "runs.db").is_file()


def test_dagster_postgres_url_puts_runs_events_and_schedules_in_postgresql(
    tmp_path, postgres_url, monkeypatch
):
    server = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(sa.text("CREATE DATABASE dagster_instance"))
    database_url = postgres_url.rsplit("/", 1)[0] + "/dagster_instance"
    url = database_url.replace("postgresql+psycopg://", "postgresql+psycopg2://")
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", url)
    home = tmp_path / "home"
    assert write_dagster_home(home) == "postgres"
    text = (home / "dagster.yaml").read_text()
    assert "env: DAGSTER_POSTGRES_URL" in text and url not in text  # the URL stays in the env
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        kinds = {type(s).__name__ for s in (instance.run_storage, instance.event_log_storage,
                                            instance.schedule_storage)}  # fmt: skip
        assert kinds == {"PostgresRunStorage", "PostgresEventLogStorage",
                         "PostgresScheduleStorage"}  # fmt: skip
        run_id = materialize([probe], instance=instance).run_id
    # The run and its materialisation are rows in the server's tables.
    database = sa.create_engine(database_url)
    with database.connect() as conn:
        status = conn.execute(
            sa.text("SELECT status FROM runs WHERE run_id = :id"), {"id": run_id}
        ).scalar()
        events = conn.execute(
            sa.text("SELECT COUNT(*) FROM event_logs WHERE run_id = :id AND asset_key IS NOT NULL"),
            {"id": run_id},
        ).scalar()
    assert status == "SUCCESS" and events >= 1
    # A second instance (another webserver or daemon) sees the same run.
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as other:
        assert other.get_run_by_id(run_id).is_success
    # A shell without the variable does not quietly switch the instance back to SQLite.
    with pytest.raises(ConfigError, match=r"keeps the instance in PostgreSQL and "
                       r"DAGSTER_POSTGRES_URL is not set: set it, or pass --force"):  # fmt: skip
        write_dagster_home(home, env={})
    assert write_dagster_home(home, env={}, force=True) == "sqlite"


def test_a_postgres_url_without_the_psycopg2_driver_is_refused_with_the_form_to_use():
    for url in ("postgresql://u:p@h/db", "postgresql+psycopg://u:p@h/db"):
        with pytest.raises(
            ConfigError, match=r"^DAGSTER_POSTGRES_URL must be a postgresql\+psycopg2://"
        ):
            instance_yaml({"DAGSTER_POSTGRES_URL": url})
