"""The browser ↔ server protocol's request bodies, validated on both sides."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

PROTOCOL_VERSION = 1

_HEX_DIGEST = validate.Regexp(r"^[0-9a-f]{64}$", error="expected a sha256 hex digest")


class SessionRequest(Schema):
    """POST /sessions: the client's own id for this migration run."""

    class Meta:
        unknown = RAISE

    client_session_id = fields.String(required=True, validate=validate.Length(1, 64))


class BatchRequest(Schema):
    """PUT /sessions/{sid}/batches/{seq}: a run of one key's records and their digests."""

    class Meta:
        unknown = RAISE

    key = fields.String(required=True, validate=validate.Length(1, 255))
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
