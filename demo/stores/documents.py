"""The demo's stores kept whole, one record per key: form drafts and user preferences."""

from __future__ import annotations

from typing import ClassVar

from lsmigrate.shared.mapping import RecordSchema


class FormDraftSchema(RecordSchema):
    """A form draft: the form's values, kept whole; the localStorage key names the form."""

    document_column: ClassVar[str | None] = "data"
    key_column: ClassVar[str | None] = "key"


class PreferencesSchema(RecordSchema):
    """The user's preferences object, kept whole."""

    document_column: ClassVar[str | None] = "data"
