"""The browser ↔ server protocol's request bodies, validated on both sides."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

PROTOCOL_VERSION = 1


class Outcome(StrEnum):
    """What became of a source record: the one vocabulary of the ledger, the answers and the page's report."""

    INSERTED = "inserted"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    QUARANTINED = "quarantined"
    CONFLICT = "conflict"  # open: a policy of `ask` waits for the user
    KEPT_SERVER = "kept_server"
    SUPERSEDED = "superseded"


#: Every outcome, in the report's order.
OUTCOMES = tuple(outcome.value for outcome in Outcome)
#: Outcomes that leave the record in a row or the quarantine, with nothing left to decide.
ACCOUNTED = frozenset(OUTCOMES) - {Outcome.CONFLICT}
#: Outcomes that hold a record's place in its session: at most one per target row.
LIVE = (Outcome.INSERTED, Outcome.UPDATED, Outcome.UNCHANGED, Outcome.CONFLICT, Outcome.KEPT_SERVER)
#: Outcomes whose record (the local version) is kept in the quarantine.
QUARANTINED_LOCALLY = frozenset({Outcome.QUARANTINED, Outcome.SUPERSEDED, Outcome.KEPT_SERVER})

#: The largest batch number: the server keeps it in a 32-bit column.
MAX_SEQ = 2**31 - 1
#: The largest index of a record in its key (a 32-bit column too): a batch's records end at or below it.
MAX_INDEX = 2**31 - 1
#: The longest user id: the server keeps it in a 255-character column.
MAX_USER_ID = 255

_HEX_DIGEST = validate.Regexp(r"^[0-9a-f]{64}$", error="expected a sha256 hex digest")
_DIGEST_PATTERN = re.compile(r"[0-9a-f]{64}")


class _Records(fields.List):
    """A list of any JSON values, taken as they are: a List of Raw without a call per item (batches are big)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(fields.Raw(allow_none=True), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        if not isinstance(value, list):
            raise self.make_error("invalid")
        return value


class _Digests(fields.List):
    """A list of sha256 hex digests, checked in one pass; errors per index as a List of String would give them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(fields.String(validate=_HEX_DIGEST), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        if not isinstance(value, list):
            raise self.make_error("invalid")
        match = _DIGEST_PATTERN.fullmatch
        errors = {
            index: ["Not a valid string."] if not isinstance(item, str) else ["expected a sha256 hex digest"]
            for index, item in enumerate(value)
            if not (isinstance(item, str) and match(item))
        }
        if errors:
            raise ValidationError(errors)
        return value


def _storable(text: str) -> None:
    """Refuse text a database cannot hold in a column: NUL, or a lone surrogate (valid in a JavaScript string)."""
    if "\x00" in text:
        raise ValidationError("must not contain NUL")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValidationError("must not contain a lone surrogate") from error


class _StrictBoolean(fields.Boolean):
    """true or false, and nothing else (JSON's 1 is a number, not a boolean)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if type(value) is not bool:
            raise self.make_error("invalid")
        return value


class SessionRequest(Schema):
    """POST /sessions: the client's own id for this migration run; a dry run commits nothing."""

    class Meta:
        unknown = RAISE

    client_session_id = fields.String(required=True, validate=[validate.Length(1, 64), _storable])
    dry_run = _StrictBoolean(load_default=False)
    #: The page's `StoreCatalog.version` under the server's policies: a server with other stores refuses it.
    stores_version = fields.String(load_default=None, validate=_HEX_DIGEST)


class BatchRequest(Schema):
    """PUT /sessions/{sid}/batches/{seq}: a run of one key's records and their digests."""

    class Meta:
        unknown = RAISE

    key = fields.String(required=True, validate=[validate.Length(1, 255), _storable])
    #: The store of the key the records belong to; may be left out when the key has one store.
    store = fields.String(load_default=None, validate=validate.Length(1, 64))
    #: The records' position among the key's records (the stores of a key in catalog order).
    offset = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=MAX_INDEX))
    records = _Records(required=True)
    #: One sha256 per record, in order: what a page sends to learn which records' digests differ.
    digests = _Digests(load_default=None)
    #: Or one for the batch: the records' digests as a key's manifest digests them (`manifest_digest`).
    records_digest = fields.String(load_default=None, validate=_HEX_DIGEST)

    @validates_schema
    def _one_digest(self, data: dict[str, Any], **kwargs: Any) -> None:
        if (data.get("digests") is None) == (data.get("records_digest") is None):
            raise ValidationError("send either digests (one per record) or records_digest (one for the batch)")


class RemainderRequest(Schema):
    """PUT /sessions/{sid}/remainders: what no store claims in a key (lsmigrate.shared.keys), one document."""

    class Meta:
        unknown = RAISE

    key = fields.String(required=True, validate=[validate.Length(1, 255), _storable])
    remainder = fields.Dict(required=True)


class ManifestEntry(Schema):
    """What the client read from one key: its record count and manifest digest."""

    class Meta:
        unknown = RAISE

    count = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    digest = fields.String(required=True, validate=_HEX_DIGEST)
    #: How many of the records each store of the key holds, in the key's order.
    stores = fields.Dict(
        keys=fields.String(validate=validate.Length(1, 64)),
        values=fields.Integer(strict=True, validate=validate.Range(min=0)),
        required=True,
    )
    #: The digest of the key's remainder, and of its whole value (its tree: records put back in the remainder).
    remainder = fields.String(required=True, validate=_HEX_DIGEST)
    value = fields.String(required=True, validate=_HEX_DIGEST)


class CompleteRequest(Schema):
    """POST /sessions/{sid}/complete: the client's manifest, per key."""

    class Meta:
        unknown = RAISE

    manifest = fields.Dict(
        keys=fields.String(validate=validate.Length(1, 255)),
        values=fields.Nested(ManifestEntry),
        required=True,
    )


class ResolveRequest(Schema):
    """POST /sessions/{sid}/conflicts/{cid}: which version of the record to keep."""

    class Meta:
        unknown = RAISE

    keep = fields.String(required=True, validate=validate.OneOf(["local", "server"]))
