"""lsmigrate's logs as JSON lines (LOG_FORMAT "json"), and the keyed hash that stands for a user in them.

With LSMIGRATE_LOG_FORMAT=json, every logger under `lsmigrate` writes one JSON object per line to stderr:

    {"time": "2026-01-02T03:04:05.678Z", "level": "INFO", "logger": "lsmigrate.access",
     "message": "PUT lsmigrate.migration.upload_batch 200 41.2 ms", "request_id": "4f1c…",
     "user": "9a0b1c2d3e4f5a6b", "method": "PUT", "endpoint": "lsmigrate.migration.upload_batch",
     "status": 200, "duration_ms": 41.2}

`request_id` is the request's (`hooks`: the X-Request-Id it came with, or a new one), null outside a request;
`user` is `user_hash` of the request's user, present once the request is authenticated: HMAC-SHA256 of the
user id under a key of its own derived from the newest signing key (`keys.log_hash_key`), its first 16 hex
digits. The same user has the same hash in every line and every worker, and nobody without the key can
tell whose it is; rotating the signing keys changes it. An exception's traceback is in `exception`.

The JSON handler is the process's: it is put on the `lsmigrate` logger (which then no longer passes lines on
to the root logger's handlers, so each line is written once), never on a host app's root logger, and an
`lsmigrate` logger with no level of its own is set to INFO for the access lines. Text (the default) changes
nothing: lines go wherever the app's logging sends them, as before.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from flask import Flask, current_app, g, has_app_context, has_request_context

from lsmigrate.server.keys import log_hash_key

LOG_FORMATS = ("text", "json")
#: Where a log call puts fields of its own (`extra={FIELDS: {...}}`): added to the JSON object.
FIELDS = "lsmigrate_fields"
_EXTENSION_KEY = "lsmigrate_logs"
_HASH_DIGITS = 16


@dataclass(frozen=True)
class LogSettings:
    """One app's log format and the key its user hashes are made with."""

    format: str
    user_key: bytes


def init_app(app: Flask, settings: Mapping[str, Any]) -> None:
    """Keep the app's log settings; in json mode, put the JSON handler on lsmigrate's loggers (once a process)."""
    state = LogSettings(settings["LOG_FORMAT"], log_hash_key(settings["SIGNING_KEYS"][0]))
    app.extensions[_EXTENSION_KEY] = state
    if state.format == "json":
        install_json_handler()


def json_logs() -> bool:
    """True when the current app writes its logs as JSON lines."""
    state: LogSettings | None = current_app.extensions.get(_EXTENSION_KEY)
    return state is not None and state.format == "json"


def user_hash(user_id: str) -> str:
    """What stands for `user_id` in the current app's logs: a keyed hash, never the id."""
    state: LogSettings = current_app.extensions[_EXTENSION_KEY]
    return hmac.new(state.user_key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()[:_HASH_DIGITS]


def _request_user() -> str | None:
    """The hash of the request's authenticated user, or None."""
    if not has_request_context() or current_app.extensions.get(_EXTENSION_KEY) is None:
        return None
    user_id = g.get("user_id")
    if not isinstance(user_id, str):
        return None
    cached: tuple[str, str] | None = g.get("lsmigrate_user_hash")
    if cached is None or cached[0] != user_id:
        cached = (user_id, user_hash(user_id))
        g.lsmigrate_user_hash = cached
    return cached[1]


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (ISO 8601, UTC), level, logger, message, request_id, user (hashed)."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line: dict[str, Any] = {
            "time": moment.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": g.get("request_id") if has_request_context() else None,
        }
        user = _request_user() if has_app_context() else None
        if user is not None:
            line["user"] = user
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, Mapping):
            line.update({name: value for name, value in fields.items() if name not in line})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class JsonLinesHandler(logging.StreamHandler[TextIO]):
    """The handler writing lsmigrate's JSON lines (to stderr)."""


def install_json_handler() -> JsonLinesHandler:
    """Put the JSON handler on the `lsmigrate` logger, unless it is there already; the handler."""
    logger = logging.getLogger("lsmigrate")
    for handler in logger.handlers:
        if isinstance(handler, JsonLinesHandler):
            return handler
    handler = JsonLinesHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.propagate = False  # each line once, as JSON, not again in the root logger's format
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    return handler
