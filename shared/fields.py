"""marshmallow fields that convert lenient source values into typed columns.

Every field knows its inverse (`to_source`): the source value that the
column value stands for. Where the inverse does not give the original back,
the mapping keeps the original in the row's metadata, and `warning_code`
says why it differed. A value that cannot be converted without guessing
raises a ValidationError, which sends the record to the quarantine.
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields

from lsmigrate.shared.timestamps import column_timestamp, format_timestamp, parse_timestamp


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

    def __init__(self, *, default: Any = None, **kwargs: Any) -> None:
        super().__init__(allow_none=True, **kwargs)
        self.column_default = default

    def to_source(self, column_value: Any) -> Any:
        """The source value a column value stands for."""
        return column_value

    def warning_code(self, original: Any) -> str:
        """Why the original could not be rebuilt from the column."""
        return "value_converted"


class Text(SourceField):
    """A string; a number is written as text (the original kept)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise ValidationError(f"expected text, found {json_type(value)}")

    def warning_code(self, original: Any) -> str:
        return "number_as_text" if original is not None else "value_defaulted"


class Title(Text):
    """A title: kept whole; missing or empty becomes the default."""

    def warning_code(self, original: Any) -> str:
        if original is None or original == "":
            return f"{self.name}_missing"
        return super().warning_code(original)


class Flag(SourceField):
    """A boolean; "true"/"false" and 0/1 are read as booleans (the original kept)."""

    _WORDS = {"true": True, "false": False, "1": True, "0": False}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in self._WORDS:
            return self._WORDS[value.strip().lower()]
        raise ValidationError(f"expected a boolean, found {json_type(value)}")

    def warning_code(self, original: Any) -> str:
        return "flag_converted"


class JsonObject(SourceField):
    """A JSON object kept as it is."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict:
        if isinstance(value, dict):
            return value
        raise ValidationError(f"expected an object, found {json_type(value)}")


class Choice(SourceField):
    """A spelling mapped onto a column value; anything unknown becomes the default."""

    def __init__(self, spellings: dict[str, str], variants: dict[str, str], **kwargs: Any):
        super().__init__(**kwargs)
        self.spellings = spellings
        self.variants = variants
        self.inverse = {column: spelling for spelling, column in spellings.items()}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, str):
            if value in self.spellings:
                return self.spellings[value]
            folded = value.strip().lower().replace("-", "_").replace(" ", "_")
            if folded in self.variants:
                return self.variants[folded]
        return self.column_default

    def to_source(self, column_value: Any) -> Any:
        return self.inverse.get(column_value, column_value)

    def warning_code(self, original: Any) -> str:
        if original is None:
            return f"{self.name}_missing"
        if isinstance(original, str):
            folded = original.strip().lower().replace("-", "_").replace(" ", "_")
            if folded in self.variants:
                return f"{self.name}_variant"
        return f"{self.name}_unknown"


class Timestamp(SourceField):
    """ISO 8601 or epoch milliseconds, to an ISO UTC column value.

    An unparseable value loads as None; the schema then falls back to the
    record's other timestamp or the migration time.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        moment = parse_timestamp(value)
        return None if moment is None else column_timestamp(moment)

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
        if isinstance(original, int | float) or str(original).strip().lstrip("-").isdigit():
            return "timestamp_epoch_ms"
        return "timestamp_normalised"


class Secret(SourceField):
    """A secret string: never put in a warning, an error or a log line."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, str):
            return value
        raise ValidationError(f"expected a secret string, found {json_type(value)}")
