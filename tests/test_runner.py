"""The page's migration runner, run on CPython against the real app (PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from lsmigrate.browser.progress import PHASES
from lsmigrate.browser.retries import NetworkError, Reply, RetryPolicy, Send
from lsmigrate.server.api.migration import user_digest
from lsmigrate.shared.canonical import digest, manifest_digest
from tests.migration_helpers import db_rows
from tests.runner_helpers import FakeLocalStorage, FakePacing, MemoryBackups, client_sender, run, zustand


def test_every_store_is_uploaded_in_batches_and_cleaned_up(client, auth) -> None:
    storage = FakeLocalStorage(
        {
            "task-store": zustand("tasks", [{"id": f"t{i}", "title": f"Task {i}"} for i in range(5)]),
            "environments": zustand("environments", [{"id": "e", "name": "Prod"}]),
            "theme": "dark",
        }
    )
    report = run(storage, client_sender(client, auth("alice")))
    assert report["state"] == "done"
    assert report["keys"]["task-store"]["inserted"] == 5
    assert report["keys"]["task-store"]["cleaned_up"] is True
    # Stripped (the default cleanup): the records taken out, every other byte of the key left.
    assert storage.items == {
        "theme": "dark",
        "task-store": zustand("tasks", []),
        "environments": zustand("environments", []),
    }
    assert report["keys"]["task-store"]["cleanup"] == "stripped"
    assert report["unknown_keys"] == ["theme"]
    uploads = [detail for name, detail in report["events"] if detail.get("phase") == "upload"]
    assert [detail["done"] for detail in uploads] == [0, 1, 3, 5, 6]


def test_a_corrupt_store_is_reported_and_left_alone_while_the_others_migrate(client, auth) -> None:
    storage = FakeLocalStorage(
        {"task-store": "{not json", "environments": zustand("environments", [{"id": "e", "name": "Prod"}])}
    )
    report = run(storage, client_sender(client, auth("alice")))
    assert report["state"] == "done"
    assert report["errors"] == [
        {"key": "task-store", "code": "invalid_json", "expected": "JSON text", "found": report["errors"][0]["found"]}
    ]
    assert storage.items == {"task-store": "{not json", "environments": zustand("environments", [])}


def test_a_key_the_app_rewrote_during_the_migration_is_kept_and_migrated_again(client, auth, postgres) -> None:
    first = zustand("tasks", [{"id": "a", "title": "A"}])
    rewritten = zustand("tasks", [{"id": "a", "title": "A"}, {"id": "b", "title": "B"}])
    storage = FakeLocalStorage({"task-store": first})
    removals: list[str] = []

    def rewrite_before_the_first_complete(method: str, path: str) -> None:
        if path.endswith("/complete") and storage.items["task-store"] == first:
            storage.items["task-store"] = rewritten  # Zustand writes the whole store on every set()

    original_set = storage.set
    storage.set = lambda key, value: (removals.append(storage.items[key]), original_set(key, value))  # type: ignore[method-assign]
    report = run(storage, client_sender(client, auth("alice"), rewrite_before_the_first_complete))
    assert report["state"] == "done"
    assert report["rounds"] == 2
    assert removals == [rewritten]  # never the value that held only what the first round sent
    assert report["keys"]["task-store"] | {"warnings": 0} == {
        "found": 2,
        "warnings": 0,
        "cleaned_up": True,
        "cleanup": "stripped",
        "inserted": 1,
        "updated": 0,
        "unchanged": 1,
        "quarantined": 0,
        "conflict": 0,
        "kept_server": 0,
        "superseded": 0,
    }
    assert db_rows(postgres, "SELECT title FROM tasks WHERE user_id = 'alice' ORDER BY title") == [("A",), ("B",)]


def test_a_refused_step_fails_the_run_and_deletes_nothing(client) -> None:
    storage = FakeLocalStorage({"task-store": zustand("tasks", [{"id": "a"}])})
    report = run(storage, client_sender(client, {"Authorization": "Bearer forged"}))
    assert report["state"] == "failed"
    assert report["error"]["code"] == "invalid_token"
    assert "task-store" in storage.items


def test_nothing_to_migrate_opens_no_session(client, auth) -> None:
    calls: list[str] = []
    report = run(FakeLocalStorage({"theme": "dark"}), client_sender(client, auth("a"), lambda m, p: calls.append(p)))
    assert report["state"] == "done"
    assert report["keys"] == {}
    assert calls == []


def tasks(count: int) -> list[dict[str, Any]]:
    return [{"id": f"t{i}", "title": f"Task {i}", "updatedAt": "2024-01-01T00:00:00Z"} for i in range(count)]


def events_named(report: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [detail for event, detail in report["events"] if event == name]


class RecordingBackups(MemoryBackups):
    """MemoryBackups that note in `order` when a backup or a checkpoint is saved."""

    def __init__(self, order: list[str], fail: Exception | None = None) -> None:
        super().__init__(fail)
        self.order = order

    async def save(self, values: dict[str, str], meta: dict[str, Any]) -> dict[str, Any]:
        self.order.append("backup")
        return await super().save(values, meta)

    async def save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.order.append("checkpoint")
        await super().save_checkpoint(checkpoint)


class FirstPutsFail:
    """A send whose first PUTs meet `failures` in turn instead of the server: a Reply is answered, an error raised.

    With `offline`, each raised error also takes that pacing's network down, as a failed fetch in an offline tab.
    """

    def __init__(self, send: Send, *failures: Reply | Exception, offline: FakePacing | None = None) -> None:
        self.send = send
        self.failures = list(failures)
        self.offline = offline
        self.puts = 0

    async def __call__(self, method: str, path: str, body: Any) -> Reply:
        if method == "PUT":
            self.puts += 1
            if self.failures:
                failure = self.failures.pop(0)
                if isinstance(failure, Reply):
                    return failure
                if self.offline is not None:
                    self.offline.is_online = False
                raise failure
        return await self.send(method, path, body)


class TabClosed(BaseException):
    """The page went away mid-run: nothing in the runner catches it."""


UNAVAILABLE = Reply(503, {"error": {"code": "database_unavailable", "message": "The database is not reachable."}}, 2.0)


def test_a_backup_that_fails_ends_the_run_before_anything_is_sent(client, auth, postgres) -> None:
    raw = zustand("tasks", tasks(3))
    storage = FakeLocalStorage({"task-store": raw})
    backups = MemoryBackups(fail=Exception("QuotaExceededError: the quota has been exceeded"))
    calls: list[tuple[str, str]] = []
    report = run(storage, client_sender(client, auth("alice"), lambda m, p: calls.append((m, p))), backups=backups)
    assert report["state"] == "failed"
    assert report["error"]["code"] == "backup_failed"
    assert "QuotaExceededError: the quota has been exceeded" in report["error"]["message"]
    assert calls == [("GET", "/config")]  # the stores checked; nothing of the user's sent
    assert storage.items == {"task-store": raw}
    assert backups.checkpoint is None
    assert db_rows(postgres, "SELECT count(*) FROM migration_sessions") == [(0,)]
    phases = [detail["phase"] for detail in events_named(report, "lsmigrate:progress")]
    assert phases[-2:] == ["backup", "done"]  # the panel shows the stage that failed


def test_the_backup_holds_the_raw_values_and_is_saved_before_the_first_upload(client, auth) -> None:
    raw_tasks = '{"state": {"tasks": [{"id": "a", "title": "A", "estimate": 1.50}]},  "version": 0}'
    raw_environments = zustand("environments", [{"id": "e", "name": "Prod"}])
    storage = FakeLocalStorage({"task-store": raw_tasks, "environments": raw_environments, "theme": "dark"})
    order: list[str] = []
    backups = RecordingBackups(order)
    report = run(storage, client_sender(client, auth("alice"), lambda m, p: order.append(m)), backups=backups)
    assert report["state"] == "done"
    assert backups.saved == {"b0": {"task-store": raw_tasks, "environments": raw_environments}}  # byte for byte
    assert report["backup_id"] == "b0"
    # The stores checked (a read), then backed up and checkpointed before anything is sent.
    assert order[:4] == ["GET", "backup", "checkpoint", "POST"]


def test_a_run_that_died_mid_upload_resumes_with_the_backed_up_values(client, auth, postgres) -> None:
    first = tasks(5)
    rewritten = [
        {"id": "t0", "title": "Task 0 renamed", "updatedAt": "2024-02-01T00:00:00Z"},
        *first[1:],
        {"id": "t5", "title": "Task 5", "updatedAt": "2024-02-01T00:00:00Z"},
    ]
    storage = FakeLocalStorage({"task-store": zustand("tasks", first)})
    backups = MemoryBackups()
    send = client_sender(client, auth("alice"))
    sent: list[tuple[str, Any]] = []

    async def dies_on_the_third_put(method: str, path: str, body: Any) -> Reply:
        if method == "PUT" and len(sent) == 2:
            raise TabClosed
        return await recording(method, path, body)

    async def recording(method: str, path: str, body: Any) -> Reply:
        if method == "PUT":
            sent.append((path, body))
        return await send(method, path, body)

    with pytest.raises(TabClosed):
        run(storage, dies_on_the_third_put, backups=backups)
    assert backups.checkpoint is not None
    assert backups.checkpoint["acknowledged"] == [0, 1]
    died = backups.checkpoint["session_id"]
    rewritten_raw = zustand("tasks", rewritten)
    storage.items["task-store"] = rewritten_raw  # the app writes while the page reloads

    sent.clear()
    report = run(storage, recording, backups=backups)
    assert report["state"] == "done"
    assert report["rounds"] == 2
    assert [(path.rsplit("/", 1)[1], body["records"]) for path, body in sent if died in path and "records" in body] == [
        ("2", first[4:])
    ]
    assert [body["records"] for path, body in sent if died not in path and "records" in body] == [
        rewritten[:2],
        rewritten[2:4],
        rewritten[4:],
    ]
    assert storage.items == {"task-store": zustand("tasks", [])}
    assert backups.checkpoint is None
    assert backups.saved == {"b0": {"task-store": zustand("tasks", first)}, "b1": {"task-store": rewritten_raw}}
    uploads = [(d["done"], d["total"]) for d in events_named(report, "lsmigrate:progress") if d["phase"] == "upload"]
    assert uploads[0] == (4, 5)  # the acknowledged batches count as done
    assert db_rows(postgres, "SELECT title FROM tasks WHERE user_id = 'alice' ORDER BY title") == [
        ("Task 0 renamed",),
        *((f"Task {i}",) for i in range(1, 6)),
    ]
    ledger = "SELECT count(*), count(DISTINCT index), max(index) FROM migration_ledger WHERE session_id = %s"
    assert db_rows(postgres, ledger, died) == [(5, 5, 4)]
    assert db_rows(postgres, "SELECT seq FROM migration_batches WHERE session_id = %s ORDER BY seq", died) == [
        (0,),
        (1,),
        (2,),
    ]
    assert db_rows(postgres, ledger, report["session_id"]) == [(6, 6, 5)]
    assert {k: report["keys"]["task-store"][k] for k in ("found", "inserted", "updated", "unchanged")} == {
        "found": 6,
        "inserted": 1,
        "updated": 1,
        "unchanged": 4,
    }


def lost_checkpoint(session_id: str | None) -> dict[str, Any]:
    """A checkpoint of alice's run whose backup (b7) is gone, one batch acknowledged in session `session_id`."""
    return {
        "client_session_id": "lost-run",
        "backup_id": "b7",
        "batch_size": 2,
        "keys": ["task-store"],
        "session_id": session_id,
        "acknowledged": [0],
        "user_digest": user_digest("alice"),
    }


