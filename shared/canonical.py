"""Canonical JSON and the digests built on it.

The canonical form of a JSON value is `json.dumps` with sorted keys, no
insignificant whitespace and no ASCII escaping, encoded as UTF-8 (a lone
surrogate, which a JavaScript string can hold, is encoded as its three
bytes). Numbers: integers in decimal; a float that holds a whole number below
2**53 is written as that integer, so `1.0` (which `JSON.stringify` writes as
`1`) and `1` digest alike; any other float in Python's shortest round-trip
form (`0.1`, `1e+16`, `1.5e-07`). NaN and infinities are not JSON and are
refused, and so is a number too large for a double (`1e400`, which would
read as infinity).

`parse_json` reads JSON text as it is, the last of a repeated name winning
(a localStorage value is never refused for that); `parse_json_strict`, for
what a client sends, refuses an object that names a member twice.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from itertools import accumulate
from typing import Any

_SAFE_INTEGER = 2**53
# Every whole float below 2**53 serialises as digits, ".0", then a delimiter.
_WHOLE_FLOAT = re.compile(r"\.0(?=[,\]}]|$)")
# In encoded text: a string (skipped whole, so its content is never touched), or a whole float.
_STRING_OR_WHOLE_FLOAT = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|(-?[0-9]+)\.0(?=[,\]}]|$)', re.DOTALL)
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def _whole_float_as_integer(match: re.Match[str]) -> str:
    digits = match.group(1)
    if digits is None or abs(number := int(digits)) >= _SAFE_INTEGER:
        return match.group(0)
    return str(number)  # "-0.0" becomes "0", as JSON.stringify writes it


def canonical_json(value: Any) -> str:
    """Serialise a JSON value in lsmigrate's canonical form."""
    text = _encode(value)
    # Most records hold no whole float; the second pass runs only when one may be present. It
    # rewrites the text rather than walking the value: a recursive walk took two Python frames
    # per level and raised RecursionError near 500 levels, on values json parses and encodes.
    if _WHOLE_FLOAT.search(text) is None:
        return text
    return _STRING_OR_WHOLE_FLOAT.sub(_whole_float_as_integer, text)


def digest(value: Any) -> str:
    """sha256 (hex) of a JSON value's canonical form."""
    return hashlib.sha256(canonical_json(value).encode("utf-8", "surrogatepass")).hexdigest()


def manifest_digest(record_digests: Iterable[str]) -> str:
    """Digest of a key's records: sha256 over their digests in source order, one per line."""
    hasher = hashlib.sha256()
    for record_digest in record_digests:
        hasher.update(record_digest.encode("ascii"))
        hasher.update(b"\n")
    return hasher.hexdigest()


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    # json reads 1e400 as infinity, which no JSON text can then hold; refused here, where it is
    # read, rather than when a record holding it is digested.
    number = float(text)
    if number - number != 0:
        raise ValueError("a number too large for a double")
    return number


# Bytes that are not a quote or a bracket (deleted), and each bracket's step in nesting depth.
_NOT_STRUCTURE = bytes(byte for byte in range(256) if byte not in b'"[]{}')
_DEPTH_STEP = [1 if byte in b"[{" else -1 if byte in b"]}" else 0 for byte in range(256)]


def nested_deeper_than(text: str, limit: int) -> bool:
    """True when JSON text nests arrays and objects more than `limit` levels deep.

    Counts the brackets outside strings with C-speed bytes operations, no Python loop; for
    text that is not JSON the answer covers at least what a parser reads before it fails.
    """
    if len(text) <= limit:
        return False
    if '\\"' in text:
        # Drop escape pairs ("\\\\" first, then '\\"') so that every quote left delimits a string.
        text = text.replace("\\\\", "").replace('\\"', "")
    # UTF-8 never uses an ASCII byte inside a multi-byte character.
    quotes_and_brackets = text.encode("utf-8", "surrogatepass").translate(None, _NOT_STRUCTURE)
    brackets = b"".join(quotes_and_brackets.split(b'"')[::2])
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0) > limit


