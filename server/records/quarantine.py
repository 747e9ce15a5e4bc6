"""The quarantine: raw source records that did not become a row, and why.

A quarantined record keeps its raw value, whole. Secrets in it (a store's
secret fields and the values at its schema's secret paths, whatever their
JSON type) are encrypted before it is stored and shown only as a hint
(`{"$masked": "ghp_…abcd"}`, `{"$masked": "…"}` for a short or non-text
secret) when listed. Reason codes:

    not_an_object, invalid_id, wrong_type, invalid_value   the mapping refused it (shared.mapping)
    unstorable_text    it holds text PostgreSQL cannot store (NUL, a lone surrogate)
    superseded         a newer version of the same record came in the same session
    kept_server        it differs from the user's row, and the row was kept
    foreign_id         even its relocated id belongs to another user

A raw value holding unstorable text is stored losslessly as
`{"$json": <its canonical JSON, ASCII-escaped>}` and its reasons include
`unstorable_text`; listing gives the original value back. The same wrapper
keeps such a source id in the ledger.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any, TypeGuard

from sqlalchemy import select

from lsmigrate.server.db import db
from lsmigrate.server.db.models import MigrationSession, QuarantinedRecord
from lsmigrate.server.extension import current_lsmigrate
from lsmigrate.server.records.secrets import SecretBox, secret_box
from lsmigrate.shared.mapping import secret_hint
from lsmigrate.shared.stores import StoreSpec

UNSTORABLE = {
    "code": "unstorable_text",
    "field": "",
    "message": "holds NUL or a lone surrogate, which no column stores",
}


def _holds_nul(value: Any) -> bool:
    """True when a JSON value holds NUL in a string or a name; a loop, not recursion: a record may nest as deep
    as the page reads a key (512 levels), past what Python's stack takes."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            if any("\x00" in name for name in item):
                return True
            stack.extend(item.values())
    return False


def has_unstorable_text(value: Any) -> bool:
    """True when a JSON value holds a string PostgreSQL cannot store: NUL, or a lone surrogate."""
    if value is None or isinstance(value, bool | int | float):
        return False
    if isinstance(value, str):
        return "\x00" in value or (not value.isascii() and _unencodable(value))
    text = json.dumps(value, ensure_ascii=False)  # C speed; NUL comes out escaped, surrogates as they are
    if not text.isascii() and _unencodable(text):
        return True
    # "\\u0000" may also be a backslash the text holds followed by "u0000": look closer then.
    return "\\u0000" in text and _holds_nul(value)


# In JSON text that parsed (strict: no raw control characters, valid UTF-8), NUL and a lone surrogate
# can only come from a \u escape.
_MAYBE_UNSTORABLE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


def may_hold_unstorable_text(body: bytes) -> bool:
    """False when the JSON text `body` (which parsed) holds no NUL and no surrogate anywhere; True when it may."""
    return _MAYBE_UNSTORABLE.search(body) is not None


def _unencodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _wrapped(value: Any) -> dict[str, str]:
    return {"$json": json.dumps(value, ensure_ascii=True, sort_keys=True, separators=(",", ":"))}


def storable(value: Any) -> Any:
    """`value`, or its lossless ASCII JSON text in a `$json` wrapper when it holds unstorable text."""
    return _wrapped(value) if has_unstorable_text(value) else value


def _unstorable(reasons: list[dict[str, Any]]) -> bool:
    return any(reason.get("code") == UNSTORABLE["code"] for reason in reasons)


