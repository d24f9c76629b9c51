"""Keep windows joined as-of to dimension change logs correct when the dimensions change later.

A window of enriched streams is built from the dimension versions known at the time. When a
dimension gains or loses versions afterwards (a late capture, a backfill of earlier days), the
windows whose streams reference a changed key must be rebuilt, or the table would depend on the
order runs happened in. Each built window records the Delta version of every dimension table it
read, in a JSON document beside the table; a run diffs each dimension between that version and
now (its change data feed, else Delta time travel) and rebuilds exactly the windows holding a
fact of a changed key at or after the time from which the key's versions changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import Window as W
from pyspark.sql import functions as F

from spotify_assets.ingestion.windows import days, ranges
from spotify_assets.lake import change_log, delta
from spotify_assets.lake.delta import Window
from spotify_assets.lake.documents import read_json, write_json_atomically


@dataclass
class AsOfState:
    """Per built window (ISO date), the Delta version of each dimension table it was built from."""

    windows: dict[str, dict[str, int]] = field(default_factory=dict)

    def record(self, days: list[date], versions: dict[str, int]) -> None:
        for day in days:
            self.windows[day.isoformat()] = dict(versions)


def load(path: str) -> AsOfState | None:
    """None when there is no usable record: every window of the table must be rebuilt."""
    try:
        raw = read_json(path)
        return AsOfState(windows={str(k): dict(v) for k, v in raw["windows"].items()})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def save(path: str, state: AsOfState) -> None:
    write_json_atomically(path, {"windows": state.windows})


def changed_since(
    spark: SparkSession, path: str, dim: dict[str, Any], since: int, now: int
) -> DataFrame | None:
    """Per key whose versions changed between Delta versions `since` and `now` of a dimension,
    `_from`: the earliest fact time whose version may differ (null: every time). None if
    `since` can no longer be read (vacuumed).

    A fact at time t takes the key's version valid at t (the first version also covers every
    earlier t). So a version added, removed or changed in a column the join reads moves the
    facts from its `start` on (from the start of time if it is, or was, the key's first); a
    version whose `end` alone moved (a later version arrived) moves the facts from the earlier
    of its two ends. A next day's changes thus reach the next day's facts, not older ones.
    Versions are compared through the change data feed when it can tell, else between the
    two snapshots."""
    key, start, end = dim["key"], dim["start"], dim.get("end")
    columns = [key, start, *dim["reads"], *([end] if end else [])]
    rows = _sides(spark, path, key, columns, since, now)
    if rows is None:
        return None
    # Partitioned by key once: each grouping below refines that key, so Spark shuffles once.
    # A version is a (key, start) pair, unique in each snapshot.
    ends = (
        [F.max(F.when(F.col(s) == 1, F.col(end))).alias(f"{s}_end") for s in ("_o", "_n")]
        if end
        else []
    )
    versions = (
        rows.repartition(key)
        .groupBy(key, start, *dim["reads"])
        .agg(F.sum("_o").alias("_o"), F.sum("_n").alias("_n"), *ends)
    )
    same = (F.col("_o") == 1) & (F.col("_n") == 1)  # one on each side, reading the same
    same_end = F.col("_o_end").eqNullSafe(F.col("_n_end")) if end else F.lit(True)
    unchanged = (F.col("_o") + F.col("_n") == 0) | (same & same_end)
    moved = versions.select(
        key,
        F.when(same, F.least("_o_end", "_n_end") if end else F.lit(None))  # its end alone moved
        .when(F.col(start) > F.min(start).over(W.partitionBy(key)), F.col(start))
        .alias("_from"),  # null: the key's first version, which covers every earlier time
        unchanged.alias("_unchanged"),
    ).where(~F.col("_unchanged"))
    return _per_key(moved, key)


def _sides(
    spark: SparkSession, path: str, key: str, columns: list[str], since: int, now: int
) -> DataFrame | None:
    """Rows flagged `_o` (the version `since` had it) and `_n` (`now` has it). From the change
    data feed when it can tell: its old and new images, beside the current rows of its keys
    (flagged neither: they tell which version is a key's first). Else both snapshots whole."""
    feed = change_log.changes(spark, path, columns, since, now)

    def flagged(frame: DataFrame, o: int, n: int) -> DataFrame:
        return frame.select(*columns, F.lit(o).alias("_o"), F.lit(n).alias("_n"))

    if feed is not None:
        gone = F.col("_change_type").isin("delete", "update_preimage")
        keys = F.broadcast(feed.select(key).distinct())
        current = delta.read(spark, path).join(keys, key, "left_semi")
        return (
            flagged(feed.where(gone), 1, 0)
            .unionByName(flagged(feed.where(~gone), 0, 1))
            .unionByName(flagged(current, 0, 0))
        )
    try:
        old = spark.read.format("delta").option("versionAsOf", since).load(path)
        old.schema  # noqa: B018 - resolves the snapshot, failing here if it is gone
    except AnalysisException:  # e.g. the version's log was cleaned up: rebuild everything
        return None
    new = spark.read.format("delta").option("versionAsOf", now).load(path)
    return flagged(old, 1, 0).unionByName(flagged(new, 0, 1))


def _per_key(frame: DataFrame, key: str) -> DataFrame:
    """One row per key: the earliest `_from`, null (every time) winning."""
    return frame.groupBy(key).agg(
        F.when(F.count_if(F.col("_from").isNull()) > 0, F.lit(None))
        .otherwise(F.min("_from"))
        .alias("_from")
    )


def window_days(frame: DataFrame, time_column: str) -> set[date]:
    rows = frame.select(F.to_date(time_column).alias("d")).distinct().collect()
    return {r["d"] for r in rows if r["d"] is not None}


def affected_days(
    spark: SparkSession,
    fact: DataFrame,
    time: str,
    dimensions: list[dict[str, Any]],
    read: Callable[[str], DataFrame],
    paths: dict[str, str],
    state: AsOfState,
    now: dict[str, int],
) -> set[date]:
    """Recorded windows holding a fact whose dimension version may have changed since the
    window was built. Each dimension is a dict with its `alias`, `view`, `key`, the columns of
    a version's validity (`start`, and `end` when stored) and the others the join reads
    (`reads`), and the join it is reached by (`join_from`: "f" for the fact or another
    dimension's alias, `join_column`); `read` gives a view's current rows and `paths` its path."""
    by_alias = {d["alias"]: d for d in dimensions}
    groups: dict[tuple, list[str]] = {}
    for day, versions in state.windows.items():
        groups.setdefault(tuple(sorted(versions.items())), []).append(day)
    affected: set[date] = set()
    hits: list[DataFrame] = []  # evaluated together: one Spark job, not one per dimension
    for recorded, group in groups.items():
        built = dict(recorded)
        streams = fact.where(F.to_date(time).isin([date.fromisoformat(d) for d in group]))
        for dim in dimensions:
            view = dim["view"]
            if built.get(view) == now[view]:
                continue
            since = built.get(view)
            keys = (
                None if since is None else changed_since(spark, paths[view], dim, since, now[view])
            )
            if keys is None:  # cannot tell what changed: rebuild the group
                affected.update(date.fromisoformat(d) for d in group)
                break
            # Follow the join path back to the fact: changed artists -> their tracks -> streams.
            while dim["join_from"] != "f":
                parent = by_alias[dim["join_from"]]
                via = read(parent["view"]).select(parent["key"], dim["join_column"]).distinct()
                keys = _per_key(
                    via.join(keys, via[dim["join_column"]] == keys[dim["key"]]).select(
                        via[parent["key"]], keys["_from"]
                    ),
                    parent["key"],
                )
                dim = parent
            hits.append(_since(streams, time, dim["join_column"], keys, dim["key"]))
    if hits:
        union = hits[0]
        for hit in hits[1:]:
            union = union.unionByName(hit)
        affected |= window_days(union, time)
    return affected


def _since(rows: DataFrame, time: str, column: str, keys: DataFrame, key: str) -> DataFrame:
    """The times of the rows whose `column` is among `keys`' `key` values, at or after the
    key's `_from`."""
    k = F.broadcast(keys.select(F.col(key).alias("_changed_key"), "_from"))
    hit = (rows[column] == k["_changed_key"]) & (k["_from"].isNull() | (rows[time] >= k["_from"]))
    return rows.join(k, hit, "left_semi").select(time)


def write_windows(
    spark: SparkSession,
    path: str,
    state_path: str,
    run: Window,
    fact: DataFrame,
    dimensions: list[dict[str, Any]],
    paths: dict[str, str],
    read: Callable[[str], DataFrame],
    build: Callable[[Window], DataFrame],
) -> list[date]:
    """Build the run's windows with `build`, and every other window whose dimension versions
    changed since it was built; record what each was built from. Returns the other windows."""
    assert isinstance(run.start, datetime) and isinstance(run.end, datetime)
    state = load(state_path)
    now = {d["view"]: delta.table_version(paths[d["view"]]) for d in dimensions}
    run_days = days(run.start.date(), run.end.date())
    if run.open_below:  # the first window also holds every older row: each older day is built
        older = F.col(run.column) < F.lit(run.start)
        below = window_days(fact.where(older), run.column)
        if delta.exists(path):
            below |= window_days(delta.read(spark, path).where(older), run.column)
        run_days = [*sorted(below), *run_days]
    if state is None:  # no record of how the table was built: rebuild everything it holds
        state = AsOfState()
        stale = set()
        if delta.exists(path):
            stale = window_days(delta.read(spark, path), run.column)
    else:
        stale = affected_days(spark, fact, run.column, dimensions, read, paths, state, now)
    others = sorted(stale - set(run_days))
    for first, last in ranges([*run_days, *others]):
        start = datetime(first.year, first.month, first.day)
        span = Window(run.column, start, start + timedelta(days=(last - first).days + 1))
        delta.replace_window(build(span), path, span)
    # Every recorded window is now consistent with the current dimensions (rebuilt, or checked
    # and unaffected): recording them at `now` keeps the next run's diffs to one per dimension.
    state.record([*run_days, *others, *map(date.fromisoformat, state.windows)], now)
    save(state_path, state)
    return others
