"""The browser ↔ server protocol's request bodies, validated on both sides."""

from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate

PROTOCOL_VERSION = 1

#: The largest batch number: the server keeps it in a 32-bit column.
MAX_SEQ = 2**31 - 1

_HEX_DIGEST = validate.Regexp(r"^[0-9a-f]{64}$", error="expected a sha256 hex digest")


def _storable(text: str) -> None:
    """Refuse text a database cannot hold in a column: NUL, or a lone surrogate (valid in a JavaScript string)."""
    if "\x00" in text:
        raise ValidationError("must not contain NUL")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValidationError("must not contain a lone surrogate") from error


class SessionRequest(Schema):
    """POST /sessions: the client's own id for this migration run; a dry run commits nothing."""

    class Meta:
        unknown = RAISE

    client_session_id = fields.String(required=True, validate=[validate.Length(1, 64), _storable])
    dry_run = fields.Boolean(load_default=False, truthy={True}, falsy={False})


class BatchRequest(Schema):
    """PUT /sessions/{sid}/batches/{seq}: a run of one key's records and their digests."""

    class Meta:
        unknown = RAISE

    key = fields.String(required=True, validate=[validate.Length(1, 255), _storable])
    offset = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    records = fields.List(fields.Raw(allow_none=True), required=True)
    digests = fields.List(fields.String(validate=_HEX_DIGEST), required=True)


class ManifestEntry(Schema):
    """What the client read from one key: its record count and manifest digest."""

    class Meta:
        unknown = RAISE

    count = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    digest = fields.String(required=True, validate=_HEX_DIGEST)


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
