"""Staging a window's source rows: streamed into one Parquet file, then read by Spark."""

import queue
import threading
from collections.abc import Iterator

import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spotify_assets.ingestion.windows import StatsAccumulator
from spotify_assets.lake import storage


def stage(batches, schema, path: str, stats: StatsAccumulator | None = None) -> int:
    """Stream Arrow batches into one Parquet file: memory holds a few chunks at a time.

    The source is read on a second thread while this one encodes Parquet (both release the GIL),
    so extraction runs near the database's own export speed instead of the sum of the two.
    """
    rows = 0
    with storage.open_for_writing(path) as sink, pq.ParquetWriter(sink, schema) as writer:
        for batch in prefetched(batches):
            writer.write_batch(batch)
            rows += batch.num_rows
            if stats is not None:
                stats.add(batch)
    return rows


_DONE = object()


def prefetched(items: Iterator, depth: int = 2) -> Iterator:
    """Yield `items`, produced on a background thread at most `depth` ahead; an error there is
    raised here, and stopping early (an error here) stops and closes the producer."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        """Wait for room unless the consumer stopped; False once it has."""
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    break
            outcome: object = _DONE
        except BaseException as error:  # handed to the consumer, raised there
            outcome = error
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
        put(outcome)

    producer = threading.Thread(target=produce, name="source-reader", daemon=True)
    producer.start()
    try:
        while (item := buffer.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        producer.join()


def read_staged(spark: SparkSession, path: str) -> DataFrame:
    return spark.read.parquet(path).withColumn("_ingested_at", F.current_timestamp())
