"""The source resource, window fingerprints, watermark documents and the change sensor's plan."""

from __future__ import annotations

import json
import socket
import threading
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import mssql

from spotify_assets.catalog import SOURCE_BY_ENTITY, SourceTable
from spotify_assets.defs.sensors import plan_requests, ranges
from spotify_assets.ingestion import watermarks
from spotify_assets.ingestion.staging import prefetched
from spotify_assets.ingestion.windows import EMPTY, StatsAccumulator, source_window_stats
from spotify_assets.source import simulator
from spotify_assets.source.resource import SourceDatabase, SourceTableMissing, SourceUnavailable
from spotify_assets.source.schema import build_metadata
from spotify_assets_tests.conftest import START

USERS = SOURCE_BY_ENTITY["dim_user"]
STREAMS = SOURCE_BY_ENTITY["fact_stream"]
TODAY = date(2026, 1, 6)


@pytest.fixture
def source(tmp_path) -> SourceDatabase:
    db = SourceDatabase(url=f"sqlite:///{tmp_path / 'source.db'}", chunk_rows=100)
    simulator.seed(db.engine, seed_value=4, start=START, days=3, echo=lambda _: None)
    return db


def test_extraction_sql_for_azure_sql_is_parameterised_t_sql():
    table = build_metadata("dbo").tables["dbo.FactStream"]
    db = SourceDatabase(url="mssql+pymssql://reader@example.database.windows.net/spotify")
    stmt = db.extract_statement(
        table, STREAMS, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC)
    )
    compiled = stmt.compile(dialect=mssql.dialect())
    assert " ".join(str(compiled).split()) == (
        "SELECT dbo.[FactStream].stream_id, dbo.[FactStream].user_id, dbo.[FactStream].track_id, "
        "dbo.[FactStream].date_key, dbo.[FactStream].listen_duration, "
        "dbo.[FactStream].device_type, dbo.[FactStream].stream_timestamp FROM dbo.[FactStream] "
        "WHERE dbo.[FactStream].stream_timestamp IS NOT NULL AND "
        "dbo.[FactStream].stream_id IS NOT NULL AND "
        "dbo.[FactStream].stream_timestamp >= :stream_timestamp_1 AND "
        "dbo.[FactStream].stream_timestamp < :stream_timestamp_2 "
        "ORDER BY dbo.[FactStream].stream_id"
    )
    assert compiled.params == {
        "stream_timestamp_1": datetime(2026, 1, 1),
        "stream_timestamp_2": datetime(2026, 1, 3),
    }
    first_window = db.extract_statement(table, STREAMS, None, datetime(2026, 1, 2, tzinfo=UTC))
    assert ">=" not in str(first_window.compile(dialect=mssql.dialect()))


def test_extraction_streams_bounded_arrow_batches(source):
    schema, batches = source.read_window(
        STREAMS, datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC)
    )
    sizes = [b.num_rows for b in batches]
    assert sizes == [100, 100, 100, 33]  # 333 streams that day, chunks of at most chunk_rows
    assert schema.names == [
        "stream_id", "user_id", "track_id", "date_key", "listen_duration", "device_type",
        "stream_timestamp", "_rescued_data",
    ]  # fmt: skip
    assert str(schema.field("stream_timestamp").type) == "timestamp[us, tz=UTC]"


def test_unreachable_source_is_retried_then_named_with_the_password_masked():
    db = SourceDatabase(
        url="postgresql+psycopg://loader:S3cr3t-pw@127.0.0.1:1/spotify",
        retries=2,
        backoff_seconds=0.01,
    )
    with pytest.raises(SourceUnavailable) as excinfo:
        db.count(USERS)
    message = str(excinfo.value)
    assert message.startswith(
        "source postgresql+psycopg://loader:***@127.0.0.1:1/spotify (host 127.0.0.1) unreachable "
        "while reading the definition of DimUser, after 3 attempts:"
    )
    assert "S3cr3t-pw" not in message


def test_missing_table_or_column_is_named(source):
    with pytest.raises(SourceTableMissing, match=r"table DimPodcast named in ingestion_config"):
        source.table(SourceTable("DimPodcast", "dim_podcast", "podcast_id", "updated_at"))
    with pytest.raises(
        SourceTableMissing,
        match=r"watermark column 'modified' named in ingestion_config does not exist in DimUser",
    ):
        source.table(SourceTable("DimUser", "dim_user", "user_id", "modified"))


