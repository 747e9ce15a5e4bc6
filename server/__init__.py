"""lsmigrate's server: the `LSMigrate` extension, and `create_app`, the standalone service's factory.

flask --app lsmigrate.server run
gunicorn 'lsmigrate.server:create_app()'

In another Flask app: `LSMigrate(app, db=db, stores=..., user_id=...)` (see `extension`); its
models' tables derive from `MigratedRecord`, and lsmigrate's own tables are on `metadata`. A host
that changes a user's migrated rows itself calls `advance_data_version(user_id)` in that transaction
(see `signals`), so no cached copy of them is served after it commits.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy.engine import make_url

from lsmigrate.server.config import load_config
from lsmigrate.server.db import Base, migrate, standalone_db
from lsmigrate.server.db.models import MigratedRecord
from lsmigrate.server.errors import register_error_handlers
from lsmigrate.server.extension import LSMigrate, current_lsmigrate
from lsmigrate.server.jsontext import FastJSONProvider, dumps_text, loads
from lsmigrate.server.signals import advance_data_version, data_version

MIGRATIONS_DIR = str(Path(__file__).resolve().parent / "migrations")
_CHECKOUT = Path(__file__).resolve().parent.parent
#: lsmigrate's own MetaData: a host app adds it to its Alembic `target_metadata`.
metadata = Base.metadata


def _instance_path() -> str:
    # Flask cannot infer it for a namespace package: the checkout's instance/
    # folder, or the working directory's when installed from a wheel.
    if os.environ.get("LSMIGRATE_INSTANCE_PATH"):
        return os.environ["LSMIGRATE_INSTANCE_PATH"]
    root = _CHECKOUT if (_CHECKOUT / "pyproject.toml").exists() else Path.cwd()
    return str(root / "instance")


def _without_prepared_statements(app: Flask) -> None:
    # Only psycopg 3 prepares on its own (prepare_threshold); another driver takes no such argument.
    if make_url(app.config["SQLALCHEMY_DATABASE_URI"]).drivername == "postgresql+psycopg":
        options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
        options["connect_args"] = {**options.get("connect_args", {}), "prepare_threshold": None}


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """The standalone service: defaults, then LSMIGRATE_* and the environment, then `config`; LSMigrate on it."""
    app = Flask(__name__, instance_path=_instance_path())
    app.json = FastJSONProvider(app)
    load_config(app, config)
    # JSON and JSONB columns encoded and decoded by orjson (json.dumps and json.loads for what it cannot do).
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        "json_serializer": dumps_text,
        "json_deserializer": loads,
        # A statement's parameters are record content: never in an error message or a log.
        "hide_parameters": True,
        **app.config["SQLALCHEMY_ENGINE_OPTIONS"],
    }
    if not app.config["DATABASE_PREPARED_STATEMENTS"]:
        _without_prepared_statements(app)

    standalone_db.init_app(app)
    migrate.init_app(app, standalone_db, directory=MIGRATIONS_DIR)
    # The service is lsmigrate's own app: its errors (a 404 anywhere) are in lsmigrate's envelope too.
    register_error_handlers(app)
    for module in app.config["MODELS"]:
        importlib.import_module(module)  # the tables the stores write into
    LSMigrate(app, db=standalone_db, settings=app.config)
    if app.config["DEMO"]:
        from lsmigrate.demo.views import enable_demo

        enable_demo(app)
    return app


__all__ = [
    "LSMigrate",
    "MigratedRecord",
    "advance_data_version",
    "create_app",
    "current_lsmigrate",
    "data_version",
    "metadata",
]