def test_a_checkpoint_whose_backup_is_gone_is_dropped_and_the_run_starts_afresh(client, auth, postgres) -> None:
    storage = FakeLocalStorage({"task-store": zustand("tasks", tasks(3))})
    backups = MemoryBackups()
    backups.checkpoint = lost_checkpoint(None)
    report = run(storage, client_sender(client, auth("alice")), backups=backups)
    assert [warning["code"] for warning in events_named(report, "lsmigrate:warning")] == ["checkpoint_unusable"]
    assert report["state"] == "done"
    assert report["keys"]["task-store"]["inserted"] == 3
    assert storage.items == {"task-store": zustand("tasks", [])}
    assert backups.checkpoint is None
    assert db_rows(postgres, "SELECT count(*) FROM migration_sessions WHERE client_session_id = 'lost-run'") == [(0,)]
    assert db_rows(postgres, "SELECT count(*) FROM tasks WHERE user_id = 'alice'") == [(3,)]


def test_a_checkpoint_whose_backup_is_gone_is_cleared_even_when_nothing_is_left_to_migrate(client, auth) -> None:
    backups = MemoryBackups()
    backups.checkpoint = lost_checkpoint(None) | {"acknowledged": []}
    report = run(FakeLocalStorage({"theme": "dark"}), client_sender(client, auth("alice")), backups=backups)
    assert report["state"] == "done"
    assert [warning["code"] for warning in events_named(report, "lsmigrate:warning")] == ["checkpoint_unusable"]
    assert backups.checkpoint is None  # not warned about again on every page load