def test_window_fingerprints_agree_between_sql_and_extracted_rows(source):
    in_sql = source_window_stats(source, STREAMS, START, TODAY)
    accumulator = StatsAccumulator(STREAMS, START)
    for batch in source.read_window(STREAMS, None, datetime(2026, 1, 6, tzinfo=UTC))[1]:
        accumulator.add(batch)
    assert in_sql == accumulator.by_day
    assert [s.rows for s in in_sql.values()] == [334, 333, 333]


def test_rows_older_than_the_first_window_fold_into_it(source):
    with source.engine.begin() as conn:
        conn.execute(
            text("UPDATE \"DimUser\" SET updated_at = '2025-06-01 08:00:00' WHERE user_id = 7")
        )
    stats = source_window_stats(source, USERS, START, TODAY)
    assert min(stats) == START
    assert sum(s.rows for s in stats.values()) == 500


def test_corrupt_watermark_document_gives_a_clear_error_and_a_repair(tmp_path):
    path = tmp_path / "bronze" / "_watermarks" / "dim_user.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"table": "DimUser", "windows": ')
    with pytest.raises(watermarks.WatermarkDocumentCorrupt) as excinfo:
        watermarks.load(str(path), USERS)
    assert str(excinfo.value).startswith(f"the watermark document {path} of DimUser is corrupt (")
    assert "Repair it with `spotify-lakehouse repair-watermarks --table dim_user`" in str(
        excinfo.value
    )
    kept = watermarks.repair(str(path), USERS, None)
    assert (
        kept is not None
        and path.with_name(kept.rsplit("/", 1)[1]).read_text() == '{"table": "DimUser", "windows": '
    )
    fresh = json.loads(path.read_text())
    assert (fresh["table"], fresh["windows"], fresh["high_watermark"]) == ("DimUser", {}, None)


def record_everything(source: SourceDatabase, root: str) -> None:
    """Write watermark documents as if bronze had extracted every window up to TODAY."""
    for table in (USERS, STREAMS):
        acc = StatsAccumulator(table, START)
        for batch in source.read_window(table, None, datetime(2026, 1, 6, tzinfo=UTC))[1]:
            acc.add(batch)
        doc = watermarks.WatermarkDocument(table.name, table.entity, table.watermark)
        window_days = [date(2026, 1, i) for i in range(1, 6)]
        doc.record({d: acc.by_day.get(d, EMPTY) for d in window_days}, acc.max_watermark)
        watermarks.save(watermarks.document_path(root, table), doc)


def test_sensor_plans_exactly_the_windows_that_changed(source, tmp_path):
    root = str(tmp_path / "lake")
    plans = plan_requests((USERS, STREAMS), source, root, START, TODAY)
    assert [(t.entity, lo, hi) for t, lo, hi, _ in plans] == [
        ("dim_user", date(2026, 1, 1), date(2026, 1, 3)),  # nothing extracted yet: every window
        ("fact_stream", date(2026, 1, 1), date(2026, 1, 3)),
    ]
    record_everything(source, root)
    assert plan_requests((USERS, STREAMS), source, root, START, TODAY) == []

    with source.engine.begin() as conn:  # a late row: inserted now with an old watermark
        conn.execute(
            text("INSERT INTO \"FactStream\" VALUES (5000, 1, 1, 20260102, 60, 'Mobile', "
                 "'2026-01-02 12:00:00')")
        )  # fmt: skip
    plans = plan_requests((USERS, STREAMS), source, root, START, TODAY)
    assert [(t.entity, lo, hi) for t, lo, hi, _ in plans] == [
        ("fact_stream", date(2026, 1, 2), date(2026, 1, 2))
    ]


def test_ranges_group_contiguous_days():
    d = date.fromisoformat
    days = [d("2026-01-01"), d("2026-01-02"), d("2026-01-04"), d("2026-01-05"), d("2026-01-09")]
    assert ranges(days) == [
        (d("2026-01-01"), d("2026-01-02")),
        (d("2026-01-04"), d("2026-01-05")),
        (d("2026-01-09"), d("2026-01-09")),
    ]


def test_prefetch_keeps_order_and_raises_the_readers_error_in_the_caller():
    def reader():
        yield from range(5)
        raise SourceUnavailable("source unreachable while reading FactStream")

    seen = []
    with pytest.raises(SourceUnavailable, match=r"^source unreachable while reading FactStream$"):
        for item in prefetched(reader()):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]


def test_prefetch_stops_and_closes_the_reader_when_the_caller_fails():
    closed = []

    def reader():
        try:
            yield from range(1000)
        finally:
            closed.append(True)

    with pytest.raises(RuntimeError, match=r"^disk full$"):
        for item in prefetched(reader()):
            if item == 3:
                raise RuntimeError("disk full")
    assert closed == [True]


