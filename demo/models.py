"""The demo's tables: tasks, environments, form drafts, user preferences (the seed app's, design §4).

They sit on the demo's own MetaData (`DemoBase`), not on lsmigrate's: a host app's Alembic never
sees them. The standalone service's migrations create them, as they always have.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import MetaData, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from lsmigrate.server.db import JsonValue
from lsmigrate.server.db.models import MigratedRecord


class DemoBase(DeclarativeBase):
    """Declarative base of the demo's tables."""

    metadata = MetaData()
    if TYPE_CHECKING:
        # Each model here is mapped to a Table (DeclarativeBase declares any FromClause).
        __table__: ClassVar[Table]


class Task(MigratedRecord, DemoBase):
    """A migrated task."""

    __tablename__ = "tasks"

    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(16))
    branch: Mapped[str | None] = mapped_column(Text)
    session_id: Mapped[str | None] = mapped_column(Text)
    repository: Mapped[str | None] = mapped_column(Text)
    status_message: Mapped[str | None] = mapped_column(Text)
    is_archived: Mapped[bool]
    has_changes: Mapped[bool]
    pull_request: Mapped[dict[str, Any] | None] = mapped_column(JsonValue)


class Environment(MigratedRecord, DemoBase):
    """A migrated environment; its GitHub token is stored encrypted."""

    __tablename__ = "environments"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_environments_user_name"),)

    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    github_organization: Mapped[str | None] = mapped_column(Text)
    github_repository: Mapped[str | None] = mapped_column(Text)
    github_token_encrypted: Mapped[str | None] = mapped_column(Text)
    github_token_hint: Mapped[str | None] = mapped_column(String(32))
    is_active: Mapped[bool] = mapped_column(default=False)


class FormDraft(MigratedRecord, DemoBase):
    """A migrated form draft: the form's values, kept whole, under the localStorage key that held them."""

    __tablename__ = "form_drafts"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_form_drafts_user_key"),)

    key: Mapped[str] = mapped_column(String(255))
    data: Mapped[dict[str, Any]] = mapped_column(JsonValue)


class UserPreferences(MigratedRecord, DemoBase):
    """A user's migrated preferences object, kept whole: one row per user."""

    __tablename__ = "user_preferences"
    __table_args__ = (UniqueConstraint("user_id", name="uq_user_preferences_user"),)

    data: Mapped[dict[str, Any]] = mapped_column(JsonValue)
