"""Retention (`operator.prune`): long-settled sessions lose their stored responses, pre-images and quarantine;
every session inside the window keeps what its rollback needs, and a pruned session's rollback is refused."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from flask import Flask
from sqlalchemy import event

from lsmigrate.server.db import db
from lsmigrate.server.operator.prune import PruneReport, prune
from tests.fixtures_services import PostgresServer
from tests.migration_helpers import ALL_TABLES, API, db_rows, dump, migrate

WINDOW = timedelta(days=90)


def task(tid: str, title: str, month: int) -> dict[str, Any]:
    return {"id": tid, "title": title, "updatedAt": f"2024-{month:02d}-01T00:00:00.000Z"}


def execute(postgres: PostgresServer, statement: str, *params: Any) -> None:
    """Run one statement behind the app's back, committed."""
    with psycopg.connect(postgres.conninfo) as connection:
        connection.execute(statement, params or None)


def age(postgres: PostgresServer, sid: str, days: int = 100) -> None:
    """Move every moment of session `sid` `days` into the past."""
    execute(
        postgres,
        "UPDATE migration_sessions SET created_at = created_at - make_interval(days => %s),"
        " last_active_at = last_active_at - make_interval(days => %s),"
        " completed_at = completed_at - make_interval(days => %s),"
        " rolled_back_at = rolled_back_at - make_interval(days => %s) WHERE id = %s",
        days,
        days,
        days,
        days,
        sid,
    )


def title(postgres: PostgresServer, tid: str) -> str:
    [(found,)] = db_rows(postgres, "SELECT title FROM tasks WHERE metadata->>'source_id' = %s", tid)
    return str(found)


def held(postgres: PostgresServer, sid: str) -> dict[str, int]:
    """What session `sid` still holds that prune clears."""
    [(results, pre_images, quarantine)] = db_rows(
        postgres,
        "SELECT (SELECT count(*) FROM migration_batches WHERE session_id = %s AND response ? 'results'),"
        " (SELECT count(*) FROM migration_ledger WHERE session_id = %s AND pre_image IS NOT NULL),"
        " (SELECT count(*) FROM quarantine WHERE session_id = %s)",
        sid,
        sid,
        sid,
    )
    return {"results": results, "pre_images": pre_images, "quarantine": quarantine}


@pytest.fixture
def sessions(client, auth, postgres) -> dict[str, str]:
    """Sessions of three users, some settled more than WINDOW ago:

    alice  a1 (old), a2 (old: overwrote a1's row, so it holds a pre-image); both quarantined a record
    bob    b1, b2 (recent: b2 overwrote b1's row); b1 quarantined a record
    carol  c0 (recent), c1 (old, rolled back: its write stayed, c2 stood on it), c2 (recent, on top of c1)
    """
    alice, bob, carol = auth("alice"), auth("bob"), auth("carol")
    found = {
        "a1": migrate(client, alice, {"task-store": [task("x", "X1", 1), "junk"]}, "a1")[0],
        "a2": migrate(client, alice, {"task-store": [task("x", "X2", 2), "junk"]}, "a2")[0],
        "b1": migrate(client, bob, {"task-store": [task("y", "Y1", 1), "junk"]}, "b1")[0],
        "b2": migrate(client, bob, {"task-store": [task("y", "Y2", 2)]}, "b2")[0],
        "c0": migrate(client, carol, {"task-store": [task("z", "Z0", 1)]}, "c0")[0],
        "c1": migrate(client, carol, {"task-store": [task("z", "Z1", 2)]}, "c1")[0],
        "c2": migrate(client, carol, {"task-store": [task("z", "Z2", 3)]}, "c2")[0],
    }
    report = client.post(f"{API}/sessions/{found['c1']}/rollback", headers=carol).json
    assert [skip["reason"] for skip in report["skipped"]] == ["changed_since"]  # c2 stands on c1's write
    for old in ("a1", "a2", "c1"):
        age(postgres, found[old])
    return found


def run(app: Flask, **options: Any) -> PruneReport:
    with app.app_context():
        return prune(WINDOW, **options)


