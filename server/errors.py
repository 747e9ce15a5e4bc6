"""The API's errors and the one JSON envelope they are sent in.

    ApiError                        (the root: an error the API answers on purpose)
     ├── BadRequest          400    invalid_json, invalid_encoding
     ├── Unauthorized        401    missing_token, invalid_token, token_revoked, operator_token_required
     ├── Forbidden           403    foreign_session
     ├── NotFound            404    unknown_session, unknown_conflict
     ├── Conflict            409    batch_mismatch, records_already_sent, manifest_mismatch, session_closed,
     │                              session_active, dry_run_mismatch, conflict_resolved, concurrent_write,
     │                              session_pruned
     ├── PayloadTooLarge     413    request_too_large (a chunked or inflated body past the limit), too_many_records
     ├── UnsupportedEncoding 415    unsupported_encoding
     ├── Unprocessable       422    invalid_request, digest_mismatch, unknown_store
     ├── ServiceUnavailable  503    database_unavailable
     ├── Shed                503    server_busy (load shed: the instance is full, or the request queued too long)
     │                       429    user_busy (the user has a batch in flight already)
     └── SecretUnreadable    500    secret_unreadable (records.secrets: a stored secret no key decrypts)
    HTTPException (Werkzeug) 4xx    not_found, method_not_allowed, request_too_large

Every error, these and Werkzeug's HTTP errors alike, goes out as
`{"error": {"code", "message", "details"}}` with its status; a 503 and a shed 429 carry
`Retry-After`. A database that cannot be reached (a refused or dropped
connection: SQLAlchemy's OperationalError, InterfaceError, or any DBAPIError
that invalidated its connection) is a 503 `database_unavailable`, after the
request's transaction is rolled back: the client sends the same request again.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from flask import Blueprint, Flask
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from werkzeug.exceptions import HTTPException

from lsmigrate.server.jsontext import json_response
from lsmigrate.server.observability.metrics import count_database_failure, count_error

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the API answers with its status and machine-readable code."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.details = details


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "missing_token"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class PayloadTooLarge(ApiError):
    status, code = 413, "request_too_large"


class UnsupportedEncoding(ApiError):
    status, code = 415, "unsupported_encoding"


class Unprocessable(ApiError):
    status, code = 422, "invalid_request"


class ServiceUnavailable(ApiError):
    status, code = 503, "database_unavailable"


class Shed(ApiError):
    """Load shed before any work (`api.shedding`): 503 `server_busy` (the instance is full, or the request waited
    too long to get in) or 429 `user_busy` (the user has a batch in flight already); `retry_after` seconds."""

    def __init__(self, status: int, code: str, message: str, retry_after: int, reason: str) -> None:
        super().__init__(message, code=code, details={"reason": reason, "retry_after": retry_after})
        self.status = status
        self.retry_after = retry_after


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> ResponseReturnValue:
    """The one error envelope (counted by its code: lsmigrate_errors_total)."""
    count_error(code)
    return json_response({"error": {"code": code, "message": message, "details": details}}, status, headers)


def _headers(error: ApiError) -> dict[str, str]:
    if isinstance(error, Shed):
        return {"Retry-After": str(error.retry_after)}
    if isinstance(error, ServiceUnavailable):
        from lsmigrate.server.extension import settings

        return {"Retry-After": str(settings()["RETRY_AFTER_SECONDS"])}
    return {}


# Werkzeug's names where the API has its own word: a body past MAX_CONTENT_LENGTH.
_HTTP_CODES = {413: "request_too_large"}


def _http_code(error: HTTPException) -> str:
    if error.code in _HTTP_CODES:
        return _HTTP_CODES[error.code]
    return (error.name or "error").lower().replace(" ", "_").replace("'", "")


def database_unavailable(error: Exception) -> bool:
    """True when a database error means the database cannot be reached, rather than a refused statement."""
    if isinstance(error, OperationalError | InterfaceError | psycopg.OperationalError | psycopg.InterfaceError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def _unavailable_response(error: Exception) -> ResponseReturnValue:
    from lsmigrate.server.db import db

    # The type and SQLSTATE only: a driver's message may quote the statement's parameters.
    sqlstate = getattr(getattr(error, "orig", error), "sqlstate", None)
    log.warning("Database unavailable (%s, sqlstate %s): answered 503", type(error).__name__, sqlstate)
    count_database_failure()
    try:
        db.session.rollback()
    except SQLAlchemyError:
        pass  # the connection is gone; its transaction went with it
    unavailable = ServiceUnavailable("The database cannot be reached; send the request again shortly.")
    return error_response(unavailable.status, unavailable.code, unavailable.message, headers=_headers(unavailable))


def register_error_handlers(app: Flask | Blueprint) -> None:
    """Every API and HTTP error of `app`'s (or a blueprint's) routes in the envelope, never as an HTML page."""

    @app.errorhandler(ApiError)
    def handle_api_error(error: ApiError) -> ResponseReturnValue:
        return error_response(error.status, error.code, error.message, error.details, _headers(error))

    @app.errorhandler(DBAPIError)
    def handle_database_error(error: DBAPIError) -> ResponseReturnValue:
        if not database_unavailable(error):
            raise error  # a refused statement is a bug to see, not an outage to retry
        return _unavailable_response(error)

    @app.errorhandler(psycopg.OperationalError)
    def handle_driver_error(error: psycopg.OperationalError) -> ResponseReturnValue:
        return _unavailable_response(error)

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException) -> ResponseReturnValue:
        status = error.code or 500
        return error_response(status, _http_code(error), error.description or error.name)
