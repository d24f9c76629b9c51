"""What a finished run tells its alert, read from the Dagster instance's event log: its assets and
partitions, the steps that failed and why, and the checks that failed with their counts."""

from __future__ import annotations

from collections.abc import Iterable

from dagster import AssetCheckKey, AssetCheckSeverity, DagsterEventType, DagsterInstance
from dagster._core.definitions.metadata import FloatMetadataValue, IntMetadataValue
from dagster._core.storage.asset_check_execution_record import (
    COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES,
    AssetCheckExecutionRecordStatus,
)
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

from spotify_assets.alerts.message import Alert, FailedCheck, FailedStep, summarise_error

SEVERITY_RANK = {"WARN": 1, "ERROR": 2}

_EVENTS = {
    DagsterEventType.STEP_FAILURE,
    DagsterEventType.ASSET_CHECK_EVALUATION,
    DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
}


def job_label(job_name: str) -> str:
    """Ad-hoc materialisations run in Dagster's implicit asset job, named with underscores."""
    return "ad-hoc materialisation" if job_name.startswith("__") else job_name


def partitions(run: DagsterRun) -> str:
    tags = run.tags
    if PARTITION_NAME_TAG in tags:
        return tags[PARTITION_NAME_TAG]
    start, end = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if start and end:
        return start if start == end else f"{start}..{end}"
    return ""


def run_alert(
    instance: DagsterInstance, run: DagsterRun, kind: str, ui_url: str, error: str = ""
) -> Alert:
    """The alert of one finished run: run_failure, run_success or check_failure (the caller
    narrows failed_checks to the ones that alert)."""
    records = instance.all_logs(run.run_id, of_type=_EVENTS)
    assets: set[str] = {k.to_user_string() for k in run.asset_selection or ()}
    failed_steps, failed_checks = [], []
    for record in records:
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type == DagsterEventType.ASSET_MATERIALIZATION_PLANNED and event.asset_key:
            assets.add(event.asset_key.to_user_string())
        elif event.event_type == DagsterEventType.STEP_FAILURE:
            info = event.step_failure_data.error
            while info is not None and info.cause is not None:  # Dagster's wrapper aside
                info = info.cause
            message = info.message if info else event.message or ""
            cls_name = info.cls_name if info else None
            failed_steps.append(
                FailedStep(event.step_key or "?", summarise_error(cls_name, message))
            )
        elif event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.asset_check_evaluation_data
            if not evaluation.passed:
                failed_checks.append(
                    FailedCheck(
                        asset=evaluation.asset_key.to_user_string(),
                        check=evaluation.check_name,
                        severity=evaluation.severity.value,
                        counts=_counts(evaluation.metadata.items()),
                    )
                )
    status = {"run_failure": "FAILURE", "run_success": "SUCCESS"}.get(kind, "CHECK FAILED")
    return Alert(
        kind=kind,
        status=status,
        job=job_label(run.job_name),
        run_id=run.run_id,
        run_url=f"{ui_url.rstrip('/')}/runs/{run.run_id}",
        assets=tuple(sorted(assets)),
        partitions=partitions(run),
        failed_steps=tuple(failed_steps),
        failed_checks=tuple(failed_checks),
        error="" if failed_steps else summarise_error(None, error),
    )


def newly_failing(
    instance: DagsterInstance, run_id: str, checks: Iterable[FailedCheck], threshold: str
) -> list[FailedCheck]:
    """The run's failed checks at `threshold` severity or above that start an incident: the same
    check's evaluation before this run did not fail at that severity (a check that stays failing
    run after run is one incident, one alert)."""
    floor = SEVERITY_RANK[threshold.upper()]
    new = []
    for check in checks:
        if SEVERITY_RANK.get(check.severity, 0) < floor:
            continue
        key = AssetCheckKey.from_user_string(f"{check.asset}:{check.check}")
        previous = _evaluation_before(instance, key, run_id)
        if previous is None or not _failed_at(previous, floor):
            new.append(check)
    return new


def _evaluation_before(instance: DagsterInstance, key: AssetCheckKey, run_id: str):
    """The check's last completed evaluation before this run's (runs that failed before the
    check ran leave no verdict and are passed over), paging back through its history."""
    storage = instance.event_log_storage
    cursor, ours = None, None
    while True:
        page = storage.get_asset_check_execution_history(
            key, limit=50, cursor=cursor, status=COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES
        )
        for record in page:  # newest first
            if ours is not None and record.run_id != run_id:
                return record
            if record.run_id == run_id:
                ours = record
        if len(page) < 50:
            return None
        cursor = page[-1].id


def _failed_at(record, floor: int) -> bool:
    if record.status != AssetCheckExecutionRecordStatus.FAILED:
        return False
    evaluation = record.event.dagster_event.asset_check_evaluation_data if record.event else None
    severity = evaluation.severity if evaluation else AssetCheckSeverity.ERROR
    return SEVERITY_RANK[severity.value] >= floor


def _counts(metadata) -> dict[str, int]:
    """The evaluation's numeric metadata (failed_records, duplicated_versions, lag_days...)."""
    counts = {}
    for name, value in metadata:
        if isinstance(value, IntMetadataValue | FloatMetadataValue) and value.value is not None:
            counts[name] = int(value.value)
    return counts
