"""Gold dimensions follow the keys that changed: same rows as a rebuild, cost of the changes."""

from __future__ import annotations

from datetime import datetime

import pytest
from dagster import materialize
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from spotify_assets.catalog import Layer
from spotify_assets.defs.gold import build_gold_dimension
from spotify_assets.lake import change_log, delta, scd2_merge
from spotify_assets.resources import build_resources
from spotify_assets.transforms import expectations, gold
from spotify_assets_tests.conftest import make_settings

T = {i: datetime(2026, 1, 1 + i, 12) for i in range(9)}
DDL = (
    "user_id int, user_name string, country string, subscription_type string, "
    "updated_at timestamp, _ingested_at timestamp"
)
KEYS = ["user_id", "updated_at"]
FIRST = [
    (1, "Ann", "SE", "Free", T[1]),
    (2, "Bo", "DK", "Family", T[2]),
    (3, "Cy", "NO", "Premium", T[3]),
    (4, "Di", "FI", "Student", T[3]),
    (6, "Ed", "IS", "Free", T[1]),
]
CHANGES = [
    (1, "Anna", "SE", "Free", T[4]),  # untracked change: the current version updated in place
    (2, "Bo", "DK", "Premium", T[5]),  # tracked change: closes a version, opens one
    (3, "Cy", "NO", "Free", T[0]),  # late: happened before the key's first version
    (5, "Eve", "SE", "Gold", T[5]),  # an unknown subscription: quarantined
    (None, "Nil", "SE", "Free", T[5]),  # a NULL key: quarantined
]  # key 4's only event disappears from the change log; key 6 does not change


def rows_of(events):
    return [(*e, T[8]) for e in events]


@pytest.fixture
def lake(tmp_path):
    return lake_at(tmp_path)


def lake_at(root) -> dict:
    """The resources of a lake under `root`, and the paths of dim_user's log, table and
    quarantine."""
    settings = make_settings(root)
    resources = build_resources(settings)
    lakehouse = resources["lakehouse"]
    return {
        "resources": resources,
        "log": lakehouse.path(Layer.SILVER, "dim_user_versions"),
        "table": lakehouse.path(Layer.GOLD, "dim_user"),
        "quarantine": lakehouse.path(Layer.GOLD, "dim_user_quarantine"),
    }


def sync(spark, lake, events):
    return change_log.sync(spark, spark.createDataFrame(rows_of(events), DDL), lake["log"], KEYS)


def run(lake, full_refresh=False, rebuild_below_versions=0):
    """The gold step; by default it follows the changed keys at any size (the MERGE path)."""
    config = {"full_refresh": full_refresh, "rebuild_below_versions": rebuild_below_versions}
    result = materialize(
        [build_gold_dimension("dim_user")],
        resources=lake["resources"],
        run_config={"ops": {"gold__dim_user": {"config": config}}},
    )
    assert result.success
    [event] = result.get_asset_materialization_events()
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    return meta, checks


def table(spark, path):
    columns = ["user_sk", "user_id", "user_name", "country", "subscription_type", "__START_AT",
               "__END_AT", "is_current"]  # fmt: skip
    return sorted(tuple(r) for r in delta.read(spark, path).select(*columns).collect())


def quarantine(spark, lake):
    rows = delta.read(spark, lake["quarantine"]).select("user_id", "user_name", "_failed_rules")
    return sorted((tuple(r) for r in rows.collect()), key=repr)


def last_merge(spark, path):
    row = DeltaTable.forPath(spark, path).history(1).first()
    return row["operation"], {k: int(v) for k, v in row["operationMetrics"].items() if "Rows" in k}


