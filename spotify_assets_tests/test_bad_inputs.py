"""The bad-input corpus (bad_inputs.yaml), tried: every bad row ends where the corpus says, every
fast case fails with its exact error, and no source row is unaccounted for.

The row entries are applied together to one seeded SQLite source and cost one run of every asset
over three days (about 100 s); the fast cases cost no run.
"""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import AssetKey, DagsterInstance
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from sqlalchemy import create_engine, func, select, text, update

from spotify_assets.catalog import RESCUED, SOURCE_TABLES, Layer, SourceTable, table_path
from spotify_assets.defs.bronze import null_watermark_entity
from spotify_assets.defs.bronze_checks import RECONCILES
from spotify_assets.defs.gold import quarantine_entity
from spotify_assets.ingestion import watermarks
from spotify_assets.ingestion.config import load_catalog
from spotify_assets.ingestion.conflicts import conflicting_entity
from spotify_assets.lake import delta
from spotify_assets.materialize import materialize_range
from spotify_assets.settings import ConfigError, load_settings
from spotify_assets.source import simulator
from spotify_assets.source.resource import SourceDatabase
from spotify_assets.source.schema import build_metadata
from spotify_assets.transforms import schema_history
from spotify_assets.transforms.expectations import EXPECTATIONS, FAILED_RULES
from spotify_assets.transforms.gold import UNKNOWN_SK
from spotify_assets_tests.conftest import START, make_settings

CORPUS = yaml.safe_load((Path(__file__).with_name("bad_inputs.yaml")).read_text())
ROWS: list[dict[str, Any]] = CORPUS["rows"]
SOURCES = {t.name: t for t in SOURCE_TABLES}
SEEDED_DAYS, RUN_DAYS = 2, 3  # the run's third day has no rows: an empty window
LAST_DAY = START + timedelta(days=RUN_DAYS - 1)
LAST_DAY_END = datetime.combine(LAST_DAY + timedelta(days=1), time())
FROM_SOURCE = "=source"  # an expected value: exactly the source's, after the change


@pytest.fixture(scope="module")
def tried(tmp_path_factory, spark):
    """The seeded source with every row entry applied, and one run over it. Returns (settings,
    source, the key each entry changed, the run's result)."""
    settings = make_settings(tmp_path_factory.mktemp("bad-inputs"))
    source = SourceDatabase(url=settings.source_db_url)
    simulator.seed(source.engine, seed_value=3, start=START, days=SEEDED_DAYS, echo=lambda _: None)
    for name in CORPUS["without_primary_key"]:
        drop_primary_key(source, name)
    keys = apply(source, ROWS)
    with DagsterInstance.ephemeral() as instance:
        result = materialize_range(settings, START, LAST_DAY, instance, say=lambda _: None)
    return settings, source, keys, result


def drop_primary_key(source: SourceDatabase, name: str) -> None:
    """Rebuild the table with its columns' declared types and no constraint at all."""
    with source.engine.begin() as conn:
        columns = conn.execute(text(f'PRAGMA table_info("{name}")')).all()
        declared = ", ".join(f'"{c.name}" {c.type}' for c in columns)
        conn.execute(text(f'CREATE TABLE "{name}_loose" ({declared})'))
        conn.execute(text(f'INSERT INTO "{name}_loose" SELECT * FROM "{name}"'))
        conn.execute(text(f'DROP TABLE "{name}"'))
        conn.execute(text(f'ALTER TABLE "{name}_loose" RENAME TO "{name}"'))
    assert SourceDatabase(url=str(source.engine.url)).keyed_by(SOURCES[name]) is False


def apply(source: SourceDatabase, entries: list[dict]) -> dict[str, Any]:
    """Pick every entry's row first (the changes reorder keys), then run each entry's SQL as a
    script (values hold semicolons and quotes)."""
    keys = {}
    with source.engine.connect() as conn:
        for entry in entries:
            table = SOURCES[entry["table"]]
            keys[entry["id"]] = conn.execute(
                text(f'SELECT "{table.key}" FROM "{table.name}" ORDER BY 1 LIMIT 1 OFFSET :n'),
                {"n": entry["row"]},
            ).scalar_one()
    raw = source.engine.raw_connection()
    try:
        for entry in entries:
            raw.executescript(entry["sql"].replace("{key}", str(keys[entry["id"]])))
        raw.commit()
    finally:
        raw.close()
    return keys


