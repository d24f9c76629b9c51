"""The watermark document of each bronze table: what was actually copied, written atomically.

As in the original project there is one small JSON document per table, but it records the high
watermark of the rows actually copied (never `max()` over the source taken after the copy, which
skips rows committed in between), plus the row count and fingerprint of every window extracted, so
the source-change sensor can tell which windows changed since.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from spotify_assets.catalog import Layer, SourceTable, table_path
from spotify_assets.ingestion.windows import WindowStats
from spotify_assets.lake import storage
from spotify_assets.lake.documents import write_json_atomically

REPAIR_COMMAND = "spotify-lakehouse repair-watermarks --table {entity}"


class WatermarkDocumentCorrupt(RuntimeError):
    pass


@dataclass
class WatermarkDocument:
    table: str
    entity: str
    watermark_column: str
    high_watermark: str | None = None
    windows: dict[str, dict[str, Any]] = field(default_factory=dict)  # day -> {rows, fingerprint}
    null_watermark_rows: int = 0
    updated_at: str | None = None

    def record(self, windows: dict[date, WindowStats], high_watermark: str | None) -> None:
        for day, stats in windows.items():
            self.windows[day.isoformat()] = stats.to_json()
        marks = [m for m in (self.high_watermark, high_watermark) if m]
        self.high_watermark = max(marks) if marks else None
        self.windows = dict(sorted(self.windows.items()))

    def fingerprint(self, day: date) -> str | None:
        window = self.windows.get(day.isoformat())
        return window["fingerprint"] if window else None


def document_path(lakehouse_root: str, source: SourceTable) -> str:
    return storage.join(
        table_path(lakehouse_root, Layer.BRONZE, "_watermarks"), f"{source.entity}.json"
    )


def load(path: str, source: SourceTable) -> WatermarkDocument:
    """The table's document; a new one if there is none; a clear error if it is corrupt."""
    try:
        text = storage.read_text(path)
    except FileNotFoundError:
        return WatermarkDocument(source.name, source.entity, source.watermark)
    try:
        raw = json.loads(text)
        if not isinstance(raw, dict) or not isinstance(raw.get("windows", {}), dict):
            raise ValueError("expected a JSON object with a 'windows' object")
        doc = WatermarkDocument(**raw)
    except (ValueError, TypeError) as exc:
        raise WatermarkDocumentCorrupt(
            f"the watermark document {path} of {source.name} is corrupt ({exc}). Repair it "
            f"with `{REPAIR_COMMAND.format(entity=source.entity)}`: the corrupt file is kept "
            "beside it and the source-change sensor re-verifies every window."
        ) from None
    return doc


def save(path: str, doc: WatermarkDocument) -> None:
    """Write atomically: readers see the old document or the new one, never a partial one."""
    doc.updated_at = datetime.now(UTC).isoformat()
    write_json_atomically(path, asdict(doc))


def repair(path: str, source: SourceTable, bronze_high_watermark: str | None) -> str | None:
    """Set a corrupt document aside and start a fresh one from what bronze holds.

    The fresh document has no window fingerprints, so the sensor finds every window with rows
    changed and requests their re-extraction, which is idempotent: nothing is duplicated.
    """
    kept = None
    if storage.exists(path):
        kept = f"{path}.corrupt-{datetime.now(UTC):%Y%m%dT%H%M%S}"
        storage.move(path, kept)
    doc = WatermarkDocument(source.name, source.entity, source.watermark)
    doc.high_watermark = bronze_high_watermark
    save(path, doc)
    return kept
