"""A whole localStorage key: split into its stores' records and a remainder, and rebuilt (design §11).

    split_key(key, raw, specs) -> SplitKey    the key's tree (its envelope read), each store's
                                              records, and the *remainder*: the tree with every
                                              claimed part emptied, plus what putting the records
                                              back needs. Total: every input ends as records and
                                              remainder, or a SourceError with the key left alone.
    rebuild_key(records, remainder) -> tree   the exact inverse (canonical JSON)
    rebuild_text(envelope, records, remainder) the key's text as the envelope writes it

The remainder is one JSON document per key:

    {"tree": <the tree, claimed parts emptied>,
     "parts": {"<store>": {"at": [<keys and indexes>], "shape": "...", ...shape info}
               | {"absent": true}},
     "original": <the tree before the app's upgrades ran>}      only when they changed it

Stores sharing a key share its envelope, version and upgrades; their paths
never overlap (the catalog refuses it). Cleanup (`strip_text`, `cleanup_action`)
empties the claimed containers in the key's own text and leaves every other
byte as it was.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lsmigrate.shared.canonical import canonical_json, digest, manifest_digest
from lsmigrate.shared.envelopes import Envelope, SourceError, describe
from lsmigrate.shared.paths import Missing, Place, locate, path_text, value_at, with_value_at
from lsmigrate.shared.shapes import SINGLE, ShapeError, put, take

if TYPE_CHECKING:
    from lsmigrate.shared.stores import StoreSpec


@dataclass(frozen=True, slots=True)
class SplitKey:
    """A key read whole: its tree, each store's records, and the remainder."""

    key: str
    envelope: Envelope
    #: The tree the records and remainder rebuild (after the app's upgrades, when any ran).
    tree: Any
    version: int | None
    warnings: list[dict[str, Any]]
    #: Store name -> its records, in the order of `specs` given to split_key.
    records: dict[str, list[Any]]
    remainder: dict[str, Any]
    #: Store name -> where its container sits in the tree as the app wrote it (None: absent, or
    #: not found there after an upgrade moved it).
    places: dict[str, Place | None] = field(default_factory=dict)

    @property
    def original(self) -> Any:
        """The tree as the app wrote it (before upgrades)."""
        return self.remainder.get("original", self.tree)

    def manifest(self, record_digests: Sequence[str]) -> dict[str, Any]:
        """The key's entry in `complete`'s manifest, given its records' digests in key order."""
        entry: dict[str, Any] = {
            "count": len(record_digests),
            "digest": manifest_digest(record_digests),
            "stores": {name: len(records) for name, records in self.records.items()},
            "remainder": digest(self.remainder),
            "value": skeleton_digest(self.remainder, _by_store(self.records, record_digests)),
        }
        return entry


def key_version(
    key: str, envelope: Envelope, version_path: tuple[str, ...] | None, tree: Any
) -> tuple[int | None, list[dict[str, Any]]]:
    """The version the library wrote the key with, and a warning when it wrote none."""
    path = envelope.version_path if version_path is None else version_path
    if not path:
        return None, []
    expected = "an integer version" if len(path) == 1 else f"a {path[0]} entry with an integer version"
    try:
        _, version = locate(tree, path)
    except Missing as missing:
        if missing.depth > 0:  # the library's marker is there, without a version
            raise SourceError(key, expected, describe(missing.container)) from None
        if envelope.version_missing is None:
            return None, []
        warnings = [{"code": "version_missing", "assumed": envelope.version_missing}] if envelope.warn_missing else []
        return envelope.version_missing, warnings
    if not isinstance(version, int) or isinstance(version, bool):
        raise SourceError(key, expected, describe(value_at(tree, path[:-1])) if len(path) > 1 else describe(version))
    return version, []


def _upgrade(key: str, spec: StoreSpec, state: Any, stored: int, warnings: list[dict[str, Any]]) -> Any:
    if stored > spec.version:
        raise SourceError(key, f"state version {spec.version} or older", f"version {stored}", code="version_too_new")
    steps = sorted(v for v in spec.upgrades if v > stored)
    for version in steps:
        try:
            state = spec.upgrades[version](state)
        except Exception as error:  # noqa: BLE001 - the app's own upgrade code; reported, chained
            raise SourceError(
                key,
                f"state the upgrade to version {version} accepts",
                f"{type(error).__name__} from the upgrade",
                code="upgrade_failed",
            ) from error
    if steps:
        warnings.append({"code": "version_upgraded", "from": stored, "to": spec.version})
    return state


