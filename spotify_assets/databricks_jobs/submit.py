"""The Dagster side of the databricks engine: every step submits itself as a Databricks job.

`submitted` turns the definitions' assets and checks into twins with the same keys, checks,
partitions, config and policies whose body hands the step to `PipesDatabricksClient`: the
context goes in through DBFS, the cluster runs the same asset function (`remote_step`), and its
logs, materialisations and check results come back as Pipes messages. Cancelling the run in
Dagster cancels the Databricks run.
"""

from collections.abc import Iterator, Sequence
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetMaterialization,
    AssetsDefinition,
    ConfigurableResource,
    MaterializeResult,
    MetadataValue,
    multi_asset,
    multi_asset_check,
)
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._serdes import deserialize_value
from dagster_databricks import PipesDatabricksClient, PipesDbfsMessageReader
from databricks.sdk import WorkspaceClient
from databricks.sdk.service import jobs

from spotify_assets.databricks_jobs.task import task_key

RESOURCE_KEY = "databricks"
RUN_ID = "Databricks Job Run ID"  # the metadata dagster-databricks reports
RUN_URL = "Databricks Job Run URL"


class _Client(PipesDatabricksClient):
    """dagster-databricks' single-task `run` cancels the Databricks run when Dagster interrupts
    the step, then returns as if it had finished: remember the interruption to raise it again."""

    interrupted = False

    def _poll_til_success(self, context: Any, run_id: int) -> None:
        try:
            super()._poll_til_success(context, run_id)
        except DagsterExecutionInterruptedError:
            self.interrupted = True
            raise


class DatabricksJobs(ConfigurableResource):
    """Submits steps to a Databricks workspace. `token` is an EnvVar when set; without it the
    Databricks SDK authenticates as it is configured (Azure CLI, managed identity, ARM_*)."""

    host: str
    token: str = ""
    task: dict[str, Any]  # what every step submits (spotify_assets.databricks_jobs.task)
    settings: dict[str, str] = {}  # the plain settings, for a cluster whose environment is its own
    poll_seconds: float = 5.0

    def workspace(self) -> WorkspaceClient:
        return WorkspaceClient(host=self.host, token=self.token or None)

    def run_step(self, context: Any, extras: dict[str, Any]) -> Iterator[Any]:
        """Submit the step, wait for it, and yield the results the cluster reported."""
        workspace = self.workspace()
        client = _Client(
            client=workspace,
            # Messages are read as often as the run is polled (the reader's default is 10 s).
            message_reader=PipesDbfsMessageReader(client=workspace, interval=self.poll_seconds),
            poll_interval_seconds=self.poll_seconds,
        )
        task = {**self.task, "task_key": task_key(extras["step"])}
        extras = {**extras, "settings": self.settings}
        invocation = client.run(
            context=context,
            task=jobs.SubmitTask.from_dict(task),
            extras=extras,
            submit_args={"run_name": f"dagster {extras['step']}"},
        )
        run_id = int(str(invocation.metadata[RUN_ID].value))
        # `run` returns only after the run succeeded (it raises on any other end) or after it
        # cancelled the run for an interruption.
        if client.interrupted:  # the Databricks run is cancelled: the Dagster run stops too
            raise DagsterExecutionInterruptedError(f"Databricks run {run_id} cancelled")
        links = {
            "databricks_run_id": run_id,
            **(
                {"databricks_run_url": MetadataValue.url(str(invocation.metadata[RUN_URL].value))}
                if RUN_URL in invocation.metadata
                else {}
            ),
        }
        yield from results(invocation.get_custom_messages(), links)


def results(messages: Sequence[Any], links: dict[str, Any]) -> Iterator[Any]:
    """The cluster's materialisations (one per asset: a range reports the same figures for each
    of its partitions) and check evaluations, each with the Databricks run's id and link."""
    seen = set()
    for message in messages:
        if not isinstance(message, dict) or message.get("kind") not in ("materialization", "check"):
            continue
        if message["kind"] == "materialization":
            materialization = deserialize_value(message["event"], AssetMaterialization)
            if materialization.asset_key in seen:
                continue
            seen.add(materialization.asset_key)
            yield MaterializeResult(
                asset_key=materialization.asset_key,
                metadata={**materialization.metadata, **links},
            )
        else:
            event = deserialize_value(message["event"], AssetCheckEvaluation)
            yield AssetCheckResult(
                asset_key=event.asset_key,
                check_name=event.check_name,
                passed=event.passed,
                severity=event.severity,
                description=event.description,
                metadata={**event.metadata, **links},
            )


def _config_schema(node: Any) -> dict | None:
    """The op's config fields (e.g. gold's `full_refresh`), so the same run config applies."""
    fields = getattr(node.config_schema.as_field().config_type, "fields", None)
    return dict(fields) if fields else None


def submitted_asset(assets_def: AssetsDefinition) -> AssetsDefinition:
    """The same asset(s), computed by a Databricks job."""
    node = assets_def.node_def

    @multi_asset(
        name=node.name,
        specs=list(assets_def.specs),
        check_specs=list(assets_def.check_specs),
        backfill_policy=assets_def.backfill_policy,
        can_subset=assets_def.can_subset,
        config_schema=_config_schema(node),
        required_resource_keys={RESOURCE_KEY},
        op_tags=node.tags,
        pool=assets_def.op.pool,
    )
    def _step(context):
        extras = {
            "step": node.name,
            "assets": [k.to_user_string() for k in context.selected_asset_keys],
            "checks": [k.to_user_string() for k in context.selected_asset_check_keys],
            "op_config": context.op_config or {},
            # Pipes' own context carries a single partition key only, not a range.
            "partition_key_range": (
                [context.partition_key_range.start, context.partition_key_range.end]
                if context.has_partition_key_range
                else None
            ),
        }
        yield from getattr(context.resources, RESOURCE_KEY).run_step(context, extras)

    return _step


def submitted_check(checks_def: AssetChecksDefinition) -> AssetChecksDefinition:
    """The same check(s), evaluated by a Databricks job."""
    node = checks_def.node_def

    @multi_asset_check(
        name=node.name,
        specs=list(checks_def.check_specs),
        can_subset=True,  # the step runs the selected checks only (extras' "checks")
        config_schema=_config_schema(node),
        required_resource_keys={RESOURCE_KEY},
        op_tags=node.tags,
    )
    def _step(context):
        op = context.op_execution_context
        extras = {
            "step": node.name,
            "assets": [],
            "checks": [k.to_user_string() for k in op.selected_asset_check_keys],
            "op_config": op.op_config or {},
            "partition_key_range": None,
        }
        yield from getattr(op.resources, RESOURCE_KEY).run_step(op, extras)

    return _step


def submitted(
    assets: Sequence[AssetsDefinition], checks: Sequence[AssetChecksDefinition]
) -> tuple[list[AssetsDefinition], list[AssetChecksDefinition]]:
    return [submitted_asset(a) for a in assets], [submitted_check(c) for c in checks]