def test_a_run_that_died_mid_upload_and_lost_its_backup_withdraws_its_session_and_starts_afresh(
    client, auth, postgres
) -> None:
    storage = FakeLocalStorage({"task-store": zustand("tasks", tasks(5))})
    backups = MemoryBackups()
    send = client_sender(client, auth("alice"))

    async def dies_on_the_third_put(method: str, path: str, body: Any) -> Reply:
        if method == "PUT" and path.endswith("/batches/2"):
            raise TabClosed
        return await send(method, path, body)

    with pytest.raises(TabClosed):
        run(storage, dies_on_the_third_put, backups=backups)
    assert backups.checkpoint is not None
    died = backups.checkpoint["session_id"]
    backups.saved.clear()  # IndexedDB lost the backup but kept the checkpoint
    report = run(storage, send, backups=backups)
    assert [warning["code"] for warning in events_named(report, "lsmigrate:warning")] == ["checkpoint_unusable"]
    assert report["state"] == "done", report.get("error")
    assert storage.items == {"task-store": zustand("tasks", [])}
    assert db_rows(postgres, "SELECT status FROM migration_sessions WHERE id = %s", died) == [("rolled_back",)]
    assert db_rows(postgres, "SELECT count(*), count(DISTINCT id) FROM tasks WHERE user_id = 'alice'") == [(5, 5)]