def _upgraded(key: str, spec: StoreSpec, tree: Any, version: int | None, warnings: list[dict[str, Any]]) -> Any:
    """The tree with the app's upgrades run on its state (the tree itself when none apply)."""
    if version is None:
        return tree
    state_path = spec.envelope.state_path
    try:
        state = value_at(tree, state_path)
    except (KeyError, IndexError, TypeError):
        return tree
    marker = None
    if isinstance(state, dict) and spec.envelope.version_path and spec.envelope.version_path[0] in state:
        # redux-persist keeps `_persist` beside the slices: upgrades see the slices only, as the app's own do.
        state = dict(state)
        marker = (spec.envelope.version_path[0], state.pop(spec.envelope.version_path[0]))
    if version > spec.version or any(v > version for v in spec.upgrades):
        upgraded = _upgrade(key, spec, state, version, warnings)
    else:
        return tree  # nothing to run: the tree as written
    if marker is not None and isinstance(upgraded, dict):
        upgraded = {**upgraded, marker[0]: marker[1]}
    return with_value_at(tree, state_path, upgraded)


_WANTED = {
    "array": "an array",
    "by_id": "an object of records by id",
    "entity_adapter": "an entity adapter's {ids, entities}",
    "entries": "an array of [key, value] entries",
    "one": "a record",
    "scalar": "a boolean, number, string or null",
}


def _claim(key: str, spec: StoreSpec, tree: Any) -> tuple[Place | None, Any]:
    """Where a store's part sits in the tree and its value; (None, None) when a selection finds nothing
    (a query never fetched): no records then. A name that is not there is a SourceError."""
    envelope = spec.envelope
    state_place, state = locate(tree, envelope.state_path)  # the envelope's read checked it
    steps = spec.steps
    if spec.shape == "array" and isinstance(state, list) and not envelope.state_path and steps:
        return state_place, state  # a bare value may be the array itself rather than an object holding it
    try:
        place, value = locate(state, steps)
    except Missing as missing:
        step = steps[missing.depth]
        if missing.absent and not isinstance(step, str):
            return None, None
        where = envelope.prefix + path_text(steps[: missing.depth + 1])
        container = missing.container
        found = f"no {step!r} in {describe(container)}" if isinstance(container, dict) else describe(container)
        raise SourceError(key, f"{_WANTED[spec.shape]} at {where}", found) from None
    return (*state_place, *place), value


def split_key(key: str, raw: str, specs: Sequence[StoreSpec]) -> SplitKey:
    """Read a key whole through the stores that share it (see the module docstring)."""
    first = next((spec for spec in specs if spec.upgrades), specs[0])  # stores of a key share their upgrades
    envelope = first.envelope
    written = envelope.decode(key, raw)
    version, warnings = key_version(key, envelope, first.version_path, written)
    warnings = list(warnings)
    tree = _upgraded(key, first, written, version, warnings)
    upgraded = tree is not written and canonical_json(tree) != canonical_json(written)
    records: dict[str, list[Any]] = {}
    parts: dict[str, Any] = {}
    places: dict[str, Place | None] = {}
    emptied_tree = tree
    for spec in specs:
        place, container = _claim(key, spec, tree)
        if place is None:
            records[spec.name] = []
            parts[spec.name] = {"absent": True}
            places[spec.name] = None
            continue
        marker = _marker(spec, place, container)
        if marker is not None:
            container = {name: value for name, value in container.items() if name != marker}
        try:
            taken = take(spec.shape, container)
        except ShapeError as error:
            shown = path_text(spec.steps)
            where = envelope.prefix + shown if shown else envelope.prefix.rstrip(".") or "the top level"
            raise SourceError(key, f"{error.expected} at {where}", describe(container)) from None
        records[spec.name] = taken.records
        parts[spec.name] = {"at": list(place), "shape": spec.shape, **taken.info}
        emptied = taken.emptied
        if marker is not None:
            parts[spec.name]["marker"] = marker
            emptied = {marker: value_at(tree, (*place, marker))}
        emptied_tree = with_value_at(emptied_tree, place, emptied)
        places[spec.name] = place if not upgraded else _place_in(written, spec)
    remainder: dict[str, Any] = {"tree": emptied_tree, "parts": parts}
    if upgraded:
        remainder["original"] = written
    return SplitKey(key, envelope, tree, version, warnings, records, remainder, places)


