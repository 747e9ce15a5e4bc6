"""The envelopes state libraries wrap a key's value in, and the errors reading them gives.

    SourceError          a localStorage value is not what its spec expects
                         (code: invalid_json, wrong_shape, version_too_new,
                         upgrade_failed, unreadable); the key is left alone

An envelope reads a key's text into one JSON value, the key's *tree* (`read`),
and writes a tree back as text (`write`, canonical JSON). It says where the
app's state sits in the tree (`state_path`: paths of stores start there) and
where the library keeps its version (`version_path`):

    ZUSTAND             {"state": {...}, "version": 0}; a missing version is 0, with a warning
    REDUX_PERSIST       {"<slice>": "<JSON text>", ..., "_persist": "{\\"version\\":1,...}"}: every value is
                        JSON text, read into the tree; a missing version is redux-persist's own -1
    BARE                the JSON value itself (no version)
    SUPERJSON           {"json": <state>, "meta": {...}}: the state in `json`, its types (Date, Map,
                        Set, undefined, BigInt) in `meta`, which stays in the key's remainder
    MOBX_PERSIST_STORE  {"<property>": ..., "__mps__": {...}}: the version, when any, in `__mps__.version`
    TANSTACK_QUERY      a persisted QueryClient {"buster", "timestamp", "clientState": {"queries": [...]}}
                        or one query of the per-query persister {"queryKey", "queryHash", "state", ...}

An app can bring its own: `Envelope(name, read, write, ...)` with `read(text) -> JSON value`
and `write(value) -> text`, passed to its StoreSpecs; `register_envelope` also makes the
name usable in a declared catalog.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lsmigrate.shared.canonical import canonical_json, parse_json
from lsmigrate.shared.fields import json_type

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


class Refused(ValueError):
    """An envelope's `read` refusing a text: what it expected and what it found (never the content)."""

    def __init__(self, expected: str, found: str, code: str = "wrong_shape") -> None:
        super().__init__(f"expected {expected}, found {found}")
        self.expected = expected
        self.found = found
        self.code = code


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


def read_json(text: str, where: str = "") -> Any:
    """Parse JSON text, or raise Refused(invalid_json)."""
    try:
        return parse_json(text, max_depth=MAX_DEPTH)
    except ValueError as error:
        place = f" at {where}" if where else ""
        # json's own messages differ between Python versions (3.13 reworded several), and the
        # page and the server must report a key alike: only lsmigrate's own refusals are quoted.
        found = "text that is not valid JSON" if isinstance(error, json.JSONDecodeError) else f"invalid JSON ({error})"
        raise Refused(f"JSON text{place}", found, code="invalid_json") from error


def parse_source(key: str, text: str, where: str = "") -> Any:
    """Parse a key's JSON text, or raise SourceError(invalid_json)."""
    try:
        return read_json(text, where)
    except Refused as refused:
        raise SourceError(key, refused.expected, refused.found, refused.code) from refused


def _zustand(text: str) -> Any:
    tree = read_json(text)
    if not isinstance(tree, dict) or not isinstance(tree.get("state"), dict):
        raise Refused("a Zustand envelope {state, version} with an object state", describe(tree))
    return tree


def _redux_persist(text: str) -> Any:
    outer = read_json(text)
    if not isinstance(outer, dict):
        raise Refused("a redux-persist object of JSON-encoded values", describe(outer))
    tree: dict[str, Any] = {}
    for name, encoded in outer.items():
        if not isinstance(encoded, str):
            raise Refused(f"a JSON-encoded string at {name}", describe(encoded))
        tree[name] = read_json(encoded, where=name)
    return tree


def _write_redux_persist(tree: Any) -> str:
    return canonical_json({name: canonical_json(value) for name, value in tree.items()})


def _superjson(text: str) -> Any:
    tree = read_json(text)
    if not isinstance(tree, dict) or "json" not in tree:
        raise Refused("a superjson value {json, meta}", describe(tree))
    return tree


def _mobx_persist_store(text: str) -> Any:
    tree = read_json(text)
    if not isinstance(tree, dict):
        raise Refused("a mobx-persist-store object of properties", describe(tree))
    return tree