def read(spark, settings, layer: Layer, entity: str) -> DataFrame | None:
    path = table_path(settings.lakehouse_root, layer, entity)
    return delta.read(spark, path) if delta.exists(path) else None


def gold_rows(spark, settings, table: SourceTable) -> DataFrame:
    df = read(spark, settings, Layer.GOLD, table.entity)
    assert df is not None
    if "is_current" in df.columns:
        surrogate = next(c for c in df.columns if c.endswith("_sk"))
        df = df.where(F.col("is_current") & (F.col(surrogate) != UNKNOWN_SK))
    return df


def the_row(df: DataFrame | None, column: str, value: Any) -> dict[str, Any]:
    assert df is not None
    rows = df.where(F.col(column) == F.lit(value)).collect()
    assert len(rows) == 1, (column, value, rows)
    return rows[0].asDict()


def source_value(source: SourceDatabase, table: SourceTable, key: Any, column: str) -> Any:
    """The key's value in `column` (the same in every copy of a copied row)."""
    with source.engine.connect() as conn:
        values = conn.execute(
            text(f'SELECT DISTINCT "{column}" FROM "{table.name}" WHERE "{table.key}" = :key'),
            {"key": key},
        ).scalars()
        (value,) = values.all()
    return value


def rescued_of(row: dict[str, Any]) -> dict[str, str]:
    held = json.loads(row[RESCUED]) if row.get(RESCUED) else {}
    held.pop("_file_path", None)
    return held


# The corpus end to end (make test-all): its tests share one whole-graph run over the bad rows.
@pytest.mark.slow
@pytest.mark.parametrize("entry", ROWS, ids=[e["id"] for e in ROWS])
def test_each_bad_row_ends_where_the_corpus_says(spark, tried, entry):
    settings, source, keys, _ = tried
    table, expect = SOURCES[entry["table"]], entry["expect"]
    key, outcome = expect.get("key", keys[entry["id"]]), expect["outcome"]
    silver = read(spark, settings, Layer.SILVER, table.entity)
    bronze = read(spark, settings, Layer.BRONZE, table.entity)
    assert bronze is not None
    if outcome == "copied":  # one version, then like any row in gold
        assert bronze.where(F.col(table.key) == key).count() == 1
        outcome = "gold"
    if outcome == "gold":
        row = the_row(gold_rows(spark, settings, table), table.key, key)
        for column, value in expect.get("values", {}).items():
            if value == FROM_SOURCE:
                value = source_value(source, table, key, column)
            held = row[column] if column in row else the_row(silver, table.key, key)[column]
            assert held == value, (column, held, value)
        rules = {r.name: r for r in EXPECTATIONS[table.entity]}
        one = gold_rows(spark, settings, table).where(F.col(table.key) == F.lit(key))
        for name in expect.get("warns", []):
            verdict = one.select(F.coalesce(F.expr(rules[name].constraint), F.lit(False)))
            assert verdict.first()[0] is False, name  # type: ignore[index]
    elif outcome == "quarantined":
        quarantine = read(spark, settings, Layer.GOLD, quarantine_entity(table.entity))
        row = the_row(quarantine, table.key, key)
        assert sorted(row[FAILED_RULES]) == sorted(expect["rules"])
        assert gold_rows(spark, settings, table).where(F.col(table.key) == key).count() == 0
    elif outcome == "unplaced":
        unplaced = read(spark, settings, Layer.BRONZE, null_watermark_entity(table))
        assert unplaced is not None
        matches = [
            r.asDict()
            for r in unplaced.collect()
            if r[table.key] == key or rescued_of(r.asDict()).get(table.key) == str(key)
        ]
        assert len(matches) == 1, matches
        assert rescued_of(matches[0]) == expect.get("rescued", {})
        return
    elif outcome == "conflicting":
        apart = read(spark, settings, Layer.BRONZE, conflicting_entity(table.entity))
        assert apart is not None and apart.where(F.col(table.key) == key).count() == expect["rows"]
        for layer in (bronze, gold_rows(spark, settings, table)):
            assert layer.where(F.col(table.key) == key).count() == 0
        return
    elif outcome == "pending":
        assert bronze.where(F.col(table.key) == key).count() == 0
        assert source_value(source, table, key, table.key) == key
        return
    else:
        pytest.fail(f"unknown outcome {outcome!r}")
    assert rescued_of(the_row(silver, table.key, key)) == expect.get("rescued", {})


