"""lsmigrate's tables: the generic migrated records, and the bookkeeping of migration sessions.

`resolve_models` finds the model of every store's table: a host's model (with the
`MigratedRecord` columns) or lsmigrate's generic `migrated_records`.
Bookkeeping: a session (`migration_sessions`, at most one open non-dry-run
session per user, enforced by a partial unique index), its acknowledged
batches, its ledger (one row per source record), its quarantine and its
conflicts (`migration_conflicts`, the records a policy of `ask` left open).
Bearer tokens revoked before they expire: one by one (`revoked_tokens`) or all of a
user's at once (`token_cutoffs`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from lsmigrate.server.db import Base, JsonValue, Moment
from lsmigrate.shared.stores import StoreCatalog, StoreSpec

# JSON whose None is SQL NULL ("no value"), not the JSON value null.
OptionalJson = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def user_first(*names: str) -> Any:
    """`__mapper_args__` of a bookkeeping model: its identity is the user id, then `names` (its table's key).

    The table's primary key stays `names`; the ORM's identity adds the user, so every UPDATE and DELETE the
    ORM writes for a loaded row names its user too, as every query does: the tables can be distributed by user
    (Citus) or partitioned (README, "Past one database").
    """

    def mapper_args(cls: Any) -> dict[str, Any]:
        columns = cls.__table__.c
        return {"primary_key": [columns.user_id, *(columns[name] for name in names)]}

    return declared_attr.directive(mapper_args)


class MigratedRecord:
    """Columns every migrated record has: its owner, metadata, source digest and dates."""

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JsonValue)
    source_digest: Mapped[str] = mapped_column(String(64))
    migration_session_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(Moment)
    updated_at: Mapped[datetime] = mapped_column(Moment)


class GenericRecord(MigratedRecord, Base):
    """A record of a store that names no table of its own: lsmigrate's generic `migrated_records`.

    `data` is the record as the app wrote it, its secret fields taken out and kept encrypted in
    `secrets_encrypted` (one ciphertext of the JSON object of them); `record_id` is its source id as
    text. Every id is derived from (user, store, source id), so stores sharing the table never collide.
    """

    __tablename__ = "migrated_records"
    __table_args__ = (Index("ix_migrated_records_user_store", "user_id", "store"),)

    store: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str | None] = mapped_column(Text)
    data: Mapped[Any] = mapped_column(JsonValue)
    secrets_encrypted: Mapped[str | None] = mapped_column(Text)


def _models() -> dict[str, Any]:
    """Every mapped model with lsmigrate's columns (a `MigratedRecord`), by table name."""
    found: dict[str, Any] = {}
    pending = list(MigratedRecord.__subclasses__())
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        table = getattr(model, "__table__", None)
        if table is not None:
            found.setdefault(table.name, model)
    return found


def _host_models(db: Any) -> dict[str, Any]:
    """The models of the host's `db.Model`, by table name."""
    registry = getattr(getattr(db, "Model", None), "registry", None)
    mappers = registry.mappers if registry is not None else ()
    return {mapper.class_.__table__.name: mapper.class_ for mapper in mappers if hasattr(mapper.class_, "__table__")}


def resolve_models(catalog: StoreCatalog, db: Any) -> dict[str, Any]:
    """Store name -> the model of the table it writes into; LookupError naming a table no model maps.

    A store without a table writes into `migrated_records`; a named table is that of one of the host's
    `db.Model`s, which must have lsmigrate's bookkeeping columns, else of a model derived from
    `MigratedRecord` (imported by then: a preset's, or one of the standalone service's MODELS).
    """
    known = {**_models(), **_host_models(db)}  # the host's own db first
    models: dict[str, Any] = {}
    for spec in catalog:
        if spec.table is None:
            models[spec.name] = GenericRecord
            continue
        model = known.get(spec.table)
        if model is None:
            raise LookupError(
                f"store {spec.name!r} writes into table {spec.table!r}, but no model maps that table: declare one "
                "(on your db.Model, with lsmigrate.server.MigratedRecord's columns) or leave the store's table unset "
                "for lsmigrate's generic migrated_records."
            )
        missing = sorted(set(BOOKKEEPING) - set(model.__table__.columns.keys()))
        if missing:
            raise LookupError(
                f"store {spec.name!r}: table {spec.table!r} lacks lsmigrate's columns {missing}: derive its model "
                "from lsmigrate.server.MigratedRecord"
            )
        unmapped = sorted(columns_written(spec) - set(model.__table__.columns.keys()))
        if unmapped:
            raise LookupError(
                f"store {spec.name!r}: table {spec.table!r} has no column {', '.join(map(repr, unmapped))}, which the "
                "store's fields write (name the columns in 'columns', or add them to the model)"
            )
        models[spec.name] = model
    return models


def columns_written(spec: StoreSpec) -> set[str]:
    """The columns a row of `spec` fills in a table of its own: its fields' (a secret's hint and ciphertext),
    the derived ones, the document and key columns, found by mapping an empty record once, and
    `secrets_encrypted` when its schema has secret paths."""
    mapped = spec.mapper.map({}, key="", index=0, user_id="", migrated_at="1970-01-01T00:00:00.000000+00:00")
    written = set(mapped.row or ())
    written |= {f"{column.name}_encrypted" for column in spec.mapper.columns if column.secret}
    if spec.mapper.nested_secrets:
        written.add("secrets_encrypted")
    return written


#: The columns lsmigrate reads and writes in every table a store writes into.
BOOKKEEPING = ("id", "user_id", "metadata", "source_digest", "migration_session_id", "created_at", "updated_at")


class MigrationSession(Base):
    """One browser's migration of one user's stores.

    status: open (batches accepted), verified (the manifest matched), abandoned
    (idle while another session wanted to open), rolled_back.
    """

    __tablename__ = "migration_sessions"
    __mapper_args__ = user_first("id")
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
    #: Who rolled it back: "user:<id>" through the API, "cli" or "operator:<name>" (NULL before 0011).
    rolled_back_by: Mapped[str | None] = mapped_column(String(320))
    #: When `lsmigrate prune` began clearing what only rollback and replay need: it cannot be rolled back since.
    pruned_at: Mapped[datetime | None] = mapped_column(Moment)


class MigrationBatch(Base):
    """An acknowledged batch: its body's fingerprint and the response to replay."""

    __tablename__ = "migration_batches"
    __mapper_args__ = user_first("session_id", "seq")

    session_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("migration_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The session's user: every lsmigrate table carries it, so the tables can be distributed by user.
    user_id: Mapped[str] = mapped_column(String(255))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any]] = mapped_column(JsonValue)
    created_at: Mapped[datetime] = mapped_column(Moment)


