"""References between stores on the server: which a batch's rows point at rows that are not there (yet).

The shared mapping has already rewritten each reference to the row id the referenced record gets (one
deterministic rule, so it holds whichever batch or session brings that record, the original kept in
the row's metadata). Here, for the records a batch writes, each reference is looked up among the
user's rows of the referenced store and the rows this batch writes itself: one that is not there gets
the warning `reference_unresolved` (field, store). A column with a foreign key cannot hold an id
that is not there yet, so it is written NULL then (the original is in the metadata, so nothing is
lost, and the page uploads referenced stores first, so within a session this is only a reference to
a record of a later batch or none at all).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from lsmigrate.server.db import db
from lsmigrate.server.db.sql import among
from lsmigrate.server.extension import current_lsmigrate
from lsmigrate.server.records.identity import relocate, relocation_candidates, relocation_salt

if TYPE_CHECKING:
    # Types only: importing lsmigrate.server.ingest here would import its plan, which imports this module.
    from lsmigrate.server.ingest.decide import Batch, Record


def check_references(batch: Batch, records: list[Record]) -> None:
    """Warn on (and, for a foreign key, write NULL for) each reference of `records` whose row is not there."""
    references = batch.spec.mapper.references
    if not references or not records:
        return
    lsmigrate = current_lsmigrate()
    columns = {column.source_key: column.name for column in batch.spec.mapper.columns}
    written = {record.target_id for record in records if record.target_id is not None}
    table = batch.model.__table__
    for field_name, (store, _) in references.items():
        column = columns[field_name]
        wanted: dict[uuid.UUID, list[Record]] = defaultdict(list)
        for record in records:
            value = _as_uuid(record.mapped.row.get(column) if record.mapped.row else None)
            if value is not None:
                wanted[value].append(record)
        if not wanted:
            continue
        target = lsmigrate.model_for(lsmigrate.catalog.named(store)).__table__
        owners = _owners(target, wanted)
        _follow_relocations(target, batch.user_id, store, field_name, column, wanted, owners)
        present = {row_id for row_id in wanted if owners.get(row_id) == batch.user_id}
        if store == batch.spec.name:
            present |= written
        foreign_key = column in table.c and bool(table.c[column].foreign_keys)
        for target_id, holders in wanted.items():
            if target_id in present:
                continue
            for record in holders:
                record.warnings.append({"code": "reference_unresolved", "field": field_name, "store": store})
                if foreign_key:
                    assert record.mapped.row is not None
                    record.mapped.row[column] = None


def _owners(table: Any, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The user whose row has each of these ids (ids without a row left out)."""
    query = select(table.c.id, table.c.user_id).where(among(table.c.id, list(ids)))
    return {row_id: user_id for row_id, user_id in db.session.execute(query)}


def _follow_relocations(
    table: Any,
    user_id: str,
    store: str,
    field_name: str,
    column: str,
    wanted: dict[uuid.UUID, list[Record]],
    owners: dict[uuid.UUID, str],
) -> None:
    """A reference to an id another user's row holds points where the user's own record is, or will be: its
    relocated id (`records.identity`), never the other user's row."""
    taken = [row_id for row_id in wanted if owners.get(row_id, user_id) != user_id]
    if not taken:
        return
    salt = relocation_salt()
    candidates = {row_id: relocation_candidates(salt, user_id, store, row_id) for row_id in taken}
    owners.update(_owners(table, [place for pair in candidates.values() for place in pair]))
    for row_id, pair in candidates.items():
        place = relocate(pair, owners.get, user_id)
        if place is None:
            continue  # both places are other users': the reference stays unresolved
        for record in wanted[row_id]:
            row = record.mapped.row
            assert row is not None and isinstance(record.raw, dict)
            row[column] = str(place)
            row["metadata"].setdefault("original", {}).setdefault(field_name, record.raw.get(field_name))
        wanted[place] = wanted.get(place, []) + wanted.pop(row_id)


def _as_uuid(value: Any) -> uuid.UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
