"""Silver schema contracts: the one place that declares what each silver table holds.

Each contract names the columns and Spark SQL types a silver table promises, the key and sequence
(watermark) column its deduplication uses, its cleaning rules, and how it meets a column the
contract does not know (the evolution mode, with Auto Loader's meanings):

- `addNewColumns`: the column joins the table (with bronze's type) and the change is recorded.
- `rescue`: the schema stays; the unknown column's values go to `_rescued_data`.
- `failOnNewColumns`: the materialisation fails, naming the columns and how to accept them.
- `none`: the column is ignored, and its non-NULL values are counted.

Whatever the mode, a value that does not fit its declared type, and a column whose name differs
from a contract column only in case, go to `_rescued_data` (a JSON object that also names the bronze
file the row came from), never silently NULLed. To change a contract, edit it here; to accept a
new column without editing code, run `spotify-lakehouse accept-columns <table> <column>...`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from spotify_assets.catalog import RESCUED, validate_identifier

__all__ = ["RESCUED"]


class Evolution(StrEnum):
    ADD_NEW_COLUMNS = "addNewColumns"
    RESCUE = "rescue"
    FAIL_ON_NEW_COLUMNS = "failOnNewColumns"
    NONE = "none"


class Case(StrEnum):
    """Case normalisation of a string column's values."""

    INITCAP = "initcap"  # smart speaker -> Smart Speaker
    LOWER = "lower"
    UPPER = "upper"


TYPES = frozenset({"int", "bigint", "string", "date", "timestamp", "double", "boolean"})


@dataclass(frozen=True)
class Contract:
    entity: str
    key: str
    sequence: str  # the watermark: the latest version per key is the greatest value
    columns: tuple[tuple[str, str], ...]  # (name, Spark SQL type), in table order
    evolution: Evolution = Evolution.ADD_NEW_COLUMNS
    case: dict[str, Case] = field(default_factory=dict)
    # Columns computed from the typed ones: (name, Spark SQL expression over contract columns).
    derived: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        validate_identifier(self.entity, "table name")
        names = [validate_identifier(name, "column") for name, _ in self.columns]
        for name, type_ in self.columns:
            if type_ not in TYPES:
                raise ValueError(f"{self.entity}.{name}: unsupported type {type_!r}")
        if len({n.lower() for n in names}) != len(names):
            raise ValueError(f"{self.entity}: column names must differ in more than case")
        for name in (self.key, self.sequence, *self.case):
            if name not in names:
                raise ValueError(f"{self.entity}: {name!r} is not a contract column")
        for name, _ in self.derived:
            validate_identifier(name, "derived column")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)


CONTRACTS: dict[str, Contract] = {
    c.entity: c
    for c in (
        Contract(
            "dim_user",
            key="user_id",
            sequence="updated_at",
            columns=(
                ("user_id", "int"),
                ("user_name", "string"),
                ("country", "string"),
                ("subscription_type", "string"),
                ("start_date", "date"),
                ("end_date", "date"),
                ("updated_at", "timestamp"),
            ),
            case={"subscription_type": Case.INITCAP},
        ),
        Contract(
            "dim_artist",
            key="artist_id",
            sequence="updated_at",
            columns=(
                ("artist_id", "int"),
                ("artist_name", "string"),
                ("genre", "string"),
                ("country", "string"),
                ("updated_at", "timestamp"),
            ),
        ),
        Contract(
            "dim_track",
            key="track_id",
            sequence="updated_at",
            columns=(
                ("track_id", "int"),
                ("track_name", "string"),
                ("artist_id", "int"),
                ("album_name", "string"),
                ("duration_sec", "int"),
                ("release_date", "date"),
                ("updated_at", "timestamp"),
            ),
            # The original project's duration band.
            derived=(
                (
                    "duration_flag",
                    "CASE WHEN duration_sec < 150 THEN 'low' WHEN duration_sec < 300 THEN 'medium'"
                    " WHEN duration_sec IS NOT NULL THEN 'high' END",
                ),
            ),
        ),
        Contract(
            "dim_date",
            key="date_key",
            sequence="date",
            columns=(
                ("date_key", "int"),
                ("date", "date"),
                ("day", "int"),
                ("month", "int"),
                ("year", "int"),
                ("weekday", "string"),
            ),
        ),
        Contract(
            "fact_stream",
            key="stream_id",
            sequence="stream_timestamp",
            columns=(
                ("stream_id", "bigint"),
                ("user_id", "int"),
                ("track_id", "int"),
                ("date_key", "int"),
                ("listen_duration", "int"),
                ("device_type", "string"),
                ("stream_timestamp", "timestamp"),
            ),
            case={"device_type": Case.INITCAP},
        ),
        # The Spotify Web API's new releases, one row per id and day seen. Spotify adds and
        # removes fields (popularity, label, followers left Development Mode in 2026): declared
        # ones may be missing (NULL), undeclared ones are rescued, never lost, never fatal.
        Contract(
            "spotify_albums",
            key="album_id",
            sequence="seen_on",
            columns=(
                ("album_id", "string"),
                ("album_name", "string"),
                ("album_type", "string"),
                ("release_date", "string"),  # "2026", "2026-11" or "2026-11-26" (its precision)
                ("release_date_precision", "string"),
                ("total_tracks", "int"),
                ("label", "string"),
                ("popularity", "int"),
                ("artist_ids", "string"),  # JSON array
                ("seen_on", "date"),
            ),
            evolution=Evolution.RESCUE,
        ),
        Contract(
            "spotify_tracks",
            key="track_id",
            sequence="seen_on",
            columns=(
                ("track_id", "string"),
                ("track_name", "string"),
                ("album_id", "string"),
                ("artist_ids", "string"),  # JSON array
                ("artist_names", "string"),  # JSON array
                ("duration_ms", "int"),
                ("explicit", "boolean"),
                ("track_number", "int"),
                ("seen_on", "date"),
            ),
            evolution=Evolution.RESCUE,
        ),
        Contract(
            "spotify_artists",
            key="artist_id",
            sequence="seen_on",
            columns=(
                ("artist_id", "string"),
                ("artist_name", "string"),
                ("genres", "string"),  # JSON array
                ("popularity", "int"),
                ("followers", "bigint"),
                ("seen_on", "date"),
            ),
            evolution=Evolution.RESCUE,
        ),
    )
}
