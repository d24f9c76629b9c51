"""Silver -> gold: the star schema (dimensions with history and surrogate keys, the stream fact)."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from spotify_assets.catalog import Layer, TableName, table_name

UNKNOWN_SK = -1


def surrogate_key(*columns: str) -> F.Column:
    """Deterministic for a key and its version, so re-runs give the same keys."""
    return F.xxhash64(*[F.col(c).cast("string") for c in columns])


@dataclass(frozen=True)
class Scd2:
    """How a dimension keeps history, with AUTO CDC's meanings.

    `track` names the columns whose change opens a new version (None: every attribute but the
    key and the sequence); a change in other columns only updates the version it falls in.
    `deletes` is a SQL condition that marks an event as a delete (it closes the current
    version); None when the source does not signal deletes, as the tutorial's does not.
    """

    entity: str
    key: str
    sequence: str
    track: tuple[str, ...] | None = None
    deletes: str | None = None


SCD2: dict[str, Scd2] = {
    "dim_user": Scd2("dim_user", "user_id", "updated_at", track=("subscription_type", "country")),
    "dim_artist": Scd2("dim_artist", "artist_id", "updated_at", track=("genre", "country")),
    "dim_track": Scd2("dim_track", "track_id", "updated_at"),
}


class InvalidChangeEvents(ValueError):
    """Events with a NULL key or sequence: AUTO CDC rejects them, so do we."""


def build_scd2(
    config: Scd2, events: DataFrame, surrogate: str, table: TableName | None = None
) -> DataFrame:
    """Type 2 history from every change event of a dimension: one row per version, valid over
    [__START_AT, __END_AT), recomputed per key in sequence order, so the result is the same
    whatever order the events arrived in. Events must be unique per (key, sequence) (silver's
    change log is). Consecutive events with the same tracked values form one version, whose
    untracked columns take the values of its last event."""
    key, seq = config.key, config.sequence
    table = table or table_name(Layer.GOLD, config.entity)
    invalid = events.where(F.col(key).isNull() | F.col(seq).isNull()).count()
    if invalid:
        raise InvalidChangeEvents(
            f"{table}: {invalid} change event(s) with a NULL {key} or {seq}; "
            "an event needs both to take its place in the history"
        )
    attributes = [c for c in events.columns if not c.startswith("_") and c not in (key, seq)]
    tracked = list(config.track) if config.track is not None else attributes
    deleted = F.expr(config.deletes) if config.deletes else F.lit(False)
    order = Window.partitionBy(key).orderBy(seq)
    marked = events.withColumn("_delete", F.coalesce(deleted, F.lit(False)))
    changed = F.lit(False)
    for column in tracked:
        changed = changed | ~F.col(column).eqNullSafe(F.lag(column).over(order))
    opens = (
        F.lag(seq).over(order).isNull()  # a key's first event
        | F.col("_delete")
        | F.lag("_delete").over(order)  # the key comes back after a delete
        | changed
    )
    grouped = marked.withColumn("_opens", opens.cast("int")).withColumn(
        "_version", F.sum("_opens").over(order.rowsBetween(Window.unboundedPreceding, 0))
    )
    last = F.struct(*[F.col(c) for c in (seq, *attributes)])
    versions = grouped.groupBy(key, "_version").agg(
        F.min(seq).alias("__START_AT"),
        F.max_by(last, F.col(seq)).alias("_last"),
        F.max("_delete").alias("_is_delete"),
    )
    by_start = Window.partitionBy(key).orderBy("__START_AT")
    history = versions.withColumn("__END_AT", F.lead("__START_AT").over(by_start)).where(
        ~F.col("_is_delete")
    )
    return history.select(
        surrogate_key(key, "__START_AT").alias(surrogate),
        key,
        *[F.col(f"_last.{c}").alias(c) for c in attributes],
        F.col(f"_last.{seq}").alias(seq),
        "__START_AT",
        "__END_AT",
        F.col("__END_AT").isNull().alias("is_current"),
    )


def unknown_member(history: DataFrame, key: str, surrogate: str) -> DataFrame:
    """The row facts point to when their key is unknown: surrogate -1, key -1, no attributes."""
    values = {surrogate: UNKNOWN_SK, key: -1, "is_current": True}
    return history.sparkSession.createDataFrame(
        [tuple(values.get(f.name) for f in history.schema.fields)], history.schema
    )


def with_unknown_member(history: DataFrame, key: str, surrogate: str) -> DataFrame:
    return history.unionByName(unknown_member(history, key, surrogate))


def build_dim_date(silver: DataFrame, stream_times: DataFrame) -> DataFrame:
    """The source's calendar, plus a generated row for every date a stream falls on that the
    calendar lacks, so every fact's date_key joins."""
    calendar = silver.select("date_key", "date", "day", "month", "year", "weekday")
    missing = (
        stream_times.select(F.to_date("stream_timestamp").alias("date"))
        .where(F.col("date").isNotNull())
        .distinct()
        .join(calendar.select("date"), "date", "left_anti")
        .select(
            F.date_format("date", "yyyyMMdd").cast("int").alias("date_key"),
            "date",
            F.dayofmonth("date").alias("day"),
            F.month("date").alias("month"),
            F.year("date").alias("year"),
            F.date_format("date", "EEEE").alias("weekday"),
        )
    )
    return calendar.unionByName(missing).select(
        "*",
        F.quarter("date").alias("quarter"),
        F.dayofweek("date").isin(1, 7).alias("is_weekend"),
    )


