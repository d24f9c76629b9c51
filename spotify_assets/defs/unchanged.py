"""A step whose inputs did not change since it last ran does no Spark work.

A silver or gold step's tables are a function of the tables it reads, its code and the range it
ran over. Each materialisation records in its metadata (`built_from`) the Delta versions of the
tables the step read (before reading them) and wrote (after writing them), its partition range
and a fingerprint of the project's code. Before any Spark work, the step compares with its last
materialisation: when that one covered this range, every input is still at the version it read
and every output at the version it wrote (nothing wrote them since), its tables already hold what
it would write. It reports that materialisation's figures and check verdicts again, names the
run they come from (`unchanged_since_run`), and returns: delta-rs reads the versions in
milliseconds, Spark is never asked.

Any doubt recomputes: no earlier materialisation in this Dagster instance, a narrower range, a
moved version, other code, a check without a verdict, `full_refresh`, or a run tagged
`lakehouse/recompute=true` (what `materialize --full-refresh` sets).

Every step also reports what it cost: the Spark jobs it ran (`spark_jobs`, on a local session,
whose jobs the step's job group names) and the Delta commits it made (`delta_commits`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
)
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from pyspark.sql import SparkSession

from spotify_assets.lake import delta

RECORD = "built_from"
RECOMPUTE_TAG = "lakehouse/recompute"
_DONE = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}
_PACKAGE = Path(__file__).resolve().parent.parent


def code_fingerprint() -> str:
    """The project's code and SQL templates: a change to either recomputes every step once."""
    digest = hashlib.sha256()
    templates = _PACKAGE.parent / "jinja_templates"
    files = [*_PACKAGE.rglob("*.py"), *(templates.rglob("*.j2") if templates.is_dir() else [])]
    for file in sorted(files):
        digest.update(file.relative_to(_PACKAGE.parent).as_posix().encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


# At import, as the code that runs was loaded: a file edited during a run is not the run's code.
CODE = code_fingerprint()


def _versions(paths: Sequence[str]) -> dict[str, str]:
    """Each table's identity and version: a table deleted and created again at the same path
    starts at version 0 again, under a new id."""
    return {path: delta.table_state(path) for path in paths}


class Step:
    """One run of a silver or gold step: what it reads and writes, and what it cost."""

    def __init__(
        self,
        context: AssetExecutionContext,
        session: SparkSession,
        reads: Sequence[str],
        writes: Sequence[str],
        recompute: bool = False,
    ) -> None:
        self.context, self.session = context, session
        self.writes = list(writes)
        self.read_versions = _versions(reads)
        self.written_before = _versions(writes)
        self.recompute = recompute or context.run.tags.get(RECOMPUTE_TAG) == "true"
        self.range = None
        partitioned = context.assets_def.partitions_def is not None
        if partitioned and (context.has_partition_key_range or context.has_partition_key):
            window = context.partition_time_window
            self.range = [window.start.isoformat(), window.end.isoformat()]
        self.job_group = job_group(context)
        context_ = getattr(session, "sparkContext", None) if _local(session) else None
        if context_ is not None:
            context_.setJobGroup(self.job_group, self.job_group)

    def unchanged(self, keys: Sequence[AssetKey]) -> list[MaterializeResult] | None:
        """The results to report again when nothing changed since the last materialisation of
        `keys` (the step's assets); None when the step must run."""
        if self.recompute:
            return None
        results: list[MaterializeResult] = []
        since = ""
        for key in keys:
            entry = self.context.instance.get_latest_materialization_event(key)
            materialization = entry.asset_materialization if entry else None
            if entry is None or materialization is None:
                return None
            recorded = materialization.metadata.get(RECORD)
            if not self._still_describes(recorded.value if recorded else None):
                return None
            checks = self._last_verdicts(key, entry.run_id)
            if checks is None:
                return None
            # The run that computed the figures (a skipping run reports its source's).
            origin = materialization.metadata.get("unchanged_since_run")
            since = str(origin.value) if origin is not None else entry.run_id
            metadata: dict[str, Any] = {
                k: v for k, v in materialization.metadata.items() if k not in _COSTS
            }
            metadata.update(
                unchanged_since_run=MetadataValue.text(since), spark_jobs=0, delta_commits=0
            )
            results.append(
                MaterializeResult(asset_key=key, metadata=metadata, check_results=checks)
            )
        self.context.log.info(
            f"Inputs and outputs unchanged since run {since}: nothing to recompute"
        )
        return results

    def _still_describes(self, recorded: Any) -> bool:
        if not isinstance(recorded, Mapping):
            return False
        # The same range, not a wider one: a range's figures and verdicts are its own.
        return (
            recorded.get("range") == self.range
            and recorded.get("code") == CODE
            and recorded.get("reads") == self.read_versions
            and recorded.get("writes") == self.written_before
        )

    def _last_verdicts(self, key: AssetKey, run_id: str) -> list[AssetCheckResult] | None:
        """The evaluation of each of the asset's checks in this step by run `run_id` (the run
        of the materialisation reported again); None when one has none."""
        specs = [s for s in self.context.assets_def.check_specs if s.asset_key == key]
        storage = self.context.instance.event_log_storage
        results = []
        for spec in specs:
            history = storage.get_asset_check_execution_history(spec.key, limit=20, status=_DONE)
            mine = [r for r in history if r.run_id == run_id]
            event = mine[0].event if mine else None
            evaluation = (
                event.dagster_event.event_specific_data if event and event.dagster_event else None
            )
            if evaluation is None or not hasattr(evaluation, "passed"):
                return None
            results.append(
                AssetCheckResult(
                    asset_key=key,
                    check_name=spec.name,
                    passed=evaluation.passed,
                    metadata=dict(evaluation.metadata),
                    severity=evaluation.severity,
                    description=evaluation.description,
                )
            )
        return results

    def record(self) -> dict[str, Any]:
        """The metadata that lets the next run skip this step, and what this one cost."""
        written = _versions(self.writes)
        return {
            RECORD: MetadataValue.json(
                {
                    "reads": self.read_versions,
                    "writes": written,
                    "range": self.range,
                    "code": CODE,
                }
            ),
            **self.costs(written),
        }

    def costs(self, written: Mapping[str, str] | None = None) -> dict[str, int]:
        """The Spark jobs the step's job group ran (local sessions only) and the commits it
        made to the tables it writes."""
        after = _versions(self.writes) if written is None else written
        figures = {
            "delta_commits": sum(_commits(self.written_before[p], now) for p, now in after.items())
        }
        if _local(self.session):
            tracker = self.session.sparkContext.statusTracker()
            figures["spark_jobs"] = len(tracker.getJobIdsForGroup(self.job_group))
        return figures


_COSTS = ("spark_jobs", "delta_commits", "unchanged_since_run")


def job_group(context: AssetExecutionContext) -> str:
    """The Spark job group of a step's jobs: its run and step (shown in Spark's UI too)."""
    return f"{context.run_id}:{context.get_step_execution_context().step.key}"


def _commits(before: str, after: str) -> int:
    """Commits between two `delta.table_state`s of a path (a table created anew: all of its)."""
    (old_id, old), (new_id, new) = (s.rsplit("@", 1) for s in (before, after))
    return int(new) - int(old) if old_id == new_id else int(new) + 1


def _local(session: SparkSession) -> bool:
    """A session with a JVM in this process (Spark Connect's has none)."""
    return getattr(session, "_jvm", None) is not None
