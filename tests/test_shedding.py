"""Load shedding (issue 15): a request that queued too long, a full instance and a user's second batch are answered
"later" at once, with Retry-After and nothing written; a statement past the time-out is a 503, not a hung worker."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from flask import Flask

from lsmigrate.server import create_app
from lsmigrate.server.api import shedding
from lsmigrate.server.api.shedding import Slots
from tests.fixtures_services import PostgresServer
from tests.migration_helpers import API, batch_body, db_rows, open_session, recorded_statements

TASKS = [{"id": f"t{i}", "title": f"Task {i}"} for i in range(3)]


def put_at(client: Any, headers: dict[str, str], sid: str, **extra: str) -> Any:
    return client.put(f"{API}/sessions/{sid}/batches/0", json=batch_body("task-store", TASKS), headers=headers | extra)


def assert_shed(response: Any, status: int, code: str, reason: str, waits: tuple[int, int]) -> None:
    assert response.status_code == status, response.json
    assert response.json["error"]["code"] == code
    assert response.json["error"]["details"]["reason"] == reason
    assert waits[0] <= int(response.headers["Retry-After"]) <= waits[1]
    assert response.json["error"]["details"]["retry_after"] == int(response.headers["Retry-After"])


@pytest.mark.parametrize("stamp", [lambda now: f"t={(now - 60) * 1000:.0f}", lambda now: f"t={now - 60:.3f}"])
def test_a_request_that_queued_too_long_is_shed_before_any_work(app, client, auth, postgres, stamp) -> None:
    headers = auth("alice")
    sid = open_session(client, headers)
    with recorded_statements(app) as statements:
        response = put_at(client, headers, sid, **{"X-Request-Start": stamp(time.time())})
    assert_shed(response, 503, "server_busy", "queue_wait", (2, 4))
    assert statements == []
    assert db_rows(postgres, "SELECT count(*) FROM tasks") == [(0,)]


@pytest.mark.parametrize("header", [{}, {"X-Request-Start": "t=not-a-time"}, {"X-Request-Start": "t=NaN"}])
def test_a_request_that_did_not_queue_long_or_says_nothing_usable_is_served(client, auth, header) -> None:
    headers = auth("alice")
    sid = open_session(client, headers)
    fresh = {"X-Request-Start": f"t={time.time() * 1000:.0f}"}
    assert put_at(client, headers, sid, **(header or fresh)).status_code == 200


@contextmanager
def held_slots(app: Flask, count: int) -> Iterator[None]:
    with app.app_context():
        slots = shedding._slots()
    taken = [slots.take() for _ in range(count)]
    try:
        yield
    finally:
        for held in taken:
            if held:
                slots.give_back()


def test_a_full_instance_sheds_the_next_batch_and_complete_and_serves_them_once_a_slot_is_free(
    app, client, auth, postgres, monkeypatch
) -> None:
    monkeypatch.setitem(app.config, "MAX_BATCHES_IN_FLIGHT", 2)
    headers = auth("bob")
    sid = open_session(client, headers)
    with held_slots(app, 2):
        assert_shed(put_at(client, headers, sid), 503, "server_busy", "in_flight", (2, 4))
        done = client.post(f"{API}/sessions/{sid}/complete", json={"manifest": {}}, headers=headers)
        assert_shed(done, 503, "server_busy", "in_flight", (2, 4))
        assert client.get(f"{API}/sessions/{sid}", headers=headers).status_code == 200  # cheap reads go on
    assert db_rows(postgres, "SELECT count(*) FROM tasks") == [(0,)]
    assert put_at(client, headers, sid).status_code == 200
    assert db_rows(postgres, "SELECT count(*) FROM tasks WHERE user_id = 'bob'") == [(3,)]


def _hold_one(slots: Slots, taken: Any) -> None:
    if slots.take():
        taken.set()
    time.sleep(60)  # until killed


def test_the_slots_are_shared_by_forked_processes_and_a_dead_holders_slot_is_taken_back() -> None:
    context = multiprocessing.get_context("fork")
    slots = Slots(1)
    taken = context.Event()
    holder = context.Process(target=_hold_one, args=(slots, taken))
    holder.start()
    try:
        assert taken.wait(30)
        assert slots.take() is False  # the other process holds the only slot
    finally:
        os.kill(holder.pid, 9)  # a worker killed mid-batch never gives its slot back
        holder.join(30)
    assert slots.take() is True
    assert slots.held() == 1
    slots.give_back()
    assert slots.held() == 0


def _user_lock_key(user_id: str) -> int:
    return int.from_bytes(hashlib.sha256(b"lsmigrate user\n" + user_id.encode()).digest()[:8], signed=True)


def test_a_users_second_batch_in_flight_is_shed_with_a_429_and_nothing_written(
    client, auth, postgres: PostgresServer
) -> None:
    headers = auth("carol")
    sid = open_session(client, headers)
    with psycopg.connect(postgres.conninfo) as other:
        other.execute("SELECT pg_advisory_xact_lock(%s)", (_user_lock_key("carol"),))  # carol's batch in flight
        assert_shed(put_at(client, headers, sid), 429, "user_busy", "per_user", (1, 1))
        other.rollback()
    assert db_rows(postgres, "SELECT count(*) FROM migration_batches") == [(0,)]
    assert put_at(client, headers, sid).status_code == 200


def test_a_statement_past_the_time_out_is_cancelled_and_answered_503(
    app, client, auth, postgres: PostgresServer, monkeypatch
) -> None:
    monkeypatch.setitem(app.config, "STATEMENT_TIMEOUT_SECONDS", 1)
    headers = auth("dave")
    sid = open_session(client, headers)
    with psycopg.connect(postgres.conninfo) as other:
        other.execute("LOCK TABLE tasks IN EXCLUSIVE MODE")  # whoever writes tasks now waits
        started = time.monotonic()
        response = put_at(client, headers, sid)
        waited = time.monotonic() - started
        other.rollback()
    assert response.status_code == 503
    assert response.json["error"]["code"] == "database_unavailable"
    assert 1 <= waited < 10
    assert put_at(client, headers, sid).status_code == 200


@pytest.mark.parametrize(
    ("name", "value"),
    [("MAX_BATCHES_IN_FLIGHT", "0"), ("MAX_BATCHES_IN_FLIGHT", "many"), ("SHED_RETRY_AFTER_SECONDS", "-1"),
     ("MAX_QUEUE_WAIT_SECONDS", "soon"), ("STATEMENT_TIMEOUT_SECONDS", "0")],
)  # fmt: skip
def test_the_shedding_settings_are_parsed_strictly(monkeypatch, postgres, name, value) -> None:
    monkeypatch.setenv(f"LSMIGRATE_{name}", value)
    with pytest.raises(ValueError, match=f"LSMIGRATE_{name}"):
        create_app({"SQLALCHEMY_DATABASE_URI": postgres.url, "DEMO": True, "TESTING": True})


def test_an_app_that_waits_zero_seconds_for_the_queue_never_sheds_for_it(app: Flask, client, auth, monkeypatch) -> None:
    monkeypatch.setitem(app.config, "MAX_QUEUE_WAIT_SECONDS", 0)
    headers = auth("erin")
    sid = open_session(client, headers)
    old = {"X-Request-Start": f"t={(time.time() - 3600) * 1000:.0f}"}
    assert put_at(client, headers, sid, **old).status_code == 200
