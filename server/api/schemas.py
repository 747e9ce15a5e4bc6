"""The API's response bodies as marshmallow schemas: what the OpenAPI document describes.

The views build these bodies as plain dicts (config, sessions, ingest, verification,
conflicts, quarantine, rollback); these schemas say what they hold, for the
document only. Parts whose shape follows a store's records (a record, its
warnings, a quarantine reason) are left open.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from lsmigrate.shared.protocol import OUTCOMES

_OUTCOMES = ", ".join(OUTCOMES[:-1]) + " or " + OUTCOMES[-1]


class ErrorBody(Schema):
    """The error itself: a machine-readable code, a message, and details that depend on the code."""

    code = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Raw(required=True, allow_none=True)


class ErrorEnvelope(Schema):
    """Every error response: `{"error": {"code", "message", "details"}}`."""

    error = fields.Nested(ErrorBody, required=True)


class ConfigLimits(Schema):
    """What one request may carry."""

    max_batch_records = fields.Integer(required=True, metadata={"description": "records in one batch"})
    max_body_bytes = fields.Integer(
        required=True, allow_none=True, metadata={"description": "bytes in one request body; null: no limit"}
    )


class StoreDescription(Schema):
    """One store: where it sits in localStorage, what its records become, the conflict policy applied."""

    name = fields.String(required=True)
    key = fields.String(required=True, allow_none=True)
    key_pattern = fields.String(required=True, allow_none=True)
    envelope = fields.Dict(
        required=True, metadata={"description": "name, state_path, version_path and how the loader reads it"}
    )
    records_path = fields.String(required=True, metadata={"description": "the store's part of the key's state"})
    steps = fields.List(fields.Raw(), required=True, metadata={"description": "records_path parsed"})
    shape = fields.String(required=True, metadata={"description": "array, by_id, entity_adapter, entries, one, scalar"})
    version_path = fields.List(fields.String(), required=True, allow_none=True)
    cleanup = fields.String(required=True, metadata={"description": "strip, delete or keep"})
    table = fields.String(required=True)
    id_field = fields.String(required=True, allow_none=True)
    timestamp_field = fields.String(required=True, allow_none=True)
    conflict_policy = fields.String(
        required=True,
        metadata={"description": "newest_wins, keep_server, keep_local or ask: the server's override if it has one"},
    )
    version = fields.Integer(required=True)
    secret_fields = fields.List(fields.String(), required=True)


class ConfigResponse(Schema):
    """The server's limits, protocol version, and stores (as it applies them), with a digest of the stores and
    one of the user."""

    protocol_version = fields.Integer(required=True)
    limits = fields.Nested(ConfigLimits, required=True)
    stores_version = fields.String(
        required=True, metadata={"description": "sha256 (hex) of the canonical JSON of `stores`"}
    )
    stores = fields.List(fields.Nested(StoreDescription), required=True)
    user_digest = fields.String(
        required=True,
        metadata={
            "description": "sha256 (hex) of the user id under a fixed label, never the id: the page's checkpoint "
            "and backups belong to it, and a page signed in as another user does not resume or upload them"
        },
    )


class SessionResponse(Schema):
    """A session: status, acknowledged batches, outcome counts per key, open conflicts."""

    session_id = fields.UUID(required=True)
    client_session_id = fields.String(required=True)
    user_id = fields.String(required=True)
    status = fields.String(required=True, metadata={"description": "open, verified, abandoned or rolled_back"})
    dry_run = fields.Boolean(required=True)
    created_at = fields.DateTime(required=True)
    last_active_at = fields.DateTime(required=True)
    completed_at = fields.DateTime(required=True, allow_none=True)
    rolled_back_at = fields.DateTime(required=True, allow_none=True)
    acknowledged_batches = fields.List(fields.Integer(), required=True)
    counts = fields.Dict(
        keys=fields.String(), values=fields.Dict(keys=fields.String(), values=fields.Integer()), required=True
    )
    open_conflicts = fields.Integer(required=True)
    protocol_version = fields.Integer(required=True)


class RecordResult(Schema):
    """What happened to one record of a batch."""

    index = fields.Integer(required=True)
    outcome = fields.String(required=True, metadata={"description": _OUTCOMES})
    target_id = fields.String(required=True, allow_none=True)
    warnings = fields.List(fields.Raw(), required=True)
    reasons = fields.List(fields.Raw())
    conflict_id = fields.UUID()


class BatchResponse(Schema):
    """A batch's outcome per record (the stored one when the same batch is sent again)."""

    seq = fields.Integer(required=True)
    key = fields.String(required=True)
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    results = fields.List(fields.Nested(RecordResult), required=True)
    dry_run = fields.Boolean()