@pytest.mark.parametrize("owner", ["nobody", "bob"])
def test_a_checkpoint_whose_backup_and_session_are_not_ours_any_more_does_not_block_the_migration(
    client, auth, postgres, owner
) -> None:
    session_id = "5e147265-02e7-4b0e-b5b1-0d33d5c9a591"  # a database that was reset
    if owner == "bob":  # another user signed in on this browser since
        response = client.post("/api/migration/sessions", json={"client_session_id": "bobs-tab"}, headers=auth("bob"))
        session_id = response.json["session_id"]
    storage = FakeLocalStorage({"task-store": zustand("tasks", tasks(3))})
    backups = MemoryBackups()
    backups.checkpoint = lost_checkpoint(session_id)
    reports = [run(storage, client_sender(client, auth("alice")), backups=backups) for _ in range(2)]
    assert [report.get("error", {}).get("code") for report in reports] == [None, None]
    assert reports[0]["state"] == "done"
    assert storage.items == {"task-store": zustand("tasks", [])}
    assert db_rows(postgres, "SELECT count(*) FROM tasks WHERE user_id = 'alice'") == [(3,)]


def died_mid_upload(client, auth, user: str, storage: FakeLocalStorage, backups: MemoryBackups) -> str:  # type: ignore[no-untyped-def]
    """`user`'s run of `storage` dies at its third batch; the id of its session (left open)."""
    send = client_sender(client, auth(user))

    async def dies_on_the_third_put(method: str, path: str, body: Any) -> Reply:
        if method == "PUT" and path.endswith("/batches/2"):
            raise TabClosed
        return await send(method, path, body)

    with pytest.raises(TabClosed):
        run(storage, dies_on_the_third_put, backups=backups)
    assert backups.checkpoint is not None
    assert backups.checkpoint["user_digest"] == user_digest(user)
    assert [meta["user_digest"] for meta in backups.metas.values()] == [user_digest(user)]
    return str(backups.checkpoint["session_id"])


def test_another_users_checkpoint_is_never_resumed_and_their_backup_never_uploaded(client, auth, postgres) -> None:
    backups = MemoryBackups()
    alices = died_mid_upload(
        client, auth, "alice", FakeLocalStorage({"task-store": zustand("tasks", tasks(5))}), backups
    )
    # Alice signs out (the app clears localStorage); Bob signs in on the same browser and has tasks of his own.
    bobs_tasks = [{"id": f"b{i}", "title": f"Bob's {i}"} for i in range(3)]
    storage = FakeLocalStorage({"task-store": zustand("tasks", bobs_tasks)})
    calls: list[tuple[str, str]] = []
    report = run(storage, client_sender(client, auth("bob"), lambda m, p: calls.append((m, p))), backups=backups)
    assert report["state"] == "done", report.get("error")
    assert [warning["code"] for warning in events_named(report, "lsmigrate:warning")] == ["foreign_checkpoint"]
    assert report["keys"]["task-store"]["inserted"] == 3
    assert db_rows(postgres, "SELECT title FROM tasks WHERE user_id = 'bob' ORDER BY title") == [
        (task["title"],) for task in bobs_tasks
    ]
    assert not [path for _, path in calls if alices in path]  # Alice's session is not Bob's to touch
    assert db_rows(postgres, "SELECT status FROM migration_sessions WHERE id = %s", alices) == [("open",)]
    assert db_rows(postgres, "SELECT count(*) FROM tasks WHERE user_id = 'alice'") == [(4,)]  # as her run left it
    assert backups.metas[report["backup_id"]]["user_digest"] == user_digest("bob")
    assert backups.checkpoint is None


