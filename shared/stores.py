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
from lsmigrate.shared.envelopes import ZUSTAND, Envelope
from lsmigrate.shared.keys import library_entry, split_key
from lsmigrate.shared.mapping import MappedRecord, RecordMapper, RecordSchema
from lsmigrate.shared.paths import Path, PathError, describe_steps, overlaps, parse_path, path_text
from lsmigrate.shared.shapes import SHAPES
from lsmigrate.shared.timestamps import column_timestamp

CONFLICT_POLICIES = ("newest_wins", "keep_server", "keep_local", "ask")
#: What the page does with a key once the server has verified every record of it.
CLEANUPS = ("strip", "delete", "keep")
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
    envelope         an `Envelope` (lsmigrate.shared.envelopes: ZUSTAND, REDUX_PERSIST, BARE, SUPERJSON,
                     MOBX_PERSIST_STORE, TANSTACK_QUERY, or the app's own)
    records_path     the path of this store's part inside the state ("" for the state itself); a step may
                     select inside an array: `clientState.queries[queryKey=["todos"]].state.data`
    shape            how the records sit there: array, by_id, entity_adapter, entries, one, scalar
                     (lsmigrate.shared.shapes); by default array, or one with `one_record`
    one_record       the value at records_path is a single record (a draft, preferences): shape "one"
    version_path     where the library keeps the version in the key (names from the top of the key's
                     value); None: where the envelope says (Zustand `version`, redux-persist
                     `_persist.version`, mobx-persist-store `__mps__.version`)
    id_field         the record's id field; None when the key identifies the one record
    timestamp_field  the field conflicts compare to find the newest version
    conflict_policy  newest_wins, keep_server, keep_local or ask
    version          the state version the app writes now
    upgrades         {version: function(state) -> state}, run in ascending order for
                     every version above the stored one, up to `version`
    references       {source field: store name}: the field holds the id of a record of that
                     store, rewritten to the row id that record gets (the original kept)
    cleanup          once verified: strip (the records taken out of their container, every other byte of
                     the key left as it was), delete (the key removed; the server holds every byte of it)
                     or keep (left in localStorage); see lsmigrate.shared.keys.cleanup_action
    """

    name: str
    schema: RecordSchema = field(default_factory=DocumentSchema)
    table: str | None = None
    key: str | None = None
    key_pattern: str | None = None
    envelope: Envelope = ZUSTAND
    records_path: str = ""
    shape: str = ""
    one_record: bool = False
    version_path: tuple[str, ...] | None = None
    id_field: str | None = "id"
    timestamp_field: str | None = "updatedAt"
    conflict_policy: str = "newest_wins"
    version: int = 0
    upgrades: Mapping[int, Upgrade] = field(default_factory=dict)
    references: Mapping[str, str] = field(default_factory=dict)
    cleanup: str = "strip"

    def __post_init__(self) -> None:
        if (self.key is None) == (self.key_pattern is None):
            raise ValueError(f"store {self.name!r}: give exactly one of key and key_pattern")
        if self.conflict_policy not in CONFLICT_POLICIES:
            raise ValueError(f"store {self.name!r}: conflict_policy must be one of {', '.join(CONFLICT_POLICIES)}")
        if self.cleanup not in CLEANUPS:
            raise ValueError(f"store {self.name!r}: cleanup must be one of {', '.join(CLEANUPS)}")
        shape = self.shape or ("one" if self.one_record else "array")
        if shape not in SHAPES:
            raise ValueError(f"store {self.name!r}: shape must be one of {', '.join(SHAPES)}")
        if self.one_record and shape != "one":
            raise ValueError(f"store {self.name!r}: one_record is shape 'one', not {shape!r}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "one_record", shape == "one")
        try:
            object.__setattr__(self, "_steps", parse_path(self.records_path))
        except PathError as error:
            raise ValueError(f"store {self.name!r}: records_path: expected {error}") from error
        too_new = [version for version in self.upgrades if version > self.version]
        if too_new:
            raise ValueError(f"store {self.name!r}: upgrades {too_new} are above version {self.version}")
        pattern = None if self.key_pattern is None else re.compile(self.key_pattern)
        object.__setattr__(self, "_pattern", pattern)
        mapper = RecordMapper(self.schema, self.name, self.id_field, keep_uuids=self.table is not None)
        object.__setattr__(self, "_mapper", mapper)
        # Asked for every field of every quarantined record: computed once here.
        secrets = mapper.secret_paths
        object.__setattr__(self, "_secret_fields", secrets)

    @property
    def mapper(self) -> RecordMapper:
        """The record schema compiled for mapping."""
        mapper: RecordMapper = self._mapper  # type: ignore[attr-defined]
        return mapper

    @property
    def steps(self) -> Path:
        """The parsed `records_path`."""
        steps: Path = self._steps  # type: ignore[attr-defined]
        return steps

    @property
    def selector(self) -> str:
        """The key, or the key pattern: what stores sharing a key have in common."""
        return f"key:{self.key}" if self.key is not None else f"pattern:{self.key_pattern}"

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
        """This store's records in a key's raw value: envelope read, state upgraded, records located."""
        split = split_key(key, raw, [self])
        return Extracted(key, self, split.records[self.name], split.version, split.warnings)

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
            "envelope": self.envelope.describe(),
            "records_path": self.records_path,
            "steps": describe_steps(self.steps),
            "shape": self.shape,
            "version_path": None if self.version_path is None else list(self.version_path),
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
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"store names must be unique; repeated: {repeated}")
        #: key or /pattern/ -> the stores that share it, in catalog order.
        self._groups: dict[str, tuple[StoreSpec, ...]] = {}
        for spec in self.specs:
            self._groups[spec.selector] = (*self._groups.get(spec.selector, ()), spec)
        for group in self._groups.values():
            _check_sharing(group)
        self._by_key = {spec.key: self._groups[spec.selector] for spec in self.specs if spec.key is not None}
        self._by_name = dict(zip(names, self.specs, strict=True))
        for spec in self.specs:
            self._bind_references(spec)
        self._patterned = [group for group in self._groups.values() if group[0].key_pattern is not None]

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

    def stores_for_key(self, key: str) -> tuple[StoreSpec, ...]:
        """The stores that share a localStorage key: those of the exact key, else those of the first pattern
        that matches it, in catalog order; () for a key no store claims."""
        if key.startswith(OWN_KEY_PREFIX):
            return ()
        group = self._by_key.get(key)
        if group is not None:
            return group
        return next((group for group in self._patterned if group[0].matches(key)), ())

    def spec_for_key(self, key: str) -> StoreSpec | None:
        """The first store of a localStorage key; None if no store claims it."""
        stores = self.stores_for_key(key)
        return stores[0] if stores else None

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

    def key_rules(self) -> dict[str, Any]:
        """What the loader tests keys against before it downloads anything: the keys and patterns, and per
        key (or /pattern/) how to find each store's part, so that a key holding nothing new boots nothing."""
        return {
            "keys": sorted(self._by_key),
            "patterns": [group[0].key_pattern for group in self._patterned],
            "ignore_prefix": [OWN_KEY_PREFIX],
            "parts": {
                selector: {
                    "loader": group[0].envelope.loader,
                    "stores": [
                        {
                            "name": spec.name,
                            "steps": [*spec.envelope.state_path, *describe_steps(spec.steps)],
                            "shape": spec.shape,
                            "bare_array": spec.shape == "array" and not spec.envelope.state_path,
                            "without": library_entry(spec),
                        }
                        for spec in group
                    ],
                }
                for selector, group in self._groups.items()
            },
        }


class SharedKeyError(ValueError):
    """Two stores that share a key and disagree: `store` is the later one, `setting` what it disagrees on."""

    def __init__(self, store: str, setting: str, message: str) -> None:
        super().__init__(message)
        self.store = store
        self.setting = setting
        self.message = message


def _check_sharing(group: tuple[StoreSpec, ...]) -> None:
    """Stores sharing a key read it alike (envelope, version, upgrades) and claim parts that never overlap."""
    first = group[0]
    where = f"key {first.key!r}" if first.key is not None else f"key pattern {first.key_pattern!r}"
    upgrades: dict[int, tuple[str, Upgrade]] = {}
    for spec in group:
        for setting in ("envelope", "version", "version_path"):
            if getattr(spec, setting) != getattr(first, setting):
                raise SharedKeyError(
                    spec.name,
                    setting,
                    f"stores {first.name!r} and {spec.name!r} share {where} but not its {setting}: "
                    "stores of one key read it alike",
                )
        for version, function in spec.upgrades.items():
            giver = upgrades.setdefault(version, (spec.name, function))
            if giver[1] is not function:
                raise SharedKeyError(
                    spec.name,
                    "upgrades",
                    f"stores {giver[0]!r} and {spec.name!r} share {where} but give different upgrades to version "
                    f"{version}: declare the key's upgrades on one of them",
                )
    for position, spec in enumerate(group):
        for other in group[position + 1 :]:
            if overlaps(spec.steps, other.steps):
                shown = path_text(spec.steps if len(spec.steps) <= len(other.steps) else other.steps)
                part = f"{shown!r} of" if shown else "all of"
                raise SharedKeyError(
                    other.name,
                    "path",
                    f"stores {spec.name!r} and {other.name!r} both claim {part} {where}: "
                    "each part of a key belongs to one store",
                )