def accounting(spark, settings, source: SourceDatabase) -> dict[str, dict[str, int]]:
    """Per source table: its rows, and where each went."""
    figures = {}
    for table in SOURCE_TABLES:
        sql_table = source.table(table)
        quarantine = read(spark, settings, Layer.GOLD, quarantine_entity(table.entity))
        unplaced = read(spark, settings, Layer.BRONZE, null_watermark_entity(table))
        apart = read(spark, settings, Layer.BRONZE, conflicting_entity(table.entity))
        later = source.window_filter(sql_table, table, LAST_DAY_END, None)
        with source.engine.connect() as conn:
            pending = conn.execute(select(func.count()).select_from(sql_table).where(*later))
            pending_rows = int(pending.scalar_one())
            distinct = conn.execute(
                text(f'SELECT count(*) FROM (SELECT DISTINCT * FROM "{table.name}")')
            )
            copies = source.count(table) - int(distinct.scalar_one())
        with source.engine.connect() as conn:
            keys = [
                k for (k,) in conn.execute(select(sql_table.c[table.key])) if isinstance(k, int)
            ]
        gold = gold_rows(spark, settings, table)
        from_source = gold.where(F.col(table.key).isin(keys)).count()
        counts = {
            "source": source.count(table),
            "gold": from_source,
            "quarantined": quarantine.count() if quarantine is not None else 0,
            "unplaced": unplaced.count() if unplaced is not None else 0,
            "pending": pending_rows,
            "copies": copies,
            "conflicting": apart.count() if apart is not None else 0,
        }
        counts["unaccounted"] = counts["source"] - sum(
            counts[k]
            for k in ("gold", "quarantined", "unplaced", "pending", "copies", "conflicting")
        )
        counts["gold_generated"] = gold.count() - from_source
        figures[table.name] = counts
    return figures


@pytest.mark.slow  # the corpus's whole-graph run
def test_every_source_row_is_accounted_for_and_the_run_succeeds(spark, tried):
    settings, source, _, result = tried
    assert result.success
    figures = accounting(spark, settings, source)
    header = ["table", *next(iter(figures.values()))]
    print("\n" + "  ".join(f"{h:>12}" for h in header))
    for name, counts in figures.items():
        print("  ".join(f"{v:>12}" for v in (name, *counts.values())))
    fast = len(CORPUS["settings"]) + len(CORPUS["documents"]) + len(CORPUS["ingestion_config"])
    print(f"bad inputs tried: {len(ROWS)} rows in one run, {fast} fast cases; rows unaccounted: "
          f"{sum(c['unaccounted'] for c in figures.values())}")  # fmt: skip
    assert {name: c["unaccounted"] for name, c in figures.items()} == dict.fromkeys(figures, 0)
    # Gold adds one row of its own: the date of the 1900 stream, which the calendar lacks.
    assert {n: c["gold_generated"] for n, c in figures.items()} == {
        **dict.fromkeys(figures, 0), "DimDate": 1,
    }  # fmt: skip
    # The rows the corpus sends to quarantine, apart, or to a later window are exactly those.
    for outcome, column in (
        ("quarantined", "quarantined"),
        ("unplaced", "unplaced"),
        ("pending", "pending"),
        ("copied", "copies"),
        ("conflicting", "conflicting"),
    ):
        expected = {t: 0 for t in figures}
        for entry in ROWS:
            if entry["expect"]["outcome"] == outcome:
                expected[entry["table"]] += entry["expect"].get("rows", 1)
        assert {t: c[column] for t, c in figures.items()} == expected, outcome
    # The one late row shows in bronze's freshness check, a warning.
    late = [c for c in result.get_asset_check_evaluations() if not c.passed and
            c.check_name == "caught_up_with_source"]  # fmt: skip
    assert [(c.asset_key.path[-1], c.severity.value) for c in late] == [("fact_stream", "WARN")]


