"""Small JSON documents kept beside the Delta tables (watermarks, schema histories, as-of
records, raw API answers), wherever the lake is (lake/storage.py)."""

from __future__ import annotations

import json
from typing import Any

from spotify_assets.lake import storage


def write_json_atomically(location: str, content: Any) -> None:
    """Readers see the old document or the new one, never a partial one."""
    storage.write_text_atomically(str(location), json.dumps(content, indent=2))


def read_json(location: str) -> Any:
    """The document; FileNotFoundError when there is none, ValueError when it is not JSON."""
    return json.loads(storage.read_text(str(location)))