class CompleteResponse(Schema):
    """A verified manifest: the keys the client may delete, and why the others are kept."""

    session_id = fields.UUID(required=True)
    dry_run = fields.Boolean(required=True)
    verified = fields.Boolean(required=True)
    deletable_keys = fields.List(
        fields.String(), required=True, metadata={"description": "the keys the page may clean up (see cleanup)"}
    )
    cleanup = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={"description": "per deletable key: delete, or strip (take the migrated records out)"},
    )
    kept_keys = fields.Dict(keys=fields.String(), values=fields.Raw(), required=True)
    counts = fields.Dict(
        keys=fields.String(), values=fields.Dict(keys=fields.String(), values=fields.Integer()), required=True
    )


class RemainderResponse(Schema):
    """A key's remainder, kept."""

    key = fields.String(required=True)
    digest = fields.String(required=True)


class KeySummary(Schema):
    """A key the server holds for the user: its latest verified value's session."""

    key = fields.String(required=True)
    session_id = fields.UUID(required=True)
    verified_at = fields.DateTime(required=True)
    value_digest = fields.String(required=True)


class KeyList(Schema):
    """The keys the server holds for the user."""

    keys = fields.List(fields.Nested(KeySummary), required=True)


class KeyValue(Schema):
    """A key's latest verified value, rebuilt from rows, quarantine and remainder."""

    key = fields.String(required=True)
    value = fields.String(required=True, metadata={"description": "the string localStorage held"})
    session_id = fields.UUID(required=True)
    verified_at = fields.DateTime(required=True)
    as_verified = fields.Boolean(
        required=True, metadata={"description": "false when the app changed a row since: the rows as they are now"}
    )


class ConflictResponse(Schema):
    """One conflict with both versions of its record, secrets masked."""

    id = fields.UUID(required=True)
    key = fields.String(required=True)
    index = fields.Integer(required=True)
    kind = fields.String(required=True)
    target_table = fields.String(required=True)
    target_id = fields.UUID(required=True)
    status = fields.String(required=True)
    resolution = fields.String(required=True, allow_none=True)
    created_at = fields.DateTime(required=True)
    resolved_at = fields.DateTime(required=True, allow_none=True)
    local = fields.Raw(required=True, allow_none=True)
    server = fields.Raw(required=True, allow_none=True)


class ConflictList(Schema):
    """A session's conflicts."""

    conflicts = fields.List(fields.Nested(ConflictResponse), required=True)


class ResolveResponse(Schema):
    """A settled conflict and its record's outcome."""

    conflict = fields.Nested(ConflictResponse, required=True)
    outcome = fields.String(required=True, metadata={"description": _OUTCOMES})


class QuarantinedRecord(Schema):
    """A record the server did not write, with its reasons, secrets masked."""

    id = fields.Integer(required=True)
    key = fields.String(required=True)
    index = fields.Integer(required=True)
    reasons = fields.List(fields.Raw(), required=True)
    raw = fields.Raw(required=True, allow_none=True)
    target_table = fields.String(required=True, allow_none=True)
    target_id = fields.String(required=True, allow_none=True)
    created_at = fields.DateTime(required=True)


class QuarantineList(Schema):
    """A session's quarantined records."""

    records = fields.List(fields.Nested(QuarantinedRecord), required=True)


class RollbackSkip(Schema):
    """One of the session's writes a rollback left in place, and why: the row changed since (by the app, or by a
    later session still standing: `by_session`), is gone, a standing session relies on it, or its old name is
    another row's now."""

    key = fields.String(required=True)
    index = fields.Integer(required=True)
    table = fields.String(required=True)
    id = fields.UUID(required=True)
    reason = fields.String(
        required=True,
        validate=validate.OneOf(["changed_since", "missing", "used_by_another_session", "name_taken_since"]),
    )
    by_session = fields.UUID()


class RollbackReport(Schema):
    """What a rollback deleted, restored and skipped."""

    session_id = fields.UUID(required=True)
    status = fields.String(required=True)
    dry_run = fields.Boolean(required=True)
    deleted = fields.Dict(keys=fields.String(), values=fields.Raw(), required=True)
    restored = fields.Dict(keys=fields.String(), values=fields.Raw(), required=True)
    skipped = fields.List(fields.Nested(RollbackSkip), required=True)
    conflicts_closed = fields.Integer(required=True)


class TaskList(Schema):
    """The user's tasks."""

    tasks = fields.List(fields.Dict(), required=True)


class EnvironmentList(Schema):
    """The user's environments: no GitHub token, only whether one is set."""

    environments = fields.List(fields.Dict(), required=True)
