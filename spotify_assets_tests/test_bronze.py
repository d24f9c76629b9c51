"""Bronze on local Spark against SQLite and a real PostgreSQL: late rows, NULL watermarks, schema
drift, corrupt watermark documents, concurrent inserts, re-runs."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from dagster import AssetKey, DagsterInstance
from sqlalchemy import text

from spotify_assets.catalog import SOURCE_BY_ENTITY, Layer, table_path
from spotify_assets.defs import bronze_checks
from spotify_assets.defs.sensors import plan_requests
from spotify_assets.ingestion import watermarks
from spotify_assets.lake import delta
from spotify_assets.materialize import materialize_range
from spotify_assets.source import simulator
from spotify_assets.source.resource import SourceDatabase
from spotify_assets_tests.conftest import START, make_settings

D1, D2, D3 = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)
TODAY = date(2026, 1, 4)  # the sensor's view: windows before it are complete
STREAMS, USERS, ARTISTS = (SOURCE_BY_ENTITY[e] for e in ("fact_stream", "dim_user", "dim_artist"))


def bronze_keys(*entities: str) -> list[AssetKey]:
    return [AssetKey(["bronze", e]) for e in entities]


class Lake:
    def __init__(self, tmp_path, url: str | None = None, seed_value: int = 21) -> None:
        env = {"SPOTIFY_SOURCE_DB_URL": url} if url else {}
        self.settings = make_settings(tmp_path, **env)
        self.source = SourceDatabase(url=self.settings.source_db_url, chunk_rows=200)
        simulator.seed(self.source.engine, seed_value=seed_value, start=START, days=3,
                       echo=lambda _: None)  # fmt: skip
        self.instance = DagsterInstance.ephemeral()

    def run(self, start: date, end: date, *entities: str, expect_success: bool = True):
        result = materialize_range(
            self.settings, start, end, instance=self.instance, say=lambda _: None,
            selection=bronze_keys(*entities),
        )  # fmt: skip
        assert result.success is expect_success
        return result

    def rows(self, spark, entity: str, *columns: str) -> list[tuple]:
        df = delta.read(spark, table_path(self.settings.lakehouse_root, Layer.BRONZE, entity))
        rows = [tuple(r) for r in df.select(*(columns or df.columns)).collect()]
        return sorted(rows, key=lambda row: tuple((v is not None, v) for v in row))

    def sql(self, statement: str) -> None:
        with self.source.engine.begin() as conn:
            conn.execute(text(statement))

    def plans(self, *tables):
        found = plan_requests(tables, self.source, self.settings.lakehouse_root, START, TODAY)
        return [(t.entity, lo, hi) for t, lo, hi, _ in found]


@pytest.fixture(scope="module")
def sqlite_lake(tmp_path_factory, spark):
    return Lake(tmp_path_factory.mktemp("bronze-sqlite"))


def test_late_rows_are_detected_and_loaded_and_reruns_add_nothing(spark, sqlite_lake):
    lake = sqlite_lake
    lake.run(D1, D3, "fact_stream")
    assert len(lake.rows(spark, "fact_stream", "stream_id")) == 1000
    assert lake.plans(STREAMS) == []
    lake.sql("INSERT INTO \"FactStream\" VALUES (9001, 3, 4, 20260102, 77, 'Desktop', "
             "'2026-01-02 06:30:00')")  # fmt: skip
    assert lake.plans(STREAMS) == [("fact_stream", D2, D2)]
    before = lake.rows(spark, "fact_stream")
    result = lake.run(D2, D2, "fact_stream")
    after = lake.rows(spark, "fact_stream")
    assert len(after) == 1001 and set(before) < set(after)
    [late] = [r for r in after if r[0] == 9001]
    assert late[:6] == (9001, 3, 4, 20260102, 77, "Desktop")
    mat = result.asset_materializations_for_node("bronze__fact_stream")[0]
    assert mat.metadata["new_versions"].value == 1
    assert lake.plans(STREAMS) == []
    lake.run(D1, D3, "fact_stream")
    assert lake.rows(spark, "fact_stream") == after  # identical, _ingested_at included


def test_null_watermarks_are_counted_and_landed_apart(spark, sqlite_lake):
    lake = sqlite_lake
    lake.sql('UPDATE "DimUser" SET updated_at = NULL WHERE user_id IN (5, 6)')
    result = lake.run(D1, D3, "dim_user")
    mat = result.asset_materializations_for_node("bronze__dim_user")[0]
    assert mat.metadata["null_watermark_rows"].value == 2
    assert [r[0] for r in lake.rows(spark, "dim_user_null_watermark", "user_id")] == [5, 6]
    assert {5, 6}.isdisjoint(r[0] for r in lake.rows(spark, "dim_user", "user_id"))
    assert len(lake.rows(spark, "dim_user")) == 498  # 498 + 2 apart = every source row
    doc = watermarks.load(watermarks.document_path(lake.settings.lakehouse_root, USERS), USERS)
    assert doc.null_watermark_rows == 2


def test_schema_drift_adds_new_columns_and_nulls_dropped_ones(spark, sqlite_lake):
    lake = sqlite_lake
    lake.run(D1, D3, "dim_artist")
    lake.sql('ALTER TABLE "DimArtist" ADD COLUMN label VARCHAR(100)')
    lake.sql("UPDATE \"DimArtist\" SET label = 'Sub Pop', updated_at = '2026-01-03 23:00:00' "
             "WHERE artist_id = 1")  # fmt: skip
    result = lake.run(D3, D3, "dim_artist")
    mat = result.asset_materializations_for_node("bronze__dim_artist")[0]
    assert mat.metadata["columns_added"].value == ["label"]
    labelled = lake.rows(spark, "dim_artist", "artist_id", "label")
    assert [r for r in labelled if r[1] is not None] == [(1, "Sub Pop")]
    assert len(labelled) == 501  # artist 1's earlier version is kept, without a label

    lake.sql('ALTER TABLE "DimArtist" DROP COLUMN country')
    lake.sql("UPDATE \"DimArtist\" SET updated_at = '2026-01-03 23:30:00' WHERE artist_id = 2")
    result = lake.run(D3, D3, "dim_artist")
    mat = result.asset_materializations_for_node("bronze__dim_artist")[0]
    assert mat.metadata["columns_missing_in_source"].value == ["country"]
    versions = [r for r in lake.rows(spark, "dim_artist", "artist_id", "country") if r[0] == 2]
    assert len(versions) == 2 and versions.count((2, None)) == 1  # old country kept, new NULL


def test_corrupt_watermark_document_fails_the_run_with_the_repair_command(spark, tmp_path):
    lake = Lake(tmp_path)
    path = watermarks.document_path(lake.settings.lakehouse_root, USERS)
    Path(path).parent.mkdir(parents=True)
    Path(path).write_text("{not json")
    result = lake.run(D1, D1, "dim_user", expect_success=False)
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.event_specific_data.error.cause.message
    assert f"the watermark document {path} of DimUser is corrupt" in message
    assert "spotify-lakehouse repair-watermarks --table dim_user" in message
    watermarks.repair(path, USERS, None)
    lake.run(D1, D3, "dim_user")
    assert len(lake.rows(spark, "dim_user")) == 500


def test_postgres_source_with_a_concurrent_insert_during_extraction(
    spark, tmp_path, postgres_url, monkeypatch
):
    lake = Lake(tmp_path, url=postgres_url)
    original = SourceDatabase.stream
    inserted = []

    def stream_with_concurrent_insert(self, stmt, schema, what, *rest):
        for i, batch in enumerate(original(self, stmt, schema, what, *rest)):
            if i == 0 and not inserted and what == "reading FactStream":
                with self.engine.begin() as conn:  # commits while the read is in progress
                    conn.execute(text("INSERT INTO \"FactStream\" VALUES (7001, 1, 2, 20260101, "
                                      "42, 'Mobile', '2026-01-01 09:00:00')"))  # fmt: skip
                inserted.append(7001)
            yield batch

    monkeypatch.setattr(SourceDatabase, "stream", stream_with_concurrent_insert)
    result = lake.run(D1, D3, "fact_stream", "dim_user", expect_success=False)
    monkeypatch.setattr(SourceDatabase, "stream", original)
    assert inserted == [7001]
    ids = [r[0] for r in lake.rows(spark, "fact_stream", "stream_id")]
    assert len(ids) == 1000 and 7001 not in ids  # the read's snapshot predates the insert
    # The reconciliation check sees the row missing and, blocking, fails the run...
    checks = {(c.asset_key.path[-1], c.check_name): c for c in result.get_asset_check_evaluations()}
    failed = checks[("fact_stream", "reconciles_with_source")]
    assert not failed.passed
    assert failed.metadata["missing_rows"].value == 1
    assert failed.metadata["sample_missing_keys"].value == "['7001']"
    assert checks[("dim_user", "reconciles_with_source")].passed
    assert checks[("dim_user", "no_duplicate_versions")].passed
    # ... and the recorded fingerprint predates the insert too, so the sensor asks for that window.
    assert lake.plans(STREAMS, USERS) == [("fact_stream", D1, D1)]
    rerun = lake.run(D1, D1, "fact_stream")
    assert 7001 in [r[0] for r in lake.rows(spark, "fact_stream", "stream_id")]
    assert all(c.passed for c in rerun.get_asset_check_evaluations())
    assert lake.plans(STREAMS, USERS) == []
    doc = json.loads(
        Path(watermarks.document_path(lake.settings.lakehouse_root, STREAMS)).read_text()
    )
    assert doc["windows"]["2026-01-01"]["rows"] == 335


@pytest.mark.parametrize("compared", ["in Spark", "on the driver"])
def test_the_blocking_checks_count_missing_duplicated_and_conflicting_pairs_exactly(
    spark, tmp_path, compared
):
    """The in-step checks on hand-made tables: in the window [Jan 2, Jan 3), the source holds
    pairs (1, a) (2, a) (3, a) (4, a) (4, a) (an exact copy); bronze holds (1, a) twice, (2, a),
    and (9, a), a version the source no longer has; (3, a) is landed apart as a conflicting
    version; (4, a) is nowhere. Rows outside the window are not checked. The source's pairs
    compare in Spark (many) or on the driver in Arrow (few), with the same figures."""
    a, outside = datetime(2026, 1, 2, 8), datetime(2026, 1, 5)
    schema = "user_id INT, updated_at TIMESTAMP"
    source = spark.createDataFrame([(1, a), (2, a), (3, a), (4, a), (4, a), (5, outside)], schema)
    bronze, apart = str(tmp_path / "bronze"), str(tmp_path / "apart")
    rows = [(1, a), (1, a), (2, a), (9, a), (7, outside), (7, outside)]
    spark.createDataFrame(rows, schema).write.format("delta").save(bronze)
    spark.createDataFrame([(3, a), (3, a)], schema).write.format("delta").save(apart)
    window = delta.Window("updated_at", datetime(2026, 1, 2), datetime(2026, 1, 3))
    pairs = source.where(window.predicate())
    if compared == "on the driver":  # as the step reads them: from Parquet, naive timestamps
        staged = pa.schema([("user_id", pa.int64()), ("updated_at", pa.timestamp("us"))])
        pairs = pairs.toArrow().cast(staged)
        for table in (bronze, apart):  # and bronze's are read from its files, with no Spark job
            assert delta.read_arrow(table, ["user_id", "updated_at"], window) is not None
    reconciled, duplicated = bronze_checks.evaluate_blocking(
        spark, USERS, pairs, bronze, apart, window, 1
    )
    figures = {k: v.value for k, v in reconciled.metadata.items()}
    assert (reconciled.passed, figures) == (False, {
        "windows_checked": 1, "source_rows_checked": 5, "missing_rows": 2,
        "rows_in_conflicting_versions": 1, "sample_missing_keys": "['4']",
    })  # fmt: skip
    figures = {k: v.value for k, v in duplicated.metadata.items()}
    assert (duplicated.passed, figures) == (
        False, {"duplicated_versions": 1, "sample_keys": "['1']"}
    )  # fmt: skip
    # Without a conflicting-versions table, (3, a) is missing too.
    reconciled, _ = bronze_checks.evaluate_blocking(
        spark, USERS, pairs, bronze, str(tmp_path / "none"), window, 1
    )
    assert reconciled.metadata["missing_rows"].value == 3
    assert reconciled.metadata["sample_missing_keys"].value == "['3', '4']"
