"""Deterministic record ids.

A source id that is a valid UUID is kept (lower-cased). Any other source id
becomes uuid5(NAMESPACE, "<user id>\\n<store>\\n<canonical JSON of the id>"),
and a record without an id becomes uuid5(NAMESPACE,
"<user id>\\n<store>\\n#<record digest>"). The user id is part of every
derived id, so two users' identical records never collide.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from lsmigrate.shared.canonical import canonical_json

NAMESPACE = uuid.UUID("5b0e3f4c-6d1a-5c3e-9a7b-2f1d0c8e4a61")


def _uuid5(name: str) -> str:
    # uuid.uuid5 encodes the name as strict UTF-8; a JavaScript string may hold a lone
    # surrogate, which "surrogatepass" encodes. Valid names give exactly uuid.uuid5's ids.
    sha1 = hashlib.sha1(NAMESPACE.bytes + name.encode("utf-8", "surrogatepass"), usedforsecurity=False)
    return str(uuid.UUID(bytes=sha1.digest()[:16], version=5))


def derived_id(user_id: str, store: str, source_id: Any) -> str:
    """The id of a record whose source id is not a UUID."""
    return _uuid5(f"{user_id}\n{store}\n{canonical_json(source_id)}")


def content_id(user_id: str, store: str, record_digest: str) -> str:
    """The id of a record that has no source id, from its canonical digest."""
    return _uuid5(f"{user_id}\n{store}\n#{record_digest}")


def relocated_id(user_id: str, store: str, taken_id: str) -> str:
    """The id given to a record whose UUID already belongs to another user's row."""
    return _uuid5(f"{user_id}\n{store}\n!{taken_id}")