def test_a_checkpoint_saved_before_checkpoints_named_their_user_is_resumed_only_by_its_sessions_user(
    client, auth, postgres
) -> None:
    backups = MemoryBackups()
    storage = FakeLocalStorage({"task-store": zustand("tasks", tasks(5))})
    alices = died_mid_upload(client, auth, "alice", storage, backups)
    assert backups.checkpoint is not None
    del backups.checkpoint["user_digest"]  # as an earlier version saved it
    saved = dict(backups.checkpoint)

    bobs = run(
        FakeLocalStorage({"task-store": zustand("tasks", [])}), client_sender(client, auth("bob")), backups=backups
    )
    assert [warning["code"] for warning in events_named(bobs, "lsmigrate:warning")] == ["foreign_checkpoint"]
    assert db_rows(postgres, "SELECT count(*) FROM tasks WHERE user_id = 'bob'") == [(0,)]

    backups.checkpoint = saved
    report = run(storage, client_sender(client, auth("alice")), backups=backups)
    assert report["state"] == "done", report.get("error")
    assert report["session_id"] == alices  # resumed: the server knows its session as Alice's
    assert events_named(report, "lsmigrate:warning") == []
    assert db_rows(postgres, "SELECT count(*), count(DISTINCT id) FROM tasks WHERE user_id = 'alice'") == [(5, 5)]


def test_a_run_that_died_after_complete_resumes_to_the_cleanup_without_uploading(client, auth) -> None:
    storage = FakeLocalStorage({"task-store": zustand("tasks", tasks(5))})
    backups = MemoryBackups()
    send = client_sender(client, auth("alice"))

    async def dies_once_verified(method: str, path: str, body: Any) -> Reply:
        reply = await send(method, path, body)
        if path.endswith("/complete"):
            raise TabClosed
        return reply

    with pytest.raises(TabClosed):
        run(storage, dies_once_verified, backups=backups)
    assert "task-store" in storage.items
    calls: list[str] = []
    report = run(storage, client_sender(client, auth("alice"), lambda m, p: calls.append(m)), backups=backups)
    assert report["state"] == "done"
    assert calls == ["GET", "POST", "POST"]  # the stores, the session (verified), then complete again: no batch
    assert report["keys"]["task-store"]["inserted"] == 5
    assert storage.items == {"task-store": zustand("tasks", [])}
    assert backups.checkpoint is None


def test_a_503_with_retry_after_is_waited_out_and_the_run_completes(client, auth, postgres) -> None:
    storage, pacing = FakeLocalStorage({"task-store": zustand("tasks", tasks(3))}), FakePacing()
    send = FirstPutsFail(client_sender(client, auth("alice")), UNAVAILABLE, UNAVAILABLE)
    report = run(storage, send, pacing=pacing)
    assert report["state"] == "done"
    assert pacing.sleeps == [2.0, 2.0]
    assert send.puts == 5  # 2 refused, 2 batches, the remainder
    assert [
        (detail["phase"], detail["waiting"])
        for detail in events_named(report, "lsmigrate:progress")
        if "waiting" in detail
    ] == [
        ("upload", {"reason": "database_unavailable", "seconds": 2.0, "attempt": 1}),
        ("upload", {"reason": "database_unavailable", "seconds": 2.0, "attempt": 2}),
    ]
    assert storage.items == {"task-store": zustand("tasks", [])}
    assert db_rows(postgres, "SELECT count(*) FROM tasks WHERE user_id = 'alice'") == [(3,)]


def test_a_422_is_not_retried_and_fails_the_run_with_its_code(client, auth) -> None:
    raw = zustand("tasks", tasks(3))
    storage, pacing, backups = FakeLocalStorage({"task-store": raw}), FakePacing(), MemoryBackups()
    error = {
        "code": "digest_mismatch",
        "message": "Some records do not match their digests.",
        "details": {"indexes": [0]},
    }
    send = FirstPutsFail(client_sender(client, auth("alice")), Reply(422, {"error": error}))
    report = run(storage, send, pacing=pacing, backups=backups)
    assert report["state"] == "failed"
    assert report["error"] == error
    assert send.puts == 1
    assert pacing.sleeps == []
    assert storage.items == {"task-store": raw}
    assert backups.checkpoint is not None  # the next run resumes


