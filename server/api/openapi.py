"""The API's OpenAPI 3 document, generated from the marshmallow schemas (apispec).

`OPERATIONS` lists every operation of the API: method, path (Flask's rule
syntax), summary, request schema, and the schema of each response. The
request schemas are the protocol's own (`lsmigrate.shared.protocol`), the
ones the views load bodies with; the response schemas are in
`lsmigrate.server.api.schemas`. Every error status is answered with the one
error envelope. tests/test_openapi.py checks that every route under /api is
listed here, so a new route without a description fails the suite.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema

from lsmigrate.server.api import schemas as out
from lsmigrate.shared.protocol import (
    MAX_SEQ,
    PROTOCOL_VERSION,
    BatchRequest,
    CompleteRequest,
    RemainderRequest,
    ResolveRequest,
    SessionRequest,
)

_ERRORS = {
    400: "The body is not JSON, or an object in it names a member twice (invalid_json), or it is gzip that does not "
    "inflate (invalid_encoding).",
    401: "No valid bearer token (missing_token, invalid_token, token_revoked).",
    403: "The session belongs to another user (foreign_session).",
    404: "No such session or conflict (unknown_session, unknown_conflict, not_found).",
    409: "The request conflicts with the session's state; the code says how (e.g. batch_mismatch, session_closed, "
    "conflict_resolved; session_pruned: a rollback of a session `lsmigrate prune` has pruned).",
    413: "The body, as sent or once decompressed, or the batch is too large (request_too_large, too_many_records).",
    415: "The body's Content-Encoding is neither gzip (x-gzip) nor identity (unsupported_encoding).",
    422: "The body does not match the protocol (invalid_request, digest_mismatch, unknown_store).",
    429: "Too many requests (rate_limited); see Retry-After.",
    500: "A stored secret no configured key decrypts (secret_unreadable): an encryption key the operator dropped "
    "before `rotate-keys` ran; the server's log names the row. Nothing was changed.",
    503: "The database cannot be reached (database_unavailable); send again after Retry-After.",
}
_ALWAYS = (401, 429, 503)
_WITH_BODY = (400, 413, 415, 422)
_IN_SESSION = (403, 404)
_SECRETS = (500,)  # operations that decrypt a stored secret

#: What every request body may be besides plain JSON.
_BODY = (
    "JSON, as it is or gzip-compressed with `Content-Encoding: gzip` (the body limit, `max_body_bytes`, applies "
    "to the compressed body as sent and again to the JSON once decompressed; a body that inflates past it is "
    "refused while it inflates)."
)

_PARAMETERS = {
    "sid": {"type": "string", "format": "uuid"},
    "cid": {"type": "string", "format": "uuid"},
    "seq": {"type": "integer", "minimum": 0, "maximum": MAX_SEQ},
    "key": {"type": "string", "description": "the localStorage key, percent-encoded"},
}


@dataclass(frozen=True)
class Operation:
    """One method on one path, as the document describes it."""

    method: str
    path: str
    summary: str
    responses: dict[int, type[Schema]]
    errors: tuple[int, ...] = ()
    body: type[Schema] | None = None
    tags: tuple[str, ...] = field(default=("migration",))


OPERATIONS = (
    Operation(
        "get",
        "/api/migration/config",
        "The limits, the protocol version, and the stores with the conflict policies this server applies.",
        {200: out.ConfigResponse},
    ),
    Operation(
        "post",
        "/api/migration/sessions",
        "Open a session, or return the one already open for this client session id.",
        {200: out.SessionResponse, 201: out.SessionResponse},
        (*_WITH_BODY, 409),
        SessionRequest,
    ),
    Operation(
        "get",
        "/api/migration/sessions/<sid>",
        "The session's status, acknowledged batches and per-key counts.",
        {200: out.SessionResponse},
        _IN_SESSION,
    ),
    Operation(
        "put",
        f"/api/migration/sessions/<sid>/batches/<int(max={MAX_SEQ}):seq>",
        "Apply one batch of one store's records, idempotently.",
        {200: out.BatchResponse},
        (*_IN_SESSION, *_WITH_BODY, 409, *_SECRETS),
        BatchRequest,
    ),
    Operation(
        "put",
        "/api/migration/sessions/<sid>/remainders",
        "Keep what no store claims in one key (its remainder), idempotently.",
        {200: out.RemainderResponse},
        (*_IN_SESSION, *_WITH_BODY, 409),
        RemainderRequest,
    ),
    Operation(
        "get",
        "/api/migration/keys",
        "The keys the server holds for the user: the latest verified value of each, with its session.",
        {200: out.KeyList},
    ),
    Operation(
        "get",
        "/api/migration/keys/<path:key>",
        "One key's latest verified value, rebuilt: the string localStorage held.",
        {200: out.KeyValue},
        (404, 409, *_SECRETS),
    ),
    Operation(
        "post",
        "/api/migration/sessions/<sid>/complete",
        "Verify the client's manifest and answer which keys may be deleted.",
        {200: out.CompleteResponse},
        (*_IN_SESSION, *_WITH_BODY, 409),
        CompleteRequest,
    ),
    Operation(
        "get",
        "/api/migration/sessions/<sid>/conflicts",
        "The session's conflicts with both versions, secrets masked.",
        {200: out.ConflictList},
        (*_IN_SESSION, *_SECRETS),
    ),
    Operation(
        "post",
        "/api/migration/sessions/<sid>/conflicts/<cid>",
        "Keep the local or the server version of one conflict's record.",
        {200: out.ResolveResponse},
        (*_IN_SESSION, *_WITH_BODY, 409, *_SECRETS),
        ResolveRequest,
    ),
    Operation(
        "get",
        "/api/migration/sessions/<sid>/quarantine",
        "The session's quarantined records with their reasons, secrets masked.",
        {200: out.QuarantineList},
        (*_IN_SESSION, *_SECRETS),
    ),
    Operation(
        "post",
        "/api/migration/sessions/<sid>/rollback",
        "Undo the session on the server: what it wrote taken back, nothing anyone changed since.",
        {200: out.RollbackReport},
        (*_IN_SESSION, 409),
    ),
    Operation("get", "/api/tasks", "The user's tasks.", {200: out.TaskList}, tags=("records",)),
    Operation(
        "get",
        "/api/environments",
        "The user's environments, without secrets.",
        {200: out.EnvironmentList},
        tags=("records",),
    ),
)

_CONVERTER = re.compile(r"<(?:[a-z_]+(?:\([^)]*\))?:)?([a-z_]+)>")


def openapi_path(rule: str) -> str:
    """A Flask rule in OpenAPI's syntax: `/sessions/<int:seq>` -> `/sessions/{seq}`."""
    return _CONVERTER.sub(r"{\1}", rule)


