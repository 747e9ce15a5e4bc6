"""Building protocol bodies in tests."""

from __future__ import annotations

from typing import Any

from lsmigrate.shared.canonical import digest, manifest_digest


def batch_body(key: str, records: list[Any], offset: int = 0) -> dict[str, Any]:
    """A PUT /batches body for `records` of `key` starting at `offset`."""
    return {"key": key, "offset": offset, "records": records, "digests": [digest(r) for r in records]}


def manifest_entry(records: list[Any]) -> dict[str, Any]:
    """The manifest entry of a key holding `records`."""
    return {"count": len(records), "digest": manifest_digest(digest(r) for r in records)}