class LedgerEntry(Base):
    """What became of one source record in one session.

    outcome: inserted, updated, unchanged, quarantined, conflict (open), kept_server
    or superseded. `pre_image` is the row as it was before this session first
    wrote it (secret columns as stored, encrypted), kept for `updated`;
    `version_at` is the record's own timestamp, when it had a usable one.
    """

    __tablename__ = "migration_ledger"
    __mapper_args__ = user_first("session_id", "key", "index")
    __table_args__ = (Index("ix_migration_ledger_target", "target_id", "session_id"),)

    session_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("migration_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The session's user: every lsmigrate table carries it, so the tables can be distributed by user.
    user_id: Mapped[str] = mapped_column(String(255))
    #: The store the record belongs to (stores may share a key: each holds a run of its indexes).
    store: Mapped[str | None] = mapped_column(String(64))
    batch_seq: Mapped[int] = mapped_column(Integer)
    source_id: Mapped[Any | None] = mapped_column(OptionalJson)
    digest: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    target_table: Mapped[str | None] = mapped_column(String(64))
    target_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    warnings: Mapped[list[Any]] = mapped_column(JsonValue)
    version_at: Mapped[datetime | None] = mapped_column(Moment)
    pre_image: Mapped[dict[str, Any] | None] = mapped_column(OptionalJson)
    #: The row's digest (`records.digests`) as this entry's write left it (inserted, updated), or as it
    #: found it and relied on it (unchanged, kept_server): what rollback compares the row with.
    row_digest: Mapped[str | None] = mapped_column(String(64))
    #: The digest of `pre_image`'s row as it was read (updated), NULL for a row that was not there.
    pre_digest: Mapped[str | None] = mapped_column(String(64))
    #: When the write reached the row: the order of the writes of one row across sessions.
    written_at: Mapped[datetime | None] = mapped_column(Moment)
    #: When a rollback took this write back, and the digest it left the row with (NULL: deleted).
    undone_at: Mapped[datetime | None] = mapped_column(Moment)
    undone_digest: Mapped[str | None] = mapped_column(String(64))


class QuarantinedRecord(Base):
    """A source record that could not be mapped: its raw value (secrets encrypted) and why."""

    __tablename__ = "quarantine"
    __mapper_args__ = user_first("id")

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("migration_sessions.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    key: Mapped[str] = mapped_column(String(255))
    index: Mapped[int] = mapped_column(Integer)
    store: Mapped[str | None] = mapped_column(String(64))
    raw: Mapped[Any] = mapped_column(JsonValue)
    reasons: Mapped[list[Any]] = mapped_column(JsonValue)
    target_table: Mapped[str | None] = mapped_column(String(64))
    target_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(Moment)


class MigrationConflict(Base):
    """A record that differs from the user's row under a policy of `ask`: both versions, until resolved.

    status: open, resolved (resolution local or server), or closed (resolution
    superseded, abandoned or rolled_back: the record is decided elsewhere).
    """

    __tablename__ = "migration_conflicts"
    __mapper_args__ = user_first("id")
    __table_args__ = (UniqueConstraint("session_id", "key", "index", name="uq_conflicts_record"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    session_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("migration_sessions.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    key: Mapped[str] = mapped_column(String(255))
    index: Mapped[int] = mapped_column(Integer)
    store: Mapped[str | None] = mapped_column(String(64))
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
    #: Who settled it: "user:<id>" (a resolution, or a rollback through the API), "cli" or "operator:<name>"
    #: (a rollback); NULL for what lsmigrate closed itself (superseded, abandoned) and before 0011.
    resolved_by: Mapped[str | None] = mapped_column(String(320))


class KeyRemainder(Base):
    """What no store claims in a localStorage key, as one session read it (lsmigrate.shared.keys): with the
    key's records (ledger, rows, quarantine) it rebuilds the key's value. `document` is encrypted whole
    ({"$encrypted_json": ciphertext}: nothing of the app's own state is kept in clear); `digest` is that of
    the document in clear, `value_digest` that of the key's value the session verified."""

    __tablename__ = "migration_remainders"
    __mapper_args__ = user_first("session_id", "key")
    __table_args__ = (Index("ix_migration_remainders_user_key", "user_id", "key"),)

    session_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("migration_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255))
    document: Mapped[Any] = mapped_column(JsonValue)
    digest: Mapped[str] = mapped_column(String(64))
    value_digest: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Moment)


class RevokedToken(Base):
    """A bearer token revoked before it expires, by its id (`jti`): refused until `expires_at`, forgotten after."""

    __tablename__ = "revoked_tokens"
    __mapper_args__ = user_first("jti")

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    expires_at: Mapped[datetime] = mapped_column(Moment)
    revoked_at: Mapped[datetime] = mapped_column(Moment)


class TokenCutoff(Base):
    """A user's tokens issued before `not_before` are refused: every token of the user revoked at once."""

    __tablename__ = "token_cutoffs"

    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    not_before: Mapped[datetime] = mapped_column(Moment)


class UserDataVersion(Base):
    """A user's data version: advanced in every transaction that changes the user's migrated rows
    (`lsmigrate.server.signals.advance_data_version`), so a copy of the rows cached elsewhere records the
    version it was built from and is served only while that is still the version here."""

    __tablename__ = "user_data_versions"

    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


class Salt(Base):
    """A secret of this deployment that never rotates, by name (`relocation`: `records.identity`), in hex."""

    __tablename__ = "lsmigrate_salts"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
