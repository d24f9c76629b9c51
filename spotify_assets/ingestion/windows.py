"""Daily windows of a source table, and the cheap per-window fingerprint that detects change.

A window is the rows whose watermark falls on one UTC day. Rows older than a table's first window
(its partition start) belong to that first window, so no row is ever outside every partition. The
fingerprint of a window is its row count, the sum of its integer keys and its largest watermark:
computed by the source in SQL for the sensor, and from the extracted rows for the watermark
document, so that a late-arriving row (inserted later with an old watermark) changes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Date, Integer, cast, func, select
from sqlalchemy.sql.elements import ColumnElement

from spotify_assets.catalog import SourceTable
from spotify_assets.source.resource import SourceDatabase


@dataclass(frozen=True)
class WindowStats:
    rows: int = 0
    key_sum: int | None = None
    max_watermark: str | None = None

    @property
    def fingerprint(self) -> str:
        return f"{self.rows}:{self.key_sum}:{self.max_watermark}"

    def merge(self, other: WindowStats) -> WindowStats:
        sums = [s for s in (self.key_sum, other.key_sum) if s is not None]
        marks = [m for m in (self.max_watermark, other.max_watermark) if m is not None]
        return WindowStats(
            rows=self.rows + other.rows,
            key_sum=sum(sums) if sums else None,
            max_watermark=max(marks) if marks else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "fingerprint": self.fingerprint}


EMPTY = WindowStats()


def iso(value: Any) -> str | None:
    """A watermark value as text that compares like the value (naive UTC ISO-8601)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def ranges(dates: list[date]) -> list[tuple[date, date]]:
    """Contiguous runs of days as (first, last) pairs."""
    out: list[tuple[date, date]] = []
    for d in sorted(dates):
        if out and d == out[-1][1] + timedelta(days=1):
            out[-1] = (out[-1][0], d)
        else:
            out.append((d, d))
    return out


def days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days)]


def fold(day: date, first: date) -> date:
    return max(day, first)


class StatsAccumulator:
    """Per-window stats of extracted Arrow batches, folded onto the first window."""

    def __init__(self, source: SourceTable, first: date) -> None:
        self.source, self.first = source, first
        self.by_day: dict[date, WindowStats] = {}
        self.max_watermark: str | None = None

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        wm = batch.column(self.source.watermark)
        if pa.types.is_timestamp(wm.type):
            day_col = pc.cast(pc.cast(wm, pa.timestamp("us")), pa.date32())
        else:
            day_col = wm
        key = batch.column(self.source.key)
        numeric_key = pa.types.is_integer(key.type)
        table = pa.table(
            {"day": day_col, "key": key if numeric_key else pc.cast(key, pa.string()), "wm": wm}
        )
        aggregations: list[tuple[str, str]] = [("key", "count"), ("wm", "max")]
        if numeric_key:
            aggregations.append(("key", "sum"))
        grouped = table.group_by("day").aggregate(aggregations).to_pylist()
        for g in grouped:
            stats = WindowStats(
                rows=int(g["key_count"]),
                key_sum=int(g["key_sum"]) if numeric_key else None,
                max_watermark=iso(g["wm_max"]),
            )
            day = fold(g["day"], self.first)
            self.by_day[day] = self.by_day.get(day, EMPTY).merge(stats)
            marks = [m for m in (self.max_watermark, stats.max_watermark) if m]
            self.max_watermark = max(marks) if marks else None


def source_window_stats(
    source_db: SourceDatabase, source: SourceTable, first: date, until: date
) -> dict[date, WindowStats]:
    """The source's per-window stats for every window before `until`, computed in SQL."""
    table = source_db.table(source)
    wm = table.c[source.watermark]
    key = table.c[source.key]
    day: ColumnElement[Any]
    if source.watermark_is_date:
        day = wm
    elif source_db.engine.dialect.name == "sqlite":
        day = func.date(wm)
    else:
        day = cast(wm, Date)
    numeric_key = isinstance(key.type, Integer)
    key_sum = func.sum(key) if numeric_key else func.count(key)
    bound = until if source.watermark_is_date else datetime.combine(until, datetime.min.time())
    stmt = (
        select(
            day.label("day"),
            func.count().label("rows"),
            key_sum.label("key_sum"),
            func.max(wm).label("max_wm"),
        )
        .where(*source_db.placeable(table, source), wm < bound)
        .group_by(day)
    )

    def run() -> dict[date, WindowStats]:
        out: dict[date, WindowStats] = {}
        with source_db.engine.connect() as conn:
            for row in conn.execute(stmt):
                d = fold(date.fromisoformat(str(row.day)[:10]), first)
                stats = WindowStats(
                    rows=int(row.rows),
                    key_sum=int(row.key_sum) if numeric_key else None,
                    max_watermark=iso(_as_watermark(row.max_wm, source)),
                )
                out[d] = out.get(d, EMPTY).merge(stats)
        return out

    return source_db.with_retries(f"computing window statistics of {source.name}", run)


def _as_watermark(value: Any, source: SourceTable) -> Any:
    """SQLite hands back MAX() of a DATETIME as text: parse it like SQLAlchemy would."""
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        return parsed.date() if source.watermark_is_date else parsed
    return value
