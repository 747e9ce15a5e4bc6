"""The host app's stores, in Python: what stores.toml and stores.json declare, field for field.

The page installs this module in a wheel of its own: it imports only lsmigrate.shared.
"""

from __future__ import annotations

from lsmigrate.shared.envelopes import BARE, ZUSTAND
from lsmigrate.shared.fields import Date, Flag, Integer, Secret, Text, Timestamp
from lsmigrate.shared.mapping import RecordSchema
from lsmigrate.shared.stores import StoreCatalog, StoreSpec


class TodoSchema(RecordSchema):
    """A todo as the app's Zustand store keeps it."""

    title = Text(data_key="title")
    done = Flag(data_key="done")
    priority = Integer(data_key="priority")
    due_date = Date(data_key="dueDate")
    updated_at = Timestamp(data_key="updatedAt")


class NoteSchema(RecordSchema):
    """A note, kept whole in lsmigrate's generic table; its share token is a secret."""

    document_column = "data"

    text = Text(data_key="text")
    share_token = Secret(data_key="shareToken")
    updated_at = Timestamp(data_key="updatedAt")


STORES = StoreCatalog(
    [
        StoreSpec(
            name="todos",
            key="todo-app",
            envelope=ZUSTAND,
            records_path="todos",
            schema=TodoSchema(),
            table="todos",
            version=2,
        ),
        StoreSpec(name="notes", key="notes", envelope=BARE, schema=NoteSchema()),
    ]
)