class Sent:
    """A send that keeps every PUT body it passes on; with `tamper`, the first record of each batch body is
    changed on the way (what the page digested is not what the server reads)."""

    def __init__(self, send: Send, tamper: bool = False) -> None:
        self.send = send
        self.tamper = tamper
        self.batches: list[dict[str, Any]] = []

    async def __call__(self, method: str, path: str, body: Any) -> Reply:
        if method == "PUT" and "/batches/" in path:
            self.batches.append(json.loads(json.dumps(body)))
            if self.tamper:
                body = body | {"records": [body["records"][0] | {"title": "changed"}, *body["records"][1:]]}
        return await self.send(method, path, body)


def test_batches_carry_one_digest_for_their_records(client, auth, postgres) -> None:
    storage = FakeLocalStorage({"task-store": zustand("tasks", tasks(5))})
    send = Sent(client_sender(client, auth("alice")))
    report = run(storage, send, batch_size=2)
    assert report["state"] == "done"
    assert [sorted(body) for body in send.batches] == [["key", "offset", "records", "records_digest", "store"]] * 3
    assert send.batches[1]["records_digest"] == manifest_digest(digest(record) for record in tasks(5)[2:4])
    assert db_rows(postgres, "SELECT count(*) FROM tasks WHERE user_id = 'alice'") == [(5,)]


def test_a_batch_the_server_reads_otherwise_is_sent_again_with_a_digest_per_record_to_name_the_record(
    client, auth, postgres
) -> None:
    raw = zustand("tasks", tasks(3))
    storage, backups = FakeLocalStorage({"task-store": raw}), MemoryBackups()
    send = Sent(client_sender(client, auth("alice")), tamper=True)
    report = run(storage, send, backups=backups)
    assert report["state"] == "failed"
    assert report["error"]["code"] == "digest_mismatch"
    assert report["error"]["details"] == {"indexes": [0]}
    assert ["records_digest" in body for body in send.batches] == [True, False]
    assert send.batches[1]["digests"] == [digest(record) for record in tasks(3)[:2]]
    assert storage.items == {"task-store": raw}
    assert db_rows(postgres, "SELECT count(*) FROM tasks") == [(0,)]


class LoggedBackups(MemoryBackups):
    """Backups that take a few turns of the event loop to write, and say when they start and end in `log`."""

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    async def save(self, values: dict[str, str], meta: dict[str, Any]) -> dict[str, Any]:
        self.log.append("backup started")
        for _ in range(20):
            await asyncio.sleep(0)
        saved = await super().save(values, meta)
        self.log.append("backup saved")
        return saved


class LoggedPacing(FakePacing):
    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    async def breathe(self) -> None:
        self.log.append("breathe")
        await super().breathe()


def test_the_backup_is_written_while_the_records_are_validated_and_saved_before_any_upload(client, auth) -> None:
    log: list[str] = []
    storage = FakeLocalStorage({"task-store": zustand("tasks", tasks(4500))})  # three slices of MAP_SLICE

    async def logged(method: str, path: str, body: Any) -> Reply:
        log.append(f"{method} {path.rsplit('/', 2)[-2]}")
        return await send(method, path, body)

    send = client_sender(client, auth("alice"))
    report = run(storage, logged, batch_size=1000, backups=LoggedBackups(log), pacing=LoggedPacing(log))
    assert report["state"] == "done"
    started, saved = log.index("backup started"), log.index("backup saved")
    assert "breathe" in log[started:saved]  # validation went on while the backup was written
    assert log.index("PUT batches") > saved
    assert report["backup_id"] == "b0"


def test_network_errors_while_offline_wait_for_the_network_and_the_run_completes(client, auth, postgres) -> None:
    storage, pacing = FakeLocalStorage({"task-store": zustand("tasks", tasks(3))}), FakePacing()
    failures = [NetworkError("Failed to fetch") for _ in range(3)]
    send = FirstPutsFail(client_sender(client, auth("alice")), *failures, offline=pacing)
    report = run(storage, send, pacing=pacing, retry=RetryPolicy(attempts=2))
    assert report["state"] == "done"
    assert pacing.sleeps == []
    waits = [detail["waiting"] for detail in events_named(report, "lsmigrate:progress") if "waiting" in detail]
    assert waits == [{"reason": "offline", "attempt": 0}] * 3
    assert storage.items == {"task-store": zustand("tasks", [])}
    assert db_rows(postgres, "SELECT count(*) FROM tasks WHERE user_id = 'alice'") == [(3,)]


