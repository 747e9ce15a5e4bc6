"""The decision rules of design §5, as tables: no database, no app (`lsmigrate.server.ingest.decide`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from lsmigrate.demo.stores import STORES
from lsmigrate.server.ingest.decide import Batch, Claim, Decider, Record, Row
from lsmigrate.shared.mapping import MappedRecord

SESSION = uuid.UUID(int=1)
TARGET = uuid.UUID(int=2)
OLD, NEW = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)


def batch(dry_run: bool = False) -> Batch:
    return Batch(STORES.named("tasks"), None, SESSION, "alice", dry_run, "task-store", 0)


def record(digest: str, version: datetime | None, index: int = 0) -> Record:
    mapped = MappedRecord(index, digest, {"id": str(TARGET)})
    return Record(mapped, {"id": str(TARGET)}, target_id=TARGET, version=version)


def row(digest: str, version: datetime | None, session: uuid.UUID | None = None) -> Row:
    return Row("alice", digest, version, session)


def claim(outcome: str, digest: str, version: datetime | None) -> Claim:
    return Claim("task-store", 0, digest, outcome, version, {"pre": "image"} if outcome == "updated" else None)


def outcome_of(policy: str, local: Record, server: Row | None, earlier: Claim | None = None) -> tuple[Any, ...]:
    decider = Decider(batch(), policy)
    decider.decide(TARGET, [local], earlier, server)
    return local.outcome, local.write, TARGET in decider.images_wanted


@pytest.mark.parametrize(
    ("policy", "local", "server", "expected"),
    [
        # no row: inserted, whatever the policy
        ("newest_wins", record("a", NEW), None, ("inserted", "insert", False)),
        ("ask", record("a", NEW), None, ("inserted", "insert", False)),
        # the same content: nothing written
        ("newest_wins", record("a", NEW), row("a", OLD), ("unchanged", None, False)),
        ("keep_local", record("a", OLD), row("a", NEW), ("unchanged", None, False)),
        # exists_differs, by policy (the row's image kept for an update and for a conflict)
        ("newest_wins", record("a", NEW), row("b", OLD), ("updated", "update", True)),
        ("newest_wins", record("a", OLD), row("b", NEW), ("kept_server", None, False)),
        ("newest_wins", record("a", NEW), row("b", NEW), ("kept_server", None, False)),  # a tie keeps the row
        ("newest_wins", record("a", None), row("b", OLD), ("kept_server", None, False)),  # no time: not newer
        ("newest_wins", record("a", NEW), row("b", None), ("updated", "update", True)),
        ("keep_local", record("a", OLD), row("b", NEW), ("updated", "update", True)),
        ("keep_server", record("a", NEW), row("b", OLD), ("kept_server", None, False)),
        ("ask", record("a", NEW), row("b", OLD), ("conflict", None, True)),
    ],
)
def test_one_record_against_the_users_row(policy, local, server, expected) -> None:
    assert outcome_of(policy, local, server) == expected


def test_duplicates_in_the_source_the_newest_wins_the_others_are_superseded() -> None:
    first, newest, undated = record("a", OLD, 0), record("b", NEW, 1), record("c", None, 2)
    decider = Decider(batch(), "newest_wins")
    decider.decide(TARGET, [first, newest, undated], None, None)
    assert [r.outcome for r in (first, newest, undated)] == ["superseded", "inserted", "superseded"]
    assert all({"code": "duplicate_in_source", "field": "id"} in r.warnings for r in (first, newest, undated))
    assert first.reasons[0]["code"] == "superseded"


@pytest.mark.parametrize(
    ("earlier", "server", "expected", "rebuilt"),
    [
        # the session inserted the row in an earlier batch: a newer version takes over that write
        (claim("inserted", "a", OLD), row("a", OLD, SESSION), ("inserted", "update"), True),
        # it had updated the row: the newer one updates it, with the pre-image from before the session
        (claim("updated", "a", OLD), row("a", OLD, SESSION), ("updated", "update"), True),
        # the row changed since that batch (another writer): the earlier version stays, the newer superseded
        (claim("inserted", "a", OLD), row("z", OLD, uuid.UUID(int=9)), ("superseded", None), False),
    ],
)
def test_a_newer_version_of_a_record_an_earlier_batch_wrote(earlier, server, expected, rebuilt) -> None:
    newer = record("b", NEW)
    decider = Decider(batch(), "newest_wins")
    decider.decide(TARGET, [newer], earlier, server)
    assert (newer.outcome, newer.write) == expected
    assert bool(decider.rebuilt) is rebuilt and (decider.superseded == [earlier]) is rebuilt
    if expected[0] == "updated":
        assert newer.pre_image == {"pre": "image"}


def test_a_dry_run_supersedes_without_images_or_quarantine() -> None:
    decider = Decider(batch(dry_run=True), "newest_wins")
    newer = record("b", NEW)
    decider.decide(TARGET, [newer], claim("inserted", "a", OLD), row("z", OLD, uuid.UUID(int=9)))
    assert newer.outcome == "inserted" and decider.rebuilt == [] and decider.images_wanted == set()
