"""Store specs: where a store sits in localStorage and what its records become.

A store is declared, not coded. A `StoreSpec` names the localStorage key (or
a key pattern), the envelope, where the records sit in the state, the record
schema, the target table, the id and timestamp fields, the conflict policy,
and upgrades for state written by older versions of the app. A
`StoreCatalog` finds the spec of a key, and describes its specs as JSON with
a version digest (what the protocol's config answers).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lsmigrate.shared.canonical import digest
from lsmigrate.shared.documents import DocumentSchema
from lsmigrate.shared.envelopes import ZUSTAND, Envelope, SourceError, describe
from lsmigrate.shared.mapping import MappedRecord, RecordMapper, RecordSchema
from lsmigrate.shared.timestamps import column_timestamp

CONFLICT_POLICIES = ("newest_wins", "keep_server", "keep_local", "ask")
#: What the page does with a key once the server has verified every record of it.
CLEANUPS = ("delete", "keep")
#: localStorage keys lsmigrate writes itself; never migrated.
OWN_KEY_PREFIX = "lsmigrate:"

Upgrade = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Extracted:
    """A key's records, read through its spec: the state's version and key-level warnings."""

    key: str
    spec: StoreSpec
    records: list[Any]
    version: int | None
    warnings: list[dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class StoreSpec:
    """One store of the app: how to read it and what its records become.

    name             the store's name; part of every derived id, so never rename it
    schema           the record schema (a RecordSchema of SourceFields); by default
                     `DocumentSchema`: each record kept whole
    table            the target table: one of the host's tables (its model has lsmigrate's
                     bookkeeping columns), or None for lsmigrate's generic `migrated_records`,
                     where every id is scoped by the store (a UUID too) so stores never collide
    key              the localStorage key, or
    key_pattern      a regular expression (valid in Python and JavaScript) searched in keys
    envelope         ZUSTAND, REDUX_PERSIST or BARE
    records_path     dotted path to the records array inside the state ("" for the state itself)
    one_record       the value at records_path is a single record (a draft, preferences)
    id_field         the record's id field; None when the key identifies the one record
    timestamp_field  the field conflicts compare to find the newest version
    conflict_policy  newest_wins, keep_server, keep_local or ask
    version          the state version the app writes now
    upgrades         {version: function(state) -> state}, run in ascending order for
                     every version above the stored one, up to `version`
    references       {source field: store name}: the field holds the id of a record of that
                     store, rewritten to the row id that record gets (the original kept)
    cleanup          delete (the key is removed once verified) or keep (left in localStorage)
    """

    name: str
    schema: RecordSchema = field(default_factory=DocumentSchema)
    table: str | None = None
    key: str | None = None
    key_pattern: str | None = None
    envelope: Envelope = ZUSTAND
    records_path: str = ""
    one_record: bool = False
    id_field: str | None = "id"
    timestamp_field: str | None = "updatedAt"
    conflict_policy: str = "newest_wins"
    version: int = 0
    upgrades: Mapping[int, Upgrade] = field(default_factory=dict)
    references: Mapping[str, str] = field(default_factory=dict)
    cleanup: str = "delete"

    def __post_init__(self) -> None:
        if (self.key is None) == (self.key_pattern is None):
            raise ValueError(f"store {self.name!r}: give exactly one of key and key_pattern")
        if self.conflict_policy not in CONFLICT_POLICIES:
            raise ValueError(f"store {self.name!r}: conflict_policy must be one of {', '.join(CONFLICT_POLICIES)}")
        if self.cleanup not in CLEANUPS:
            raise ValueError(f"store {self.name!r}: cleanup must be one of {', '.join(CLEANUPS)}")
        too_new = [version for version in self.upgrades if version > self.version]
        if too_new:
            raise ValueError(f"store {self.name!r}: upgrades {too_new} are above version {self.version}")
        pattern = None if self.key_pattern is None else re.compile(self.key_pattern)
        object.__setattr__(self, "_pattern", pattern)
        mapper = RecordMapper(self.schema, self.name, self.id_field, keep_uuids=self.table is not None)
        object.__setattr__(self, "_mapper", mapper)
        # Asked for every field of every quarantined record: computed once here.
        secrets = frozenset(column.source_key for column in mapper.columns if column.secret)
        object.__setattr__(self, "_secret_fields", secrets)

    @property
    def mapper(self) -> RecordMapper:
        """The record schema compiled for mapping."""
        mapper: RecordMapper = self._mapper  # type: ignore[attr-defined]
        return mapper

    @property
    def secret_fields(self) -> frozenset[str]:
        """Source keys whose values are secrets."""
        secret_fields: frozenset[str] = self._secret_fields  # type: ignore[attr-defined]
        return secret_fields

    def matches(self, key: str) -> bool:
        """True when localStorage key `key` holds this store."""
        if self.key is not None:
            return key == self.key
        return self._pattern.search(key) is not None  # type: ignore[attr-defined]

    def extract(self, key: str, raw: str) -> Extracted:
        """The records in a key's raw value: envelope unwrapped, state upgraded, records located."""
        unwrapped = self.envelope.unwrap(key, raw)
        warnings = list(unwrapped.warnings)
        state = unwrapped.state
        if unwrapped.version is not None:
            state = self._upgrade(key, state, unwrapped.version, warnings)
        return Extracted(key, self, self._locate(key, state), unwrapped.version, warnings)

    def _upgrade(self, key: str, state: Any, stored: int, warnings: list[dict[str, Any]]) -> Any:
        if stored > self.version:
            raise SourceError(
                key, f"state version {self.version} or older", f"version {stored}", code="version_too_new"
            )
        for version in sorted(v for v in self.upgrades if v > stored):
            try:
                state = self.upgrades[version](state)
            except Exception as error:  # noqa: BLE001 - the app's own upgrade code; reported, chained
                raise SourceError(
                    key,
                    f"state the upgrade to version {version} accepts",
                    f"{type(error).__name__} from the upgrade",
                    code="upgrade_failed",
                ) from error
        if stored < self.version:
            warnings.append({"code": "version_upgraded", "from": stored, "to": self.version})
        return state

    def _locate(self, key: str, state: Any) -> list[Any]:
        if not self.one_record and isinstance(state, list) and not self.envelope.prefix:
            # A bare value may be the array itself rather than an object holding it.
            return state
        wanted = "a record" if self.one_record else "an array"
        parts = self.records_path.split(".") if self.records_path else []
        value = state
        for depth, part in enumerate(parts):
            if not isinstance(value, dict) or part not in value:
                where = self.envelope.prefix + ".".join(parts[: depth + 1])
                found = f"no {part!r} in {describe(value)}" if isinstance(value, dict) else describe(value)
                raise SourceError(key, f"{wanted} at {where}", found)
            value = value[part]
        if self.one_record:
            return [value]
        if not isinstance(value, list):
            # With no records path the array is the state itself: "state" in a Zustand envelope.
            if self.records_path:
                where = self.envelope.prefix + self.records_path
            else:
                where = self.envelope.prefix.rstrip(".") or "the top level"
            raise SourceError(key, f"an array at {where}", describe(value))
        return value

    def map(
        self, records: list[Any], *, key: str, user_id: str, migrated_at: datetime, offset: int = 0
    ) -> list[MappedRecord]:
        """Map a run of this store's records read from `key`, numbered from `offset`."""
        when = column_timestamp(migrated_at)
        mapper = self.mapper
        return [
            mapper.map(record, key=key, index=offset + i, user_id=user_id, migrated_at=when)
            for i, record in enumerate(records)
        ]

    def rebuild(self, row: dict[str, Any], secrets: dict[str, str]) -> Any:
        """The source record a row of this store was mapped from."""
        return self.mapper.rebuild(row, secrets)

    def describe(self) -> dict[str, Any]:
        """The spec as JSON, for the loader and the protocol's config."""
        return {
            "name": self.name,
            "key": self.key,
            "key_pattern": self.key_pattern,
            "envelope": self.envelope.name,
            "records_path": self.records_path,
            "one_record": self.one_record,
            "table": self.table,
            "id_field": self.id_field,
            "timestamp_field": self.timestamp_field,
            "conflict_policy": self.conflict_policy,
            "version": self.version,
            "secret_fields": sorted(self.secret_fields),
            "fields": self.mapper.describe(),
            "references": dict(sorted(self.references.items())),
            "cleanup": self.cleanup,
        }


