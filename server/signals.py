"""How the app learns that a user's migrated rows changed: inside the transaction, and after the commit.

user data version  one number per user in the database (`user_data_versions`), advanced inside every
                   transaction that changes the user's rows: lsmigrate's own, where it takes the user's
                   lock (`lsmigrate.server.sessions.lock_user`), and a host's that edits those rows
                   itself (`advance_data_version`). It commits and rolls back with the rows, so it is
                   what decides whether a copy of them cached elsewhere is fresh: the copy records the
                   version it was built from (`data_version`, read before the rows) and is served only
                   while that is still the version.
records_changed    a blinker signal (as Flask's own), sent by the app after a commit that changed a
                   user's migrated rows, with `user_id` and `write_through` (False for a batch in the
                   middle of a session: `complete`, a conflict's resolution and a rollback send it again
                   with True). A cache subscribes to write its new copy through; a signal that is lost
                   (Redis down, a worker gone after the commit) costs a read from the database, never a
                   stale answer.
"""

from __future__ import annotations

import time

from blinker import Namespace
from flask import current_app
from sqlalchemy import case, select
from sqlalchemy.dialects import postgresql, sqlite

from lsmigrate.server.db import db
from lsmigrate.server.db.models import UserDataVersion

_signals = Namespace()
records_changed = _signals.signal("lsmigrate.records-changed")


def send_records_changed(user_id: str, *, write_through: bool = True) -> None:
    """Tell the current app's subscribers that `user_id`'s rows changed (after the commit)."""
    records_changed.send(current_app._get_current_object(), user_id=user_id, write_through=write_through)  # type: ignore[attr-defined]


def advance_data_version(user_id: str) -> None:
    """Advance `user_id`'s data version in the current transaction, before changing the user's migrated rows
    in it: no copy of them cached before is served once it commits."""
    table = UserDataVersion.__table__
    # The next version is above the last one and at least the clock in microseconds, so no version is
    # handed out twice, even after the database is restored from a backup older than a copy still cached.
    now = time.time_ns() // 1000
    upsert = (postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite).insert(table)
    stored = table.c.version
    # One statement, which waits on the row of a concurrent transaction (SQLite: on its write lock). Taken
    # before the rows are changed, as lsmigrate does, it never waits while holding one of them.
    db.session.execute(
        upsert.values(user_id=user_id, version=now).on_conflict_do_update(
            index_elements=[table.c.user_id], set_={stored: case((stored < now, now), else_=stored + 1)}
        )
    )


def data_version(user_id: str) -> int:
    """`user_id`'s data version as the current transaction sees it (0 before any change): read it in the
    transaction that reads the rows a cached copy is built from, before them."""
    version = db.session.scalar(select(UserDataVersion.version).where(UserDataVersion.user_id == user_id))
    return 0 if version is None else version
