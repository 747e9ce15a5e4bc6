"""lsmigrate's signals (blinker, as Flask's own): what presets and host apps may subscribe to.

records_changed   sent by the app after a commit that changed a user's migrated rows, with
                  `user_id` and `write_through` (False for a batch in the middle of a session:
                  `complete`, a conflict's resolution and a rollback send it again with True)
"""

from __future__ import annotations

from blinker import Namespace
from flask import current_app

_signals = Namespace()
records_changed = _signals.signal("lsmigrate.records-changed")


def send_records_changed(user_id: str, *, write_through: bool = True) -> None:
    """Tell the current app's subscribers that `user_id`'s rows changed (after the commit)."""
    records_changed.send(current_app._get_current_object(), user_id=user_id, write_through=write_through)  # type: ignore[attr-defined]
