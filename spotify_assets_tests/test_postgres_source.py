"""PostgreSQL source: the Arrow-native path returns exactly what the generic path returns."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pyarrow as pa
from sqlalchemy import text

from spotify_assets.catalog import SourceTable
from spotify_assets.source.resource import SourceDatabase

TRICKY = SourceTable("Tricky", "tricky", key="id", watermark="updated_at")


def read_all(db: SourceDatabase, start=None, end=None) -> pa.Table:
    schema, batches = db.read_window(TRICKY, start, end)
    return pa.Table.from_batches(list(batches), schema=schema)


def test_arrow_native_path_matches_the_generic_path_value_for_value(postgres_url):
    fast = SourceDatabase(url=postgres_url, chunk_rows=2)
    slow = SourceDatabase(url=postgres_url, chunk_rows=2, arrow_native=False)
    with fast.engine.begin() as conn:
        conn.execute(text('DROP TABLE IF EXISTS "Tricky"'))
        conn.execute(
            text('CREATE TABLE "Tricky" (id BIGINT PRIMARY KEY, name VARCHAR(255), note TEXT, '
                 "n INT, amount NUMERIC(10,2), day DATE, updated_at TIMESTAMP)")
        )  # fmt: skip
        conn.execute(
            text('INSERT INTO "Tricky" VALUES '
                 "(1, 'O''Brien, \"DJ\" Ñandú', '', 3, 12.50, '2026-01-01', '2026-01-01 00:00:00'),"
                 "(2, NULL, 'line1\nline2', NULL, NULL, NULL, '2026-01-01 23:59:59.123456'),"
                 "(3, 'Lao People''s Democratic Republic', NULL, -7, -0.01, '1999-12-31', "
                 "'2026-01-02 08:00:00'),"
                 "(4, 'NULL', 'x,y', 0, 0, '2026-01-02', NULL)")
        )  # fmt: skip
    expected = read_all(slow)
    assert expected.num_rows == 3  # the NULL-watermark row is not in any window
    assert read_all(fast).equals(expected)
    window = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    got = read_all(fast, *window).to_pylist()
    assert got == read_all(slow, *window).to_pylist()
    assert [(r["id"], r["name"], r["note"], r["day"]) for r in got] == [
        (1, 'O\'Brien, "DJ" Ñandú', "", date(2026, 1, 1)),
        (2, None, "line1\nline2", None),
    ]
    assert got[1]["updated_at"] == datetime(2026, 1, 1, 23, 59, 59, 123456, tzinfo=UTC)
    _, nulls = fast.read_null_watermarks(TRICKY)
    assert [r["name"] for b in nulls for r in b.to_pylist()] == ["NULL"]


def test_arrow_native_path_of_an_empty_window_yields_no_rows(postgres_url):
    fast = SourceDatabase(url=postgres_url)
    with fast.engine.begin() as conn:
        conn.execute(text('DROP TABLE IF EXISTS "Tricky"'))
        conn.execute(text('CREATE TABLE "Tricky" (id BIGINT PRIMARY KEY, updated_at TIMESTAMP)'))
    assert read_all(fast).num_rows == 0
    _, nulls = fast.read_null_watermarks(TRICKY)
    assert list(nulls) == []


def test_a_table_without_a_primary_key_lands_null_keys_apart_on_both_paths(postgres_url):
    """A view or a table without a primary key can hold NULL and repeated keys: a NULL key is no
    version of anything (no window takes it), a repeated one is bronze's to settle."""
    fast = SourceDatabase(url=postgres_url)
    slow = SourceDatabase(url=postgres_url, arrow_native=False)
    with fast.engine.begin() as conn:
        conn.execute(text('DROP TABLE IF EXISTS "Tricky"'))
        conn.execute(text('CREATE TABLE "Tricky" (id BIGINT, name TEXT, updated_at TIMESTAMP)'))
        conn.execute(
            text('INSERT INTO "Tricky" VALUES (1, \'a\', \'2026-01-01 01:00:00\'), '
                 "(NULL, 'no key', '2026-01-01 02:00:00'), (1, 'b', '2026-01-01 01:00:00')")
        )  # fmt: skip
    assert fast.keyed_by(TRICKY) is False
    for db in (fast, slow):
        assert sorted(r["name"] for r in read_all(db).to_pylist()) == ["a", "b"]
        _, apart = db.read_null_watermarks(TRICKY)
        assert [r["name"] for b in apart for r in b.to_pylist()] == ["no key"]
    with fast.engine.begin() as conn:
        conn.execute(text("DELETE FROM \"Tricky\" WHERE id IS NULL OR name = 'b'"))
        conn.execute(text('ALTER TABLE "Tricky" ADD PRIMARY KEY (id, updated_at)'))
    assert fast.keyed_by(TRICKY) is True  # (key, watermark) unique: no pair can repeat
