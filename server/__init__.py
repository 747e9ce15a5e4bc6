"""The lsmigrate ingest service: `create_app` is the Flask application factory.

flask --app lsmigrate.server run
gunicorn 'lsmigrate.server:create_app()'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask

from lsmigrate.server.config import load_config
from lsmigrate.server.crypto import SecretBox
from lsmigrate.server.errors import register_error_handlers
from lsmigrate.server.extensions import cache, db, migrate
from lsmigrate.server.jsontext import FastJSONProvider, dumps_text, loads
from lsmigrate.server.limits import rate_limits
from lsmigrate.shared.catalog import STORES

MIGRATIONS_DIR = str(Path(__file__).resolve().parent / "migrations")
_CHECKOUT = Path(__file__).resolve().parent.parent


def _instance_path() -> str:
    # Flask cannot infer it for a namespace package: the checkout's instance/
    # folder, or the working directory's when installed from a wheel.
    if os.environ.get("LSMIGRATE_INSTANCE_PATH"):
        return os.environ["LSMIGRATE_INSTANCE_PATH"]
    root = _CHECKOUT if (_CHECKOUT / "pyproject.toml").exists() else Path.cwd()
    return str(root / "instance")


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then LSMIGRATE_* and the environment, then `config`."""
    app = Flask(__name__, instance_path=_instance_path())
    app.json = FastJSONProvider(app)
    load_config(app, config)
    # JSON and JSONB columns encoded and decoded by orjson (json.dumps and json.loads for what it cannot do).
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        "json_serializer": dumps_text,
        "json_deserializer": loads,
        **app.config["SQLALCHEMY_ENGINE_OPTIONS"],
    }

    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS_DIR)
    cache.init_app(app)
    rate_limits.init_app(app)
    app.extensions["lsmigrate_secret_box"] = SecretBox(app.config["SECRET_KEY"])
    register_error_handlers(app)

    from lsmigrate.server import cli, models
    from lsmigrate.server.api import docs, health, migration, records
    from lsmigrate.server.runtime import bp as runtime_bp

    app.register_blueprint(docs.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(migration.bp)
    app.register_blueprint(records.bp)
    app.register_blueprint(runtime_bp)
    app.cli.add_command(cli.group)
    for spec in STORES:
        models.record_model(spec.table)  # a store without a table fails here, not on its first batch
    if app.config["DEMO"]:
        from lsmigrate.server.demo import bp as demo_bp

        app.register_blueprint(demo_bp)
    return app