def _tanstack_query(text: str) -> Any:
    tree = read_json(text)
    if not isinstance(tree, dict) or not ("clientState" in tree or "queryKey" in tree):
        raise Refused("a persisted TanStack Query client {clientState} or query {queryKey, state}", describe(tree))
    return tree


def _any_json(text: str) -> Any:
    return read_json(text)


@dataclass(frozen=True, slots=True)
class Envelope:
    """One way of wrapping persisted state.

    read             text -> the key's tree (a JSON value); `Refused`, or any exception, when it cannot
    write            tree -> text (lsmigrate's own write canonical JSON)
    state_path       where the app's state sits in the tree; store paths start there
    version_path     where the library keeps the state's version in the tree; None: it keeps none
    version_missing  the version of a tree without one (None: no version then)
    warn_missing     whether a missing version is worth a warning (Zustand always writes one)
    loader           how the page's loader reads the text without Pyodide: "json" (one parse),
                     "json-values" (then each top-level value parsed again), or None (it cannot:
                     a key of this envelope always boots the runtime)
    strip_meta       superjson: paths of emptied parts are also taken out of `meta`
    """

    name: str
    read: Callable[[str], Any]
    write: Callable[[Any], str] = canonical_json
    state_path: tuple[str, ...] = ()
    version_path: tuple[str, ...] | None = None
    version_missing: int | None = None
    warn_missing: bool = False
    loader: str | None = None
    strip_meta: bool = False

    @property
    def prefix(self) -> str:
        """How paths into the state are shown in messages ("state." for Zustand)."""
        return "".join(f"{step}." for step in self.state_path)

    def decode(self, key: str, raw: str) -> Any:
        """The tree of a key's raw text; SourceError when the text is not of this envelope."""
        try:
            return self.read(raw)
        except SourceError:
            raise
        except Refused as refused:
            raise SourceError(key, refused.expected, refused.found, refused.code) from refused
        except Exception as error:  # noqa: BLE001 - an integrator's read: reported by its type, chained
            raise SourceError(
                key, f"a value the {self.name} envelope reads", f"{type(error).__name__} from its read", "unreadable"
            ) from error

    def describe(self) -> dict[str, Any]:
        """The envelope as JSON: part of the catalog's version, and what the loader reads."""
        return {
            "name": self.name,
            "state_path": list(self.state_path),
            "version_path": None if self.version_path is None else list(self.version_path),
            "loader": self.loader,
        }


ZUSTAND = Envelope(
    "zustand", _zustand, state_path=("state",), version_path=("version",), version_missing=0, warn_missing=True,
    loader="json",
)  # fmt: skip
REDUX_PERSIST = Envelope(
    "redux-persist", _redux_persist, _write_redux_persist, version_path=("_persist", "version"), version_missing=-1,
    warn_missing=True, loader="json-values",
)  # fmt: skip
BARE = Envelope("bare", _any_json, loader="json")
SUPERJSON = Envelope("superjson", _superjson, state_path=("json",), loader="json", strip_meta=True)
MOBX_PERSIST_STORE = Envelope(
    "mobx-persist-store", _mobx_persist_store, version_path=("__mps__", "version"), loader="json"
)
TANSTACK_QUERY = Envelope("tanstack-query", _tanstack_query, loader="json")

_REGISTRY: dict[str, Envelope] = {
    envelope.name: envelope
    for envelope in (ZUSTAND, REDUX_PERSIST, BARE, SUPERJSON, MOBX_PERSIST_STORE, TANSTACK_QUERY)
}
BUILT_IN = tuple(_REGISTRY)


def register_envelope(envelope: Envelope) -> Envelope:
    """Make `envelope` usable by name in declared catalogs (ValueError for a name already taken by another)."""
    known = _REGISTRY.get(envelope.name)
    if known is not None and known != envelope:
        raise ValueError(f"an envelope named {envelope.name!r} is already registered")
    _REGISTRY[envelope.name] = envelope
    return envelope


def envelope_named(name: str) -> Envelope | None:
    """The registered envelope of that name, or None."""
    return _REGISTRY.get(name)


def envelope_names() -> tuple[str, ...]:
    """Every registered envelope's name: the built-in ones first."""
    return tuple(_REGISTRY)