def test_network_errors_while_online_fail_the_run_after_the_last_attempt(client, auth) -> None:
    raw = zustand("tasks", tasks(3))
    storage, pacing = FakeLocalStorage({"task-store": raw}), FakePacing()
    failures = [NetworkError("connection refused") for _ in range(5)]
    send = FirstPutsFail(client_sender(client, auth("alice")), *failures)
    report = run(storage, send, pacing=pacing, retry=RetryPolicy(attempts=3, random=lambda: 0.0))
    assert report["state"] == "failed"
    assert report["error"]["code"] == "network_error"
    assert "connection refused" in report["error"]["message"]
    assert send.puts == 3
    assert pacing.sleeps == [0.25, 0.5]
    assert storage.items == {"task-store": raw}


def test_a_dry_run_changes_nothing_and_counts_what_the_real_run_does(client, auth, postgres) -> None:
    items = {
        "task-store": zustand(
            "tasks",
            [
                *tasks(3),
                "not a task",
                {"id": "t9"},
                {"id": "t0", "title": "Older", "updatedAt": "2023-01-01T00:00:00Z"},
            ],
        ),
        "environments": zustand("environments", [{"id": "e", "name": "Prod"}]),
    }
    storage, order = FakeLocalStorage(items), []
    backups = RecordingBackups(order)
    send = client_sender(client, auth("alice"))
    dry = run(storage, send, backups=backups, dry_run=True)
    assert dry["state"] == "done"
    assert dry["dry_run"] is True
    assert storage.items == items
    assert order == []  # no backup, no checkpoint
    assert backups.saved == {}
    assert backups.checkpoint is None
    assert db_rows(postgres, "SELECT count(*) FROM tasks") == [(0,)]
    assert db_rows(postgres, "SELECT count(*) FROM environments") == [(0,)]
    assert db_rows(postgres, "SELECT dry_run FROM migration_sessions") == [(True,)]
    assert {key: found["cleaned_up"] for key, found in dry["keys"].items()} == {
        "task-store": False,
        "environments": False,
    }

    real = run(FakeLocalStorage(items), send)
    assert real["state"] == "done"
    # "not a task" is in the quarantine: its key stays (the default cleanup strips, and keeps such a key).
    assert {key: found["cleaned_up"] for key, found in real["keys"].items()} == {
        "task-store": False,
        "environments": True,
    }
    assert real["keys"]["task-store"]["kept"]["reason"] == "quarantined_records"

    def without_cleanup(found: dict[str, Any]) -> dict[str, Any]:
        return {name: value for name, value in found.items() if name not in ("cleaned_up", "cleanup")}

    assert {key: without_cleanup(found) for key, found in dry["keys"].items()} == {
        key: without_cleanup(found) for key, found in real["keys"].items()
    }
    assert {k: dry["keys"]["task-store"][k] for k in ("found", "inserted", "quarantined", "superseded")} == {
        "found": 6,
        "inserted": 4,
        "quarantined": 1,
        "superseded": 1,
    }


def test_a_conflict_under_ask_is_announced_and_its_key_kept(client, auth, postgres, app, monkeypatch) -> None:
    monkeypatch.setitem(app.config, "CONFLICT_POLICIES", {"tasks": "ask"})
    send = client_sender(client, auth("alice"))
    first = tasks(2)
    assert run(FakeLocalStorage({"task-store": zustand("tasks", first)}), send)["state"] == "done"
    edited = zustand("tasks", [{"id": "t0", "title": "Edited offline", "updatedAt": "2024-03-01T00:00:00Z"}, first[1]])
    storage = FakeLocalStorage({"task-store": edited})
    report = run(storage, send)
    assert report["state"] == "done"
    [(conflict_id, target_id)] = db_rows(
        postgres, "SELECT id::text, target_id::text FROM migration_conflicts WHERE status = 'open'"
    )
    assert events_named(report, "lsmigrate:conflict") == [
        {
            "session_id": report["session_id"],
            "key": "task-store",
            "index": 0,
            "conflict_id": conflict_id,
            "target_id": target_id,
        }
    ]
    found = report["keys"]["task-store"]
    assert found["kept"] == {"reason": "open_conflicts", "outcomes": {"conflict": 1}}
    assert (found["cleaned_up"], found["conflict"], found["unchanged"]) == (False, 1, 1)
    assert storage.items == {"task-store": edited}
    assert db_rows(postgres, "SELECT title FROM tasks WHERE user_id = 'alice' ORDER BY title") == [
        ("Task 0",),
        ("Task 1",),
    ]


