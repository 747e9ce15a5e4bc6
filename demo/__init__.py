"""The demo preset: the stores, tables, read API and page of the app lsmigrate was first built for.

Enabled by LSMIGRATE_DEMO=1 (the README's demo command). Nothing in the core
names a demo key or table: a deployment that does not ask for this preset
claims none of `task-store`, `environments`, `user-preferences` or draft keys.

    stores/    the four store specs and their record schemas (also run in the page)
    models.py  Task, Environment, FormDraft, UserPreferences
    records.py GET /api/tasks and /api/environments, cached per user in Redis
    views.py   GET /demo?user=USER_ID
"""

#: What LSMIGRATE_STORES names for the demo's catalog.
STORES_REFERENCE = "lsmigrate.demo.stores:STORES"
#: The module declaring the demo's tables.
MODELS_MODULE = "lsmigrate.demo.models"
