"""What the databricks engine submits: the project's wheel, its console script, the cluster.

databricks.yml deploys jobs that run the same wheel through the same entry point; a test checks
that the two agree (spotify_assets_tests/test_databricks_bundle.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import make_url

from spotify_assets.settings import ConfigError, Settings

# The wheel's distribution (pyproject's name, normalised) and its console script.
WHEEL_PACKAGE = "spotify_lakehouse"
ENTRY_POINT = "spotify-lakehouse"
REMOTE_STEP = "remote-step"  # the subcommand that runs one step on the cluster

# Secrets, by the key they have in the secret scope: the job refers to them, never holds them.
SECRET_KEYS = {
    "SPOTIFY_SOURCE_DB_URL": "source-db-url",
    "SPOTIFY_CLIENT_ID": "spotify-client-id",
    "SPOTIFY_CLIENT_SECRET": "spotify-client-secret",
    # The storage layer's credentials for an abfss:// lake (lake/storage.py).
    "AZURE_STORAGE_CONNECTION_STRING": "storage-connection-string",
    "AZURE_STORAGE_ACCOUNT_KEY": "storage-account-key",
    "AZURE_STORAGE_SAS_TOKEN": "storage-sas-token",
    "AZURE_CLIENT_SECRET": "azure-client-secret",
}
# Identifiers that go with those credentials, passed as they are when set.
PLAIN_AZURE = ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_TENANT_ID", "AZURE_CLIENT_ID")


def secret_reference(scope: str, key: str) -> str:
    """Databricks resolves `{{secrets/scope/key}}` in a cluster's environment when it starts."""
    return "{{secrets/%s/%s}}" % (scope, key)  # noqa: UP031 (braces would need doubling)


def _may_hold_a_secret(url: str) -> bool:
    """A password in the URL, or a query that may carry one (password=, PWD= in odbc_connect)."""
    parsed = make_url(url)
    query = " ".join(f"{k}={v}" for k, v in parsed.query.items()).lower()
    return parsed.password is not None or bool(re.search(r"pass|pwd|secret|token|key", query))


def plain_settings(settings: Settings) -> dict[str, str]:
    """The settings a step needs on the cluster that are not secrets."""
    return {
        "SPARK_ENGINE": "local",  # on the cluster: the cluster's own Spark
        "LAKEHOUSE_ROOT": settings.lakehouse_root,
        "LAKEHOUSE_START_DATE": settings.start_date.isoformat(),
        "LAKEHOUSE_CATALOG": settings.lakehouse_catalog,
        "LAKEHOUSE_SCHEMA_PREFIX": settings.lakehouse_schema_prefix,
        "SPARK_SHUFFLE_PARTITIONS": str(settings.spark_shuffle_partitions),
        "SPOTIFY_CAPABILITY": settings.spotify_capability,
        "SPOTIFY_API_URL": settings.spotify_api_url,
        "SPOTIFY_TOKEN_URL": settings.spotify_token_url,
        "SPOTIFY_MAX_ALBUMS": str(settings.spotify_max_albums),
    }


def cluster_env(settings: Settings, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a new job cluster: the settings the step needs, with secrets as
    references into DATABRICKS_SECRET_SCOPE. Without a scope, a secret that is set is refused
    (it would be readable in the job's definition); a source URL without a password is fine."""
    env = os.environ if env is None else env
    values = plain_settings(settings)
    values.update({n: env[n].strip() for n in PLAIN_AZURE if env.get(n, "").strip()})
    scope = settings.databricks.secret_scope
    for name, key in SECRET_KEYS.items():
        value = env.get(name, "").strip()
        if name == "SPOTIFY_SOURCE_DB_URL":
            value = value or settings.source_db_url
        if not value:
            continue
        if scope:
            values[name] = secret_reference(scope, key)
        elif name == "SPOTIFY_SOURCE_DB_URL" and not _may_hold_a_secret(value):
            values[name] = value
        else:
            raise ConfigError(
                f"{name} is set, and a job cluster's environment is readable by anyone who can "
                f"see the job: put it in a secret scope as `{key}` and set "
                "DATABRICKS_SECRET_SCOPE (the job then refers to it)"
            )
    return values


def new_cluster(settings: Settings, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    d = settings.databricks
    return {
        "spark_version": d.spark_version,
        "node_type_id": d.node_type,
        "num_workers": d.workers,
        # Unity Catalog needs an access mode; one user per job cluster.
        "data_security_mode": "SINGLE_USER",
        "spark_env_vars": cluster_env(settings, env),
    }


def task_key(step: str) -> str:
    """A step's name as a task key (letters, digits, `-` and `_`; at most 100)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", step)[:100]


def submit_task(settings: Settings, step: str, env: Mapping[str, str] | None = None) -> dict:
    """The task that runs `step` on the cluster: the wheel's console script `remote-step`;
    Dagster Pipes adds where the step's context and messages are."""
    d = settings.databricks
    task: dict[str, Any] = {
        "task_key": task_key(step),
        "python_wheel_task": {
            "package_name": WHEEL_PACKAGE,
            "entry_point": ENTRY_POINT,
            "parameters": [REMOTE_STEP],
        },
        "libraries": [{"whl": d.wheel}],
    }
    if d.cluster_id:
        task["existing_cluster_id"] = d.cluster_id
    else:
        task["new_cluster"] = new_cluster(settings, env)
    return task
