"""`LSMigrate`: lsmigrate as a Flask extension, mounted in the integrator's app or in its own service.

    from lsmigrate.server import LSMigrate

    lsmigrate = LSMigrate(app, db=db, stores="myapp.migration:STORES", user_id=current_user_id)
    # or: lsmigrate = LSMigrate(); ...; lsmigrate.init_app(app, db=db, stores=..., user_id=...)

`init_app(app, *, db, stores, user_id=None, url_prefix="", settings=None)`:
    db          the host's Flask-SQLAlchemy instance: one transaction holds a batch's rows and its
                ledger; lsmigrate's own tables sit on `lsmigrate.server.metadata`
    stores      what LSMIGRATE_STORES takes (see `lsmigrate.shared.catalog`); default: the app's
                LSMIGRATE_STORES setting
    user_id     a callable giving the signed-in user's id (a Flask-Login `current_user.get_id()`, a
                session cookie, the host's JWT), or None when nobody is signed in (401); default:
                lsmigrate's signed bearer token
    url_prefix  put before /api/migration and /lsmigrate (e.g. "/tools")
    settings    lsmigrate's settings by their short names (MAX_BATCH_RECORDS, ...); default: the app's
                LSMIGRATE_* config keys. Every other setting keeps its default (`config.DEFAULTS`).

Everything lsmigrate adds to the app is one blueprint, `lsmigrate`, whose error envelope, rate limits,
request-size limit and JSON answers apply to its own routes only: the host's 404 page, routes and JSON
provider stay as they were. The extension's state lives in `app.extensions["lsmigrate"]`, reached
through `current_lsmigrate()`.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app
from flask_sqlalchemy import SQLAlchemy

from lsmigrate.server.config import DEFAULTS, resolve_settings
from lsmigrate.server.records.secrets import SecretBox
from lsmigrate.shared.catalog import CatalogSource, load_catalog, page_descriptor
from lsmigrate.shared.stores import CONFLICT_POLICIES, StoreCatalog, StoreSpec

UserLoader = Callable[[], "str | None"]
EXTENSION_KEY = "lsmigrate"


@dataclass
class State:
    """What one app's lsmigrate knows: its database, stores, settings and helpers."""

    db: SQLAlchemy
    catalog: StoreCatalog
    stores_source: CatalogSource
    settings: MutableMapping[str, Any]
    user_loader: UserLoader | None
    url_prefix: str
    box: SecretBox
    #: How the page loads the same stores (`catalog.page_descriptor`), fixed at start-up.
    page_stores: dict[str, str] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)

    def model_for(self, spec: StoreSpec) -> Any:
        """The model of the table `spec` writes into."""
        return self.models[spec.name]

    def model_of_table(self, table: str) -> Any:
        """The model of table `table`, one some store writes into; LookupError otherwise."""
        for model in self.models.values():
            if model.__tablename__ == table:
                return model
        raise LookupError(f"No store writes into table {table!r} any more: the store catalog changed.")

    def conflict_policy(self, spec: StoreSpec) -> str:
        """The store's policy: the CONFLICT_POLICIES setting for its name, else the spec's own."""
        policy: str = self.settings["CONFLICT_POLICIES"].get(spec.name, spec.conflict_policy)
        if policy not in CONFLICT_POLICIES:
            raise LookupError(f"CONFLICT_POLICIES[{spec.name!r}] is {policy!r}, not one of {CONFLICT_POLICIES}")
        return policy

    def policies(self) -> dict[str, str]:
        """Every store's policy, by store name."""
        return {spec.name: self.conflict_policy(spec) for spec in self.catalog}

    def spec_for_key(self, key: str) -> StoreSpec | None:
        """The spec of a localStorage key, or None for a key no store claims."""
        return self.catalog.spec_for_key(key)

    def spec_of(self, store: str | None, key: str) -> StoreSpec | None:
        """The spec of a record of `key` kept under store name `store` (rows written before stores
        were named: the key's first store); None when the catalog has no such store any more."""
        if store is None:
            return self.catalog.spec_for_key(key)
        return next((spec for spec in self.catalog.stores_for_key(key) if spec.name == store), None)


def current_lsmigrate() -> State:
    """The current app's lsmigrate state (RuntimeError when lsmigrate is not initialised on it)."""
    state: State | None = current_app.extensions.get(EXTENSION_KEY)
    if state is None:
        raise RuntimeError("lsmigrate is not initialised on this app: call LSMigrate(app, ...) or init_app first.")
    return state


def settings() -> MutableMapping[str, Any]:
    """The current app's lsmigrate settings (short names, see `config.DEFAULTS`)."""
    return current_lsmigrate().settings


class LSMigrate:
    """The Flask extension (Flask-SQLAlchemy style): bind now with `LSMigrate(app, ...)` or later with `init_app`."""

    def __init__(self, app: Flask | None = None, **options: Any) -> None:
        if app is not None:
            self.init_app(app, **options)

    def init_app(
        self,
        app: Flask,
        *,
        db: SQLAlchemy,
        stores: CatalogSource | None = None,
        user_id: UserLoader | None = None,
        url_prefix: str = "",
        settings: MutableMapping[str, Any] | None = None,
    ) -> None:
        """Mount lsmigrate in `app` (see the module docstring); a second call on the same app is refused."""
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                f"lsmigrate is already initialised on app {app.name!r}: init_app was called twice. "
                "Create one LSMigrate per app and call init_app once."
            )
        if url_prefix and (not url_prefix.startswith("/") or url_prefix.endswith("/")):
            raise ValueError(f"url_prefix must start with '/' and not end with one, found {url_prefix!r}")
        resolved = resolve_settings(app, settings)
        source = stores if stores is not None else resolved["STORES"]
        if source is None:
            raise RuntimeError(
                "lsmigrate has no stores: set LSMIGRATE_STORES to 'package.module:ATTRIBUTE' or to a .json/.toml "
                "catalog file, or pass stores=... (see the README's 'Your stores')."
            )
        catalog = load_catalog(source)
        from lsmigrate.server.db.models import resolve_models

        models = resolve_models(catalog, db)
        state = State(
            db=db,
            catalog=catalog,
            stores_source=source,
            settings=resolved,
            user_loader=user_id,
            url_prefix=url_prefix,
            box=SecretBox(resolved["ENCRYPTION_KEYS"]),
            # At start-up: a catalog the page cannot load (no module attribute) is refused now, and a
            # declarative file is read once, the same text the server's catalog came from.
            page_stores=page_descriptor(source),
            models=models,
        )
        app.extensions[EXTENSION_KEY] = state

        from lsmigrate.server import blueprint, cli, observability
        from lsmigrate.server.api.limits import rate_limits
        from lsmigrate.server.cache import cache

        # Before the rate limiter's hooks: a request it refuses has a request id and is counted too.
        observability.init_app(app, resolved, (spec.name for spec in catalog))
        cache.init_app(app, resolved)
        rate_limits.init_app(app, resolved)
        app.register_blueprint(blueprint.build(), url_prefix=url_prefix or None)
        if "lsmigrate" not in app.cli.commands:
            app.cli.add_command(cli.group)


__all__ = ["DEFAULTS", "LSMigrate", "State", "current_lsmigrate", "settings"]