def library_entry(spec: StoreSpec) -> str | None:
    """The library's own entry (redux-persist `_persist`, mobx-persist-store `__mps__`) when the store's
    record is a document that is the whole state: not the app's record but the library's bookkeeping (an
    expiry that changes on every save), kept in the remainder beside it."""
    version_path = spec.envelope.version_path
    if spec.shape != "one" or spec.steps or not version_path or spec.envelope.state_path:
        return None
    return version_path[0]


def _marker(spec: StoreSpec, place: Place, container: Any) -> str | None:
    entry = library_entry(spec)
    return entry if entry is not None and isinstance(container, dict) and entry in container else None


def _place_in(written: Any, spec: StoreSpec) -> Place | None:
    """Where a store's container sits in the tree as written (before upgrades), if it is there and of its shape."""
    try:
        place, container = _claim("", spec, written)
        if place is None:
            return None
        take(spec.shape, container)
    except (SourceError, ShapeError):
        return None
    return place


def rebuild_key(records: Mapping[str, Sequence[Any]], remainder: Mapping[str, Any]) -> Any:
    """The tree a key's records and remainder stand for (after upgrades; see `original_tree`)."""
    tree = remainder["tree"]
    for store, part in remainder["parts"].items():
        if part.get("absent"):
            continue
        place = tuple(part["at"])
        info = {name: value for name, value in part.items() if name not in ("at", "shape", "marker")}
        emptied = value_at(tree, place)
        container = put(part["shape"], emptied, list(records.get(store, ())), info)
        if "marker" in part:
            entry = {part["marker"]: emptied[part["marker"]]}
            # A record stands as its digest in a skeleton (`skeleton_digest`): beside the entry, not merged.
            container = {**container, **entry} if isinstance(container, dict) else {"$record": container, **entry}
        tree = with_value_at(tree, place, container)
    return tree


def skeleton_digest(remainder: Mapping[str, Any], record_digests: Mapping[str, Sequence[str]]) -> str:
    """The digest of a key's value with each record standing as its digest: what `complete` proves. The page
    computes it from what it read, the server from its ledger's digests and the remainder it holds; each row
    rebuilding its record is proven record by record (a record whose row would not is quarantined)."""
    return digest(rebuild_key(record_digests, {"tree": remainder["tree"], "parts": remainder["parts"]}))


def _by_store(records: Mapping[str, Sequence[Any]], digests: Sequence[str]) -> dict[str, list[str]]:
    """`digests` (in key order) cut into the runs of each store."""
    out: dict[str, list[str]] = {}
    start = 0
    for name, store_records in records.items():
        out[name] = list(digests[start : start + len(store_records)])
        start += len(store_records)
    return out


def original_tree(rebuilt: Any, remainder: Mapping[str, Any]) -> Any:
    """The tree as the app wrote it: the rebuilt one, unless upgrades changed it."""
    return remainder.get("original", rebuilt)


def rebuild_text(envelope: Envelope, records: Mapping[str, Sequence[Any]], remainder: Mapping[str, Any]) -> str:
    """The key's text as it was written, from its records and remainder (canonical JSON where lsmigrate writes)."""
    return envelope.write(original_tree(rebuild_key(records, remainder), remainder))


# ---- cleanup -------------------------------------------------------------------------------------------------

#: What the page does with a verified key.
DELETE, STRIP, KEEP = "delete", "strip", "keep"


def cleanup_action(
    specs: Sequence[StoreSpec], *, quarantined: Sequence[str] = (), open_conflicts: bool = False
) -> tuple[str, str | None]:
    """(delete | strip | keep, the reason a key is kept) for a verified key of these stores.

    `quarantined` names the stores with a record in the quarantine: such a key is kept unless the store
    says `delete`. A key whose stores all say `delete` is deleted; one store saying `keep` keeps it.
    """
    if open_conflicts:
        return KEEP, "open_conflicts"
    cleanups = {spec.cleanup for spec in specs}
    if KEEP in cleanups:
        return KEEP, "store_keeps_key"
    by_name = {spec.name: spec for spec in specs}
    if any(by_name[name].cleanup != DELETE for name in quarantined if name in by_name):
        return KEEP, "quarantined_records"
    return (DELETE, None) if cleanups == {DELETE} else (STRIP, None)