def test_a_run_recomputes_only_changed_keys_and_equals_a_rebuild(spark, lake):
    """Slow because it materialises gold's dim_user four times (a first build, two MERGEs of
    changed keys, a full refresh): up to a minute on 2 cores."""
    synced = sync(spark, lake, FIRST)
    assert (synced.inserted, synced.updated, synced.deleted) == (5, 0, 0)
    meta, _ = run(lake)
    assert (meta["build"], meta["build_reason"]) == (
        "full",
        "no record of a previous build that still describes the table",
    )
    assert (meta["versions_opened"], meta["versions_closed"]) == (5, 0)
    # A rebuild records what it was built from, and no totals: it counted after writing.
    first = delta.table_version(lake["log"])
    record = change_log.recorded(spark, lake["table"], scd2_merge.RECORD)
    assert record is not None and set(record) == {"source_version", "fingerprint"}
    assert record["source_version"] == first

    # The change log loses key 4's event and gains the changes: the sync touches only those.
    synced = sync(spark, lake, [*FIRST[:3], FIRST[4], *CHANGES])
    assert (synced.inserted, synced.updated, synced.deleted) == (5, 0, 1)
    log_version = delta.table_version(lake["log"])
    meta, checks = run(lake)
    assert meta["build"] == "changed keys"
    assert meta["build_reason"] == f"change log versions {log_version}..{log_version}"
    assert meta["keys_changed"] == 6  # 1, 2, 3, 4, 5 and NULL; not 6
    assert (meta["versions_opened"], meta["versions_closed"]) == (2, 1)  # 2's and 3's; 2's old
    # The rebuild's totals counted once, then carried forward by what the MERGE changed.
    assert (meta["dagster/row_count"], meta["current_rows"], meta["closed_versions"]) == (6, 4, 2)
    record = change_log.recorded(spark, lake["table"], scd2_merge.RECORD)
    assert record is not None
    assert (record["source_version"], record["rows"], record["current"]) == (log_version, 6, 4)
    operation, metrics = last_merge(spark, lake["table"])
    assert operation == "MERGE"
    # Inserted: 2's new version and 3's earlier one; updated: 1's version in place and 2's
    # closed one; deleted: 4's. 3's existing version is unchanged and untouched.
    assert metrics["numTargetRowsInserted"] == 2
    assert metrics["numTargetRowsUpdated"] == 2
    assert metrics["numTargetRowsDeleted"] == 1
    # No deletion vectors (every Delta reader opens the table): the files holding changed rows
    # are rewritten whole, their untouched rows copied.
    assert metrics["numTargetRowsCopied"] == 2
    incremental = table(spark, lake["table"])
    assert sorted((r[1:] for r in incremental if r[1] != -1), key=lambda r: (r[0], r[4])) == [
        (1, "Anna", "SE", "Free", T[1], None, True),
        (2, "Bo", "DK", "Family", T[2], T[5], False),
        (2, "Bo", "DK", "Premium", T[5], None, True),
        (3, "Cy", "NO", "Free", T[0], T[3], False),
        (3, "Cy", "NO", "Premium", T[3], None, True),
        (6, "Ed", "IS", "Free", T[1], None, True),
    ]
    assert quarantine(spark, lake) == [
        (5, "Eve", ["subscription_type_known"]),
        (None, "Nil", ["user_id_not_null"]),
    ]
    # Check results describe the events this run evaluated: those of the changed keys.
    assert checks["subscription_type_known"].metadata["failed_records"].value == 1

    # Nothing changed: nothing written, quarantine unchanged (no duplicates).
    version = delta.table_version(lake["table"])
    meta, _ = run(lake)
    assert (meta["build"], meta["keys_changed"], meta["versions_opened"]) == ("changed keys", 0, 0)
    assert (meta["dagster/row_count"], meta["current_rows"]) == (6, 4)  # the MERGE's record
    assert delta.table_version(lake["table"]) == version
    quarantined = quarantine(spark, lake)

    # A rebuild from the same change log gives exactly the same rows.
    meta, _ = run(lake, full_refresh=True)
    assert (meta["build"], meta["build_reason"]) == ("full", "full refresh requested")
    assert (meta["dagster/row_count"], meta["current_rows"], meta["closed_versions"]) == (6, 4, 2)
    assert table(spark, lake["table"]) == incremental
    assert quarantine(spark, lake) == quarantined


