"""JSON text with orjson's speed and the standard library's range: what is written, refused and read back."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask.json.provider import DefaultJSONProvider

from lsmigrate.server.jsontext import FastJSONProvider, dumps_bytes, dumps_text, loads

DUMPS = pytest.mark.parametrize("dumps", [dumps_bytes, dumps_text], ids=["bytes", "text"])


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int


def as_text(dumped: str | bytes) -> str:
    return dumped.decode("utf-8") if isinstance(dumped, bytes) else dumped


@DUMPS
@pytest.mark.parametrize(
    "value",
    [2**70 + 1, -(2**70) - 1, 2**64, -(2**63) - 1, {"n": [2**70 + 1, {"m": -(2**70) - 1}]}],
    ids=["2**70+1", "-2**70-1", "2**64", "-2**63-1", "nested"],
)
def test_integers_past_64_bits_round_trip_exactly(dumps: Callable[[Any], str | bytes], value: Any) -> None:
    dumped = dumps(value)
    assert json.loads(dumped) == value
    assert loads(dumped) == value
    assert loads(as_text(dumped)) == value
    assert "e" not in as_text(dumped) and "." not in as_text(dumped)  # written as integers, not floats


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1180591620717411303425", 2**70 + 1),
        ("[-1180591620717411303425]", [-(2**70) - 1]),
        ('{"n":18446744073709551617}', {"n": 2**64 + 1}),
    ],
)
def test_loads_keeps_a_long_integer_exact(text: str, expected: Any) -> None:
    assert loads(text) == expected  # as a float it would be 2**70 or 2**64, not equal
    assert loads(text.encode()) == expected


@DUMPS
@pytest.mark.parametrize("value", ["\ud800", "a\udfffb", {"title": "x\ud83d"}], ids=["high", "low", "in-a-dict"])
def test_a_lone_surrogate_is_written_escaped(dumps: Callable[[Any], str | bytes], value: Any) -> None:
    dumped = as_text(dumps(value))
    assert "\\ud" in dumped and dumped.isascii()
    assert json.loads(dumped) == value


@pytest.mark.parametrize("value", ["\ud800", {"title": "a\udfffb"}], ids=["high", "low-in-a-dict"])
def test_loads_reads_back_an_escaped_lone_surrogate(value: Any) -> None:
    assert loads(dumps_text(value)) == value


@DUMPS
@pytest.mark.parametrize(
    "value",
    [{1: "a", 2.5: "b", None: "c", False: "d"}, {1: "int", "1": "str"}, [{7: {8: "nested"}}]],
    ids=["int-float-none-bool", "clashing", "nested"],
)
def test_non_string_keys_are_written_as_json_dumps_writes_them(dumps: Callable[[Any], str | bytes], value: Any) -> None:
    assert as_text(dumps(value)) == json.dumps(value, separators=(",", ":"))


@DUMPS
@pytest.mark.parametrize(
    "value",
    [
        datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2024, 1, 2, 3, 4, 5),
        date(2024, 1, 2),
        time(3, 4, 5),
        Decimal("1.50"),
        Point(1),
        {1, 2},
        b"bytes",
        {"deep": [{"at": datetime(2024, 1, 2, tzinfo=UTC)}]},
        {(1, 2): "a tuple key"},
    ],
    ids=lambda value: type(value).__name__,
)
def test_objects_json_dumps_refuses_are_refused_too(dumps: Callable[[Any], str | bytes], value: Any) -> None:
    with pytest.raises(TypeError):
        json.dumps(value)
    with pytest.raises(TypeError):
        dumps(value)


@DUMPS
@pytest.mark.parametrize(
    ("value", "text"),
    [
        (uuid.UUID("12345678-1234-5678-1234-567812345678"), '"12345678-1234-5678-1234-567812345678"'),
        (Colour.RED, '"red"'),
    ],
    ids=["uuid", "enum"],
)
def test_a_uuid_or_an_enum_member_is_written_as_its_text(
    dumps: Callable[[Any], str | bytes], value: Any, text: str
) -> None:
    # The documented difference from json.dumps (which refuses both).
    assert as_text(dumps(value)) == text


@DUMPS
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_nan_and_the_infinities_are_written_as_null(dumps: Callable[[Any], str | bytes], value: float) -> None:
    # The documented difference: json.dumps writes NaN, which is not JSON and which jsonb refuses.
    assert as_text(dumps([value])) == "[null]"


@pytest.mark.parametrize(
    "text",
    [
        '"1234567890123456789"',
        '{"id":"12345678901234567890123","n":1}',
        '["task-1234567890123456789012", 2.5, null, true]',
        '{"1234567890123456789": "as a key"}',
        "1234567890123456789",
    ],
)
def test_a_run_of_19_digits_decodes_right(text: str) -> None:
    assert loads(text) == json.loads(text)
    assert loads(text.encode()) == json.loads(text)


@pytest.fixture
def providers() -> Iterator[tuple[FastJSONProvider, DefaultJSONProvider]]:
    """(the app's provider, Flask's own) on one plain app, kept alive here: a provider holds its app weakly."""
    app = Flask(__name__)
    yield FastJSONProvider(app), DefaultJSONProvider(app)


@pytest.mark.parametrize(
    "value",
    [
        {"when": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "b": 1},
        {"z": uuid.UUID("12345678-1234-5678-1234-567812345678"), "a": [1]},
        [date(2024, 1, 2), Decimal("1.50"), Point(3)],
        {"outer": {"id": uuid.uuid4(), "at": datetime(2030, 6, 1, tzinfo=UTC)}, "n": 2**70 + 1},
    ],
    ids=["datetime", "uuid", "date-decimal-dataclass", "nested"],
)
def test_a_response_holding_objects_is_written_as_flask_writes_it(
    providers: tuple[FastJSONProvider, DefaultJSONProvider], value: Any
) -> None:
    fast, default = providers
    ours, flasks = fast.response(value), default.response(value)
    assert ours.get_data() == flasks.get_data()
    assert ours.mimetype == flasks.mimetype == "application/json"


def test_a_response_has_its_keys_sorted_and_its_text_compact(
    providers: tuple[FastJSONProvider, DefaultJSONProvider],
) -> None:
    fast, _ = providers
    value = {"b": [1, {"y": True, "x": None}], "a": {"d": "é", "c": 2.5}}
    assert fast.response(value).get_data(as_text=True) == '{"a":{"c":2.5,"d":"é"},"b":[1,{"x":null,"y":true}]}\n'


@pytest.mark.parametrize(
    "value",
    [
        {"title": "Fix ünïcode 🐍", "tags": ["a", "b"], "n": 3, "ratio": 0.1, "done": False, "pr": None},
        {"big": 2**70 + 1, "small": -(2**63), "nested": {"list": [[], {}, [{"k": "v"}]]}},
        [1, "two", 3.0, None],
    ],
    ids=["record", "numbers", "list"],
)
def test_a_plain_value_decodes_as_flasks_response_does(
    providers: tuple[FastJSONProvider, DefaultJSONProvider], value: Any
) -> None:
    fast, default = providers
    assert json.loads(fast.response(value).get_data()) == json.loads(default.response(value).get_data()) == value


def test_dumps_with_options_is_flasks(providers: tuple[FastJSONProvider, DefaultJSONProvider]) -> None:
    fast, default = providers
    value = {"b": 1, "a": [datetime(2024, 1, 2, tzinfo=UTC)]}
    assert fast.dumps(value, indent=2) == default.dumps(value, indent=2)