def strip_edits(split: SplitKey, specs: Sequence[StoreSpec]) -> list[tuple[Place, Any]]:
    """The edits that take the migrated records out of the key as written: (place, new value) each; [] when
    there is nothing to take out. A container stays, empty; a document (one, scalar) stays as it is: the
    app's live state, on the server too, and remembered by the loader, so only a change migrates it again."""
    edits: list[tuple[Place, Any]] = []
    for spec in specs:
        if split.remainder["parts"][spec.name].get("absent") or spec.shape in SINGLE:
            continue
        place = split.places.get(spec.name)
        if place is None:
            raise SourceError(split.key, "records where they were before the app's upgrades", "them moved")
        if spec.shape == "entity_adapter":
            edits += [((*place, "ids"), []), ((*place, "entities"), {})]
        else:
            edits.append((place, {} if spec.shape == "by_id" else []))
    return edits


def strip_text(raw: str, envelope: Envelope, edits: Sequence[tuple[Place, Any]]) -> str:
    """The key's text with each edit made in place: every other byte as the app wrote it.

    Built-in envelopes are edited in their text (a JSON value replaced where it sits; redux-persist's
    inner JSON edited inside its string); an integrator's envelope reads, edits and writes the tree.
    """
    if not edits:
        return raw
    if envelope.loader is None:
        tree = envelope.read(raw)
        for place, value in edits:
            tree = with_value_at(tree, place, value)
        return envelope.write(tree)
    text = raw
    for place, value in edits:
        if envelope.loader == "json-values":

            def edit_inside(inner: Any, place: Place = place, value: Any = value) -> str:
                return _string(_replace(inner, place[1:], value))

            text = _replace(text, place[:1], edit_inside)
        else:
            text = _replace(text, place, value)
    if envelope.strip_meta:
        text = _strip_superjson_meta(text, [place for place, _ in edits])
    return text


def _string(text: str) -> str:
    """A string as JSON.stringify writes it (a lone surrogate escaped)."""
    return json_text(text)


def json_text(value: Any) -> str:
    """A JSON value as JSON.stringify writes it: compact, non-ASCII as is, a lone surrogate escaped."""
    encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if any(0xD800 <= ord(char) <= 0xDFFF for char in encoded):
        encoded = "".join(f"\\u{ord(c):04x}" if 0xD800 <= ord(c) <= 0xDFFF else c for c in encoded)
    return encoded


_DECODER = json.JSONDecoder()
_SPACE = " \t\n\r"


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _SPACE:
        i += 1
    return i


def _span(text: str, place: Place, start: int = 0) -> tuple[int, int]:
    """Where the value at `place` sits in JSON text: (start, end) offsets."""
    i = _skip(text, start)
    for step in place:
        if isinstance(step, int):
            i = _skip(text, i + 1)  # past "["
            for _ in range(step):
                _, i = _DECODER.raw_decode(text, i)
                i = _skip(text, _skip(text, i) + 1)  # past ","
            continue
        i = _skip(text, i + 1)  # past "{"
        while True:
            name, i = _DECODER.raw_decode(text, i)
            i = _skip(text, _skip(text, i) + 1)  # past ":"
            if name == step:
                break
            _, i = _DECODER.raw_decode(text, i)
            i = _skip(text, _skip(text, i) + 1)  # past ","
    _, end = _DECODER.raw_decode(text, i)
    return i, end


def _replace(text: str, place: Place, value: Any | Callable[[Any], str]) -> str:
    start, end = _span(text, place)
    replacement = value(json.loads(text[start:end])) if callable(value) else json_text(value)
    return text[:start] + replacement + text[end:]


def _strip_superjson_meta(text: str, places: Sequence[Place]) -> str:
    """superjson's `meta` without the annotations of values that were inside the emptied parts."""
    tree = json.loads(text)
    meta = tree.get("meta")
    if not isinstance(meta, dict):
        return text
    prefixes = [".".join(str(step) for step in place[1:]) for place in places]  # paths in `json`

    def inside(path: str) -> bool:
        return any(path.startswith(prefix + ".") for prefix in prefixes)

    def emptied(path: str, note: Any) -> Any:
        # A Map or Set emptied in place keeps its own type; the annotations of its entries go.
        if path in prefixes and isinstance(note, list) and len(note) == 2 and isinstance(note[1], dict):
            return [note[0]]
        return note

    values = meta.get("values")
    kept_meta = dict(meta)
    if isinstance(values, dict):
        kept = {path: emptied(path, note) for path, note in values.items() if not inside(path)}
        if kept != values:
            kept_meta["values"] = kept
    equalities = meta.get("referentialEqualities")
    if isinstance(equalities, dict):
        kept_eq = {path: others for path, others in equalities.items() if not inside(path)}
        if kept_eq != equalities:
            kept_meta["referentialEqualities"] = kept_eq
    if kept_meta == meta:
        return text
    return _replace(text, ("meta",), kept_meta)
