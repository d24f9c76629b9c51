"""The ingestion_config table drives bronze: one row per source table to ingest.

Adding a table is a row plus a reload of the code location. Each row is validated (identifiers,
and that its table and columns exist in the source); a bad row is reported by name and skipped,
the others keep working. The last good read is cached beside the Dagster instance, so the code
location still loads, and says so, when the source is unreachable at load time.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Date, DateTime, Engine, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from spotify_assets.catalog import SOURCE_TABLES, SourceTable, entity_name, validate_identifier
from spotify_assets.lake.documents import write_json_atomically
from spotify_assets.source.resource import masked
from spotify_assets.source.schema import build_metadata

log = logging.getLogger("spotify_lakehouse")


@dataclass(frozen=True)
class IngestionCatalog:
    """The tables bronze ingests, where that list came from, and the rows that were rejected."""

    tables: tuple[SourceTable, ...]
    origin: str  # "source", "cache" or "built-in"
    problems: tuple[str, ...] = ()
    note: str = ""
    by_entity: dict[str, SourceTable] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_entity", {t.entity: t for t in self.tables})


def _row_problem(row: dict[str, Any], message: str) -> str:
    return f"ingestion_config row {row.get('source_table')!r}: {message}"


def table_from_row(row: dict[str, Any], engine: Engine) -> SourceTable:
    """Validate one ingestion_config row against the source; raises ValueError naming the fault."""
    schema = row.get("source_schema") or None
    name = validate_identifier(str(row.get("source_table") or ""), "table name")
    key = validate_identifier(str(row.get("primary_key") or ""), "primary key column")
    watermark = validate_identifier(str(row.get("watermark_column") or ""), "watermark column")
    if schema:
        validate_identifier(schema, "schema name")
    try:
        options = json.loads(row.get("options") or "{}")
    except json.JSONDecodeError:
        options = None
    if not isinstance(options, dict):
        raise ValueError(f"options must be a JSON object, got {row.get('options')!r}")
    unknown = set(options) - {"entity"}
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)}; known: ['entity']")
    inspector = inspect(engine)
    qualified = f"{schema}.{name}" if schema else name
    if not inspector.has_table(name, schema=schema):
        raise ValueError(f"table {qualified} does not exist in the source")
    columns = {c["name"]: c for c in inspector.get_columns(name, schema=schema)}
    for column, what in ((key, "primary key"), (watermark, "watermark")):
        if column not in columns:
            raise ValueError(
                f"{what} column {column!r} does not exist in {qualified} "
                f"(columns: {', '.join(columns)})"
            )
    wm_type = columns[watermark]["type"]
    if not isinstance(wm_type, Date | DateTime):
        raise ValueError(f"watermark column {watermark!r} is {wm_type}, not a DATE or DATETIME")
    start = row.get("partition_start")
    if isinstance(start, str):
        start = date.fromisoformat(start)
    return SourceTable(
        name=name,
        entity=validate_identifier(options.get("entity") or entity_name(name), "entity name"),
        key=key,
        watermark=watermark,
        watermark_is_date=not isinstance(wm_type, DateTime),
        schema=schema,
        partition_start=start,
    )


def read_config_rows(engine: Engine, schema: str | None) -> list[dict[str, Any]]:
    md = build_metadata(schema)
    table = md.tables[f"{schema}.ingestion_config" if schema else "ingestion_config"]
    with engine.connect() as conn:
        rows = conn.execute(select(table).order_by(table.c.source_table)).mappings()
        return [dict(r) for r in rows]


def _to_json(table: SourceTable) -> dict[str, Any]:
    return {
        "name": table.name,
        "entity": table.entity,
        "key": table.key,
        "watermark": table.watermark,
        "watermark_is_date": table.watermark_is_date,
        "schema": table.schema,
        "partition_start": table.partition_start.isoformat() if table.partition_start else None,
    }


def _from_json(raw: dict[str, Any]) -> SourceTable:
    start = raw.get("partition_start")
    return SourceTable(
        name=raw["name"],
        entity=raw["entity"],
        key=raw["key"],
        watermark=raw["watermark"],
        watermark_is_date=bool(raw["watermark_is_date"]),
        schema=raw.get("schema"),
        partition_start=date.fromisoformat(start) if start else None,
    )


def write_cache(path: Path, tables: tuple[SourceTable, ...]) -> None:
    doc = {"saved_at": datetime.now(UTC).isoformat(), "tables": [_to_json(t) for t in tables]}
    write_json_atomically(str(path), doc)


def read_cache(path: Path) -> tuple[tuple[SourceTable, ...], str]:
    doc = json.loads(path.read_text())
    return tuple(_from_json(t) for t in doc["tables"]), str(doc.get("saved_at"))


def load_catalog(engine: Engine, schema: str | None, cache_path: Path) -> IngestionCatalog:
    """The enabled tables of ingestion_config, or the cached list when the source is unreachable."""
    try:
        if not inspect(engine).has_table("ingestion_config", schema=schema):
            return IngestionCatalog(
                SOURCE_TABLES,
                origin="built-in",
                note="the source has no ingestion_config table yet (run `spotify-lakehouse seed` "
                "or `spotify-lakehouse register-tables`): using the original project's five tables",
            )
        rows = read_config_rows(engine, schema)
        tables: list[SourceTable] = []
        problems: list[str] = []
        for row in rows:
            if not row.get("enabled", True):
                continue
            try:
                tables.append(table_from_row(row, engine))
            except (ValueError, SQLAlchemyError) as exc:
                problems.append(_row_problem(row, str(exc).splitlines()[0]))
        for problem in problems:
            log.warning(problem)
        write_cache(cache_path, tuple(tables))
        return IngestionCatalog(tuple(tables), origin="source", problems=tuple(problems))
    except SQLAlchemyError as exc:
        reason = f"source {masked(str(engine.url))} unreachable at load time ({type(exc).__name__})"
        if cache_path.is_file():
            cached, saved_at = read_cache(cache_path)
            note = f"{reason}: using the ingestion metadata cached at {saved_at}"
            log.warning(note)
            return IngestionCatalog(cached, origin="cache", note=note)
        note = f"{reason} and no cached metadata: using the original project's five tables"
        log.warning(note)
        return IngestionCatalog(SOURCE_TABLES, origin="built-in", note=note)
