"""Re-encryption of every stored secret under the newest encryption key (`lsmigrate rotate-keys`).

Where lsmigrate keeps ciphertexts, all of it covered:

    a store's table         `<column>_encrypted` of each secret column, `secrets_encrypted`
    quarantine              `raw`: {"$encrypted": c} or {"$encrypted_json": c} at the secrets' places, inside
                            its `$json` text when the record is kept so (reason unstorable_text)
    migration_conflicts     `local`, as a quarantined record's raw value; `server`, a row image
    migration_ledger        `pre_image`, a row image (its encrypted columns are ciphertexts)
    migration_remainders    `document`, {"$encrypted_json": c}

Each table is walked in primary key order, `batch_size` rows to a transaction, each row locked (FOR UPDATE)
while it is rewritten, so that a concurrent writer is never overwritten with an older value; a batch the
database aborts for a deadlock is done again. A ciphertext under the newest key already is left as it is,
so the command may run again at any time and changes nothing the second time. A ciphertext no key opens is
left as it is, counted as unreadable and named in the log (its table and row), never rewritten.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import Column, Table, bindparam, or_, select, tuple_, update
from sqlalchemy.exc import DBAPIError

from lsmigrate.server.db import db
from lsmigrate.server.db.models import (
    KeyRemainder,
    LedgerEntry,
    MigrationConflict,
    QuarantinedRecord,
    columns_written,
)
from lsmigrate.server.extension import current_lsmigrate
from lsmigrate.server.records.rows import is_generic
from lsmigrate.server.records.secrets import SecretBox, SecretUnreadable

_MARKERS = ("$encrypted", "$encrypted_json")
_UNSTORABLE = "unstorable_text"
#: How often a batch the database aborted (a deadlock with a writer) is tried again.
ATTEMPTS = 5
_ABORTED = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)

#: (a row, the box bound to it) -> the columns of that row to change, with their new values (none: leave it).
Fix = Callable[[Any, SecretBox], dict[str, Any]]


@dataclass
class Tally:
    """What became of the ciphertexts of one place (a table's column)."""

    rotated: int = 0
    current: int = 0
    unreadable: int = 0


@dataclass
class Rotation:
    """One run of the re-encryption: the box, and a tally per place ("table.column")."""

    box: SecretBox
    batch_size: int = 500
    tallies: dict[str, Tally] = field(init=False, default_factory=dict)
    #: The columns holding ciphertexts, by the name of a table a store writes into.
    _encrypted: dict[str, list[str]] = field(init=False, default_factory=dict)

    def run(self) -> dict[str, Tally]:
        """Re-encrypt every stored secret under the newest key; the tallies, by place."""
        tables = encrypted_columns()
        self._encrypted = {table.name: columns for table, columns in tables.items()}
        for table, columns in tables.items():
            self._table(table, columns, self._columns_fix(table.name, columns))
        self._table(QuarantinedRecord.__table__, ["raw"], self._quarantine_fix, also=["reasons"])
        self._table(MigrationConflict.__table__, ["local", "server"], self._conflict_fix, also=["target_table"])
        self._table(LedgerEntry.__table__, ["pre_image"], self._ledger_fix, also=["target_table"])
        self._table(KeyRemainder.__table__, ["document"], self._document_fix("migration_remainders.document"))
        return self.tallies

    # --- one ciphertext, a JSON document, a row image ---------------------------------------------

    def _cipher(self, place: str, box: SecretBox, token: Any) -> Any:
        tally = self.tallies.setdefault(place, Tally())
        try:
            rotated = box.rotate(token)
        except SecretUnreadable:
            tally.unreadable += 1
            return token
        if rotated is None:
            tally.current += 1
            return token
        tally.rotated += 1
        return rotated

    def _document(self, place: str, box: SecretBox, value: Any) -> tuple[Any, bool]:
        """`value` with every {"$encrypted…": ciphertext} in it re-encrypted (in place; iteratively, since a
        quarantined record may be nested hundreds of levels deep), and whether anything changed."""
        if _marker(value) is not None:
            holder = [value]
            changed = self._slot(place, box, holder, 0)
            return holder[0], changed
        changed = False
        stack = [value] if isinstance(value, dict | list) else []
        while stack:
            container = stack.pop()
            for slot in list(container) if isinstance(container, dict) else range(len(container)):
                item = container[slot]
                if _marker(item) is not None:
                    changed |= self._slot(place, box, container, slot)
                elif isinstance(item, dict | list):
                    stack.append(item)
        return value, changed

    def _slot(self, place: str, box: SecretBox, container: Any, slot: Any) -> bool:
        [(name, token)] = container[slot].items()
        new = self._cipher(place, box, token)
        if new == token:
            return False
        container[slot] = {name: new}
        return True

    def _image(self, place: str, box: SecretBox, picture: Any, table: str | None) -> tuple[Any, bool]:
        """A row image with its encrypted columns (those of `table`, else any `*_encrypted`) re-encrypted."""
        if not isinstance(picture, dict):
            return picture, False
        known = self._encrypted.get(table or "")
        changed = False
        for name, token in list(picture.items()):
            encrypted = name in known if known is not None else name.endswith("_encrypted")
            if encrypted and isinstance(token, str):
                new = self._cipher(place, box, token)
                if new != token:
                    picture[name], changed = new, True
        return picture, changed

    # --- the fixes of each table ---------------------------------------------------------------------

    def _columns_fix(self, table: str, columns: list[str]) -> Fix:
        def fix(row: Any, box: SecretBox) -> dict[str, Any]:
            values = {}
            for name in columns:
                token = row._mapping[name]
                if token is not None:
                    new = self._cipher(f"{table}.{name}", box, token)
                    if new != token:
                        values[name] = new
            return values

        return fix

    def _quarantine_fix(self, row: Any, box: SecretBox) -> dict[str, Any]:
        raw, reasons = row.raw, row.reasons or []
        wrapped = any(isinstance(r, dict) and r.get("code") == _UNSTORABLE for r in reasons)
        if wrapped and isinstance(raw, dict) and isinstance(raw.get("$json"), str):
            inner, changed = self._document("quarantine.raw", box, json.loads(raw["$json"]))
            # Written back as the quarantine wraps a record: ASCII JSON text, keys sorted, no spaces.
            text = json.dumps(inner, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
            return {"raw": {"$json": text}} if changed else {}
        raw, changed = self._document("quarantine.raw", box, raw)
        return {"raw": raw} if changed else {}

    def _conflict_fix(self, row: Any, box: SecretBox) -> dict[str, Any]:
        values = {}
        local, changed = self._document("migration_conflicts.local", box, row.local)
        if changed:
            values["local"] = local
        server, changed = self._image("migration_conflicts.server", box, row.server, row.target_table)
        if changed:
            values["server"] = server
        return values

    def _ledger_fix(self, row: Any, box: SecretBox) -> dict[str, Any]:
        if row.pre_image is None:
            return {}
        picture, changed = self._image("migration_ledger.pre_image", box, row.pre_image, row.target_table)
        return {"pre_image": picture} if changed else {}

    def _document_fix(self, place: str) -> Fix:
        def fix(row: Any, box: SecretBox) -> dict[str, Any]:
            document, changed = self._document(place, box, row.document)
            return {"document": document} if changed else {}

        return fix

    # --- walking a table in bounded transactions -----------------------------------------------------

    def _table(self, table: Table, columns: list[str], fix: Fix, also: list[str] | None = None) -> None:
        key = list(table.primary_key.columns)
        for name in columns:
            self.tallies.setdefault(f"{table.name}.{name}", Tally())
        after: tuple[Any, ...] | None = None
        while True:
            for attempt in range(ATTEMPTS):
                counted = {place: Tally(**vars(tally)) for place, tally in self.tallies.items()}
                try:
                    after = self._batch(table, key, columns, fix, also or [], after)
                    break
                except DBAPIError as error:
                    db.session.rollback()
                    self.tallies = counted  # the batch is counted when it is done again
                    if not isinstance(error.orig, _ABORTED) or attempt == ATTEMPTS - 1:
                        raise
            if after is None:
                return

    def _batch(
        self,
        table: Table,
        key: list[Column[Any]],
        columns: list[str],
        fix: Fix,
        also: list[str],
        after: tuple[Any, ...] | None,
    ) -> tuple[Any, ...] | None:
        """Rewrite the next batch of rows after primary key `after`; the last key done, None past the end."""
        query = (
            select(*key, *(table.c[name] for name in [*columns, *also]))
            .where(or_(*(table.c[name].is_not(None) for name in columns)))
            .order_by(*key)
            .limit(self.batch_size)
            .with_for_update()
        )
        if after is not None:
            bound = (bindparam(None, value, type_=column.type) for column, value in zip(key, after, strict=True))
            query = query.where(tuple_(*key) > tuple_(*bound))
        rows = db.session.execute(query).all()
        for row in rows:
            ident = tuple(row[: len(key)])
            values = fix(row, self.box.reading(table.name, *ident))
            if values:
                where = [column == value for column, value in zip(key, ident, strict=True)]
                db.session.execute(update(table).where(*where).values(values))
        db.session.commit()
        return tuple(rows[-1][: len(key)]) if rows else None


def _marker(value: Any) -> str | None:
    """The name of a secret in its stored form ("$encrypted" or "$encrypted_json"), else None."""
    if isinstance(value, dict) and len(value) == 1:
        [(name, token)] = value.items()
        if name in _MARKERS and isinstance(token, str):
            return str(name)
    return None


def encrypted_columns() -> dict[Table, list[str]]:
    """The tables the stores write into, each with its columns holding ciphertexts."""
    found: dict[Table, set[str]] = {}
    state = current_lsmigrate()
    for spec in state.catalog:
        model = state.model_for(spec)
        names = {"secrets_encrypted"} if is_generic(model) else _ciphertexts(columns_written(spec))
        found.setdefault(model.__table__, set()).update(names)
    return {table: sorted(names) for table, names in found.items() if names}


def _ciphertexts(names: set[str]) -> Iterator[str]:
    return (name for name in names if name.endswith("_encrypted"))