def test_an_azure_sql_url_loads_microsofts_driver_and_a_failed_handshake_is_named_masked():
    """mssql+mssqlpython:// (Microsoft's driver from PyPI) against a loopback port that accepts
    and hangs up: no SQL Server runs here, so the real driver's handshake fails, and the error
    names the source with its password masked."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]

    def hang_up() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:  # closed: the test is over
                return
            connection.close()

    threading.Thread(target=hang_up, daemon=True).start()
    url = f"mssql+mssqlpython://loader:S3cr3t-pw@127.0.0.1:{port}/spotify?Encrypt=yes"
    db = SourceDatabase(url=url, retries=0)
    try:
        assert (db.engine.dialect.name, db.engine.dialect.driver) == ("mssql", "mssqlpython")
        with pytest.raises(SourceUnavailable) as excinfo:
            db.count(USERS)
    finally:
        server.close()
    message = str(excinfo.value)
    assert message.startswith(
        f"source mssql+mssqlpython://loader:***@127.0.0.1:{port}/spotify?Encrypt=yes "
        "(host 127.0.0.1) unreachable while reading the definition of DimUser, after 1 attempt:"
    )
    assert "error was encountered during handshakes before login" in message
    assert "S3cr3t-pw" not in message


def test_values_that_do_not_fit_their_type_are_rescued_and_unplaceable_rows_land_apart(source):
    """SQLite keeps any value in any column. In a window, a value that does not fit is NULL with
    its text in `_rescued_data` (never truncated: 1.5 is not 1); a row whose watermark or key
    cannot place it is read with the NULL-watermark rows; the window's statistics agree."""
    with source.engine.begin() as conn:
        ids = [r[0] for r in conn.execute(text(
            'SELECT stream_id FROM "FactStream" WHERE stream_timestamp < \'2026-01-02\' '
            "ORDER BY stream_id LIMIT 5"
        ))]  # fmt: skip
        for stream_id, change in zip(ids, (
            "listen_duration = 1.5", "listen_duration = 'long'", "date_key = 3000000000",
            "stream_timestamp = '2026-01-01 25:00:00'", "stream_id = 'x-1'",
        ), strict=True):  # fmt: skip
            conn.execute(text(f'UPDATE "FactStream" SET {change} WHERE stream_id = {stream_id}'))
    day_end = datetime(2026, 1, 2, tzinfo=UTC)
    schema, batches = source.read_window(STREAMS, None, day_end)
    assert schema.names[-1] == "_rescued_data"
    rows = {r["stream_id"]: r for b in batches for r in b.to_pylist()}
    assert [(rows[i]["listen_duration"], rows[i]["date_key"], rows[i]["_rescued_data"])
            for i in ids[:3]] == [
        (None, 20260101, '{"listen_duration": "1.5"}'),
        (None, 20260101, '{"listen_duration": "long"}'),
        (rows[ids[2]]["listen_duration"], None, '{"date_key": "3000000000"}'),
    ]  # fmt: skip
    assert ids[3] not in rows and ids[4] not in rows
    assert sum(r["_rescued_data"] is not None for r in rows.values()) == 3
    _, apart = source.read_null_watermarks(STREAMS)
    unplaced = sorted(
        (r["stream_id"] or 0, r["_rescued_data"]) for b in apart for r in b.to_pylist()
    )
    assert unplaced == [
        (0, '{"stream_id": "x-1"}'),
        (ids[3], '{"stream_timestamp": "2026-01-01 25:00:00"}'),
    ]
    stats = source_window_stats(source, STREAMS, START, date(2026, 1, 2))
    assert stats[START].rows == len(rows)


def test_a_key_or_watermark_that_does_not_fit_inside_a_window_stops_the_read(source):
    from spotify_assets.source.resource import UnreadableValue, to_batch

    schema = source.landing_schema(source.table(STREAMS))
    row = (1, 2, 3, 20260101, 60, "Mobile", "2026-01-01 10:00:00.000000")
    assert to_batch([row], schema, ("stream_id",)).to_pylist()[0]["_rescued_data"] is None
    bad = ("one", *row[1:])
    with pytest.raises(UnreadableValue, match=r"^column stream_id: the value 'one' does not fit"):
        to_batch([bad], schema, ("stream_id", "stream_timestamp"))
    assert to_batch([bad], schema).to_pylist()[0]["_rescued_data"] == '{"stream_id": "one"}'
