"""Deterministic record ids.

A source id that is a valid UUID is kept (lower-cased). Any other source id
becomes uuid5(NAMESPACE, "<user id>\\n<store>\\n<canonical JSON of the id>"),
and a record without an id becomes uuid5(NAMESPACE,
"<user id>\\n<store>\\n#<record digest>"). The user id is part of every
derived id, so two users' identical records never collide.
"""

from __future__ import annotations

import uuid
from typing import Any

from lsmigrate.shared.canonical import canonical_json

NAMESPACE = uuid.UUID("5b0e3f4c-6d1a-5c3e-9a7b-2f1d0c8e4a61")


def as_uuid(value: Any) -> str | None:
    """The lower-cased canonical form of a UUID string, or None if it is not one."""
    if not isinstance(value, str) or len(value) != 36:
        return None
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    text = str(parsed)
    return text if text == value.lower() else None


def derived_id(user_id: str, store: str, source_id: Any) -> str:
    """The id of a record whose source id is not a UUID."""
    return str(uuid.uuid5(NAMESPACE, f"{user_id}\n{store}\n{canonical_json(source_id)}"))


def content_id(user_id: str, store: str, record_digest: str) -> str:
    """The id of a record that has no source id, from its canonical digest."""
    return str(uuid.uuid5(NAMESPACE, f"{user_id}\n{store}\n#{record_digest}"))


def relocated_id(user_id: str, store: str, taken_id: str) -> str:
    """The id given to a record whose UUID already belongs to another user's row."""
    return str(uuid.uuid5(NAMESPACE, f"{user_id}\n{store}\n!{taken_id}"))
