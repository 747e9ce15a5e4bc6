"""Record shapes: how a store's records sit in its part of a key (design §10).

    array           [record, ...]
    by_id           {"<id>": record, ...}: the values are the records, in the object's order
    entity_adapter  Redux Toolkit's {"ids": [...], "entities": {"<id>": record}, ...}: the records
                    in `ids` order (then any entity `ids` does not list)
    entries         a Map's entries [[key, record], ...]
    one             the value is one record
    scalar          a boolean, number, string or null, kept as the one-value document {"value": v}

`take(container)` answers the records, the container as it stays once they are
taken out (`emptied`: [], {}, the adapter with empty ids and entities; None for
one and scalar), and what `put` needs to give the container back exactly
(`info`: the ids, keys and orders records alone do not tell). `put(emptied,
records, info)` is its inverse. A container of the wrong kind is a ShapeError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lsmigrate.shared.canonical import canonical_json

SHAPES = ("array", "by_id", "entity_adapter", "entries", "one", "scalar")
#: Shapes whose part is one value rather than a container of records.
SINGLE = frozenset({"one", "scalar"})


class ShapeError(ValueError):
    """A container that is not of its store's shape: what was expected."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


@dataclass(frozen=True, slots=True)
class Taken:
    """A container's records, the container without them, and what putting them back needs."""

    records: list[Any]
    emptied: Any
    info: dict[str, Any]


def object_key(value: Any) -> str:
    """The object key JavaScript makes of an id (String(id)): strings as they are, numbers as JSON writes them."""
    return value if isinstance(value, str) else canonical_json(value)


def take(shape: str, container: Any) -> Taken:
    """The records of a container of `shape` (see the module docstring)."""
    if shape == "array":
        if not isinstance(container, list):
            raise ShapeError("an array")
        return Taken(list(container), [], {})
    if shape == "by_id":
        if not isinstance(container, dict):
            raise ShapeError("an object of records by id")
        return Taken(list(container.values()), {}, {"keys": list(container)})
    if shape == "entity_adapter":
        return _take_entities(container)
    if shape == "entries":
        if not isinstance(container, list) or not all(
            isinstance(entry, list) and len(entry) == 2 for entry in container
        ):
            raise ShapeError("an array of [key, value] entries")
        return Taken([entry[1] for entry in container], [], {"keys": [entry[0] for entry in container]})
    if shape == "one":
        return Taken([container], None, {})
    if shape == "scalar":
        if isinstance(container, dict | list):
            raise ShapeError("a boolean, number, string or null")
        return Taken([{"value": container}], None, {})
    raise ValueError(f"unknown shape {shape!r}")


def _take_entities(container: Any) -> Taken:
    if (
        not isinstance(container, dict)
        or not isinstance(container.get("ids"), list)
        or not isinstance(container.get("entities"), dict)
    ):
        raise ShapeError("an entity adapter's {ids, entities}")
    ids, entities = container["ids"], container["entities"]
    keys = [object_key(entity_id) for entity_id in ids if object_key(entity_id) in entities]
    listed = set(keys)
    if len(listed) != len(keys):
        raise ShapeError("an entity adapter whose ids are unique")
    keys += [key for key in entities if key not in listed]  # entities `ids` does not list, in their order
    info: dict[str, Any] = {"ids": ids}
    if keys != [object_key(entity_id) for entity_id in ids]:
        info["keys"] = keys
    order = list(entities)
    if order != keys:
        info["order"] = order
    emptied = {**container, "ids": [], "entities": {}}
    return Taken([entities[key] for key in keys], emptied, info)


def put(shape: str, emptied: Any, records: list[Any], info: dict[str, Any]) -> Any:
    """The container `take` was given, from what it answered."""
    if shape == "array":
        return list(records)
    if shape == "by_id":
        return dict(zip(info["keys"], records, strict=True))
    if shape == "entries":
        return [[key, record] for key, record in zip(info["keys"], records, strict=True)]
    if shape == "one":
        (record,) = records
        return record
    if shape == "scalar":
        (record,) = records
        return record["value"] if isinstance(record, dict) and "value" in record else record
    if shape == "entity_adapter":
        ids = info["ids"]
        keys = info.get("keys") or [object_key(entity_id) for entity_id in ids]
        by_key = dict(zip(keys, records, strict=True))
        entities = {key: by_key[key] for key in info.get("order", keys)}
        return {**emptied, "ids": ids, "entities": entities}
    raise ValueError(f"unknown shape {shape!r}")


def count(shape: str, container: Any) -> int:
    """How many records a container holds (0 for one of the wrong kind)."""
    try:
        return len(take(shape, container).records)
    except ShapeError:
        return 0
