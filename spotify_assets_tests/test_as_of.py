"""Windows joined as-of to a dimension are rebuilt when the dimension changes, from the time
the change takes effect on: exactly the windows a rebuild would change, and no older ones."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from spotify_assets.lake import as_of, change_log, delta


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 1, day, hour)


# Key 1 streams every day, key 2 on days 1-4, key 3 on day 2; each at noon.
STREAMS = [
    *((10 + d, 1, at(d)) for d in range(1, 6)),
    *((20 + d, 2, at(d)) for d in range(1, 5)),
    (32, 3, at(2)),
]
LOG = "key int, seq timestamp, attr string"  # a silver change log: versions by sequence
LOG_V0 = [(1, at(1, 0), "a"), (2, at(1, 0), "x"), (3, at(2, 0), "p")]
SCD2 = "key int, sk bigint, attr string, __START_AT timestamp, __END_AT timestamp"  # gold
SCD2_V0 = [
    (1, 10, "a", at(1, 0), None),
    (2, 20, "x", at(1, 0), None),
    (3, 30, "p", at(2, 0), None),
]
DIM = {"alias": "d", "view": "dim", "key": "key", "join_from": "f", "join_column": "key"}
STYLES = {
    "log": {**DIM, "start": "seq", "reads": ["attr"]},
    "scd2": {**DIM, "start": "__START_AT", "end": "__END_AT", "reads": ["sk"]},
}


def joined(spark, streams: DataFrame, path: str, dim: dict) -> DataFrame:
    """Each stream with the version valid at its time, the first version covering earlier
    times: the semantics of the enriched template and of gold's fact."""
    versions = delta.read(spark, path)
    start = dim["start"]
    first = F.row_number().over(Window.partitionBy("key").orderBy(start)) == 1
    end = (
        F.col(dim["end"])
        if "end" in dim
        else F.lead(start).over(Window.partitionBy("key").orderBy(start))
    )
    v = versions.select(
        F.col("key").alias("k"),
        *dim["reads"],
        F.when(first, None).otherwise(F.col(start)).alias("vf"),
        end.alias("vt"),
    )
    valid = (
        (streams["key"] == v["k"])
        & (v["vf"].isNull() | (streams["ts"] >= v["vf"]))
        & (v["vt"].isNull() | (streams["ts"] < v["vt"]))
    )
    return streams.join(v, valid, "left").select("stream_id", "key", "ts", *dim["reads"])


class Lake:
    def __init__(self, spark, root, style: str, write: str):
        self.spark, self.style, self.write = spark, style, write
        self.dim = STYLES[style]
        self.dim_path, self.path = str(root / "dim"), str(root / "fact")
        self.state = str(root / "fact.json")
        self.streams = spark.createDataFrame(STREAMS, "stream_id int, key int, ts timestamp")
        self.set_dimension(LOG_V0 if style == "log" else SCD2_V0)

    def set_dimension(self, rows) -> None:
        frame = self.spark.createDataFrame(rows, LOG if self.style == "log" else SCD2)
        keys = ["key", self.dim["start"]]
        if self.write == "merge" or not delta.exists(self.dim_path):
            change_log.sync(self.spark, frame, self.dim_path, keys)  # the feed can tell
        else:
            delta.overwrite(frame, self.dim_path)  # it cannot: the snapshots are compared

    def run(self, first: int, last: int) -> list[date]:
        """Write days first..last; the other days rebuilt."""
        window = delta.Window("ts", at(first, 0), at(last + 1, 0))
        return as_of.write_windows(
            self.spark,
            self.path,
            self.state,
            window,
            self.streams,
            [self.dim],
            {"dim": self.dim_path},
            lambda _: delta.read(self.spark, self.dim_path),
            lambda span: joined(self.spark, self.streams, self.dim_path, self.dim).where(
                span.predicate()
            ),
        )

    def equals_a_rebuild(self) -> bool:
        ours = delta.read(self.spark, self.path)
        full = joined(self.spark, self.streams, self.dim_path, self.dim)
        return sorted(ours.collect()) == sorted(full.collect())


def days(*numbers: int) -> list[date]:
    return [date(2026, 1, n) for n in numbers]


# Through the change data feed in make test; by comparing snapshots (a dimension rebuilt by an
# overwrite) in make test-all.
WRITES = ["merge", pytest.param("overwrite", marks=pytest.mark.slow)]


@pytest.mark.parametrize("write", WRITES)
def test_a_change_log_s_new_version_rebuilds_the_windows_from_its_time_on(spark, tmp_path, write):
    lake = Lake(spark, tmp_path, "log", write)
    assert lake.run(1, 4) == []
    # Key 1 gains a version at day 3, 06:00: its streams of days 3 and 4 change, not 1 and 2.
    lake.set_dimension([*LOG_V0, (1, at(3, 6), "b")])
    assert lake.run(5, 5) == days(3, 4)
    assert lake.equals_a_rebuild()
    # A late version of key 1 at day 2, 06:00, before the day-3 one: days 2 to 4 (5 is the run's).
    lake.set_dimension([*LOG_V0, (1, at(2, 6), "c"), (1, at(3, 6), "b")])
    assert lake.run(5, 5) == days(2, 3, 4)
    assert lake.equals_a_rebuild()
    # Key 2's first version changes: it covers all of key 2's streams.
    lake.set_dimension([(1, at(1, 0), "a"), (2, at(1, 0), "y"), (3, at(2, 0), "p"),
                        (1, at(2, 6), "c"), (1, at(3, 6), "b")])  # fmt: skip
    assert lake.run(5, 5) == days(1, 2, 3, 4)
    assert lake.equals_a_rebuild()
    # Key 3 gains a version before its first: the new first covers its earlier streams too.
    lake.set_dimension([(1, at(1, 0), "a"), (2, at(1, 0), "y"), (3, at(2, 0), "p"),
                        (1, at(2, 6), "c"), (1, at(3, 6), "b"), (3, at(1, 0), "o")])  # fmt: skip
    assert lake.run(5, 5) == days(2)
    assert lake.equals_a_rebuild()
    # Nothing changed: nothing rebuilt.
    assert lake.run(5, 5) == []


@pytest.mark.parametrize("write", WRITES)
def test_an_scd2_version_whose_end_alone_moved_rebuilds_from_that_end(spark, tmp_path, write):
    lake = Lake(spark, tmp_path, "scd2", write)
    assert lake.run(1, 4) == []
    # Key 1's version closes at day 3, 06:00 and a new one opens: days 3 and 4, not 1 and 2.
    closed = [(1, 10, "a", at(1, 0), at(3, 6)), (1, 11, "b", at(3, 6), None)]
    lake.set_dimension([*closed, *SCD2_V0[1:]])
    assert lake.run(5, 5) == days(3, 4)
    assert lake.equals_a_rebuild()
    # A column the join does not read changes (attr): no window moves.
    lake.set_dimension([*closed, (2, 20, "z", at(1, 0), None), SCD2_V0[2]])
    assert lake.run(5, 5) == []
    # The newer version goes (a delete in the source): key 1's first version is open again,
    # from day 3, 06:00 on.
    lake.set_dimension([SCD2_V0[0], (2, 20, "z", at(1, 0), None), SCD2_V0[2]])
    assert lake.run(5, 5) == days(3, 4)
    assert lake.equals_a_rebuild()
    # Key 2's first version gets another surrogate key: all of key 2's windows.
    lake.set_dimension([SCD2_V0[0], (2, 21, "z", at(1, 0), None), SCD2_V0[2]])
    assert lake.run(5, 5) == days(1, 2, 3, 4)
    assert lake.equals_a_rebuild()
