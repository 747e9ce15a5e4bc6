"""Open conflicts (a store whose policy is `ask`): both versions listed, one kept, in one transaction.

Keeping "server": the record goes to the quarantine (reason kept_server)
and its ledger outcome becomes kept_server. Keeping "local": the record is
mapped again from its stored raw value and written over the user's row as
the row is now (whose image becomes the ledger's pre-image): outcome
updated; inserted if the row is gone since; unchanged if the row already
holds it. A name another row holds is renamed as in a batch. Resolving a
conflict again the same way answers the same; the other way is 409
`conflict_resolved`. A conflict closed without a choice (superseded by a
newer version, its session abandoned or rolled back) is 409 too.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update

from lsmigrate.server.db import db
from lsmigrate.server.db.models import LedgerEntry, MigrationConflict, MigrationSession, QuarantinedRecord
from lsmigrate.server.errors import Conflict, NotFound
from lsmigrate.server.extension import current_lsmigrate
from lsmigrate.server.records.digests import row_digests
from lsmigrate.server.records.names import rename_taken
from lsmigrate.server.records.quarantine import decrypt_secrets, mask_secrets, quarantine_row
from lsmigrate.server.records.rows import db_row, fetch_images, secret_names, source_record, unique_name
from lsmigrate.server.records.secrets import SecretBox, secret_box
from lsmigrate.server.sessions import lock_user
from lsmigrate.server.signals import send_records_changed
from lsmigrate.shared.stores import StoreSpec

_KEPT_SERVER = {"code": "kept_server", "field": "", "message": "the user chose the server's version"}


def _spec(key: str, store: str | None) -> StoreSpec:
    spec = current_lsmigrate().spec_of(store, key)
    if spec is None:
        raise LookupError(f"No store spec for key {key!r}, which has conflicts: the store catalog changed.")
    return spec


def _server_version(spec: StoreSpec, picture: dict[str, Any], box: SecretBox) -> Any:
    masks = {name: {"$masked": hint} for name, hint in secret_names(spec, picture, box).items()}
    return source_record(spec, picture, masks)


def describe_conflict(conflict: MigrationConflict, box: SecretBox) -> dict[str, Any]:
    """A conflict as the API shows it: both versions in the source's shape, secrets masked."""
    spec = _spec(conflict.key, conflict.store)
    return {
        "id": str(conflict.id),
        "key": conflict.key,
        "index": conflict.index,
        "kind": conflict.kind,
        "target_table": conflict.target_table,
        "target_id": str(conflict.target_id),
        "status": conflict.status,
        "resolution": conflict.resolution,
        "created_at": conflict.created_at.isoformat(),
        "resolved_at": None if conflict.resolved_at is None else conflict.resolved_at.isoformat(),
        "local": mask_secrets(spec, conflict.local, box.reading("migration_conflicts", conflict.id, "local")),
        "server": _server_version(spec, conflict.server, box.reading("migration_conflicts", conflict.id, "server")),
    }


def list_conflicts(session: MigrationSession) -> list[dict[str, Any]]:
    """The session's conflicts, open and resolved, in source order."""
    query = (
        select(MigrationConflict)
        .where(MigrationConflict.session_id == session.id)
        .order_by(MigrationConflict.key, MigrationConflict.index)
    )
    box = secret_box()
    return [describe_conflict(conflict, box) for conflict in db.session.scalars(query)]


def find_conflict(session: MigrationSession, conflict_id: str) -> MigrationConflict:
    """Conflict `conflict_id` of `session`; NotFound (unknown_conflict) otherwise."""
    try:
        key = uuid.UUID(conflict_id)
    except ValueError as error:
        raise NotFound(f"No conflict {conflict_id!r} in this session.", code="unknown_conflict") from error
    conflict = db.session.scalars(
        select(MigrationConflict).filter_by(user_id=session.user_id, session_id=session.id, id=key)
    ).one_or_none()
    if conflict is None:
        raise NotFound(f"No conflict {conflict_id!r} in this session.", code="unknown_conflict")
    return conflict


def _keep_local(session: MigrationSession, conflict: MigrationConflict, entry: LedgerEntry, box: SecretBox) -> bool:
    spec = _spec(conflict.key, conflict.store)
    model = current_lsmigrate().model_of_table(conflict.target_table)
    table, target, user_id = model.__table__, conflict.target_id, session.user_id
    raw = decrypt_secrets(spec, conflict.local, box.reading("migration_conflicts", conflict.id, "local"))
    [mapped] = spec.map([raw], key=conflict.key, user_id=user_id, migrated_at=session.created_at, offset=conflict.index)
    current = fetch_images(model, user_id, [target]).get(target)
    found = row_digests(model, user_id, [target]).get(target)
    if current is not None and current["source_digest"] == mapped.digest:
        entry.outcome, entry.row_digest = "unchanged", found
        return False
    [renamed] = rename_taken(spec, model, user_id, [(target, mapped)])
    if renamed is not None:
        mapped = renamed
        entry.warnings = [*entry.warnings, {"code": "name_taken", "field": unique_name(spec, model)[1]}]  # type: ignore[index]
    row = db_row(spec, mapped, target, (session.id, user_id), box, model)
    if current is None:
        db.session.execute(insert(table), [row])
        entry.outcome = "inserted"
    else:
        values = {name: value for name, value in row.items() if name not in ("id", "user_id")}
        db.session.execute(update(table).where(table.c.id == target, table.c.user_id == user_id).values(values))
        entry.outcome, entry.pre_image, entry.pre_digest = "updated", current, found
    entry.written_at, entry.row_digest = datetime.now(UTC), row_digests(model, user_id, [target])[target]
    return True


def resolve_conflict(
    session: MigrationSession, conflict: MigrationConflict, keep: str, actor: str | None = None
) -> dict[str, Any]:
    """Keep the local or the server version of a conflict's record, as `actor` ("user:<id>": the audit trail's)
    chose; answers the conflict and its outcome."""
    user_id = session.user_id
    lock_user(user_id)
    db.session.refresh(conflict)
    box = secret_box()
    entry = db.session.get(
        LedgerEntry, (user_id, conflict.session_id, conflict.key, conflict.index), populate_existing=True
    )
    assert entry is not None, "every conflict has its ledger entry"
    if conflict.status != "open":
        if conflict.resolution != keep:
            raise Conflict(
                "This conflict is already settled.",
                code="conflict_resolved",
                details={"status": conflict.status, "resolution": conflict.resolution},
            )
        return {"conflict": describe_conflict(conflict, box), "outcome": entry.outcome}
    changed = False
    if keep == "server":
        model = current_lsmigrate().model_of_table(conflict.target_table)
        entry.outcome = "kept_server"
        entry.row_digest = row_digests(model, user_id, [conflict.target_id]).get(conflict.target_id)
        spec = _spec(conflict.key, conflict.store)
        where = (conflict.target_table, conflict.target_id)
        row = quarantine_row(
            spec, (session.id, user_id), conflict.key, conflict.index, conflict.local, [_KEPT_SERVER], where
        )
        db.session.execute(insert(QuarantinedRecord.__table__), [row])
    else:
        changed = _keep_local(session, conflict, entry, box)
    conflict.status, conflict.resolution, conflict.resolved_at = "resolved", keep, datetime.now(UTC)
    conflict.resolved_by = actor
    answer = {"conflict": describe_conflict(conflict, box), "outcome": entry.outcome}
    db.session.commit()
    if changed:
        send_records_changed(user_id)
    return answer
