"""A snapshot of localStorage mapped in one call: what every key's records become.

The browser and the server run this same code; `map_snapshot` is how the
test suite proves that CPython and Pyodide give byte-identical answers, and
what a dry run shows before anything is uploaded. `map_snapshot_json` is the
same call with JSON text in and canonical JSON text out, so that JavaScript
(through Pyodide) and CPython call it alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from lsmigrate.shared.canonical import canonical_json, manifest_digest, parse_json
from lsmigrate.shared.catalog import catalog_from_descriptor
from lsmigrate.shared.envelopes import SourceError
from lsmigrate.shared.keys import split_key
from lsmigrate.shared.mapping import MappedRecord
from lsmigrate.shared.stores import StoreCatalog


def key_manifest(mapped: list[MappedRecord]) -> dict[str, Any]:
    """A key's records' manifest: their count and the digest over their digests in source order."""
    return {"count": len(mapped), "digest": manifest_digest(record.digest for record in mapped)}


def map_snapshot(
    items: Mapping[str, str],
    *,
    user_id: str,
    migrated_at: datetime,
    catalog: StoreCatalog,
) -> dict[str, Any]:
    """Every key of a snapshot read whole: its stores, version, warnings, each store's mapped records (numbered
    among the key's records), its remainder and the manifest `complete` is asked, or its error.

    Keys no store claims are listed under "unknown" and otherwise left alone.
    """
    keys: dict[str, Any] = {}
    unknown = []
    for key in sorted(items):
        stores = catalog.stores_for_key(key)
        if not stores:
            unknown.append(key)
            continue
        try:
            split = split_key(key, items[key], stores)
        except SourceError as error:
            keys[key] = {"stores": [spec.name for spec in stores], "error": error.as_dict()}
            continue
        records: dict[str, list[dict[str, Any]]] = {}
        digests: list[str] = []
        for spec in stores:
            mapped = spec.map(
                split.records[spec.name], key=key, user_id=user_id, migrated_at=migrated_at, offset=len(digests)
            )
            records[spec.name] = [record.as_dict() for record in mapped]
            digests += [record.digest for record in mapped]
        keys[key] = {
            "stores": [spec.name for spec in stores],
            "version": split.version,
            "warnings": split.warnings,
            "records": records,
            "remainder": split.remainder,
            "manifest": split.manifest(digests),
        }
    return {"keys": keys, "unknown": unknown}


def map_snapshot_json(items_json: str, user_id: str, migrated_at_iso: str, stores_json: str) -> str:
    """`map_snapshot` of a JSON object {key: raw text}, as canonical JSON text.

    `stores_json` is the loader's description of the catalog (`catalog.page_descriptor`) as JSON text.

    `migrated_at_iso` is ISO 8601; without an offset it is taken as UTC, so the
    answer never depends on the local time zone of the process.
    """
    items = parse_json(items_json)
    if not isinstance(items, dict) or not all(isinstance(raw, str) for raw in items.values()):
        raise ValueError("items_json must be a JSON object of localStorage keys to their raw text")
    migrated_at = datetime.fromisoformat(migrated_at_iso)
    if migrated_at.tzinfo is None:
        migrated_at = migrated_at.replace(tzinfo=UTC)
    catalog = catalog_from_descriptor(json.loads(stores_json))
    return canonical_json(map_snapshot(items, user_id=user_id, migrated_at=migrated_at, catalog=catalog))
