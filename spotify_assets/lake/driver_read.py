"""A few columns of a small Delta table's window, read on the driver in Arrow, without Spark.

A Spark query over a Delta table pays a fixed cost before it reads a row (the snapshot's files
listed by a Spark job, then the scan's own job): about 0.5-0.9 s on a laptop, which is most of a
bronze step's check on one day's rows. Delta's checksum file of the newest version (`N.crc`)
lists every file of a small table with its statistics (`allFilesInCrc`), so the window's rows
can be read from those Parquet files directly, skipping files whose statistics lie outside it.

It reads only what plain Parquet holds exactly. It returns None, so the caller asks Spark, when
the table needs more of Delta's reader (deletion vectors, column mapping, partition values,
reader features it does not know), when the checksum cannot list the files, or when the window's
files hold more than `max_rows` rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from spotify_assets.lake import storage
from spotify_assets.lake.delta import Window, latest_checksum

# Delta's primitive types as Arrow types, as Spark's `toArrow` gives them (session time zone UTC).
_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "long": pa.int64(),
    "integer": pa.int32(),
    "short": pa.int16(),
    "byte": pa.int8(),
    "boolean": pa.bool_(),
    "double": pa.float64(),
    "float": pa.float32(),
    "binary": pa.binary(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "timestamp_ntz": pa.timestamp("us"),
}
_MS = timedelta(milliseconds=1)
# Footer keys of files Spark 3 wrote in its LEGACY (Julian calendar) mode, which Spark rebases
# when it reads them.
_LEGACY = {b"org.apache.spark.legacyINT96", b"org.apache.spark.legacyDateTime"}
_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")
# Up to this many rows, a table's columns are read on the driver: a few hundred thousand rows of a
# few columns take milliseconds in Arrow, where a Spark query pays its jobs' fixed cost.
MAX_ROWS = 500_000
# Reader features that change nothing for a table whose files carry no deletion vector.
_PLAIN_FEATURES = {"deletionVectors", "timestampNtz", "v2Checkpoint", "vacuumProtocolCheck"}


def read_table(path: str, columns: Sequence[str], max_rows: int) -> pa.Table | None:
    """`columns` of every row of the table's newest version, or None when Spark must read
    them (see the module's docstring)."""
    return _read(path, columns, None, max_rows)


def read_window(
    path: str, columns: Sequence[str], window: Window, max_rows: int
) -> pa.Table | None:
    """`columns` of the rows of the table's newest version in `window`, or None when Spark
    must read them (see the module's docstring)."""
    return _read(path, columns, window, max_rows)


def _read(
    path: str, columns: Sequence[str], window: Window | None, max_rows: int
) -> pa.Table | None:
    checksum = latest_checksum(path)
    if checksum is None or checksum.get("allFiles") is None or not _plain(checksum):
        return None
    read = [*dict.fromkeys([*columns, *([window.column] if window else [])])]
    schema = _arrow_schema(checksum["metadata"]["schemaString"], read)
    if schema is None or (window and not bounds_fit(window, schema.field(window.column).type)):
        return None
    files, rows = [], 0
    for add in checksum["allFiles"]:
        file = add["path"]
        if add.get("deletionVector") or urlparse(file).scheme or file.startswith("/"):
            return None  # rows removed by a vector, or a file outside the table's folder
        stats = json.loads(add.get("stats") or "{}")
        if window and not _may_hold(stats, window, schema.field(window.column).type):
            continue
        if stats.get("numRecords") is None:
            return None
        rows += int(stats["numRecords"])
        if rows > max_rows:
            return None
        files.append(storage.join(path, unquote(file)))
    parts = [_read_file(f, read, schema) for f in files]
    if any(part is None for part in parts):
        return None
    table = pa.concat_tables(parts) if parts else schema.empty_table()
    if window:
        table = table.filter(in_window(table, window))
    return table.select(list(columns))


def _plain(checksum: dict[str, Any]) -> bool:
    """Whether plain Parquet holds the table's rows: no column mapping, no partition values,
    no reader feature beyond those that change nothing here."""
    protocol, metadata = checksum.get("protocol") or {}, checksum.get("metadata") or {}
    reader = int(protocol.get("minReaderVersion", 1))
    features = set(protocol.get("readerFeatures") or ())
    mapping = (metadata.get("configuration") or {}).get("delta.columnMapping.mode", "none")
    return (
        (reader == 1 or (reader == 3 and features <= _PLAIN_FEATURES))
        and mapping == "none"
        and not metadata.get("partitionColumns")
    )


def _arrow_schema(schema_string: str, columns: Sequence[str]) -> pa.Schema | None:
    types = {f["name"]: f["type"] for f in json.loads(schema_string)["fields"]}
    fields = []
    for name in dict.fromkeys(columns):
        kind = types.get(name)
        if not isinstance(kind, str):
            return None  # no such column, or a nested type
        decimal = _DECIMAL.match(kind)
        arrow = pa.decimal128(int(decimal[1]), int(decimal[2])) if decimal else _TYPES.get(kind)
        if arrow is None:
            return None
        fields.append(pa.field(name, arrow))
    return pa.schema(fields)


def bounds_fit(window: Window, kind: pa.DataType) -> bool:
    """Whether the window's bounds are of the column's kind (datetimes for a TIMESTAMP, dates
    for a DATE): the comparisons below need no cast, as Spark's would."""
    wanted = datetime if pa.types.is_timestamp(kind) else date if pa.types.is_date(kind) else None
    bounds = [b for b in (window.lower, window.end) if b is not None]
    return wanted is not None and all(
        isinstance(b, wanted) and (wanted is datetime or not isinstance(b, datetime))
        for b in bounds
    )


def _may_hold(stats: dict[str, Any], window: Window, kind: pa.DataType) -> bool:
    """Whether a file's statistics leave room for a row in the window (True when unsure)."""
    low = _stat(stats, "minValues", window.column, kind)
    high = _stat(stats, "maxValues", window.column, kind)
    if high is not None and window.lower is not None:
        if isinstance(high, datetime):  # Delta truncates timestamps' statistics to ms
            if high < datetime.max - _MS and high + _MS <= window.lower:
                return False
        elif high < window.lower:
            return False
    return not (low is not None and window.end is not None and low >= window.end)


def _stat(
    stats: dict[str, Any], which: str, column: str, kind: pa.DataType
) -> date | datetime | None:
    value = (stats.get(which) or {}).get(column)
    if not isinstance(value, str):
        return None
    try:
        if pa.types.is_date(kind):
            return date.fromisoformat(value[:10])
        if pa.types.is_timestamp(kind):
            parsed = datetime.fromisoformat(value)
            return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed
    except ValueError:
        return None
    return None


def _read_file(location: str, columns: list[str], schema: pa.Schema) -> pa.Table | None:
    fs, path = storage.filesystem(location)
    with fs.open(path, "rb") as f:
        # INT96 timestamps in microseconds, as Spark wrote them: in nanoseconds, years before
        # 1677 or after 2262 would not fit.
        parquet = pq.ParquetFile(f, coerce_int96_timestamp_unit="us")
        footer = parquet.schema_arrow.metadata or {}
        if any(c not in parquet.schema_arrow.names for c in columns) or _LEGACY & set(footer):
            return None  # a column added after the file was written, or old-calendar values
        table = parquet.read(columns=columns)
    try:
        return table.cast(pa.schema([schema.field(c) for c in columns]))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None  # a value the table's type cannot hold as Spark reads it: Spark decides


def in_window(table: pa.Table, window: Window) -> pa.ChunkedArray:
    """`window.predicate()`, over an Arrow table: the bounds are UTC, as the session's."""
    values = table.column(window.column)
    kind = values.type

    def bound(value: date | datetime) -> pa.Scalar:
        if isinstance(value, datetime) and kind.tz is not None:  # a TIMESTAMP (not NTZ)
            value = value.replace(tzinfo=UTC)
        return pa.scalar(value, type=kind)

    mask = pc.is_valid(values)
    if window.lower is not None:
        mask = pc.and_(mask, pc.greater_equal(values, bound(window.lower)))
    if window.end is not None:
        mask = pc.and_(mask, pc.less(values, bound(window.end)))
    return pc.fill_null(mask, False)
