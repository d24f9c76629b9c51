"""PostgreSQL fast path: stream a SELECT through `COPY ... TO STDOUT (FORMAT csv)` into Arrow.

The generic path turns every row into Python objects; this one lets the server write CSV and
Arrow's C++ reader parse it in blocks, so extraction runs near the database's own export speed
with memory bounded by the block size.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

BLOCK_BYTES = 8 << 20


class _CopyReader(io.RawIOBase):
    """A read-only file over the chunks of a COPY TO STDOUT."""

    def __init__(self, chunks: Iterator[Any]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = bytes(chunk)
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def _parse_type(arrow_type: pa.DataType) -> pa.DataType:
    """How the CSV reader parses a column: timestamps as naive (they are UTC), then cast."""
    if pa.types.is_timestamp(arrow_type):
        return pa.timestamp("us")
    return arrow_type


def copy_batches(raw: Any, sql: str, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Yield the rows of `sql` (rendered SQL, no parameters) as record batches of `schema`,
    reading through the DBAPI connection `raw`, which is closed at the end."""
    try:
        cursor = raw.cursor()
        with cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)") as copy:
            chunks = iter(copy)
            first = next(chunks, None)
            if first is None:  # no rows: Arrow's reader refuses an empty file
                return
            reader = pacsv.open_csv(
                io.BufferedReader(_CopyReader(itertools.chain([first], chunks)), 1 << 20),
                read_options=pacsv.ReadOptions(
                    column_names=schema.names, block_size=BLOCK_BYTES, use_threads=True
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types={f.name: _parse_type(f.type) for f in schema},
                    null_values=[""],
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,  # "" is an empty string, bare empty NULL
                ),
            )
            for batch in reader:
                yield pa.RecordBatch.from_arrays(
                    [
                        col.cast(field.type)
                        for col, field in zip(batch.columns, schema, strict=True)
                    ],
                    schema=schema,
                )
    finally:
        raw.close()
