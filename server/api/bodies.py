"""Reading request bodies: gzip inflated under the limit, strict JSON (no object names a member twice), then a
protocol schema."""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from flask import request
from marshmallow import Schema, ValidationError

from lsmigrate.server.errors import BadRequest, PayloadTooLarge, Unprocessable, UnsupportedEncoding
from lsmigrate.shared.canonical import RepeatedName, parse_json, parse_json_strict

#: The Content-Encoding a request body may carry: gzip (x-gzip is its old name, RFC 9110 §8.4.1.3), as the page's
#: CompressionStream writes it. "identity" is no coding at all.
ACCEPTED_ENCODINGS = ("gzip", "x-gzip", "identity")
#: Output taken from zlib per call: the bound on what one step inflates past the limit.
_STEP = 1 << 20


def request_body() -> bytes:
    """The request's body, decompressed when it is gzip (Content-Encoding), at most the route's limit
    (`request.max_content_length`) as sent and again once inflated: PayloadTooLarge (413) past it.

    With a Content-Length, Werkzeug refuses a body over the limit before reading it. A chunked body has none,
    and Werkzeug would cut it at the limit without a word (the JSON then looks broken): it is read here, one
    byte past the limit, and refused when that byte is there. Another Content-Encoding is UnsupportedEncoding
    (415); gzip that does not inflate is BadRequest (400, invalid_encoding).
    """
    limit = request.max_content_length
    if request.content_length is not None or limit is None or not request.environ.get("wsgi.input_terminated"):
        body = request.get_data()
    else:
        body = request.environ["wsgi.input"].read(limit + 1)
        if len(body) > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    # Read before the coding is judged: a server that answers with a body unread may reset the connection,
    # and the client would never see the answer.
    return gunzip(body, limit) if _gzipped() else body


def _gzipped() -> bool:
    """True when the body is gzip, False when it has no coding; UnsupportedEncoding for any other."""
    codings = [part.strip().lower() for part in request.headers.get("Content-Encoding", "").split(",")]
    codings = [coding for coding in codings if coding and coding != "identity"]
    if codings in ([], ["gzip"], ["x-gzip"]):
        return bool(codings)
    raise UnsupportedEncoding(
        f"A request body may be sent as {', '.join(ACCEPTED_ENCODINGS)} (Content-Encoding), "
        f"not {request.headers['Content-Encoding']!r}.",
        details={"accepted": list(ACCEPTED_ENCODINGS)},
    )


def gunzip(data: bytes, limit: int | None) -> bytes:
    """`data` (gzip, one member or more) inflated; PayloadTooLarge (413) as soon as the output passes `limit`.

    zlib is asked for at most what is left under the limit (plus one byte, to see it passed) and at most
    `_STEP` at a time, so a bomb costs the limit in memory and time, never its full size. BadRequest
    (invalid_encoding) when `data` is not gzip, is cut short or fails its checksum.
    """
    pieces: list[bytes] = []
    size = 0
    rest = data
    try:
        while True:  # one gzip member a turn: RFC 1952 lets them follow one another
            inflater = zlib.decompressobj(wbits=31)
            pending = rest
            while not inflater.eof:
                room = _STEP if limit is None else min(_STEP, limit + 1 - size)
                piece = inflater.decompress(pending, room)
                pending = inflater.unconsumed_tail
                if not piece and not pending and not inflater.eof:
                    raise BadRequest("The gzip request body is empty or cut short.", code="invalid_encoding")
                size += len(piece)
                if limit is not None and size > limit:
                    raise PayloadTooLarge(f"The request body is larger than {limit} bytes once decompressed.")
                pieces.append(piece)
            rest = inflater.unused_data
            if not rest:
                return b"".join(pieces)
    except zlib.error as error:
        raise BadRequest(f"The request body is not valid gzip: {error}.", code="invalid_encoding") from error


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
