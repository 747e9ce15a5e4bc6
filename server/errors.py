"""The API's errors and the one JSON envelope they are sent in.

    ApiError                      any error the API answers on purpose
     ├── BadRequest        400    invalid_json, bad_request
     ├── Unauthorized      401    missing_token, invalid_token
     ├── Forbidden         403    foreign_session
     ├── NotFound          404    unknown_session, not_found
     ├── Conflict          409    batch_mismatch, records_already_sent, manifest_mismatch, session_closed
     ├── PayloadTooLarge   413    too_many_records, request_too_large
     └── Unprocessable     422    invalid_request, digest_mismatch, unknown_store

Every error, these and Werkzeug's HTTP errors alike, goes out as
`{"error": {"code", "message", "details"}}` with its status.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException


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


class Unprocessable(ApiError):
    status, code = 422, "invalid_request"


def error_response(status: int, code: str, message: str, details: Any = None) -> ResponseReturnValue:
    """The one error envelope."""
    body = {"error": {"code": code, "message": message, "details": details}}
    return jsonify(body), status


def _http_code(error: HTTPException) -> str:
    return (error.name or "error").lower().replace(" ", "_").replace("'", "")


def register_error_handlers(app: Flask) -> None:
    """Send every API error and HTTP error in the envelope, never as an HTML page."""

    @app.errorhandler(ApiError)
    def handle_api_error(error: ApiError) -> ResponseReturnValue:
        return error_response(error.status, error.code, error.message, error.details)

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException) -> ResponseReturnValue:
        status = error.code or 500
        return error_response(status, _http_code(error), error.description or error.name)
