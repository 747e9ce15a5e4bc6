"""The tables: migrated records, and the bookkeeping of migration sessions.

`RECORD_MODELS` maps every table a store spec may target to its model.
Bookkeeping: a session (`migration_sessions`, at most one open non-dry-run
session per user, enforced by a partial unique index), its acknowledged
batches, its ledger (one row per source record), its quarantine and its
conflicts (`migration_conflicts`, the records a policy of `ask` left open).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from lsmigrate.server.extensions import JsonValue, Moment, db

# JSON whose None is SQL NULL ("no value"), not the JSON value null.
OptionalJson = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class MigratedRecord:
    """Columns every migrated record has: its owner, metadata, source digest and dates."""

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JsonValue)
    source_digest: Mapped[str] = mapped_column(String(64))
    migration_session_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(Moment)
    updated_at: Mapped[datetime] = mapped_column(Moment)


class Task(MigratedRecord, db.Model):  # type: ignore[name-defined]
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


class Environment(MigratedRecord, db.Model):  # type: ignore[name-defined]
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


class FormDraft(MigratedRecord, db.Model):  # type: ignore[name-defined]
    """A migrated form draft: the form's values, kept whole, under the localStorage key that held them."""

    __tablename__ = "form_drafts"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_form_drafts_user_key"),)

    key: Mapped[str] = mapped_column(String(255))
    data: Mapped[dict[str, Any]] = mapped_column(JsonValue)


class UserPreferences(MigratedRecord, db.Model):  # type: ignore[name-defined]
    """A user's migrated preferences object, kept whole: one row per user."""

    __tablename__ = "user_preferences"
    __table_args__ = (UniqueConstraint("user_id", name="uq_user_preferences_user"),)

    data: Mapped[dict[str, Any]] = mapped_column(JsonValue)


#: The model of every table a store spec may target (`StoreSpec.table`).
RECORD_MODELS: dict[str, type[MigratedRecord]] = {
    model.__tablename__: model for model in (Task, Environment, FormDraft, UserPreferences)
}


def record_model(table: str) -> type[MigratedRecord]:
    """The model of migrated-record table `table`; LookupError if the server has none."""
    try:
        return RECORD_MODELS[table]
    except KeyError:
        raise LookupError(
            f"No model for table {table!r}: a store spec targets it, but lsmigrate.server.models does not "
            "define it (a server configuration error: add a model and a migration)."
        ) from None


class MigrationSession(db.Model):  # type: ignore[name-defined]
    """One browser's migration of one user's stores.

    status: open (batches accepted), verified (the manifest matched), abandoned
    (idle while another session wanted to open), rolled_back.
    """

    __tablename__ = "migration_sessions"
    __table_args__ = (
        UniqueConstraint("user_id", "client_session_id", name="uq_sessions_client"),
        # Two tabs or devices of one user cannot interleave: the database itself refuses a second open session.
        Index(
            "uq_sessions_one_open_per_user",
            "user_id",
            unique=True,
            postgresql_where=text("status = 'open' AND NOT dry_run"),
            sqlite_where=text("status = 'open' AND NOT dry_run"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    client_session_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="open")
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(Moment)
    last_active_at: Mapped[datetime] = mapped_column(Moment)
    completed_at: Mapped[datetime | None] = mapped_column(Moment)
    rolled_back_at: Mapped[datetime | None] = mapped_column(Moment)
    #: What the rollback did, answered again as it was when the rollback is asked for twice.
    rollback_report: Mapped[dict[str, Any] | None] = mapped_column(OptionalJson)


class MigrationBatch(db.Model):  # type: ignore[name-defined]
    """An acknowledged batch: its body's fingerprint and the response to replay."""

    __tablename__ = "migration_batches"

    session_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("migration_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any]] = mapped_column(JsonValue)
    created_at: Mapped[datetime] = mapped_column(Moment)


class LedgerEntry(db.Model):  # type: ignore[name-defined]
    """What became of one source record in one session.

    outcome: inserted, updated, unchanged, quarantined, conflict (open), kept_server
    or superseded. `pre_image` is the row as it was before this session first
    wrote it (secret columns as stored, encrypted), kept for `updated`;
    `version_at` is the record's own timestamp, when it had a usable one.
    """

    __tablename__ = "migration_ledger"
    __table_args__ = (Index("ix_migration_ledger_target", "target_id", "session_id"),)

    session_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("migration_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_seq: Mapped[int] = mapped_column(Integer)
    source_id: Mapped[Any | None] = mapped_column(OptionalJson)
    digest: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    target_table: Mapped[str | None] = mapped_column(String(64))
    target_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    warnings: Mapped[list[Any]] = mapped_column(JsonValue)
    version_at: Mapped[datetime | None] = mapped_column(Moment)
    pre_image: Mapped[dict[str, Any] | None] = mapped_column(OptionalJson)


class QuarantinedRecord(db.Model):  # type: ignore[name-defined]
    """A source record that could not be mapped: its raw value (secrets encrypted) and why."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("migration_sessions.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    key: Mapped[str] = mapped_column(String(255))
    index: Mapped[int] = mapped_column(Integer)
    raw: Mapped[Any] = mapped_column(JsonValue)
    reasons: Mapped[list[Any]] = mapped_column(JsonValue)
    target_table: Mapped[str | None] = mapped_column(String(64))
    target_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(Moment)


class MigrationConflict(db.Model):  # type: ignore[name-defined]
    """A record that differs from the user's row under a policy of `ask`: both versions, until resolved.

    status: open, resolved (resolution local or server), or closed (resolution
    superseded, abandoned or rolled_back: the record is decided elsewhere).
    """

    __tablename__ = "migration_conflicts"
    __table_args__ = (UniqueConstraint("session_id", "key", "index", name="uq_conflicts_record"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    session_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("migration_sessions.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    key: Mapped[str] = mapped_column(String(255))
    index: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    target_table: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    #: The local record as read from localStorage, its secrets encrypted.
    local: Mapped[Any] = mapped_column(JsonValue)
    local_digest: Mapped[str] = mapped_column(String(64))
    #: The user's row when the conflict was found (secret columns as stored, encrypted).
    server: Mapped[dict[str, Any]] = mapped_column(JsonValue)
    status: Mapped[str] = mapped_column(String(16), default="open")
    resolution: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(Moment)
    resolved_at: Mapped[datetime | None] = mapped_column(Moment)
