"""The demo's stores (design §3): `LSMIGRATE_STORES=lsmigrate.demo.stores:STORES`.

This package is what the page installs as the demo's stores wheel: it imports
only lsmigrate.shared, marshmallow and itself.
"""

from __future__ import annotations

from lsmigrate.demo.stores.documents import FormDraftSchema, PreferencesSchema
from lsmigrate.demo.stores.environments import EnvironmentSchema
from lsmigrate.demo.stores.tasks import TaskSchema
from lsmigrate.shared.envelopes import BARE, ZUSTAND
from lsmigrate.shared.stores import StoreCatalog, StoreSpec

#: Keys that look like form drafts: "form" or "draft" as a word of the key, in
#: kebab, snake, camel or upper case (form-draft-1, react-hook-form-task-form,
#: taskFormDraft, FORM_DRAFT), but not inside another word (platform, formula,
#: FORMULA_BAR). An upper-case word ends at any letter; the others at a lower-case one,
#: where camel case starts the next word.
DRAFT_KEY_PATTERN = (
    r"(?:(?<![A-Za-z])(?:form|draft|Form|Draft)|(?<=[a-z])(?:Form|Draft))s?(?![a-z])"
    r"|(?<![A-Za-z])(?:FORM|DRAFT)S?(?![A-Za-z])"
)

DEMO_STORES = (
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
        cleanup="delete",  # the whole key is the preferences: the app reads them from the server now
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
        cleanup="delete",  # a draft is the whole key: on the server now, as the seed app's flows expect
    ),
)

STORES = StoreCatalog(DEMO_STORES)