def test_prune_clears_the_old_sessions_and_keeps_every_recent_rollback_working(
    app, client, auth, postgres, sessions
) -> None:
    recent = {name: held(postgres, sessions[name]) for name in ("b1", "b2", "c0", "c2")}

    report = run(app)

    assert (report.sessions, report.responses, report.pre_images, report.quarantine) == (3, 3, 1, 2)
    assert (report.pre_images_kept, report.kept_sessions) == (1, 4)
    for name in ("a1", "a2"):
        assert held(postgres, sessions[name]) == {"results": 0, "pre_images": 0, "quarantine": 0}
    # c1's write that its rollback could not take back keeps its pre-image: c2's rollback will need it.
    assert held(postgres, sessions["c1"]) == {"results": 0, "pre_images": 1, "quarantine": 0}
    assert {name: held(postgres, sessions[name]) for name in recent} == recent
    [(summary,)] = db_rows(postgres, "SELECT response FROM migration_batches WHERE session_id = %s", sessions["a2"])
    assert set(summary) == {"seq", "key", "counts", "pruned_at"} and summary["counts"] == {
        "quarantined": 1,
        "updated": 1,
    }

    # A recent session's rollback works: bob's row goes back to what b1 wrote.
    rolled = client.post(f"{API}/sessions/{sessions['b2']}/rollback", headers=auth("bob"))
    assert rolled.status_code == 200 and rolled.json["restored"] == {"tasks": 1}
    assert title(postgres, "y") == "Y1"
    # And so does one on top of a pruned rolled-back session: carol's row goes back past c1, to c0's.
    rolled = client.post(f"{API}/sessions/{sessions['c2']}/rollback", headers=auth("carol"))
    assert rolled.status_code == 200 and rolled.json["restored"] == {"tasks": 1}
    assert title(postgres, "z") == "Z0"


def test_a_pruned_sessions_rollback_is_refused_and_changes_nothing(app, client, auth, postgres, sessions) -> None:
    run(app)
    before = dump(postgres, ALL_TABLES)
    for name in ("a2", "a1"):
        refused = client.post(f"{API}/sessions/{sessions[name]}/rollback", headers=auth("alice"))
        assert (refused.status_code, refused.json["error"]["code"]) == (409, "session_pruned")
        assert refused.json["error"]["details"]["session_id"] == sessions[name]
    assert dump(postgres, ALL_TABLES) == before
    assert title(postgres, "x") == "X2"
    # A session rolled back before it was pruned answers its rollback's report again, as always.
    again = client.post(f"{API}/sessions/{sessions['c1']}/rollback", headers=auth("carol"))
    assert again.status_code == 200 and again.json["status"] == "rolled_back"


def test_a_dry_run_counts_what_would_go_and_changes_nothing(app, postgres, sessions) -> None:
    before = dump(postgres, ALL_TABLES)
    dry = run(app, dry_run=True)
    assert dump(postgres, ALL_TABLES) == before
    assert dry.transactions == 0
    real = run(app)
    assert {**asdict(dry), "dry_run": False, "transactions": 0, "cutoff": None} == {
        **asdict(real),
        "transactions": 0,
        "cutoff": None,
    }


def test_each_transaction_holds_at_most_batch_size_rows_and_a_second_run_finds_nothing(app, postgres, sessions) -> None:
    commits: list[int] = []
    with app.app_context():
        engine = db.engine

    def count(_connection: Any) -> None:
        commits.append(1)

    event.listen(engine, "commit", count)
    try:
        report = run(app, batch_size=1)
    finally:
        event.remove(engine, "commit", count)
    rows = report.sessions + report.responses + report.pre_images + report.quarantine
    assert rows == 9
    assert len(commits) == report.transactions == rows  # one row per transaction
    for name in ("a1", "a2"):
        assert held(postgres, sessions[name]) == {"results": 0, "pre_images": 0, "quarantine": 0}

    again = run(app, batch_size=1)
    assert (again.sessions, again.responses, again.pre_images, again.quarantine, again.transactions) == (0, 0, 0, 0, 0)


def test_a_run_cut_short_is_finished_by_the_next_whatever_its_window(app, client, auth, postgres, sessions) -> None:
    # As if a run had marked b2 and stopped before clearing anything: a marked session is refused and cleared.
    execute(postgres, "UPDATE migration_sessions SET pruned_at = now() WHERE id = %s", sessions["b2"])
    refused = client.post(f"{API}/sessions/{sessions['b2']}/rollback", headers=auth("bob"))
    assert refused.json["error"]["code"] == "session_pruned"
    assert held(postgres, sessions["b2"])["pre_images"] == 1
    run(app)
    assert held(postgres, sessions["b2"]) == {"results": 0, "pre_images": 0, "quarantine": 0}
    assert held(postgres, sessions["b1"])["results"] == 1


def test_open_and_abandoned_sessions_are_never_pruned(app, client, auth, postgres) -> None:
    alice = auth("alice")
    sid = migrate(client, alice, {"task-store": [task("x", "X1", 1), "junk"]}, "a1")[0]
    execute(postgres, "UPDATE migration_sessions SET status = 'abandoned' WHERE id = %s", sid)
    age(postgres, sid)
    report = run(app)
    assert (report.sessions, report.kept_sessions) == (0, 1)
    assert held(postgres, sid) == {"results": 1, "pre_images": 0, "quarantine": 1}


def test_prune_refuses_a_window_or_batch_that_is_not_positive(app) -> None:
    with app.app_context():
        for window, size in ((timedelta(0), 1), (WINDOW, 0)):
            with pytest.raises(ValueError):
                prune(window, size)
