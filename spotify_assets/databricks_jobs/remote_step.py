"""The cluster side of the databricks engine: one Dagster step of the same definitions, run with
the cluster's Spark inside a Pipes session (`spotify-lakehouse remote-step`).

The step runs in an in-process Dagster run on the driver, so the asset and check functions are
exactly the ones the local engine runs. Its log lines go back as Pipes log messages; its
materialisations and check evaluations go back serialised whole (Dagster's own serialisation:
column schemas, lineage and every metadata type arrive as they were produced).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster_pipes import (
    DAGSTER_PIPES_CONTEXT_CLI_ARGUMENT,
    PipesCliArgsParamsLoader,
    PipesContext,
    PipesContextLoader,
    PipesDbfsMessageWriter,
    PipesEnvVarParamsLoader,
    PipesExtras,
    PipesParams,
    PipesParamsLoader,
    open_dagster_pipes,
)

# Where DBFS is mounted on the cluster (FUSE). A stand-in workspace mounts it elsewhere.
DBFS_MOUNT_VARIABLE = "SPOTIFY_DBFS_MOUNT"
CHUNK_SECONDS = 1.0  # how often messages are flushed to DBFS


class RemoteStepFailed(RuntimeError):
    """The step failed on the cluster; the message is Dagster's error there."""


def dbfs_mount() -> str:
    return os.environ.get(DBFS_MOUNT_VARIABLE, "/dbfs")


def mounted(path: str) -> str:
    return os.path.join(dbfs_mount(), path.removeprefix("dbfs:").lstrip("/"))


class MountedDbfsContextLoader(PipesContextLoader):
    """Reads the context Dagster put on DBFS, through the cluster's mount."""

    @contextmanager
    def load_context(self, params: PipesParams) -> Iterator[Any]:
        import json

        with open(mounted(str(params["path"])), encoding="utf-8") as f:
            yield json.load(f)


class MountedDbfsMessageWriter(PipesDbfsMessageWriter):
    """Writes message chunks to the DBFS folder Dagster reads, through the cluster's mount."""

    def make_channel(self, params: PipesParams):
        from dagster_pipes import PipesBufferedFilesystemMessageWriterChannel

        return PipesBufferedFilesystemMessageWriterChannel(
            path=mounted(str(params["path"])), interval=self.interval
        )

    def get_opened_extras(self) -> PipesExtras:
        # The parent reads cluster log settings from the active SparkSession (there is none
        # before the step starts its own off Databricks).
        from pyspark.sql import SparkSession

        return super().get_opened_extras() if SparkSession.getActiveSession() else {}


def root_cause(error: Any) -> Any:
    """The error under Dagster's wrappers (`Error occurred while executing op ...`)."""
    while error.cause is not None:
        error = error.cause
    return error


def params_loader() -> PipesParamsLoader:
    """On an existing cluster Dagster passes Pipes' parameters as arguments, on a new one in
    the environment."""
    import sys

    if DAGSTER_PIPES_CONTEXT_CLI_ARGUMENT in sys.argv:
        return PipesCliArgsParamsLoader()
    return PipesEnvVarParamsLoader()


def main() -> int:
    with open_dagster_pipes(
        context_loader=MountedDbfsContextLoader(),
        message_writer=MountedDbfsMessageWriter(interval=CHUNK_SECONDS),
        params_loader=params_loader(),
    ) as pipes:
        run(pipes)
    return 0


def run(pipes: PipesContext) -> None:
    from dagster import AssetCheckKey, AssetKey, AssetSelection, DagsterInstance, materialize
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )
    from dagster._serdes import serialize_value

    from spotify_assets.definitions import build_definitions
    from spotify_assets.settings import load_settings

    step = pipes.extras
    # The orchestrator's plain settings win over an existing cluster's own environment (a new
    # job cluster was started with them); secrets stay the cluster's.
    os.environ.update(step.get("settings") or {})
    settings = load_settings()
    if settings.spark_engine != "local":
        raise RemoteStepFailed(
            f"SPARK_ENGINE={settings.spark_engine} on the cluster: a submitted step runs on the "
            "cluster's own Spark (SPARK_ENGINE=local)"
        )
    defs = build_definitions(settings)
    assets = [AssetKey.from_user_string(k) for k in step["assets"]]
    checks = [AssetCheckKey.from_user_string(k) for k in step["checks"]]
    selection = AssetSelection.assets(*assets).without_checks() | AssetSelection.checks(*checks)
    tags = {}
    if step["partition_key_range"]:
        start, end = step["partition_key_range"]
        tags = {ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end}
    run_config = {"ops": {step["step"]: {"config": step["op_config"]}}} if step["op_config"] else {}
    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            [*(defs.assets or []), *(defs.asset_checks or [])],  # type: ignore[list-item]
            selection=selection,
            resources=defs.resources,
            instance=instance,
            tags=tags,
            run_config=run_config,
            raise_on_error=False,
        )
        for entry in instance.all_logs(result.run_id):
            if entry.dagster_event is None and entry.user_message:
                pipes.log.log(int(entry.level), entry.user_message)
    for event in result.all_events:
        if event.is_step_materialization:
            materialization = event.step_materialization_data.materialization
            pipes.report_custom_message(
                {"kind": "materialization", "event": serialize_value(materialization)}
            )
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            pipes.report_custom_message(
                {"kind": "check", "event": serialize_value(event.event_specific_data)}
            )
    failures = [
        e.step_failure_data.error
        for e in result.all_events
        if e.is_step_failure and e.step_failure_data.error is not None
    ]
    # A failed blocking check fails the step in Dagster too, from the results sent above.
    errors = [f for f in failures if f.cls_name != "DagsterAssetCheckFailedError"]
    if errors:
        message = "; ".join(root_cause(e).message.strip() for e in errors)
        pipes.log.error(message)
        raise RemoteStepFailed(message)
    if not result.success and not failures:
        raise RemoteStepFailed(f"the step {step['step']} did not succeed on the cluster")