def date_key(timestamp_col: str) -> F.Column:
    return F.date_format(F.col(timestamp_col), "yyyyMMdd").cast("int")


def _validity(dim: DataFrame, key: str, sk: str, prefix: str, *extra: str) -> DataFrame:
    """Each version's key, surrogate key and validity; the first version is valid from the start
    of time, so a stream earlier than a key's first version takes that first version."""
    first = F.row_number().over(Window.partitionBy(key).orderBy("__START_AT")) == 1
    return dim.select(
        F.col(key).alias(f"{prefix}key"),
        F.col(sk).alias(sk),
        *[F.col(c).alias(f"{prefix}{c}") for c in extra],
        F.when(first, F.lit(None)).otherwise(F.col("__START_AT")).alias(f"{prefix}from"),
        F.col("__END_AT").alias(f"{prefix}to"),
    )


def _as_of(facts: DataFrame, versions: DataFrame, fact_key: str, prefix: str) -> DataFrame:
    """Left-join each fact to the dimension version valid at its stream_timestamp."""
    ts = F.col("stream_timestamp")
    valid = (
        (F.col(fact_key) == F.col(f"{prefix}key"))
        & (F.col(f"{prefix}from").isNull() | (ts >= F.col(f"{prefix}from")))
        & (F.col(f"{prefix}to").isNull() | (ts < F.col(f"{prefix}to")))
    )
    return facts.join(versions, valid, "left")


def build_fact_stream(
    streams: DataFrame, dim_user: DataFrame, dim_track: DataFrame, dim_artist: DataFrame
) -> DataFrame:
    """Streams with the surrogate keys of the user, track and artist versions valid at the time."""
    users = _validity(dim_user, "user_id", "user_sk", "_u_")
    tracks = _validity(dim_track, "track_id", "track_sk", "_t_", "artist_id")
    artists = _validity(dim_artist, "artist_id", "artist_sk", "_a_")
    joined = _as_of(streams, users, "user_id", "_u_")
    joined = _as_of(joined, tracks, "track_id", "_t_")
    joined = _as_of(joined, artists, "_t_artist_id", "_a_")
    return joined.select(
        "stream_id",
        F.coalesce("user_sk", F.lit(UNKNOWN_SK)).cast("bigint").alias("user_sk"),
        F.coalesce("track_sk", F.lit(UNKNOWN_SK)).cast("bigint").alias("track_sk"),
        F.coalesce("artist_sk", F.lit(UNKNOWN_SK)).cast("bigint").alias("artist_sk"),
        date_key("stream_timestamp").alias("date_key"),
        F.col("date_key").alias("source_date_key"),
        "user_id",
        "track_id",
        "listen_duration",
        "device_type",
        "stream_timestamp",
    )
