"""databricks.yml is a valid bundle and agrees with what Dagster submits and with the code.

Its jobs and schemas are read with Databricks' own bundle models (databricks-bundles: unknown or
missing fields are refused); its wheel, entry point, command lines, cluster, environment, secret
names, schema names and variable defaults are compared with the definitions they mirror.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from databricks.bundles.jobs import Job
from databricks.bundles.schemas import Schema

from spotify_assets.catalog import Layer, table_name
from spotify_assets.cli import parser
from spotify_assets.databricks_jobs import task
from spotify_assets.materialize import group_selection
from spotify_assets.settings import VARIABLES
from spotify_assets_tests.conftest import make_settings

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = yaml.safe_load((ROOT / "databricks.yml").read_text())
TOP_LEVEL = {"bundle", "variables", "artifacts", "resources", "targets"}
TARGET_KEYS = {"mode", "default", "variables", "workspace", "permissions", "run_as", "presets"}
BUNDLE_SECRETS = (
    "SPOTIFY_SOURCE_DB_URL", "SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET", "AZURE_CLIENT_SECRET"
)  # fmt: skip
# Each variable and the setting whose default it must share.
VARIABLE_SETTINGS = {
    "schema_prefix": "LAKEHOUSE_SCHEMA_PREFIX",
    "start_date": "LAKEHOUSE_START_DATE",
    "spark_version": "DATABRICKS_SPARK_VERSION",
    "node_type": "DATABRICKS_NODE_TYPE",
    "workers": "DATABRICKS_WORKERS",
}


def jobs() -> dict[str, dict]:
    return BUNDLE["resources"]["jobs"]


def test_the_bundle_has_the_structure_databricks_reads():
    assert set(BUNDLE) == TOP_LEVEL
    for name, job in jobs().items():
        assert Job.from_dict(job).name, name  # refuses unknown and missing fields
    for name, schema in BUNDLE["resources"]["schemas"].items():
        assert str(Schema.from_dict(schema).catalog_name) == "${var.catalog}", name
    targets = BUNDLE["targets"]
    assert {t: (c["mode"], c.get("default", False)) for t, c in targets.items()} == {
        "dev": ("development", True),
        "prod": ("production", False),
    }
    assert all(set(c) <= TARGET_KEYS for c in targets.values())
    # Every ${var.x} is declared, and no value is written where a variable belongs.
    text = (ROOT / "databricks.yml").read_text()
    used = set(re.findall(r"\$\{var\.([a-z_]+)\}", text))
    assert used == set(BUNDLE["variables"])
    # Comments and descriptions may show examples; values may not.
    body = "\n".join(
        line for line in text.split("\nbundle:", 1)[1].splitlines()
        if not line.strip().startswith(("#", "description:"))
    )  # fmt: skip
    assert not re.search(r"https?://|@[a-z0-9-]+\.|azuredatabricks\.net|dfs\.core", body)


def test_a_broken_bundle_is_refused_by_the_same_models():
    job = yaml.safe_load(yaml.safe_dump(jobs()["silver"]))
    job["tasks"][0]["python_wheel_task"]["entrypoint"] = "typo"
    with pytest.raises(ValueError, match="Unexpected field 'entrypoint' for class PythonWheelTask"):
        Job.from_dict(job)


def test_the_jobs_run_the_wheel_dagster_submits_with_commands_the_cli_accepts(tmp_path):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert re.sub(r"[-.]+", "_", project["name"]) == task.WHEEL_PACKAGE
    # The cluster installs the wheel without extras: its runtime's Python (3.12 on DBR 17) and
    # its own Spark and Delta, which a pyspark from PyPI would shadow.
    assert project["requires-python"] == ">=3.11,<3.13"
    required = {re.split(r"[\[=<>]", d)[0] for d in project["dependencies"]}
    assert not required & {"pyspark", "delta-spark", "dagster-databricks", "dagster-pyspark"}
    assert task.ENTRY_POINT in project["scripts"]
    artifact = BUNDLE["artifacts"][task.WHEEL_PACKAGE]
    assert (artifact["type"], artifact["path"]) == ("whl", ".")
    assert "--wheel-dir dist" in artifact["build"]

    settings = make_settings(tmp_path)
    groups = {}
    for name, job in jobs().items():
        (step,) = job["tasks"]
        wheel = step["python_wheel_task"]
        assert (wheel["package_name"], wheel["entry_point"]) == (
            task.WHEEL_PACKAGE,
            task.ENTRY_POINT,
        )
        assert step["libraries"] == [{"whl": "./dist/*.whl"}]
        args = parser().parse_args(wheel["parameters"])
        assert (args.command, args.latest) == ("materialize", True)
        groups[name] = args.group
        assert group_selection(settings, args.group), f"no asset in group {args.group}"
    assert groups == {"silver": "silver", "gold": "gold"}


def test_the_job_cluster_is_the_one_dagster_submits(tmp_path):
    defaults = {
        v: BUNDLE["variables"][v].get("default") for v in BUNDLE["variables"]
    }  # fmt: skip
    for variable, setting in VARIABLE_SETTINGS.items():
        assert str(defaults[variable]) == VARIABLES[setting][0], variable
    settings = make_settings(
        tmp_path,
        DATABRICKS_HOST="https://example.invalid",
        DATABRICKS_WHEEL="/Volumes/x/y/z/w.whl",
        DATABRICKS_SECRET_SCOPE="spotify",
        LAKEHOUSE_CATALOG="spotify",
    )
    env = {
        "SPOTIFY_CLIENT_ID": "id", "SPOTIFY_CLIENT_SECRET": "secret", "AZURE_TENANT_ID": "t",
        "AZURE_CLIENT_ID": "c", "AZURE_CLIENT_SECRET": "s",
    }  # fmt: skip
    submitted = task.new_cluster(settings, env)
    for name, job in jobs().items():
        (cluster,) = job["job_clusters"]
        bundled = cluster["new_cluster"]
        resolved = {
            k: defaults.get(v[6:-1], v) if isinstance(v, str) and v.startswith("${var.") else v
            for k, v in bundled.items()
            if k != "spark_env_vars"
        }
        assert resolved == {k: v for k, v in submitted.items() if k != "spark_env_vars"}, name
        # The same variables reach the cluster, and the same secrets, by the same names.
        bundled_env = bundled["spark_env_vars"]
        assert set(bundled_env) <= set(submitted["spark_env_vars"]), name
        assert bundled_env["SPARK_ENGINE"] == "local"
        for variable in BUNDLE_SECRETS:
            key = task.SECRET_KEYS[variable]
            assert bundled_env[variable] == task.secret_reference("${var.secret_scope}", key)
            assert submitted["spark_env_vars"][variable] == task.secret_reference("spotify", key)
        secrets = {v for v, value in bundled_env.items() if "{{secrets/" in str(value)}
        assert secrets == set(BUNDLE_SECRETS), name


def test_the_schemas_are_the_layers_named_as_the_tables_are():
    schemas = BUNDLE["resources"]["schemas"]
    assert set(schemas) == {layer.value for layer in Layer}
    # The dev target prefixes every name (schemas included) and tells the jobs the same prefix.
    dev = BUNDLE["targets"]["dev"]
    prefix = dev["variables"]["schema_prefix"]
    assert prefix == dev["presets"]["name_prefix"] == "dev_${workspace.current_user.short_name}_"
    assert BUNDLE["variables"]["schema_prefix"]["default"] == ""  # prod: no prefix
    for layer in Layer:
        assert schemas[layer.value]["name"] == layer.value
        name = table_name(
            layer,
            "dim_user",
            "spotify",
            prefix.replace("${workspace.current_user.short_name}", "ann"),
        )
        assert name.schema == "dev_ann_" + layer.value
        grants = {g["principal"]: set(g["privileges"]) for g in schemas[layer.value]["grants"]}
        assert grants["${var.engineers}"] >= {"USE_SCHEMA", "SELECT", "MODIFY"}
    gold = {g["principal"]: set(g["privileges"]) for g in schemas["gold"]["grants"]}
    assert gold["${var.analysts}"] == {"USE_SCHEMA", "SELECT"}
