"""Reading request bodies: strict JSON (no object names a member twice), then a protocol schema."""

from __future__ import annotations

from typing import Any

import orjson
from flask import request
from marshmallow import Schema, ValidationError

from lsmigrate.server.errors import BadRequest, PayloadTooLarge, Unprocessable
from lsmigrate.shared.canonical import RepeatedName, parse_json, parse_json_strict


def request_body() -> bytes:
    """The request's body, at most the route's limit (`request.max_content_length`): PayloadTooLarge (413) past it.

    With a Content-Length, Werkzeug refuses a body over the limit before reading it. A chunked body has none,
    and Werkzeug would cut it at the limit without a word (the JSON then looks broken): it is read here, one
    byte past the limit, and refused when that byte is there.
    """
    limit = request.max_content_length
    if request.content_length is not None or limit is None or not request.environ.get("wsgi.input_terminated"):
        return request.get_data()
    body: bytes = request.environ["wsgi.input"].read(limit + 1)
    if len(body) > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    return body


def _written_by_orjson(body: bytes, value: Any) -> bool:
    """True when `body` is, byte for byte, what orjson writes for `value`: then it names no member twice.

    `value`'s dicts hold each name once and orjson writes each once, so text equal to orjson's repeats none.
    The page's bodies pass (compact `json.dumps`, members in their order): the check adds about 15% to the
    parse, where json's object_pairs_hook adds 35-45% (bench/json_bodies.py). Other text (spaces, `1e-07`,
    an escaped name, a lone surrogate, an integer past 64 bits) is read again, strictly.
    """
    try:
        return orjson.dumps(value) == body
    except orjson.JSONEncodeError:  # an integer past 64 bits, a lone surrogate, more than 254 levels
        return False


def parse_body(body: bytes) -> Any:
    """The JSON value of a request body; BadRequest (invalid_json) when it is not JSON or an object in it names
    a member twice (at any depth: json would keep the last)."""
    try:
        value = parse_json(body.decode("utf-8"))
        if _written_by_orjson(body, value):
            return value
        # Decoded again rather than kept: the text held alive while orjson writes cost a millisecond a
        # megabyte (the output then takes fresh pages instead of the text's).
        return parse_json_strict(body.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise BadRequest("The request body is not UTF-8 text.", code="invalid_json") from error
    except RecursionError as error:
        raise BadRequest("The request body is nested too deeply.", code="invalid_json") from error
    except RepeatedName as error:
        raise BadRequest(f"The request body repeats a name: {error}.", code="invalid_json") from error
    except ValueError as error:
        raise BadRequest(f"The request body is not valid JSON: {error}", code="invalid_json") from error


def load_body(schema: Schema, body: bytes) -> dict[str, Any]:
    """A request body parsed and validated by `schema`; 400 or 422 when it is not."""
    payload = parse_body(body)
    if not isinstance(payload, dict):
        raise Unprocessable("The request body must be a JSON object.", details={"_schema": ["expected an object"]})
    try:
        loaded: dict[str, Any] = schema.load(payload)
    except ValidationError as error:
        raise Unprocessable("The request body does not match the protocol.", details=error.messages) from error
    return loaded
