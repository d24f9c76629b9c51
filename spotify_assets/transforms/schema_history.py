"""The schema location of each silver table: its effective schema and how it got there.

Like Auto Loader's `schemaLocation`, a JSON document beside the table
(`silver/_schemas/<table>.json`) holds the columns the table has beyond its contract (added by
`addNewColumns` or accepted by a user) and a history of every schema event: creation, contract
edits, columns added or accepted. The UI shows the history as materialisation metadata.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from spotify_assets.catalog import Layer, table_path, validate_identifier
from spotify_assets.lake import storage
from spotify_assets.lake.documents import write_json_atomically
from spotify_assets.transforms.contracts import Contract

ACCEPT_COMMAND = "spotify-lakehouse accept-columns {entity} {columns}"


class SchemaHistoryCorrupt(RuntimeError):
    pass


@dataclass
class SchemaHistory:
    entity: str
    contract: list[list[str]] = field(default_factory=list)  # [name, type] as last seen
    extra: list[list[str | None]] = field(default_factory=list)  # [name, type or None] beyond it
    events: list[dict] = field(default_factory=list)

    def columns(self, contract: Contract) -> list[tuple[str, str | None]]:
        """The effective schema: the contract's columns, then the extra ones not in it."""
        names = {n.lower() for n in contract.names}
        extra = [(str(n), t) for n, t in self.extra if str(n).lower() not in names]
        return [*contract.columns, *extra]

    def extra_names(self) -> list[str]:
        return [str(n) for n, _ in self.extra]

    def record(self, event: str, **details) -> None:
        self.events.append(
            {
                "version": len(self.events),
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "event": event,
                **details,
            }
        )

    def follow_contract(self, contract: Contract) -> bool:
        """Record a new or edited contract; True if anything changed."""
        current = [list(c) for c in contract.columns]
        if current == self.contract:
            return False
        event = "created" if not self.events else "contract changed"
        self.record(event, columns=[f"{n} {t}" for n, t in contract.columns])
        self.contract = current
        names = {n.lower() for n in contract.names}
        self.extra = [e for e in self.extra if str(e[0]).lower() not in names]
        return True

    def add(self, columns: dict[str, str | None], event: str) -> None:
        known = {str(n).lower() for n, _ in self.extra} | {n.lower() for n, _ in self.contract}
        new = {n: t for n, t in columns.items() if n.lower() not in known}
        if new:
            self.extra.extend([n, t] for n, t in new.items())
            self.record(event, columns=[f"{n} {t or '(type from bronze)'}" for n, t in new.items()])

    def settle_types(self, types: dict[str, str]) -> None:
        """Give accepted columns bronze's type the first time it is seen."""
        for extra in self.extra:
            if extra[1] is None and extra[0] in types:
                extra[1] = types[str(extra[0])]


def history_path(lakehouse_root: str, entity: str) -> str:
    validate_identifier(entity, "table name")
    return storage.join(table_path(lakehouse_root, Layer.SILVER, "_schemas"), f"{entity}.json")


def load(path: str, entity: str) -> SchemaHistory:
    try:
        text = storage.read_text(path)
    except FileNotFoundError:
        return SchemaHistory(entity)
    try:
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError("expected a JSON object")
        history = SchemaHistory(**raw)
    except (ValueError, TypeError) as exc:
        raise SchemaHistoryCorrupt(
            f"the schema history {path} of silver.{entity} is corrupt ({exc}); restore it from "
            "version control or a backup, or delete it to start the history again from the "
            "contract (columns added since must then be accepted again)"
        ) from None
    return history


def save(path: str, history: SchemaHistory) -> None:
    write_json_atomically(path, asdict(history))


def accept(lakehouse_root: str, contract: Contract, columns: list[str]) -> SchemaHistory:
    """A user accepts new columns of a `failOnNewColumns` (or any) table: they join its schema
    with the type bronze gives them at the next materialisation."""
    path = history_path(lakehouse_root, contract.entity)
    history = load(path, contract.entity)
    history.follow_contract(contract)
    history.add({validate_identifier(c, "column"): None for c in columns}, "columns accepted")
    save(path, history)
    return history
