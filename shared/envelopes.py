"""The envelopes stores wrap their state in, and the errors reading them gives.

    SourceError          a localStorage value is not what its spec expects
                         (code: invalid_json, wrong_shape, version_too_new,
                         upgrade_failed); the key is left alone

Envelopes turn a key's raw text into the persisted state and its version:
    ZUSTAND        {"state": {...}, "version": 0}; a missing version is 0, with a warning
    REDUX_PERSIST  {"<slice>": "<JSON text>", ..., "_persist": "{\\"version\\":1,...}"}
    BARE           the JSON value itself (no version)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lsmigrate.shared.canonical import parse_json
from lsmigrate.shared.fields import json_type

_ABSENT: Any = object()
#: How deep a localStorage value may nest. Deeper text is refused (invalid_json) before it is
#: parsed, the same on CPython and in Pyodide (see `parse_json`); it also keeps a request body
#: that wraps a record a few levels deeper within what the server's parser holds.
MAX_DEPTH = 512


class SourceError(ValueError):
    """A localStorage value that is not what its store spec expects; the key is left alone."""

    def __init__(self, key: str, expected: str, found: str, code: str = "wrong_shape") -> None:
        super().__init__(f"{key}: expected {expected}, found {found}")
        self.key = key
        self.expected = expected
        self.found = found
        self.code = code

    def as_dict(self) -> dict[str, str]:
        """The error as the report and the protocol show it."""
        return {"key": self.key, "code": self.code, "expected": self.expected, "found": self.found}


def describe(value: Any) -> str:
    """What a JSON value is, for an error message: its type and shape, never its content."""
    if isinstance(value, dict):
        if not value:
            return "an empty object"
        names = sorted(value)
        shown = ", ".join(repr(name) for name in names[:8])
        return f"an object with keys {shown}" + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    if isinstance(value, list):
        return f"an array of {len(value)} items"
    return {"null": "null", "boolean": "a boolean", "number": "a number", "string": "a string"}[json_type(value)]


def parse_source(key: str, text: str, where: str = "") -> Any:
    """Parse a key's JSON text, or raise SourceError(invalid_json)."""
    try:
        return parse_json(text, max_depth=MAX_DEPTH)
    except ValueError as error:
        place = f" at {where}" if where else ""
        # json's own messages differ between Python versions (3.13 reworded several), and the
        # page and the server must report a key alike: only lsmigrate's own refusals are quoted.
        found = "text that is not valid JSON" if isinstance(error, json.JSONDecodeError) else f"invalid JSON ({error})"
        raise SourceError(key, f"JSON text{place}", found, code="invalid_json") from error


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class Unwrapped:
    """A key's persisted state, the version it was written with, and key-level warnings."""

    state: Any
    version: int | None
    warnings: list[dict[str, Any]] = field(default_factory=list)


def _zustand(key: str, envelope: Any) -> Unwrapped:
    if not isinstance(envelope, dict) or not isinstance(envelope.get("state"), dict):
        raise SourceError(key, "a Zustand envelope {state, version} with an object state", describe(envelope))
    version = envelope.get("version", _ABSENT)
    if version is _ABSENT:
        return Unwrapped(envelope["state"], 0, [{"code": "version_missing", "assumed": 0}])
    if not _integer(version):
        raise SourceError(key, "an integer version", describe(version))
    return Unwrapped(envelope["state"], version)


def _redux_persist(key: str, outer: Any) -> Unwrapped:
    if not isinstance(outer, dict):
        raise SourceError(key, "a redux-persist object of JSON-encoded values", describe(outer))
    state: dict[str, Any] = {}
    for name, encoded in outer.items():
        if not isinstance(encoded, str):
            raise SourceError(key, f"a JSON-encoded string at {name}", describe(encoded))
        state[name] = parse_source(key, encoded, where=name)
    persist = state.pop("_persist", _ABSENT)
    if persist is _ABSENT:
        # redux-persist's own default when a config sets no version.
        return Unwrapped(state, -1, [{"code": "version_missing", "assumed": -1}])
    if not isinstance(persist, dict) or not _integer(persist.get("version")):
        raise SourceError(key, "a _persist entry with an integer version", describe(persist))
    return Unwrapped(state, persist["version"])


def _bare(key: str, value: Any) -> Unwrapped:
    return Unwrapped(value, None)


@dataclass(frozen=True, slots=True)
class Envelope:
    """One way of wrapping persisted state; `prefix` is how paths into its state are shown."""

    name: str
    read: Callable[[str, Any], Unwrapped]
    prefix: str = ""

    def unwrap(self, key: str, raw: str) -> Unwrapped:
        """The state inside a key's raw text."""
        return self.read(key, parse_source(key, raw))


ZUSTAND = Envelope("zustand", _zustand, prefix="state.")
REDUX_PERSIST = Envelope("redux-persist", _redux_persist)
BARE = Envelope("bare", _bare)
