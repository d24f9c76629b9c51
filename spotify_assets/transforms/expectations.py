"""Expectations: Delta Live Tables' data-quality rules on plain Spark, declared in one place.

An expectation is a name, a Spark SQL boolean constraint and an action, with DLT's meanings:
`warn` keeps the row and records the violation, `drop` moves the row to the table's quarantine
(`<table>_quarantine`, with the names of every rule it failed), `fail` stops the materialisation
before anything is written. A constraint that evaluates to NULL counts as failed: three-valued
logic never lets a row slip between the clean table and the quarantine.

Dimension rules apply to the change log the history is built from (a dropped version never
enters the history); fact rules apply to the built rows. To replay quarantined rows after a fix
(in the source, or in a rule here), re-materialise the window: quarantine and table are rebuilt
from silver together, so a fixed row moves back into the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from spotify_assets.catalog import validate_identifier

FAILED_RULES = "_failed_rules"
SAMPLE_SIZE = 5


class Action(StrEnum):
    WARN = "warn"
    DROP = "drop"
    FAIL = "fail"


@dataclass(frozen=True)
class Expectation:
    name: str
    constraint: str  # Spark SQL boolean over the table's columns
    action: Action

    def __post_init__(self) -> None:
        validate_identifier(self.name, "expectation name")


SUBSCRIPTIONS = "('Free', 'Premium', 'Family', 'Student')"
GENRES = "('Pop', 'Rock', 'Hip-Hop', 'Jazz', 'Electronic', 'Classical')"
DEVICES = "('Mobile', 'Desktop', 'Smart Speaker')"

EXPECTATIONS: dict[str, tuple[Expectation, ...]] = {
    "dim_user": (
        Expectation("user_id_not_null", "user_id IS NOT NULL", Action.DROP),
        Expectation(
            "subscription_type_known", f"subscription_type IN {SUBSCRIPTIONS}", Action.DROP
        ),
    ),
    "dim_artist": (
        Expectation("artist_id_not_null", "artist_id IS NOT NULL", Action.DROP),
        # A new genre is news, not an error (the original's incremental loads add Bollywood).
        Expectation("genre_known", f"genre IN {GENRES}", Action.WARN),
    ),
    "dim_track": (
        Expectation("track_id_not_null", "track_id IS NOT NULL", Action.DROP),
        Expectation("duration_positive", "duration_sec > 0", Action.DROP),
    ),
    "dim_date": (
        Expectation("date_key_not_null", "date_key IS NOT NULL", Action.DROP),
        Expectation(
            "date_key_matches_date", "date_key = CAST(date_format(date, 'yyyyMMdd') AS INT)",
            Action.WARN,
        ),
    ),
    "fact_stream": (
        Expectation("stream_id_not_null", "stream_id IS NOT NULL", Action.DROP),
        Expectation("listen_duration_positive", "listen_duration > 0", Action.DROP),
        Expectation("device_type_known", f"device_type IN {DEVICES}", Action.WARN),
        Expectation("user_resolvable", "user_sk <> -1", Action.WARN),
        Expectation("track_resolvable", "track_sk <> -1", Action.WARN),
        Expectation("artist_resolvable", "artist_sk <> -1", Action.WARN),
        # The source's own date_key does not always agree with the timestamp (a known quirk):
        # gold derives date_key from stream_timestamp and keeps the source's as source_date_key.
        Expectation("source_date_key_consistent", "source_date_key = date_key", Action.WARN),
    ),
}  # fmt: skip


class ExpectationFailed(RuntimeError):
    """A `fail` expectation found violating rows: nothing was written."""


@dataclass(frozen=True)
class Outcome:
    expectation: Expectation
    passed_records: int
    failed_records: int
    sample_failing_keys: list = field(default_factory=list)

    @property
    def dropped_records(self) -> int:
        return self.failed_records if self.expectation.action is Action.DROP else 0


@dataclass
class Evaluated:
    clean: DataFrame  # rows passing every drop and fail rule (warn violations stay)
    quarantine: DataFrame  # rows failing a drop rule, with `_failed_rules`
    outcomes: list[Outcome]


def _ok(expectation: Expectation) -> Column:
    return F.coalesce(F.expr(expectation.constraint), F.lit(False))


def evaluate(table: str, df: DataFrame, rules: tuple[Expectation, ...], key: str) -> Evaluated:
    """Count each rule's passing and failing rows (one Spark job, plus one per failing rule for
    its sample), raise if a `fail` rule failed, and split the rows into clean and quarantine."""
    flags = [f"_ok_{i}" for i in range(len(rules))]
    flagged = df.select("*", *(_ok(r).alias(f) for r, f in zip(rules, flags, strict=True)))
    counts = flagged.agg(
        F.count(F.lit(1)).alias("_rows"),
        *(F.sum((~F.col(f)).cast("long")).alias(f) for f in flags),
    ).first()
    assert counts is not None
    outcomes = []
    for rule, flag in zip(rules, flags, strict=True):
        failed = int(counts[flag] or 0)
        sample = []
        if failed:
            rows = flagged.where(~F.col(flag)).select(key).orderBy(key).limit(SAMPLE_SIZE)
            sample = [r[0] for r in rows.collect()]
        outcomes.append(Outcome(rule, int(counts["_rows"]) - failed, failed, sample))
    for outcome in outcomes:
        if outcome.failed_records and outcome.expectation.action is Action.FAIL:
            rule = outcome.expectation
            raise ExpectationFailed(
                f"{table}: expectation {rule.name} ({rule.constraint}) failed for "
                f"{outcome.failed_records} row(s), sample {key}: {outcome.sample_failing_keys}; "
                "nothing was written"
            )
    dropping = [f for r, f in zip(rules, flags, strict=True) if r.action is not Action.WARN]
    keep = F.lit(True)
    for flag in dropping:
        keep = keep & F.col(flag)
    failed_names = F.filter(
        F.array(*(F.when(~F.col(f), F.lit(r.name)) for r, f in zip(rules, flags, strict=True))),
        lambda name: name.isNotNull(),
    )
    return Evaluated(
        clean=flagged.where(keep).drop(*flags),
        quarantine=flagged.where(~keep).withColumn(FAILED_RULES, failed_names).drop(*flags),
        outcomes=outcomes,
    )