class StoreCatalog:
    """The stores an app migrates: finds the spec of a localStorage key."""

    def __init__(self, specs: Iterable[StoreSpec]) -> None:
        self.specs = tuple(specs)
        names = [spec.name for spec in self.specs]
        keys = [spec.key for spec in self.specs if spec.key is not None]
        for label, values in (("name", names), ("key", keys)):
            repeated = sorted({value for value in values if values.count(value) > 1})
            if repeated:
                raise ValueError(f"store {label}s must be unique; repeated: {repeated}")
        self._by_key = {spec.key: spec for spec in self.specs if spec.key is not None}
        self._by_name = dict(zip(names, self.specs, strict=True))
        for spec in self.specs:
            self._bind_references(spec)
        self._patterned = [spec for spec in self.specs if spec.key_pattern is not None]

    def _bind_references(self, spec: StoreSpec) -> None:
        """Give `spec`'s mapper the id rule of each store its references name."""
        fields = {column.source_key for column in spec.mapper.columns if not column.secret}
        for field_name, store in spec.references.items():
            target = self._by_name.get(store)
            if target is None:
                raise ValueError(
                    f"store {spec.name!r}: reference {field_name!r} names no store of the catalog: {store!r}"
                )
            if field_name not in fields:
                raise ValueError(f"store {spec.name!r}: reference {field_name!r} is not a field of its schema")
            if target.id_field is None:
                raise ValueError(
                    f"store {spec.name!r}: reference {field_name!r} names {store!r}, whose records have no id"
                )
            spec.mapper.references[field_name] = (target.name, target.mapper.keep_uuids)

    def upload_order(self) -> dict[str, int]:
        """Store name -> depth: 0 for a store that references no other, else one more than the deepest store
        it references. Uploading by depth writes referenced rows first (a host's foreign keys hold)."""
        depths: dict[str, int] = {}

        def depth(spec: StoreSpec, path: tuple[str, ...]) -> int:
            if spec.name not in depths:
                others = [self._by_name[s] for s in spec.references.values() if s != spec.name and s not in path]
                depths[spec.name] = max((depth(other, (*path, spec.name)) + 1 for other in others), default=0)
            return depths[spec.name]

        for spec in self.specs:
            depth(spec, ())
        return depths

    def __iter__(self) -> Iterator[StoreSpec]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def named(self, name: str) -> StoreSpec:
        """The spec of store `name` (KeyError if there is none)."""
        return self._by_name[name]

    def spec_for_key(self, key: str) -> StoreSpec | None:
        """The spec of a localStorage key: an exact key first, then patterns in order; None if unknown."""
        if key.startswith(OWN_KEY_PREFIX):
            return None
        spec = self._by_key.get(key)
        if spec is not None:
            return spec
        return next((spec for spec in self._patterned if spec.matches(key)), None)

    def describe(self, policies: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Every spec's `describe()` in catalog order; `policies` (store name -> policy) replaces the specs' own."""
        policies = policies or {}
        unknown = sorted(set(policies) - set(self._by_name))
        if unknown:
            raise ValueError(f"conflict policies for stores not in the catalog: {unknown}")
        invalid = sorted(name for name, policy in policies.items() if policy not in CONFLICT_POLICIES)
        if invalid:
            raise ValueError(f"conflict policies of {invalid} must be one of {', '.join(CONFLICT_POLICIES)}")
        return [{**spec.describe(), "conflict_policy": policies.get(spec.name, spec.conflict_policy)} for spec in self]

    def version(self, policies: Mapping[str, str] | None = None) -> str:
        """sha256 (hex) of the canonical JSON of `describe(policies)`: it changes when what a store does changes."""
        return digest(self.describe(policies))

    def key_rules(self) -> dict[str, list[str]]:
        """What the loader tests keys against before it downloads anything."""
        return {
            "keys": sorted(self._by_key),
            "patterns": [spec.key_pattern for spec in self._patterned if spec.key_pattern is not None],
            "ignore_prefix": [OWN_KEY_PREFIX],
        }
