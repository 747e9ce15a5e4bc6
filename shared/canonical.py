"""Canonical JSON and the digests built on it.

The canonical form of a JSON value is `json.dumps` with sorted keys, no
insignificant whitespace, UTF-8 text (no ASCII escaping) and floats that hold
a whole number below 2**53 written as integers, so that `1.0` (what
`JSON.stringify` turns into `1`) and `1` digest alike. NaN and infinities are
not JSON and are refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

_SAFE_INTEGER = 2**53


def _normalise_numbers(value: Any) -> Any:
    if isinstance(value, float):
        if value.is_integer() and abs(value) < _SAFE_INTEGER:
            return int(value)
        return value
    if isinstance(value, dict):
        return {key: _normalise_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_normalise_numbers(item) for item in value]
    return value


def canonical_json(value: Any) -> str:
    """Serialise a JSON value in lsmigrate's canonical form."""
    return json.dumps(
        _normalise_numbers(value),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def digest(value: Any) -> str:
    """sha256 (hex) of a JSON value's canonical form."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def manifest_digest(record_digests: Iterable[str]) -> str:
    """Digest of a key's records: sha256 over their digests in source order, one per line."""
    hasher = hashlib.sha256()
    for record_digest in record_digests:
        hasher.update(record_digest.encode("ascii"))
        hasher.update(b"\n")
    return hasher.hexdigest()


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(text: str) -> Any:
    """Parse JSON text strictly: NaN and Infinity are refused."""
    return json.loads(text, parse_constant=_refuse_constant)
