"""Names unique per user (an environment's name): a taken one becomes "Name (2)", then "Name (3)"…,
in linear time however many records want one name.

Two queries at most per batch: the rows holding the wanted names, then, only
when some name is taken or wanted twice, the rows holding its numbered forms.
A name counts as taken when any other row of the user holds it now, even one
this batch renames: the rows are written in one statement, and a swap of two
names must not collide half-way.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from sqlalchemy import or_, select

from lsmigrate.server.db import db
from lsmigrate.server.records.rows import unique_name
from lsmigrate.shared.mapping import MappedRecord
from lsmigrate.shared.stores import StoreSpec


def allocate_names(model: Any, column: str, user_id: str, wanted: list[tuple[uuid.UUID, str]]) -> list[str]:
    """The name each (row id, wanted name) gets, in order: the wanted one, or the first free "Name (n)"."""
    if not wanted:
        return []
    table = model.__table__
    name_column = table.c[column]
    mine = table.c.user_id == user_id
    query = select(name_column, table.c.id).where(mine, name_column.in_({name for _, name in wanted}))
    holders: dict[str, uuid.UUID] = {name: row_id for name, row_id in db.session.execute(query)}
    wanted_by: dict[str, set[uuid.UUID]] = defaultdict(set)
    for row_id, name in wanted:
        wanted_by[name].add(row_id)
    crowded = [name for name, ids in wanted_by.items() if len(ids) > 1 or (name in holders and ids != {holders[name]})]
    if crowded:
        numbered = or_(*(name_column.startswith(f"{name} (", autoescape=True) for name in crowded))
        holders.update(
            {name: row_id for name, row_id in db.session.execute(select(name_column, table.c.id).where(mine, numbered))}
        )
    names = []
    # Per name, the number below which every "Name (n)" is known taken: each record goes on from there, so
    # k records wanting one name cost k steps in all, not k² (a batch of 1,000 environments named alike).
    tried: dict[str, int] = {}
    for row_id, name in wanted:
        given = name
        if holders.get(given, row_id) != row_id:
            n = tried.get(name, 2)
            while holders.get(f"{name} ({n})", row_id) != row_id:
                n += 1
            given = f"{name} ({n})"
            tried[name] = n + 1
        holders[given] = row_id
        names.append(given)
    return names


def rename_taken(
    spec: StoreSpec, model: Any, user_id: str, writes: list[tuple[uuid.UUID, MappedRecord]]
) -> list[MappedRecord | None]:
    """For each (row id, mapped record) about to be written: the record renamed if its name is taken, else None.

    A renamed record keeps the name it had in metadata.original (unless the
    source had no name at all, or the original is kept there already).
    """
    named = unique_name(spec, model)
    if named is None or not writes:
        return [None] * len(writes)
    column, source_key = named
    wanted = [(row_id, mapped.row[column]) for row_id, mapped in writes if mapped.row is not None]
    given = allocate_names(model, column, user_id, wanted)
    renamed: list[MappedRecord | None] = []
    for (_, mapped), (_, name), new in zip(writes, wanted, given, strict=True):
        if new == name or mapped.row is None:
            renamed.append(None)
            continue
        row = dict(mapped.row)
        meta = dict(row["metadata"])
        original = dict(meta.get("original", {}))
        if source_key not in original and source_key not in meta.get("absent", ()):
            original[source_key] = name
        meta["original"] = original
        row[column], row["metadata"] = new, meta
        renamed.append(MappedRecord(mapped.index, mapped.digest, row, mapped.warnings, secrets=mapped.secrets))
    return renamed
