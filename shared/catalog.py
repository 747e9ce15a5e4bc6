"""The stores lsmigrate migrates out of the box (design §3).

Adding a store for another app is adding a `StoreSpec` to `BUILTIN_STORES`
(and, on the server, a model and a migration for its table); see the
README's "Adding a store".
"""

from __future__ import annotations

from lsmigrate.shared.documents import FormDraftSchema, PreferencesSchema
from lsmigrate.shared.envelopes import BARE, ZUSTAND
from lsmigrate.shared.environments import EnvironmentSchema
from lsmigrate.shared.stores import StoreCatalog, StoreSpec
from lsmigrate.shared.tasks import TaskSchema

#: Keys that look like form drafts: "form" or "draft" as a word of the key, in
#: kebab, snake, camel or upper case (form-draft-1, react-hook-form-task-form,
#: taskFormDraft, FORM_DRAFT), but not inside another word (platform, formula,
#: FORMULA_BAR). An upper-case word ends at any letter; the others at a lower-case one,
#: where camel case starts the next word.
DRAFT_KEY_PATTERN = (
    r"(?:(?<![A-Za-z])(?:form|draft|Form|Draft)|(?<=[a-z])(?:Form|Draft))s?(?![a-z])"
    r"|(?<![A-Za-z])(?:FORM|DRAFT)S?(?![A-Za-z])"
)

BUILTIN_STORES = (
    StoreSpec(
        name="tasks", key="task-store", envelope=ZUSTAND, records_path="tasks", schema=TaskSchema(), table="tasks"
    ),
    StoreSpec(
        name="environments",
        key="environments",
        envelope=ZUSTAND,
        records_path="environments",
        schema=EnvironmentSchema(),
        table="environments",
    ),
    StoreSpec(
        name="user_preferences",
        key="user-preferences",
        envelope=ZUSTAND,
        one_record=True,
        id_field=None,
        timestamp_field=None,
        schema=PreferencesSchema(),
        table="user_preferences",
    ),
    StoreSpec(
        name="form_drafts",
        key_pattern=DRAFT_KEY_PATTERN,
        envelope=BARE,
        one_record=True,
        id_field=None,
        timestamp_field=None,
        schema=FormDraftSchema(),
        table="form_drafts",
    ),
)

STORES = StoreCatalog(BUILTIN_STORES)


def spec_for_key(key: str) -> StoreSpec | None:
    """The spec of a localStorage key, or None for a key lsmigrate does not migrate."""
    return STORES.spec_for_key(key)
