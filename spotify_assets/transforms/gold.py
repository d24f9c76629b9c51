"""Silver -> gold: the star schema (dimensions with history and surrogate keys, the stream fact)."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from spotify_assets.catalog import GOLD_KEYS, SOURCE_BY_ENTITY

UNKNOWN_SK = -1


def surrogate_key(*columns: str) -> F.Column:
    """Deterministic for a key and its version, so re-runs give the same keys."""
    return F.xxhash64(*[F.col(c).cast("string") for c in columns])


def build_scd2(entity: str, versions: DataFrame) -> DataFrame:
    """Type 2 history: one row per version, valid over [__START_AT, __END_AT).

    Recomputed from every version silver holds, so it is the same whatever order the versions
    arrived in. Every column is tracked for now; the gold issue adds tracked/untracked columns.
    """
    key, sk = GOLD_KEYS[entity]
    assert sk is not None, f"{entity} has no surrogate key"
    sequence = SOURCE_BY_ENTITY[entity].watermark
    attributes = [c for c in versions.columns if not c.startswith("_")]
    by_key = Window.partitionBy(key).orderBy(sequence)
    return versions.select(
        surrogate_key(key, sequence).alias(sk),
        *attributes,
        F.col(sequence).alias("__START_AT"),
        F.lead(sequence).over(by_key).alias("__END_AT"),
    ).withColumn("is_current", F.col("__END_AT").isNull())


def build_dim_date(silver: DataFrame) -> DataFrame:
    return silver.select(
        "date_key",
        "date",
        "day",
        "month",
        "year",
        "weekday",
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