def test_a_session_the_server_closed_under_the_runner_is_reopened(client, auth, postgres, app, monkeypatch) -> None:
    monkeypatch.setitem(app.config, "SESSION_IDLE_SECONDS", 0)
    headers = auth("alice")
    calls: list[tuple[str, str]] = []

    def another_device_opens_before_the_second_put(method: str, path: str) -> None:
        calls.append((method, path))
        if method == "PUT" and [m for m, _ in calls].count("PUT") == 2:
            response = client.post(
                "/api/migration/sessions", json={"client_session_id": "another-device"}, headers=headers
            )
            assert response.status_code == 201, response.json

    storage = FakeLocalStorage({"task-store": zustand("tasks", tasks(5))})
    report = run(storage, client_sender(client, headers, another_device_opens_before_the_second_put))
    assert report["state"] == "done"
    sid = report["session_id"]
    assert [(m, p.replace(sid, "S")) for m, p in calls] == [
        ("GET", "/config"),
        ("POST", "/sessions"),
        ("PUT", "/sessions/S/batches/0"),
        ("PUT", "/sessions/S/batches/1"),  # 409 session_closed
        ("POST", "/sessions"),
        ("PUT", "/sessions/S/batches/1"),
        ("PUT", "/sessions/S/batches/2"),
        ("PUT", "/sessions/S/remainders"),
        ("POST", "/sessions/S/complete"),
    ]
    assert storage.items == {"task-store": zustand("tasks", [])}
    assert db_rows(postgres, "SELECT count(*), count(DISTINCT id) FROM tasks WHERE user_id = 'alice'") == [(5, 5)]
    assert db_rows(postgres, "SELECT count(*), count(DISTINCT index) FROM migration_ledger") == [(5, 5)]
    assert dict(db_rows(postgres, "SELECT client_session_id, status FROM migration_sessions")) == {
        "another-device": "abandoned",
        db_rows(postgres, "SELECT client_session_id FROM migration_sessions WHERE id = %s", sid)[0][0]: "verified",
    }


def test_progress_goes_through_the_phases_in_order_with_rate_and_eta_while_uploading(client, auth) -> None:
    report = run(FakeLocalStorage({"task-store": zustand("tasks", tasks(6))}), client_sender(client, auth("alice")))
    progress = events_named(report, "lsmigrate:progress")
    phases: list[str] = []
    for detail in progress:
        if not phases or phases[-1] != detail["phase"]:
            phases.append(detail["phase"])
    assert phases == list(PHASES)
    uploads = [detail for detail in progress if detail["phase"] == "upload"]
    assert [detail["done"] for detail in uploads] == [0, 2, 4, 6]
    assert all(detail["total"] == 6 for detail in uploads)
    assert (uploads[0]["rate"], uploads[0]["eta"]) == (None, None)
    assert all(detail["rate"] > 0 and detail["eta"] is not None for detail in uploads[1:])
    assert uploads[-1]["eta"] == 0.0


def test_a_record_nested_as_deep_as_the_page_reads_with_a_nul_is_set_aside_not_a_failure(
    client, auth, postgres
) -> None:
    deep: Any = "NUL\u0000"
    for level in range(505):  # with the Zustand envelope and the list: 508 of the 512 levels the page reads
        deep = [deep] if level % 2 else {"k": deep}
    raw = zustand("tasks", [{"id": "t-deep", "title": "Deep", "messages": deep}, *tasks(1)])
    storage = FakeLocalStorage({"task-store": raw})
    report = run(storage, client_sender(client, auth("alice")))
    assert report["state"] == "done", report.get("error")
    found = report["keys"]["task-store"]
    assert (found["inserted"], found["quarantined"]) == (1, 1)
    assert found["kept"]["reason"] == "quarantined_records"
    assert storage.items == {"task-store": raw}  # kept whole: one of its records is in the quarantine
    held = client.get("/api/migration/keys/task-store", headers=auth("alice")).json
    assert json.loads(held["value"]) == json.loads(raw)  # the server rebuilds every level of it
