"""The host app: a todo list of its own, with lsmigrate mounted under /tools.

Its own Flask-SQLAlchemy `db` and `Todo` model (lsmigrate's bookkeeping columns come from
`MigratedRecord`), its own sign-in (a session cookie set by /login/<user>), its own HTML 404
page, its own routes and its own JSON provider. lsmigrate's tables are created from
`lsmigrate.server.metadata`, the way the host's Alembic would with it in `target_metadata`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Flask, session
from flask.json.provider import DefaultJSONProvider
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import DateTime, Text
from sqlalchemy.orm import Mapped, mapped_column

from lsmigrate.server import LSMigrate, MigratedRecord, metadata

db = SQLAlchemy()
lsmigrate = LSMigrate()


class Todo(MigratedRecord, db.Model):  # type: ignore[name-defined, misc]
    """The host's own table for its todos."""

    __tablename__ = "todos"

    title: Mapped[str | None] = mapped_column(Text)
    done: Mapped[bool | None]
    priority: Mapped[int | None]
    due_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class HostJSON(DefaultJSONProvider):
    """The host's JSON: it marks its answers, so a test can tell them from lsmigrate's."""

    def response(self, *args: Any, **kwargs: Any) -> Any:
        answer = super().response(*args, **kwargs)
        answer.headers["X-Host-JSON"] = "1"
        return answer


def current_user_id() -> str | None:
    """Who is signed in, from the host's own session cookie."""
    user = session.get("user")
    return user if isinstance(user, str) else None


def create_host_app(database_url: str, stores: Any, **config: Any) -> Flask:
    """The host app on `database_url`, lsmigrate mounted under /tools with `stores`."""
    app = Flask(__name__)
    app.json = HostJSON(app)
    app.config.update(
        SECRET_KEY="host-session-key",
        SQLALCHEMY_DATABASE_URI=database_url,
        LSMIGRATE_SECRET_KEY="vQ3r9LmX2pT7sW4yB8nD1fH6jK0cZ5aE",
        **config,
    )
    db.init_app(app)
    lsmigrate.init_app(app, db=db, stores=stores, user_id=current_user_id, url_prefix="/tools")

    @app.get("/login/<user>")
    def login(user: str) -> dict[str, str]:
        session["user"] = user
        return {"signed_in": user}

    @app.get("/hello")
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    @app.errorhandler(404)
    def not_found(error: Exception) -> tuple[str, int]:
        return "<h1>Not here</h1>", 404

    with app.app_context():
        db.create_all()
        metadata.create_all(db.engine)
    return app