def _is_encrypted(value: Any) -> TypeGuard[dict[str, str]]:
    """True for a secret in its stored form: {"$encrypted": ciphertext} or {"$encrypted_json": ciphertext}."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    [(name, ciphertext)] = value.items()
    return name in ("$encrypted", "$encrypted_json") and isinstance(ciphertext, str)


def _encrypt(box: SecretBox, value: Any) -> dict[str, str]:
    if _is_encrypted(value):
        # Already stored so: a conflict's local record (kept encrypted) on its way to the quarantine.
        return value
    if isinstance(value, str):
        try:
            return {"$encrypted": box.encrypt(value)}
        except UnicodeEncodeError:
            pass  # a lone surrogate cannot be UTF-8 encoded: its ASCII JSON text is, below
    # Any other JSON value at a secret's place (a token the mapping refuses, a secret path's object) is a secret too.
    return {"$encrypted_json": box.encrypt(json.dumps(value))}


def _decrypt(box: SecretBox, value: Any) -> Any:
    if isinstance(value, dict) and "$encrypted" in value:
        return box.decrypt(value["$encrypted"])
    if isinstance(value, dict) and "$encrypted_json" in value:
        return json.loads(box.decrypt(value["$encrypted_json"]))
    return value


def encrypt_secrets(spec: StoreSpec, raw: Any, box: SecretBox) -> Any:
    """The raw record with every secret in it encrypted: a Secret field's value and one at a secret path."""
    return spec.mapper.change_secrets(raw, lambda value: _encrypt(box, value))


def decrypt_secrets(spec: StoreSpec, raw: Any, box: SecretBox) -> Any:
    """The raw record as it was read, from its stored form."""
    return spec.mapper.change_secrets(raw, lambda value: _decrypt(box, value))


def mask_secrets(spec: StoreSpec, raw: Any, box: SecretBox) -> Any:
    """The stored raw record for display: every secret a `$masked` hint, never its value."""

    def mask(value: Any) -> dict[str, str]:
        clear = _decrypt(box, value)
        return {"$masked": secret_hint(clear) if isinstance(clear, str) else "…"}

    return spec.mapper.change_secrets(raw, mask)


def stored_raw(raw: Any, reasons: list[dict[str, Any]]) -> Any:
    """A stored raw value as it was given (the `$json` wrapper undone where the reasons say so)."""
    return json.loads(raw["$json"]) if _unstorable(reasons) else raw


def quarantine_row(
    spec: StoreSpec,
    owner: tuple[uuid.UUID, str],
    key: str,
    index: int,
    raw: Any,
    reasons: list[dict[str, Any]],
    target: tuple[str, uuid.UUID] | None = None,
) -> dict[str, Any]:
    """A quarantine row for one record of session `owner[0]` of user `owner[1]`: secrets encrypted;
    wrapped, and said so, when it holds unstorable text."""
    value = encrypt_secrets(spec, raw, secret_box())
    if not _unstorable(reasons) and has_unstorable_text(value):
        reasons = [*reasons, UNSTORABLE]
    if _unstorable(reasons):
        value = _wrapped(value)
    return {
        "session_id": owner[0],
        "user_id": owner[1],
        "key": key,
        "index": index,
        "store": spec.name,
        "raw": value,
        "reasons": reasons,
        "target_table": None if target is None else target[0],
        "target_id": None if target is None else target[1],
        "created_at": datetime.now(UTC),
    }


def list_quarantine(session: MigrationSession) -> list[dict[str, Any]]:
    """The session's quarantined records, secrets masked."""
    box = secret_box()
    query = (
        select(QuarantinedRecord)
        .where(QuarantinedRecord.user_id == session.user_id, QuarantinedRecord.session_id == session.id)
        .order_by(QuarantinedRecord.key, QuarantinedRecord.index, QuarantinedRecord.id)
    )
    records = []
    for record in db.session.scalars(query):
        spec = current_lsmigrate().spec_of(record.store, record.key)
        raw = stored_raw(record.raw, record.reasons)
        records.append(
            {
                "id": record.id,
                "key": record.key,
                "index": record.index,
                "reasons": record.reasons,
                "raw": raw if spec is None else mask_secrets(spec, raw, box.reading("quarantine", record.id)),
                "target_table": record.target_table,
                "target_id": None if record.target_id is None else str(record.target_id),
                "created_at": record.created_at.isoformat(),
            }
        )
    return records