def _operation(op: Operation) -> dict[str, Any]:
    responses: dict[int, Any] = {
        status: {"description": schema.__doc__ or "", "content": {"application/json": {"schema": schema.__name__}}}
        for status, schema in op.responses.items()
    }
    for status in sorted({*op.errors, *_ALWAYS}):
        responses[status] = {"$ref": f"#/components/responses/Error{status}"}
    described: dict[str, Any] = {
        "summary": op.summary,
        "tags": list(op.tags),
        "responses": dict(sorted(responses.items())),
    }
    names = _CONVERTER.findall(op.path)
    if names:
        described["parameters"] = [
            {"name": name, "in": "path", "required": True, "schema": _PARAMETERS[name]} for name in names
        ]
    if op.body is not None:
        described["requestBody"] = {
            "required": True,
            "description": _BODY,
            "content": {"application/json": {"schema": op.body.__name__}},
        }
    return described


@functools.cache
def openapi_document(prefix: str = "", routes: frozenset[str] | None = None) -> dict[str, Any]:
    """The OpenAPI 3 document of the API, as a dict ready for JSON: each path under `prefix`, and only the
    operations whose path (with the prefix) is in `routes` when it is given (a preset's are not always served)."""
    operations = [op for op in OPERATIONS if routes is None or prefix + op.path in routes]
    spec = APISpec(
        title="lsmigrate",
        version=str(PROTOCOL_VERSION),
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Move a web app's user data from localStorage into PostgreSQL."},
        security=[{"bearer": []}],
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    schemas = {op.body for op in operations if op.body is not None}
    schemas |= {schema for op in operations for schema in op.responses.values()}
    schemas.add(out.ErrorEnvelope)
    for schema in sorted(schemas, key=lambda s: s.__name__):
        spec.components.schema(schema.__name__, schema=schema)
    for status, description in _ERRORS.items():
        spec.components.response(
            f"Error{status}",
            {"description": description, "content": {"application/json": {"schema": "ErrorEnvelope"}}},
        )
    by_path: dict[str, dict[str, Any]] = {}
    for op in operations:
        by_path.setdefault(openapi_path(prefix + op.path), {})[op.method] = _operation(op)
    for path, path_operations in by_path.items():
        spec.path(path=path, operations=path_operations)
    return spec.to_dict()
