"""What becomes of each record of a batch (design §5): pure rules, no database and no app.

`plan` looks up what the batch's ids name, set-based, inside the batch's
transaction, and hands each target row's records to a `Decider` with the
store's policy. The rules:

- quarantined: the mapping refused the record, or it holds text PostgreSQL
  cannot store (`unstorable_text`).
- foreign_id: an id another user's row holds is never touched; the record
  gets its relocated id (warning `foreign_id`).
- duplicate_in_source: versions of one target row within the session (this
  batch and earlier ones): the newest `timestamp_field` wins (a record whose
  timestamp field gave no time is older than any with one; on a tie the first
  one read wins); every other version is `superseded`, its raw value in the
  quarantine. A later winner takes over the earlier one's write: its outcome
  is `inserted` if the earlier one inserted the row, else `updated` with the
  pre-image of the row before the session. An earlier version whose raw value
  can no longer be rebuilt from the row (someone changed it since) stays the
  winner.
- unchanged: the user's row holds the same digest: nothing written.
- exists_differs: the user's row differs. By policy (`StoreSpec.conflict_policy`,
  or app config CONFLICT_POLICIES[store name]): newest_wins (`updated` if the
  record's timestamp is newer than the row's, else `kept_server`: ties and
  records without a timestamp keep the row), keep_server, keep_local, or ask
  (`conflict`, open until resolved).
(A name another row of the user holds, `name_taken`, needs the database:
`records.names`, applied by `plan` to the rows the Decider writes.)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lsmigrate.shared.mapping import MappedRecord
from lsmigrate.shared.stores import StoreSpec

#: Outcomes that hold a record's place in its session: at most one per target row.
SUPERSEDED = {"code": "superseded", "field": "", "message": "a newer version of this record came in the session"}
_KEPT_SERVER = {"code": "kept_server", "field": "", "message": "the user's row differs and was kept"}
FOREIGN = {"code": "foreign_id", "field": "", "message": "the id and its relocated id belong to other users"}


@dataclass(frozen=True)
class Batch:
    """One batch being applied: its store, session and position."""

    spec: StoreSpec
    model: Any
    session_id: uuid.UUID
    user_id: str
    dry_run: bool
    key: str
    seq: int

    @property
    def owner(self) -> tuple[uuid.UUID, str]:
        return self.session_id, self.user_id


@dataclass
class Record:
    """One record of the batch, as it is being decided."""

    mapped: MappedRecord
    raw: Any
    target_id: uuid.UUID | None = None
    outcome: str = "quarantined"
    version: datetime | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[dict[str, Any]] = field(default_factory=list)
    pre_image: dict[str, Any] | None = None
    conflict_id: uuid.UUID | None = None
    write: str | None = None  # "insert" or "update"
    imaged: bool = False  # the pre-image is the row as it is now
    pre_digest: str | None = None  # the row digest of the pre-image (`records.digests`)
    row_digest: str | None = None  # the row digest as this record left it, or found and relied on it


@dataclass(frozen=True)
class Claim:
    """The session's earlier ledger entry for a target row (at most one is live)."""

    key: str
    index: int
    digest: str
    outcome: str
    version: datetime | None
    pre_image: dict[str, Any] | None
    pre_digest: str | None = None


@dataclass(frozen=True)
class Row:
    """What the lookup tells of a target row."""

    user_id: str
    digest: str
    version: datetime | None
    session_id: uuid.UUID | None
    state: str | None = None  # the row's digest (`records.digests`), as it is now


def _newest(versions: list[Any]) -> Any:
    """The newest version; one without a time is oldest; on a tie the first."""
    best = versions[0]
    for version in versions[1:]:
        if version.version is not None and (best.version is None or version.version > best.version):
            best = version
    return best


def _local_wins(policy: str, local: datetime | None, server: datetime | None) -> bool | None:
    """True: the record overwrites the row; False: the row is kept; None: ask the user."""
    if policy == "ask":
        return None
    if policy in ("keep_local", "keep_server"):
        return policy == "keep_local"
    return local is not None and (server is None or local > server)


class Decider:
    """Decides each target row's records; collects what the plan needs besides: images, claims given up."""

    def __init__(self, batch: Batch, policy: str) -> None:
        self.batch = batch
        self.policy = policy
        self.superseded: list[Claim] = []
        self.closed_conflicts: list[tuple[str, int]] = []
        self.images_wanted: set[uuid.UUID] = set()
        self.rebuilt: list[tuple[Claim, uuid.UUID]] = []
        self.id_field = batch.spec.id_field or ""

    def replaceable(self, claim: Claim, row: Row | None) -> bool:
        """Whether an earlier version can give way: its raw value must be in hand or rebuildable from the row."""
        if claim.outcome in ("kept_server", "conflict"):
            return True  # its raw value is in the quarantine, or in its conflict
        if claim.outcome == "unchanged":
            return row is not None and row.digest == claim.digest
        if self.batch.dry_run:
            return True  # it wrote nothing, and nothing will be quarantined
        return row is not None and row.digest == claim.digest and row.session_id == self.batch.session_id

    def supersede(self, claim: Claim, target: uuid.UUID) -> None:
        self.superseded.append(claim)
        if self.batch.dry_run:
            return  # its quarantine and conflicts would be rolled back anyway
        if claim.outcome in ("inserted", "updated", "unchanged"):
            self.rebuilt.append((claim, target))
            self.images_wanted.add(target)
        elif claim.outcome == "conflict":
            self.closed_conflicts.append((claim.key, claim.index))

    def decide(self, target: uuid.UUID, group: list[Record], claim: Claim | None, row: Row | None) -> None:
        versions: list[Any] = [claim, *group] if claim is not None else list(group)
        if len(versions) > 1:
            for record in group:
                record.warnings.append({"code": "duplicate_in_source", "field": self.id_field})
        winner = _newest(versions)
        if claim is not None and winner is not claim and not self.replaceable(claim, row):
            winner = claim
        for record in group:
            if record is not winner:
                record.outcome = "superseded"
                record.reasons = [SUPERSEDED]
        if winner is claim:
            return
        if claim is not None:
            self.supersede(claim, target)
            if claim.outcome in ("inserted", "updated"):
                # The session already wrote this row: the winner takes over that write.
                winner.outcome, winner.pre_image = claim.outcome, claim.pre_image
                winner.pre_digest = claim.pre_digest
                winner.write = "update" if row is not None else "insert"
                return
        if row is None:
            winner.outcome, winner.write = "inserted", "insert"
        elif row.digest == winner.mapped.digest:
            winner.outcome = "unchanged"
        else:
            wins = _local_wins(self.policy, winner.version, row.version)
            if wins is None:
                winner.outcome = "conflict"
                if not self.batch.dry_run:
                    self.images_wanted.add(target)  # the conflict shows the row as it is
            elif wins:
                winner.outcome, winner.write, winner.imaged = "updated", "update", True
                self.images_wanted.add(target)
            else:
                winner.outcome, winner.reasons = "kept_server", [_KEPT_SERVER]
