"""A snapshot of localStorage mapped in one call: what every key's records become.

The browser and the server run this same code; `map_snapshot` is how the
test suite proves that CPython and Pyodide give byte-identical answers, and
what a dry run shows before anything is uploaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from lsmigrate.shared.canonical import manifest_digest
from lsmigrate.shared.catalog import STORES
from lsmigrate.shared.envelopes import SourceError
from lsmigrate.shared.mapping import MappedRecord
from lsmigrate.shared.stores import StoreCatalog


def key_manifest(mapped: list[MappedRecord]) -> dict[str, Any]:
    """A key's manifest: its record count and the digest over the records' digests in source order."""
    return {"count": len(mapped), "digest": manifest_digest(record.digest for record in mapped)}


def map_snapshot(
    items: Mapping[str, str],
    *,
    user_id: str,
    migrated_at: datetime,
    catalog: StoreCatalog = STORES,
) -> dict[str, Any]:
    """Every key of a snapshot: its store, version, warnings, mapped records and manifest, or its error.

    Keys no store claims are listed under "unknown" and otherwise left alone.
    """
    keys: dict[str, Any] = {}
    unknown = []
    for key in sorted(items):
        spec = catalog.spec_for_key(key)
        if spec is None:
            unknown.append(key)
            continue
        try:
            extracted = spec.extract(key, items[key])
        except SourceError as error:
            keys[key] = {"store": spec.name, "error": error.as_dict()}
            continue
        mapped = spec.map(extracted.records, key=key, user_id=user_id, migrated_at=migrated_at)
        keys[key] = {
            "store": spec.name,
            "version": extracted.version,
            "warnings": extracted.warnings,
            "records": [record.as_dict() for record in mapped],
            "manifest": key_manifest(mapped),
        }
    return {"keys": keys, "unknown": unknown}
