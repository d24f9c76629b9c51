"""Keep an SCD Type 2 table current at the cost of the keys that changed.

A dimension's history is a function of each key's change events alone, so only keys whose
events changed need their history recomputed. The keys come from the change data feed of the
silver change log since the version the table was last built from; that version is recorded in
the commit that wrote the table (change_log.recording). The changed keys' histories are
recomputed from all their events (late and out-of-order events land where they belong) and
MERGEd by surrogate key: new versions inserted, changed ones updated, vanished ones deleted.

The whole table is rebuilt instead when there is no record, when what the history depends on
changed (the SCD2 configuration, the rules, the change log's columns: the fingerprint), when the
feed cannot tell what changed, when asked (full_refresh), or when it is cheaper: a MERGE has a
fixed cost (the feed, the changed keys' events, the statement's jobs: about 15 s on 2 cores)
that a rebuild of a small dimension undercuts, so a dimension of fewer than
`REBUILD_BELOW_VERSIONS` versions is rebuilt. Both paths give the same rows.

A MERGE records the table's totals (versions, current versions), carried forward from the last
record by what it changed, so a run need not count a table it barely touched. A rebuild records
none: it writes without counting first, and the caller counts what it wrote (on the driver when
the table is small); the first MERGE after it counts its baseline the same way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spotify_assets.lake import change_log, delta
from spotify_assets.sql import render

RECORD = "scd2"
LOGIC_VERSION = 1  # bump when the history algorithm changes: every table is rebuilt once
# Below this many versions a rebuild costs less than a MERGE of changed keys: on 2 cores a
# rebuild takes about 26 us a version (31 s at 1,150,000), a MERGE step about 15 s plus its
# changes (25 s at 1,150,000 with 1% of the keys changed). The gold dimension's config
# (`rebuild_below_versions`) overrides it.
REBUILD_BELOW_VERSIONS = 500_000


@dataclass(frozen=True)
class Totals:
    """Versions in the table and how many are current (the unknown member aside)."""

    rows: int
    current: int


@dataclass(frozen=True)
class Plan:
    source_version: int
    fingerprint: str
    keys: DataFrame | None  # the changed keys; None: rebuild the whole table
    reason: str
    totals: Totals | None = None  # as recorded by the last MERGE; None: count them

    @property
    def full(self) -> bool:
        return self.keys is None

    def record(self, totals: Totals | None) -> dict:
        record = {"source_version": self.source_version, "fingerprint": self.fingerprint}
        if totals is not None:
            record.update(rows=totals.rows, current=totals.current)
        return record


def fingerprint(*parts: object) -> str:
    text = repr((LOGIC_VERSION, *parts))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan(
    spark: SparkSession,
    source: str,
    target: str,
    key: str,
    depends_on: str,
    full_refresh: bool = False,
    rebuild_below: int = REBUILD_BELOW_VERSIONS,
) -> Plan:
    """Decide between following the changed keys and rebuilding, and say why."""
    now = delta.table_version(source)
    last = change_log.recorded(spark, target, RECORD)

    def rebuild(reason: str) -> Plan:
        return Plan(now, depends_on, None, reason)

    if full_refresh:
        return rebuild("full refresh requested")
    if last is None:
        return rebuild("no record of a previous build that still describes the table")
    if last.get("fingerprint") != depends_on:
        return rebuild("the configuration, rules or change log columns changed")
    since, rows, current = (last.get(k) for k in ("source_version", "rows", "current"))
    if not isinstance(since, int):
        return rebuild("the record of the last build is incomplete")
    if since > now:
        return rebuild("the record of the last build is ahead of the change log")
    versions = rows if isinstance(rows, int) else delta.row_count(target)
    if versions < rebuild_below:
        return rebuild(
            f"a rebuild costs less than a MERGE at {versions:,} versions "
            f"(rebuild_below_versions: {rebuild_below:,})"
        )
    keys = change_log.changed_keys(spark, source, key, since, now)
    if keys is None:
        return rebuild(f"the change data feed cannot say what changed since version {since}")
    reason = f"change log versions {since + 1}..{now}"
    if isinstance(rows, int) and isinstance(current, int):
        return Plan(now, depends_on, keys, reason, Totals(rows, current))
    return Plan(now, depends_on, keys, reason)  # last built by a rebuild: the caller counts


def among(rows: DataFrame, keys: DataFrame, key: str, how: str = "left_semi") -> DataFrame:
    """`rows` whose `key` is (left_semi) or is not (left_anti) among `keys`, NULL matching
    NULL: events with a NULL key change and are quarantined like any other."""
    changed = F.broadcast(keys.select(F.col(key).alias("_changed_key")))
    return rows.join(changed, rows[key].eqNullSafe(changed["_changed_key"]), how)


def write_full(
    spark: SparkSession, history: DataFrame, unknown: DataFrame, path: str, plan: Plan
) -> None:
    """Replace the table with `history` plus the `unknown` member row, in one commit that
    records the change log version it was built from (and no totals: nothing is counted
    before the write, which computes the history once)."""
    rows = history.unionByName(unknown)
    new = not delta.exists(path)
    with change_log.recording(spark, RECORD, plan.record(None)):
        if new:  # created with its properties: no second commit to set them
            change_log.create(rows, path)
        else:
            delta.overwrite(rows, path)
    if not new:
        change_log.ensure_properties(spark, path)


@dataclass(frozen=True)
class Applied:
    keys: int
    opened: int
    closed: int
    removed: int
    totals: Totals


def merge_changes(
    spark: SparkSession,
    history: DataFrame,
    path: str,
    plan: Plan,
    key: str,
    surrogate: str,
    unknown_sk: int,
    view: str = "changed_history",
) -> Applied:
    """MERGE the recomputed `history` of the plan's changed keys into the table at `path`;
    the table is read only for the changed keys' surrogate keys. The unknown member
    (`unknown_sk`) is never among them, even when a real key equals its key."""
    assert plan.keys is not None and plan.totals is not None
    keys = plan.keys.persist()
    new = history.persist()
    table = delta.read(spark, path).where(~F.col(surrogate).eqNullSafe(unknown_sk))
    old = (
        among(table.select(key, surrogate, "is_current"), keys, key)
        .select(surrogate, F.col("is_current").alias("_old_current"), F.lit(True).alias("_old"))
        .persist()
    )
    try:
        changed = keys.count()
        if not changed:  # nothing to apply, and nothing new to record
            return Applied(0, 0, 0, 0, plan.totals)
        both = new.select(surrogate, "is_current", F.lit(True).alias("_new")).join(
            old, surrogate, "full"
        )
        row = both.agg(
            F.count_if(F.col("_old").isNull()).alias("opened"),
            F.count_if(
                F.col("_old") & F.col("_new") & F.col("_old_current") & ~F.col("is_current")
            ).alias("closed"),
            F.count_if(F.col("_new").isNull()).alias("removed"),
            F.count_if(F.col("_new")).alias("new_rows"),
            F.count_if(F.col("_new") & F.col("is_current")).alias("new_current"),
            F.count_if(F.col("_old")).alias("old_rows"),
            F.count_if(F.col("_old") & F.col("_old_current")).alias("old_current"),
        ).first()
        assert row is not None
        totals = Totals(
            plan.totals.rows + row["new_rows"] - row["old_rows"],
            plan.totals.current + row["new_current"] - row["old_current"],
        )
        removed = old.join(new.select(surrogate), surrogate, "left_anti").select(surrogate)
        source = new.withColumn("_remove", F.lit(False)).unionByName(
            removed.withColumn("_remove", F.lit(True)), allowMissingColumns=True
        )
        source.createOrReplaceTempView(view)
        statement = render(
            "merge_history.sql.j2",
            target=path,
            source=view,
            surrogate=surrogate,
            columns=new.columns,
        )
        try:
            with change_log.recording(spark, RECORD, plan.record(totals)):
                statement.run(spark).collect()
        finally:
            spark.catalog.dropTempView(view)
        return Applied(changed, row["opened"], row["closed"], row["removed"], totals)
    finally:
        for frame in (keys, new, old):
            frame.unpersist()
