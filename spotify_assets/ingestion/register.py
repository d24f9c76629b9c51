"""Register an existing database's tables in ingestion_config without touching their data.

For a user whose source already exists (for example the original project's Azure SQL database,
loaded from its published SQL scripts): keys are read from primary key constraints and watermark
columns detected by name (updated_at, modified_at, ...) or as the table's only DATETIME column;
either can be given instead on the command line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy import DateTime, Engine, delete, inspect

from spotify_assets.catalog import validate_identifier
from spotify_assets.source.schema import build_metadata

WATERMARK_NAMES = (
    "updated_at", "modified_at", "last_modified", "last_updated", "modified", "changed_at",
    "updatedat", "modifieddate", "lastmodified",
)  # fmt: skip
OWN_TABLES = {"ingestion_config", "simulator_state"}


class RegistrationError(ValueError):
    pass


def detect_watermark(columns: list[Any]) -> str | None:
    by_name = {c["name"].lower(): c["name"] for c in columns}
    for candidate in WATERMARK_NAMES:
        if candidate in by_name:
            return by_name[candidate]
    datetimes = [c["name"] for c in columns if isinstance(c["type"], DateTime)]
    return datetimes[0] if len(datetimes) == 1 else None


def plan_rows(
    engine: Engine,
    schema: str | None,
    tables: list[str] | None,
    keys: dict[str, str],
    watermarks: dict[str, str],
    partition_start: date,
) -> list[dict[str, Any]]:
    """The ingestion_config rows for `tables` (default: every table), or a RegistrationError
    listing every table whose key or watermark could not be decided."""
    inspector = inspect(engine)
    names = tables or sorted(set(inspector.get_table_names(schema=schema)) - OWN_TABLES)
    rows, problems = [], []
    for name in names:
        validate_identifier(name, "table name")
        if not inspector.has_table(name, schema=schema):
            problems.append(f"{name}: no such table")
            continue
        columns = inspector.get_columns(name, schema=schema)
        column_names = {c["name"] for c in columns}
        pk = inspector.get_pk_constraint(name, schema=schema).get("constrained_columns") or []
        key = keys.get(name) or (pk[0] if len(pk) == 1 else None)
        watermark = watermarks.get(name) or detect_watermark(columns)
        if key is None:
            problems.append(f"{name}: no single-column primary key; give --key {name}=COLUMN")
        if watermark is None:
            problems.append(f"{name}: no watermark column found; give --watermark {name}=COLUMN")
        for given in (key, watermark):
            if given is not None and given not in column_names:
                problems.append(f"{name}: column {given!r} does not exist")
        if key and watermark and key in column_names and watermark in column_names:
            rows.append(
                {
                    "source_schema": schema,
                    "source_table": name,
                    "primary_key": validate_identifier(key, "key column"),
                    "watermark_column": validate_identifier(watermark, "watermark column"),
                    "enabled": True,
                    "partition_start": partition_start,
                    "options": json.dumps({}),
                }
            )
    if problems:
        raise RegistrationError("cannot register: " + "; ".join(problems))
    return rows


def register(
    engine: Engine,
    schema: str | None,
    tables: list[str] | None,
    keys: dict[str, str],
    watermarks: dict[str, str],
    partition_start: date,
    echo: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Write (or replace) the rows of `tables` in ingestion_config, creating it if needed."""
    rows = plan_rows(engine, schema, tables, keys, watermarks, partition_start)
    md = build_metadata(schema)
    config = md.tables[f"{schema}.ingestion_config" if schema else "ingestion_config"]
    config.create(engine, checkfirst=True)
    with engine.begin() as conn:
        names = [r["source_table"] for r in rows]
        conn.execute(delete(config).where(config.c.source_table.in_(names)))
        if rows:
            conn.execute(config.insert(), rows)
    for r in rows:
        echo(
            f"registered {r['source_table']}: key {r['primary_key']}, "
            f"watermark {r['watermark_column']}, first window {partition_start}"
        )
    return rows
