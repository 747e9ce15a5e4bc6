"""Stores kept whole: the record as the app wrote it, one JSON document per record."""

from __future__ import annotations

from typing import ClassVar

from lsmigrate.shared.mapping import RecordSchema


class DocumentSchema(RecordSchema):
    """A record kept whole, unchanged, in the `data` column: the default schema of a store."""

    document_column: ClassVar[str | None] = "data"
