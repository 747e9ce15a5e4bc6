"""Paths into a key's state: where a store's part sits (design §10, §11).

    "todos.items"                                   names, separated by dots
    "clientState.queries[queryKey=[\"todos\"]].state.data"
                                                    a step may select, inside an array, the first
                                                    element whose field equals a JSON value

A parsed path is a tuple of steps: a name (str), or a `Select(field, value)`.
`locate` follows a path through a JSON value and answers the concrete place it
reached: the object keys and array indexes taken, so that the very same place
can be found again once the selected element has been emptied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from lsmigrate.shared.canonical import canonical_json


@dataclass(frozen=True, slots=True)
class Select:
    """A step that selects, in an array, the first object whose `field` equals `value`."""

    field: str
    value: Any

    def matches(self, element: Any) -> bool:
        """True when `element` is an object whose field equals the value (as canonical JSON)."""
        return (
            isinstance(element, dict)
            and self.field in element
            and canonical_json(element[self.field]) == canonical_json(self.value)
        )


Step = str | Select
Path = tuple[Step, ...]
#: A place found in a value: object keys and array indexes.
Place = tuple[str | int, ...]


class PathError(ValueError):
    """A path that cannot be read (bad syntax), with what was expected where."""


_DECODER = json.JSONDecoder()


def parse_path(text: str) -> Path:
    """The steps of a path; "" is the whole state. PathError on bad syntax."""
    steps: list[Step] = []
    i = 0
    while i < len(text):
        if text[i] == "[":
            equals = text.find("=", i)
            if equals < 0:
                raise PathError(f"a [field=value] step at position {i}: found no '='")
            field = text[i + 1 : equals]
            if not field or any(char in field for char in ".[]"):
                raise PathError(f"a field name in the [field=value] step at position {i}: found {field!r}")
            try:
                value, end = _DECODER.raw_decode(text, equals + 1)
            except json.JSONDecodeError as error:
                raise PathError(f"a JSON value after '{field}=' at position {equals + 1}") from error
            if end >= len(text) or text[end] != "]":
                raise PathError(f"']' closing the [field=value] step at position {end}")
            steps.append(Select(field, value))
            i = end + 1
            if i < len(text) and text[i] == ".":
                i += 1
                if i == len(text) or text[i] in ".[":
                    raise PathError(f"a name after the dot at position {i - 1}")
            continue
        end = i
        while end < len(text) and text[end] not in ".[":
            end += 1
        if end == i:
            raise PathError(f"a name at position {i}: found {text[i]!r}")
        steps.append(text[i:end])
        i = end
        if i < len(text) and text[i] == ".":
            i += 1
            if i == len(text) or text[i] in ".[":
                raise PathError(f"a name after the dot at position {i - 1}")
    return tuple(steps)


def path_text(steps: Path) -> str:
    """A path written back as text (what `parse_path` reads)."""
    out = ""
    for step in steps:
        if isinstance(step, Select):
            value = json.dumps(step.value, separators=(",", ":"), ensure_ascii=False)
            out += f"[{step.field}={value}]"
        else:
            out += ("." if out else "") + step
    return out


def describe_steps(steps: Path) -> list[Any]:
    """A path as JSON: names as strings, selections as [field, value] (what the loader walks)."""
    return [[step.field, step.value] if isinstance(step, Select) else step for step in steps]


def overlaps(first: Path, second: Path) -> bool:
    """True when one path is the other or inside it: two stores cannot claim them both."""
    shorter = min(len(first), len(second))
    return first[:shorter] == second[:shorter]


class Missing(Exception):
    """A path that leads nowhere: `depth` steps were followed; `found` describes what stopped it."""

    def __init__(self, depth: int, container: Any, absent: bool) -> None:
        super().__init__(depth)
        self.depth = depth
        self.container = container
        #: True when the next name or selected element is simply not there; False when the value on
        #: the way is of the wrong kind (a string where an object was expected).
        self.absent = absent


def locate(value: Any, steps: Path) -> tuple[Place, Any]:
    """The place `steps` reach in `value` and the value there; Missing when they reach nothing."""
    place: list[str | int] = []
    for depth, step in enumerate(steps):
        if isinstance(step, Select):
            if not isinstance(value, list):
                raise Missing(depth, value, absent=False)
            index = next((i for i, element in enumerate(value) if step.matches(element)), None)
            if index is None:
                raise Missing(depth, value, absent=True)
            place.append(index)
            value = value[index]
        else:
            if not isinstance(value, dict):
                raise Missing(depth, value, absent=False)
            if step not in value:
                raise Missing(depth, value, absent=True)
            place.append(step)
            value = value[step]
    return tuple(place), value


def value_at(value: Any, place: Place) -> Any:
    """The value at a concrete place (KeyError/IndexError/TypeError when it is not there)."""
    for step in place:
        value = value[step]
    return value


def with_value_at(value: Any, place: Place, new: Any) -> Any:
    """`value` with the value at `place` replaced by `new`: copies along the place, shares the rest."""
    if not place:
        return new
    head, rest = place[0], place[1:]
    if isinstance(value, dict):
        copy: Any = dict(value)
    else:
        copy = list(value)
    copy[head] = with_value_at(value[head], rest, new)
    return copy


def without_value_at(value: Any, place: Place) -> Any:
    """`value` with the object member at `place` removed (copies along the place)."""
    if len(place) == 1:
        copy = dict(value)
        del copy[place[0]]
        return copy
    return with_value_at(value, place[:-1], without_value_at(value_at(value, place[:-1]), place[-1:]))