def test_a_real_key_equal_to_the_unknown_member_s_fails_its_check_and_spares_the_member(
    spark, lake
):
    """Key -1 is the unknown member's key. A source row with key -1 gets a version of its own;
    the current-key check then fails (blocking: what reads the table stops), and the MERGE
    neither deletes the unknown member nor counts it in the totals it records."""
    sync(spark, lake, FIRST)
    run(lake)
    sync(spark, lake, [*FIRST, (-1, "Neg", "SE", "Free", T[4])])
    result = materialize(
        [build_gold_dimension("dim_user")],
        resources=lake["resources"],
        run_config={"ops": {"gold__dim_user": {"config": {"rebuild_below_versions": 0}}}},
        raise_on_error=False,
    )
    assert not result.success
    failed = [c.check_name for c in result.get_asset_check_evaluations() if not c.passed]
    assert failed == ["user_id_unique_not_null_current"]
    rows = delta.read(spark, lake["table"]).where("user_id = -1").select("user_sk", "user_name")
    members = sorted((sk == gold.UNKNOWN_SK, name) for sk, name in rows.collect())
    assert members == [(False, "Neg"), (True, None)]
    record = change_log.recorded(spark, lake["table"], scd2_merge.RECORD)
    assert record is not None and (record["rows"], record["current"]) == (6, 6)


def test_a_rebuild_when_the_change_feed_cannot_tell_or_the_columns_change(spark, lake):
    sync(spark, lake, FIRST)
    run(lake)

    def plan_now(rebuild_below=0):
        log = delta.read(spark, lake["log"])
        depends_on = scd2_merge.fingerprint(
            gold.SCD2["dim_user"],
            expectations.EXPECTATIONS["dim_user"],
            "user_sk",
            log.schema.simpleString(),
        )
        plan = scd2_merge.plan(
            spark, lake["log"], lake["table"], "user_id", depends_on, False, rebuild_below
        )
        return plan.full, plan.reason

    log_version = delta.table_version(lake["log"])
    assert plan_now() == (False, f"change log versions {log_version + 1}..{log_version}")
    # A small dimension is rebuilt: cheaper than a MERGE's fixed cost (5 versions, the unknown
    # member's row counted too: the table's rows).
    assert plan_now(rebuild_below=7) == (
        True,
        "a rebuild costs less than a MERGE at 6 versions (rebuild_below_versions: 7)",
    )
    assert plan_now(rebuild_below=6)[0] is False
    meta, _ = run(lake, rebuild_below_versions=scd2_merge.REBUILD_BELOW_VERSIONS)  # the default
    assert (meta["build"], meta["build_reason"]) == (
        "full",
        "a rebuild costs less than a MERGE at 6 versions (rebuild_below_versions: 500,000)",
    )
    # A change log replaced wholesale (e.g. by older code): the feed cannot say what changed.
    delta.overwrite(spark.createDataFrame(rows_of(FIRST[:2]), DDL), lake["log"])
    assert plan_now() == (
        True,
        f"the change data feed cannot say what changed since version {log_version}",
    )
    # Rows changed behind the record's back (a manual DELETE, a RESTORE): rebuild.
    DeltaTable.forPath(spark, lake["table"]).delete("user_id = 1")
    assert plan_now() == (True, "no record of a previous build that still describes the table")
    run(lake)
    # A column the history is built from appears: rebuild, so every version gets it.
    widened = spark.createDataFrame(rows_of(FIRST[:2]), DDL).withColumn("tier", F.lit("gold"))
    synced = change_log.sync(spark, widened, lake["log"], KEYS)
    assert (synced.inserted, synced.updated, synced.deleted) == (0, 2, 0)
    assert plan_now() == (True, "the configuration, rules or change log columns changed")
