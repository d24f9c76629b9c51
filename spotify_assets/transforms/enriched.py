"""Enriched streams: the parameter set the SQL-writing machine renders into an as-of join.

Which dimension columns a stream carries, under which names, is declared here; the join itself
is written once, in jinja_templates/enriched_streams.sql.j2.
"""

from __future__ import annotations

from typing import Any

from spotify_assets.catalog import Layer
from spotify_assets.sql import Statement, render
from spotify_assets.transforms.contracts import CONTRACTS

TEMPLATE = "enriched_streams.sql.j2"


def _columns(*pairs: str) -> list[dict[str, str]]:
    """'country:user_country' -> name country, output alias user_country."""
    return [dict(zip(("name", "alias"), (p.split(":") * 2)[:2], strict=True)) for p in pairs]


def _dimension(entity: str, alias: str, join_from: str, join_column: str, *columns: str) -> dict:
    contract = CONTRACTS[entity]
    return {
        "alias": alias,
        "view": f"silver_{entity}_versions",
        "key": contract.key,
        "sequence": contract.sequence,
        "start": contract.sequence,  # a version's validity, for as_of
        "reads": [c.split(":")[0] for c in columns],
        "join_from": join_from,
        "join_column": join_column,
        "columns": _columns(*columns),
    }


PARAMETERS: dict[str, Any] = {
    "fact": {
        "view": "silver_fact_stream",
        "time": "stream_timestamp",
        "columns": list(CONTRACTS["fact_stream"].names),
    },
    "dimensions": [
        _dimension(
            "dim_user", "usr", "f", "user_id",
            "user_name", "country:user_country", "subscription_type",
        ),
        _dimension(
            "dim_track", "trk", "f", "track_id",
            "track_name", "album_name", "duration_sec", "duration_flag", "artist_id",
        ),
        _dimension(
            "dim_artist", "art", "trk", "artist_id",
            "artist_name", "genre", "country:artist_country",
        ),
    ],
}  # fmt: skip

DIMENSIONS: list[dict[str, Any]] = PARAMETERS["dimensions"]

# The views the statement reads, and the silver tables they are.
VIEWS: dict[str, tuple[Layer, str]] = {
    PARAMETERS["fact"]["view"]: (Layer.SILVER, "fact_stream"),
    **{d["view"]: (Layer.SILVER, d["view"].removeprefix("silver_")) for d in DIMENSIONS},
}


def statement() -> Statement:
    """Every stream with the versions valid when it happened; callers filter it to a window."""
    return render(TEMPLATE, **PARAMETERS)


def view_schemas() -> dict[str, dict[str, str]]:
    """The columns of every view the statement reads (for lineage): their silver contracts."""
    schemas = {}
    for view, (_, table) in VIEWS.items():
        contract = CONTRACTS[table.removesuffix("_versions")]
        derived = {name: "string" for name, _ in contract.derived}
        schemas[view] = {**dict(contract.columns), **derived}
    return schemas
