"""marshmallow fields that convert lenient source values into typed columns.

Each field converts a present, non-null source value in one call,
`convert(value) -> (column value, exact)`: `exact` is true when the field's
inverse (`to_source`) gives the very same value back, so the mapping knows
without a second pass whether it must keep the original in the row's
metadata; `warning_code` then says why it differed. A column value of None
means "use the column's default". A value that cannot be converted without
guessing raises a ValidationError, which sends the record to the quarantine;
its message names the expected and found JSON types, never the value.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Any

from marshmallow import ValidationError, fields

from lsmigrate.shared.canonical import canonical_json
from lsmigrate.shared.timestamps import JS_ISO, column_timestamp, format_timestamp, is_epoch_ms, parse_timestamp


def json_type(value: Any) -> str:
    """The JSON name of a Python value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class SourceField(fields.Field):
    """A source field mapped onto one column; `None` loads as `None`."""

    #: A reason code for the quarantine when `convert` refuses a value.
    reason_code = "wrong_type"

    def __init__(self, *, default: Any = None, **kwargs: Any) -> None:
        super().__init__(allow_none=True, **kwargs)
        self.column_default = default

    #: An absent or null value becomes the default without a warning (a missing flag is false).
    quiet_default = False

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        column, _ = self.convert(value)
        return self.column_default if column is None else column

    def convert(self, value: Any) -> tuple[Any, bool]:
        """The column value for a present, non-null source value, and whether it is exact.

        The field's marshmallow validators run on the column value afterwards.
        """
        return value, True

    def to_source(self, column_value: Any) -> Any:
        """The source value a column value stands for."""
        return column_value

    def warning_code(self, original: Any) -> str:
        """Why the original could not be rebuilt from the column."""
        return "value_converted"


def _refuse(expected: str, value: Any) -> ValidationError:
    return ValidationError(f"expected {expected}, found {json_type(value)}")


class Text(SourceField):
    """A string; a number is written as text the way JSON writes it (the original kept)."""

    def convert(self, value: Any) -> tuple[Any, bool]:
        if type(value) is str:
            return value, True
        if isinstance(value, int | float) and not isinstance(value, bool):
            return canonical_json(value), False
        raise _refuse("text", value)

    def warning_code(self, original: Any) -> str:
        return "number_as_text" if original is not None else "value_defaulted"


class Title(Text):
    """A title: kept whole, never truncated; missing or empty becomes the default."""

    def convert(self, value: Any) -> tuple[Any, bool]:
        if value == "":
            return None, False
        return super().convert(value)

    def warning_code(self, original: Any) -> str:
        if original is None or original == "":
            return f"{self.name}_missing"
        return super().warning_code(original)


class Flag(SourceField):
    """A boolean; "true"/"false" and 0/1 are read as booleans (the original kept)."""

    _WORDS = {"true": True, "false": False, "1": True, "0": False}
    quiet_default = True

    def convert(self, value: Any) -> tuple[Any, bool]:
        if value is True or value is False:
            return value, True
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value), False
        if isinstance(value, str) and value.strip().lower() in self._WORDS:
            return self._WORDS[value.strip().lower()], False
        raise _refuse("a boolean", value)

    def warning_code(self, original: Any) -> str:
        return "flag_converted"


class JsonObject(SourceField):
    """A JSON object kept as it is."""

    def convert(self, value: Any) -> tuple[Any, bool]:
        if type(value) is dict:
            return value, True
        raise _refuse("an object", value)


class Choice(SourceField):
    """A spelling mapped onto a column value; anything unknown becomes the default."""

    def __init__(self, spellings: dict[str, str], variants: dict[str, str], **kwargs: Any):
        super().__init__(**kwargs)
        self.spellings = spellings
        self.variants = variants
        self.inverse = {column: spelling for spelling, column in spellings.items()}

    @staticmethod
    def _fold(value: str) -> str:
        return value.strip().lower().replace("-", "_").replace(" ", "_")

    def convert(self, value: Any) -> tuple[Any, bool]:
        if type(value) is str:
            column = self.spellings.get(value)
            if column is not None:
                return column, True
            return self.variants.get(self._fold(value), self.column_default), False
        return self.column_default, False

    def to_source(self, column_value: Any) -> Any:
        return self.inverse.get(column_value, column_value)

    def warning_code(self, original: Any) -> str:
        if original is None:
            return f"{self.name}_missing"
        if isinstance(original, str) and self._fold(original) in self.variants:
            return f"{self.name}_variant"
        return f"{self.name}_unknown"


