"""Operational policies of the lakehouse's steps, in one place:

- concurrency pools: each step that writes a table claims that table's pool, and dagster.yaml
  gives every pool one slot, so two runs never write the same table at once (the second
  waits for the first; a run's other steps go on);
- retries of transient failures only: a lost connection, an unavailable source or Spark
  Connect server, a Delta commit that lost a race with another writer. The step runs again
  after a growing wait (its writes are idempotent); any other error fails at once;
- declarative automation: silver and gold follow their upstreams, window by window;
- freshness: gold is expected to be updated daily (the daily schedule's run).
"""

from __future__ import annotations

import errno
import functools
import inspect
import re
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from dagster import (
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    AssetSpec,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    FreshnessPolicy,
    RetryRequested,
)

from spotify_assets.catalog import Layer
from spotify_assets.source.resource import SourceUnavailable

POOL_PREFIX = "lakehouse"
MAX_TRANSIENT_RETRIES = 3
FIRST_RETRY_SECONDS = 10.0  # then 20, 40
# Gold is rebuilt each day by the daily schedule: late after 25 hours, failing after 26.
GOLD_FRESHNESS = FreshnessPolicy.time_window(
    fail_window=timedelta(hours=26), warn_window=timedelta(hours=25)
)
AUTOMATED_GROUPS = (Layer.SILVER.value, Layer.GOLD.value)  # the Spotify branch has its schedule

# Delta's optimistic concurrency: another writer committed first. Retrying re-reads the table.
_DELTA_CONFLICT = re.compile(
    r"Concurrent(Append|DeleteRead|DeleteDelete|Transaction)Exception|MetadataChangedException"
    r"|ProtocolChangedException|DELTA_CONCURRENT_"
)
_TRANSIENT_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.ETIMEDOUT, errno.EPIPE}


def pool_for(target: AssetKey | str) -> str:
    """The concurrency pool of the step writing `target` (a table's asset key)."""
    name = target.to_user_string() if isinstance(target, AssetKey) else target
    return f"{POOL_PREFIX}/{name}"


def is_transient(exc: BaseException) -> bool:
    """Whether another attempt of the same step may succeed."""
    for error in _chain(exc):
        if isinstance(error, SourceUnavailable | ConnectionError | TimeoutError):
            return True
        if isinstance(error, OSError) and error.errno in _TRANSIENT_ERRNOS:
            return True
        name, text = type(error).__name__, str(error)
        if _DELTA_CONFLICT.search(name) or _DELTA_CONFLICT.search(text[:2000]):
            return True
        if name == "SparkConnectGrpcException" and "UNAVAILABLE" in text[:2000]:
            return True
        if name in {"ServiceRequestError", "ServiceResponseError"}:  # azure-core: no answer
            return True
    return False


def _chain(exc: BaseException):
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def retry_transient(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a step's body (context first): a transient failure asks Dagster to run the step
    again (RetryRequested) after FIRST_RETRY_SECONDS, doubled each time, at most
    MAX_TRANSIENT_RETRIES times; other errors propagate unchanged."""

    def retry(context, exc: Exception) -> None:
        if not is_transient(exc):
            return
        number = context.retry_number
        wait = FIRST_RETRY_SECONDS * 2**number
        if number < MAX_TRANSIENT_RETRIES:
            context.log.warning(
                f"Transient failure ({type(exc).__name__}): retry {number + 1} of "
                f"{MAX_TRANSIENT_RETRIES} in {wait:g} s"
            )
        raise RetryRequested(max_retries=MAX_TRANSIENT_RETRIES, seconds_to_wait=wait) from exc

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(context, *args, **kwargs):
            try:
                yield from fn(context, *args, **kwargs)
            except Exception as exc:
                retry(context, exc)
                raise

        return generator

    @functools.wraps(fn)
    def function(context, *args, **kwargs):
        try:
            return fn(context, *args, **kwargs)
        except Exception as exc:
            retry(context, exc)
            raise

    return function


def follows_upstream(partitioned: bool, histories: Sequence[AssetKey] = ()) -> AutomationCondition:
    """Dagster's `eager`, for every window rather than the latest only, and never past a
    blocking check that failed upstream. A window whose upstream window is missing waits; an
    unpartitioned table (a whole history) follows any update of its upstream. A window does not
    follow an update of an unpartitioned history it reads (`histories`): every history changes
    daily, and every window would be rebuilt; the runs that change a history rebuild the
    windows that change with it (streams_enriched's windows_rebuilt_for_dimension_changes)."""
    updated = AutomationCondition.any_deps_updated()
    if partitioned and histories:
        updated = updated.ignore(AssetSelection.assets(*histories))
    trigger: AutomationCondition
    if partitioned:
        trigger = (
            AutomationCondition.newly_missing() | updated
        ).since_last_handled() & ~AutomationCondition.any_deps_missing()
    else:
        trigger = updated.since_last_handled()
    return (
        trigger
        & ~AutomationCondition.any_deps_in_progress()
        & ~AutomationCondition.in_progress()
        & AutomationCondition.all_deps_blocking_checks_passed()
    ).with_label("follows upstream")


def with_automation(assets: Sequence[AssetsDefinition]) -> list[AssetsDefinition]:
    """Silver and gold follow their upstreams; gold carries its freshness policy."""
    histories = [k for a in assets if a.partitions_def is None for k in a.keys]
    return [
        a.map_asset_specs(functools.partial(_follow, a.partitions_def is not None, histories))
        for a in assets
    ]


def _follow(partitioned: bool, histories: list[AssetKey], spec: AssetSpec) -> AssetSpec:
    if spec.group_name not in AUTOMATED_GROUPS:
        return spec
    return spec.replace_attributes(
        automation_condition=follows_upstream(partitioned, histories),
        freshness_policy=GOLD_FRESHNESS if spec.group_name == Layer.GOLD.value else None,
    )


def build_automation_sensor(running: bool) -> AutomationConditionSensorDefinition:
    """Evaluates the silver and gold automation conditions (Dagster's implicit sensor would
    start stopped); running by default unless LAKEHOUSE_AUTOMATION=off."""
    return AutomationConditionSensorDefinition(
        "lakehouse_automation",
        target=AssetSelection.groups(*AUTOMATED_GROUPS),
        default_status=DefaultSensorStatus.RUNNING if running else DefaultSensorStatus.STOPPED,
        minimum_interval_seconds=60,
        description="Requests the silver and gold windows whose upstream windows were updated.",
    )
