"""JSON text for the database and the responses: orjson's speed, the standard library's range.

orjson encodes a batch's JSON columns and responses about ten times faster
than `json.dumps`, but refuses some values the standard library writes: an
integer past 64 bits (JavaScript numbers parsed by Python can be any size),
a string holding a lone surrogate, a dict with keys that are not strings.
Those fall back to `json.dumps`, so a value is written whenever the standard
library would write it. Datetimes, dates, dataclasses and subclasses of the
JSON types, which orjson would write its own way, are sent to the fallback
too, which refuses (TypeError) what it cannot write. Two differences remain,
neither reachable from what lsmigrate stores: a UUID is written as its text
and an enum member as its value (json.dumps refuses both), and NaN or an
infinity comes out as `null` (json.dumps writes `NaN`, which is not JSON and
which no jsonb column takes; lsmigrate's parser refuses them on the way in).
Otherwise the text may differ from `json.dumps` in spacing and in the
spelling of floats, never in the value it stands for.

Reading (`loads`, how psycopg decodes the JSONB the server reads back) is
orjson's too, except for text with a run of 19 digits or more: orjson reads
an integer past 64 bits as a float, losing digits, where the standard
library keeps it exact (such a run inside a string only costs the fast path).
Text orjson refuses (an escaped lone surrogate, which json.dumps writes) goes
to `json.loads`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import orjson
from flask import Response
from flask.json.provider import DefaultJSONProvider

_PASSTHROUGH = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


_LONG_NUMBER_TEXT = re.compile(r"[0-9]{19}")
_LONG_NUMBER_BYTES = re.compile(rb"[0-9]{19}")


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is left to json.dumps")


def dumps_bytes(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON (surrogates escaped when there are any)."""
    try:
        return orjson.dumps(value, default=_refuse, option=_PASSTHROUGH)
    except TypeError:
        return json.dumps(value, separators=(",", ":")).encode("ascii")


def dumps_text(value: Any) -> str:
    """`value` as compact JSON text."""
    try:
        return orjson.dumps(value, default=_refuse, option=_PASSTHROUGH).decode("utf-8")
    except TypeError:
        return json.dumps(value, separators=(",", ":"))


def loads(text: str | bytes) -> Any:
    """The value of JSON text; integers of any size stay exact."""
    pattern = _LONG_NUMBER_BYTES if isinstance(text, bytes) else _LONG_NUMBER_TEXT
    if pattern.search(text) is not None:  # type: ignore[arg-type]
        return json.loads(text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)  # it reads what orjson cannot (a lone surrogate), or raises its own error


class FastJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, with orjson doing the work whenever it can.

    Keys are sorted and the text compact, as Flask's own provider writes a
    response; what orjson leaves (and any call with options) goes to Flask's
    provider, so dates, UUIDs and dataclasses come out as Flask writes them.
    """

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if not kwargs:
            try:
                return orjson.dumps(obj, default=_refuse, option=_PASSTHROUGH | orjson.OPT_SORT_KEYS).decode("utf-8")
            except TypeError:
                kwargs = {"separators": (",", ":")}
        return super().dumps(obj, **kwargs)

    def response(self, *args: Any, **kwargs: Any) -> Any:
        value = self._prepare_response_obj(args, kwargs)
        return self._app.response_class(f"{self.dumps(value)}\n", mimetype=self.mimetype)


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON answer written by lsmigrate itself, whatever JSON provider the host app has."""
    response = Response(dumps_bytes(body) + b"\n", status=status, mimetype="application/json")
    if headers:
        response.headers.update(headers)
    return response