def parse_json(text: str, *, max_depth: int | None = None) -> Any:
    """Parse JSON text strictly; NaN, Infinity, 1e400 and nesting Python cannot hold raise ValueError.

    With `max_depth`, text nested deeper is refused before it is parsed: Pyodide's parser
    overflows the JavaScript stack a few thousand levels down, a fatal error for the page
    rather than a RecursionError.
    """
    if max_depth is not None and nested_deeper_than(text, max_depth):
        raise ValueError(f"nested more than {max_depth} levels deep")
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError as error:
        raise ValueError("nested too deeply") from error


class RepeatedName(ValueError):
    """A JSON object that names one member twice: the name, and the place of the object (its keys and indexes)."""

    def __init__(self, name: str, place: tuple[str | int, ...]) -> None:
        super().__init__(f"the object at {_place_text(place)} names {_shown(name)} twice")
        self.name = name
        self.place = place


#: How much of a name, and of a place, a message quotes: a body may hold a name of megabytes.
_SHOWN_NAME = 64
_SHOWN_PLACE = 200
_PLAIN_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


def _shown(name: str) -> str:
    cut = name if len(name) <= _SHOWN_NAME else name[: _SHOWN_NAME - 1] + "…"
    return json.dumps(cut, ensure_ascii=False)


def _step_text(step: str | int) -> str:
    if isinstance(step, int):
        return f"[{step}]"
    if len(step) <= _SHOWN_NAME and _PLAIN_NAME.fullmatch(step):
        return f".{step}"
    return f"[{_shown(step)}]"


def _place_text(place: tuple[str | int, ...]) -> str:
    text = "$" + "".join(map(_step_text, place))
    if len(text) <= _SHOWN_PLACE:
        return text
    half = _SHOWN_PLACE // 2
    return text[:half] + "…" + text[-half:]


#: A place as a chain from the innermost step out: (the parent's link, the step), None at the root.
_Link = tuple[Any, str | int] | None


class _Members(list[tuple[str, Any]]):
    """An object's members as written, repeats kept: what the slow search for a repeated name reads."""


class _Repeated(Exception):
    """Some object names a member twice; which one, and where, is left to `_first_repeated_name`."""


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Called by json's C scanner once per object: a dict and a length compare, the name sought only on failure.
    value = dict(pairs)
    if len(value) != len(pairs):
        raise _Repeated
    return value


def _first_repeated_name(text: str) -> RepeatedName:
    """The first object, in text order, that names a member twice, found in text known to hold one."""
    root = json.loads(text, object_pairs_hook=_Members, parse_constant=_refuse_constant, parse_float=_finite_float)
    # Iterative, and each entry links to its parent's rather than copying a place: text nested 900 levels
    # deep with many values would otherwise cost its size times its depth.
    stack: list[tuple[Any, _Link]] = [(root, None)]
    while stack:
        value, link = stack.pop()
        if isinstance(value, _Members):
            seen: set[str] = set()
            for name, _ in value:
                if name in seen:
                    place: list[str | int] = []
                    while link is not None:
                        link, step = link
                        place.append(step)
                    return RepeatedName(name, tuple(reversed(place)))
                seen.add(name)
            stack.extend((member, (link, name)) for name, member in reversed(value))
        elif isinstance(value, list):
            stack.extend((item, (link, index)) for index, item in reversed(list(enumerate(value))))
    raise AssertionError("no repeated name in text that holds one")


def parse_json_strict(text: str) -> Any:
    """`parse_json`, refusing also an object that names a member twice, at any depth (RepeatedName).

    For what a client sends; never for a source value (a localStorage value is read as it is, with
    `parse_json`, where the last of a repeated name wins). Names are compared once decoded:
    "a" and "\\u0061" are the same name.
    """
    try:
        try:
            return json.loads(
                text, object_pairs_hook=_unique_members, parse_constant=_refuse_constant, parse_float=_finite_float
            )
        except _Repeated:
            # Text past the repeat was not read yet: reading it again may still find it too deep, or not JSON.
            raise _first_repeated_name(text) from None
    except RecursionError as error:
        raise ValueError("nested too deeply") from error
