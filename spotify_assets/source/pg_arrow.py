"""PostgreSQL fast path: stream a SELECT as Arrow record batches through ADBC.

The generic path turns every row into Python objects. The ADBC PostgreSQL driver reads the server's
binary COPY stream in C straight into Arrow, so extraction runs at about the database's own export
speed (see benchmarks/ingestion.py), with memory bounded by the batch size.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from sqlalchemy import make_url

try:
    from adbc_driver_manager import OperationalError as AdbcOperationalError
except ImportError:  # pragma: no cover - the driver is a dependency

    class AdbcOperationalError(Exception):  # type: ignore[no-redef]
        pass


BATCH_BYTES = 16 << 20  # the driver's batch size hint: bounds the memory of one batch


def libpq_uri(sqlalchemy_url: str) -> str:
    """postgresql+psycopg://u:p@h:5432/db?sslmode=require -> postgresql://u:p@h:5432/db?..."""
    return (
        make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )


def connect(sqlalchemy_url: str):
    import adbc_driver_postgresql.dbapi as adbc

    return adbc.connect(libpq_uri(sqlalchemy_url))


def arrow_batches(conn, sql: str, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Yield the rows of `sql` (rendered SQL, no parameters) as batches of `schema`, then close
    the connection."""
    try:
        cursor = conn.cursor()
        cursor.adbc_statement.set_options(
            **{"adbc.postgresql.batch_size_hint_bytes": str(BATCH_BYTES)}
        )
        cursor.execute(sql)
        for batch in cursor.fetch_record_batch():
            yield pa.RecordBatch.from_arrays(
                [col.cast(field.type) for col, field in zip(batch.columns, schema, strict=True)],
                schema=schema,
            )
        cursor.close()
    finally:
        conn.close()