@pytest.mark.slow  # the corpus's whole-graph run, and one more
def test_conflicting_versions_are_reported_and_leave_once_the_source_settles_them(spark, tried):
    """Runs last of the row tests: it changes the source and re-runs bronze."""
    settings, source, keys, result = tried
    artists = SOURCES["DimArtist"]
    key = keys["artist-key-conflicting"]
    assert reported(result, artists) == {"duplicate_source_rows": 1, "conflicting_version_rows": 2}
    # The rows landed apart are accounted for, so the blocking reconciliation passes.
    (check,) = [
        c
        for c in result.get_asset_check_evaluations()
        if c.asset_key == AssetKey(["bronze", artists.entity]) and c.check_name == RECONCILES
    ]
    figures = {k: check.metadata[k].value for k in ("missing_rows", "rows_in_conflicting_versions")}
    assert (check.passed, figures) == (True, {"missing_rows": 0, "rows_in_conflicting_versions": 2})
    with source.engine.begin() as conn:
        conn.execute(
            text('DELETE FROM "DimArtist" WHERE artist_id = :key AND artist_name LIKE :other'),
            {"key": key, "other": "% (other)"},
        )
    with DagsterInstance.ephemeral() as instance:
        selection = [AssetKey(["bronze", artists.entity])]
        again = materialize_range(
            settings, START, LAST_DAY, instance, say=lambda _: None, selection=selection
        )
    assert again.success
    assert reported(again, artists) == {"duplicate_source_rows": 1, "conflicting_version_rows": 0}
    apart = read(spark, settings, Layer.BRONZE, conflicting_entity(artists.entity))
    assert apart is not None and apart.count() == 0
    bronze = read(spark, settings, Layer.BRONZE, artists.entity)
    assert bronze is not None
    (row,) = bronze.where(F.col(artists.key) == key).collect()
    assert row["artist_name"] == source_value(source, artists, key, "artist_name")
    assert not row["artist_name"].endswith(" (other)")


def reported(run, table: SourceTable) -> dict[str, int]:
    """What bronze's one-step materialisation of `table` (an event per partition, all alike)
    reported about repeated (key, watermark) pairs."""
    names = ("duplicate_source_rows", "conflicting_version_rows")
    (figures,) = {
        tuple(e.materialization.metadata[k].value for k in names)
        for e in run.get_asset_materialization_events()
        if e.asset_key == AssetKey(["bronze", table.entity])
    }
    return dict(zip(names, figures, strict=True))


@pytest.mark.parametrize(
    "case", CORPUS["settings"], ids=[c["variable"] for c in CORPUS["settings"]]
)
def test_each_bad_setting_names_its_variable(case):
    with pytest.raises(ConfigError) as error:
        load_settings({case["variable"]: case["value"]})
    assert str(error.value).startswith(case["error"])


@pytest.mark.parametrize("case", CORPUS["documents"], ids=[c["id"] for c in CORPUS["documents"]])
def test_each_corrupt_document_names_its_file(tmp_path, case):
    if case["kind"] == "watermarks":
        path = str(tmp_path / "dim_user.json")
        Path(path).write_text(case["text"])
        with pytest.raises(watermarks.WatermarkDocumentCorrupt) as error:
            watermarks.load(path, SOURCES["DimUser"])
    else:
        path = schema_history.history_path(str(tmp_path), "fact_stream")
        Path(path).parent.mkdir(parents=True)
        Path(path).write_text(case["text"])
        with pytest.raises(schema_history.SchemaHistoryCorrupt) as error:
            schema_history.load(path, "fact_stream")
    assert str(error.value).startswith(case["error"].format(path=path))
    assert Path(path).read_text() == case["text"]  # the evidence is kept as it was


def test_bad_ingestion_config_rows_are_named_and_the_other_tables_keep_working(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'source.db'}")
    simulator.seed(engine, seed_value=2, start=START, days=2, echo=lambda _: None)
    config = build_metadata().tables["ingestion_config"]
    cases = CORPUS["ingestion_config"]
    with engine.begin() as conn:
        for case in cases:
            conn.execute(
                update(config).where(config.c.source_table == case["table"]).values(**case["set"])
            )
    catalog = load_catalog(engine, None, tmp_path / "cache.json")
    assert catalog.problems == tuple(sorted(c["problem"] for c in cases))
    bad = {c["table"] for c in cases}
    assert [t.name for t in catalog.tables] == sorted(
        t.name for t in SOURCE_TABLES if t.name not in bad
    )
