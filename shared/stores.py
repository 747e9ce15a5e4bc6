"""The stores lsmigrate reads from localStorage, and reading their envelopes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lsmigrate.shared.canonical import parse_json
from lsmigrate.shared.environments import EnvironmentSchema
from lsmigrate.shared.fields import Secret, json_type
from lsmigrate.shared.mapping import MappedRecord, RecordSchema, map_record
from lsmigrate.shared.tasks import TaskSchema
from lsmigrate.shared.timestamps import column_timestamp


class SourceError(ValueError):
    """A localStorage value that is not what its store spec expects; the key is left alone."""

    def __init__(self, key: str, expected: str, found: str) -> None:
        super().__init__(f"{key}: expected {expected}, found {found}")
        self.key = key
        self.expected = expected
        self.found = found

    def as_dict(self) -> dict[str, str]:
        """The error as the report and the protocol show it."""
        return {"key": self.key, "expected": self.expected, "found": self.found}


@dataclass(frozen=True)
class StoreSpec:
    """Where a store sits in localStorage and what its records become."""

    name: str
    key: str
    records_path: str
    schema: RecordSchema
    table: str

    @property
    def secret_fields(self) -> frozenset[str]:
        """Source keys whose values are secrets."""
        return frozenset(
            field.data_key or name for name, field in self.schema.load_fields.items() if isinstance(field, Secret)
        )

    def extract(self, raw: str) -> list[Any]:
        """The records of a Zustand `{state, version}` envelope."""
        try:
            envelope = parse_json(raw)
        except ValueError as error:
            raise SourceError(self.key, "JSON text", f"invalid JSON ({error})") from error
        if not isinstance(envelope, dict) or not isinstance(envelope.get("state"), dict):
            raise SourceError(self.key, "a Zustand envelope {state, version}", json_type(envelope))
        records = envelope["state"].get(self.records_path)
        if not isinstance(records, list):
            raise SourceError(self.key, f"an array at state.{self.records_path}", json_type(records))
        return records

    def map(self, records: list[Any], *, user_id: str, migrated_at: datetime, offset: int = 0) -> list[MappedRecord]:
        """Map a run of this store's records, numbered from `offset`."""
        when = column_timestamp(migrated_at)
        return [
            map_record(self.schema, self.name, record, index=offset + i, user_id=user_id, migrated_at=when)
            for i, record in enumerate(records)
        ]


STORES: dict[str, StoreSpec] = {
    spec.key: spec
    for spec in (
        StoreSpec("tasks", "task-store", "tasks", TaskSchema(), "tasks"),
        StoreSpec("environments", "environments", "environments", EnvironmentSchema(), "environments"),
    )
}


def spec_for_key(key: str) -> StoreSpec | None:
    """The spec of a localStorage key, or None for a key lsmigrate does not migrate."""
    return STORES.get(key)