class Timestamp(SourceField):
    """ISO 8601 or epoch milliseconds, to an ISO UTC column value.

    An unparseable value converts to None; the mapping then falls back to
    the record's other timestamp or the migration time.
    """

    def convert(self, value: Any) -> tuple[Any, bool]:
        if type(value) is str and JS_ISO.fullmatch(value) and value[11:13] != "24":
            # The form JavaScript writes: only the calendar needs checking. Hour 24, which
            # toISOString never writes, is not exact: Python 3.12+ reads T24:00 as the next
            # day's midnight, so it takes the general path and keeps its original.
            try:
                datetime.fromisoformat(value)
            except ValueError:
                return None, False
            return f"{value[:-1]}000+00:00", True
        moment = parse_timestamp(value)
        if moment is None:
            return None, False
        return column_timestamp(moment), format_timestamp(moment) == value

    def to_source(self, column_value: Any) -> Any:
        if column_value is None:
            return None
        moment = parse_timestamp(column_value)
        return None if moment is None else format_timestamp(moment)

    def warning_code(self, original: Any) -> str:
        if original is None:
            return "timestamp_missing"
        if parse_timestamp(original) is None:
            return "timestamp_unparseable"
        if is_epoch_ms(original):
            return "timestamp_epoch_ms"
        return "timestamp_normalised"


# The form a date-only value is kept in: what `Date.prototype.toISOString().slice(0, 10)` writes.
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class Date(SourceField):
    """A calendar date, kept as ISO date text ("2025-06-09"); a host table's Date column gets it as a date.

    An ISO 8601 time or epoch milliseconds becomes its UTC date (the original kept); anything
    else, a day the calendar lacks included, is refused: a date is never guessed.
    """

    _EXPECTED = "a date (YYYY-MM-DD, an ISO 8601 time or epoch milliseconds)"

    def convert(self, value: Any) -> tuple[Any, bool]:
        if type(value) is str and _ISO_DATE.fullmatch(value):
            try:
                # By hand: date.fromisoformat reads more forms on some Pythons than on others.
                date(int(value[:4]), int(value[5:7]), int(value[8:]))
            except ValueError:
                raise _refuse(self._EXPECTED, value) from None
            return value, True
        moment = parse_timestamp(value)
        if moment is None:
            raise _refuse(self._EXPECTED, value)
        return moment.date().isoformat(), False

    def to_source(self, column_value: Any) -> Any:
        if isinstance(column_value, date):  # a datetime too
            column_value = column_value.isoformat()
        if isinstance(column_value, str) and not _ISO_DATE.fullmatch(column_value):
            # A timestamptz column read back holds the date's midnight UTC, in whatever offset.
            moment = parse_timestamp(column_value)
            return column_value if moment is None else moment.date().isoformat()
        return column_value

    def warning_code(self, original: Any) -> str:
        if original is None:
            return "value_defaulted"
        return "date_epoch_ms" if is_epoch_ms(original) else "date_from_timestamp"


class Secret(SourceField):
    """A secret string: never put in a warning, an error or a log line."""

    def convert(self, value: Any) -> tuple[Any, bool]:
        if type(value) is str:
            return value, True
        raise _refuse("a secret string", value)


# A JSON number written as text: what `JSON.stringify` could have written, nothing looser.
# Longer text is refused before it is read (Python refuses int() of 4,300 digits and more).
_NUMBER_TEXT_LIMIT = 400
_NUMBER_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)(?P<fraction>\.[0-9]+)?(?P<exponent>[eE][+-]?[0-9]+)?")


def _number_from_text(value: str) -> int | float | None:
    """The number JSON number text stands for; None for other text or a number no double holds."""
    match = _NUMBER_TEXT.fullmatch(value) if len(value) <= _NUMBER_TEXT_LIMIT else None
    if match is None:
        return None
    if match["fraction"] is None and match["exponent"] is None:
        return int(value)
    number = float(value)
    return number if math.isfinite(number) else None


def _finite_number(value: Any) -> bool:
    return type(value) is int or (type(value) is float and math.isfinite(value))


class Integer(SourceField):
    """An integer; a whole float (3.0) or integer text ("42") is read as one (the original kept)."""

    def convert(self, value: Any) -> tuple[Any, bool]:
        if type(value) is int:
            return value, True
        number: Any = _number_from_text(value) if type(value) is str else value
        if _finite_number(number) and number == int(number):
            return int(number), False
        raise _refuse("an integer", value)

    def warning_code(self, original: Any) -> str:
        return "number_from_text" if isinstance(original, str) else "value_converted"


class Number(SourceField):
    """An integer or a float; number text ("4.5") is read as the number (the original kept)."""

    def convert(self, value: Any) -> tuple[Any, bool]:
        if _finite_number(value):
            return value, True
        number = _number_from_text(value) if type(value) is str else None
        if number is not None:
            return number, False
        raise _refuse("a number", value)

    def warning_code(self, original: Any) -> str:
        return "number_from_text" if isinstance(original, str) else "value_converted"


class JsonArray(SourceField):
    """A JSON array kept as it is."""

    def convert(self, value: Any) -> tuple[Any, bool]:
        if type(value) is list:
            return value, True
        raise _refuse("an array", value)


class AnyJson(SourceField):
    """Any JSON value kept as it is: never refused."""
