"""The Dagster instance's configuration: the repository's dagster.yaml, storage by environment.

Embedded default: run, event-log and schedule storage are SQLite files under DAGSTER_HOME.
With DAGSTER_POSTGRES_URL set (production, or several webservers and daemons sharing one
instance), they go to PostgreSQL through dagster-postgres. The generated file names the
variable, never its value, so the password stays in the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from spotify_assets.settings import ConfigError

REPOSITORY_YAML = Path(__file__).resolve().parent.parent / "dagster.yaml"
POSTGRES_URL = "DAGSTER_POSTGRES_URL"
POSTGRES_STORAGE = f"""
# {POSTGRES_URL} is set: runs, event logs and schedules are stored in PostgreSQL.
storage:
  postgres:
    postgres_url:
      env: {POSTGRES_URL}
"""


def instance_yaml(env: Mapping[str, str], base: Path = REPOSITORY_YAML) -> str:
    """dagster.yaml for DAGSTER_HOME: the repository's, plus PostgreSQL storage when asked."""
    text = base.read_text()
    url = env.get(POSTGRES_URL, "").strip()
    if not url:
        return text
    if not url.startswith("postgresql+psycopg2://"):
        raise ConfigError(
            f"{POSTGRES_URL} must be a postgresql+psycopg2://user:password@host:port/database "
            "URL: dagster-postgres needs the psycopg2 driver, and SQLAlchemy 2.1 picks psycopg 3 "
            "for a plain postgresql:// URL"
        )
    return text.rstrip("\n") + "\n" + POSTGRES_STORAGE


def write_dagster_home(
    home: Path, env: Mapping[str, str] | None = None, force: bool = False
) -> str:
    """Write DAGSTER_HOME/dagster.yaml (atomically); returns the storage it selects. An instance
    on PostgreSQL is not switched back to SQLite files (its history would seem gone) unless
    `force`: an unset DAGSTER_POSTGRES_URL is more often a shell without it than a decision."""
    env = os.environ if env is None else env
    text = instance_yaml(env)
    storage = "postgres" if env.get(POSTGRES_URL, "").strip() else "sqlite"
    target = home / "dagster.yaml"
    if (
        storage == "sqlite"
        and not force
        and target.is_file()
        and POSTGRES_URL in target.read_text()
    ):
        raise ConfigError(
            f"{target} keeps the instance in PostgreSQL and {POSTGRES_URL} is not set: set it, "
            "or pass --force to switch the instance to SQLite files"
        )
    home.mkdir(parents=True, exist_ok=True)
    temporary = home / ".dagster.yaml.tmp"
    temporary.write_text(text)
    temporary.replace(target)  # also replaces the symlink older set-ups made
    return storage
