"""Sending until answered: backoff with equal jitter, Retry-After, which answers are retried, waiting while offline."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lsmigrate.browser.retries import NetworkError, Reply, RetryPolicy, send_with_retries, should_retry

OK = Reply(200, {"ok": True})
UNAVAILABLE = {"error": {"code": "database_unavailable", "message": "The database is not reachable."}}


class Pacing:
    """Sleeps recorded, never slept; the browser is offline from a send that says so until `until_online`."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.offline = False
        self.online_waits = 0

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def online(self) -> bool:
        return not self.offline

    async def until_online(self) -> None:
        self.online_waits += 1
        self.offline = False


class Offline(NetworkError):
    """A script step: the request fails because the browser went offline."""


class Script:
    """A send that plays its steps in order (a Reply is answered, an exception raised) and records each call."""

    def __init__(self, pacing: Pacing, *steps: Reply | NetworkError) -> None:
        self.pacing = pacing
        self.steps = list(steps)
        self.calls: list[tuple[str, str, Any]] = []

    async def __call__(self, method: str, path: str, body: Any) -> Reply:
        self.calls.append((method, path, body))
        step = self.steps.pop(0)
        if isinstance(step, Offline):
            self.pacing.offline = True
        if isinstance(step, NetworkError):
            raise step
        return step


def send(script: Script, policy: RetryPolicy, waits: list[dict[str, Any]] | None = None) -> Reply:
    waiting = None if waits is None else waits.append
    path, body = "/sessions/s/batches/0", {"n": 1}
    return asyncio.run(send_with_retries(script, script.pacing, policy, "PUT", path, body, waiting))


def fixed(value: float) -> RetryPolicy:
    """A policy of 8 attempts, base 1 s, cap 30 s, whose jitter always draws `value`."""
    return RetryPolicy(attempts=8, base=1.0, cap=30.0, random=lambda: value)


@pytest.mark.parametrize(
    ("attempt", "step"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 16.0), (7, 30.0), (8, 30.0), (20, 30.0)],
)
@pytest.mark.parametrize("draw", [0.0, 0.5, 0.999999])
def test_the_backoff_keeps_half_the_doubling_step_plus_a_random_half(attempt, step, draw) -> None:
    policy = RetryPolicy(base=0.5, cap=30.0, random=lambda: draw)
    assert policy.backoff(attempt) == pytest.approx(step / 2 + draw * step / 2)
    assert step / 2 <= policy.backoff(attempt) <= step


def test_the_real_jitter_stays_within_the_step() -> None:
    policy = RetryPolicy(base=0.5, cap=30.0)
    waits = [policy.backoff(3) for _ in range(200)]
    assert all(1.0 <= wait <= 2.0 for wait in waits)
    assert len(set(waits)) > 1  # two clients do not wait in lockstep


def answer(status: int, code: str | None = None) -> Reply:
    return Reply(status, None if code is None else {"error": {"code": code, "message": "..."}})


@pytest.mark.parametrize(
    ("reply", "retried"),
    [
        (answer(408), True),
        (answer(429, "rate_limited"), True),
        (answer(500), True),
        (answer(502), True),
        (answer(503, "database_unavailable"), True),
        (answer(504), True),
        (answer(409, "session_active"), True),
        (answer(409, "concurrent_write"), True),
        (answer(400, "invalid_json"), False),
        (answer(401, "invalid_token"), False),
        (answer(403, "foreign_session"), False),
        (answer(404, "unknown_session"), False),
        (answer(409, "batch_mismatch"), False),
        (answer(409, "session_closed"), False),
        (answer(409), False),
        (answer(413, "too_many_records"), False),
        (answer(422, "digest_mismatch"), False),
        (answer(200), False),
    ],
    ids=lambda value: f"{value.status}-{value.error_code}" if isinstance(value, Reply) else str(value),
)
def test_should_retry_only_the_answers_that_mean_later(reply, retried) -> None:
    assert should_retry(reply) is retried


@pytest.mark.parametrize("seconds", [2.0, 0.0, 120.0])
def test_retry_after_is_waited_exactly(seconds) -> None:
    script = Script(Pacing(), Reply(503, UNAVAILABLE, seconds), OK)
    assert send(script, fixed(0.5)) == OK
    assert script.pacing.sleeps == [seconds]
    assert len(script.calls) == 2


def test_without_retry_after_the_backoff_is_waited() -> None:
    script = Script(Pacing(), Reply(503, UNAVAILABLE), Reply(502, None), Reply(429, None), OK)
    assert send(script, fixed(0.5)) == OK
    assert script.pacing.sleeps == [0.75, 1.5, 3.0]


def test_the_same_request_is_sent_every_time() -> None:
    script = Script(Pacing(), Reply(503, UNAVAILABLE, 1.0), NetworkError("reset"), Offline("offline"), OK)
    send(script, fixed(0.0))
    assert script.calls == [("PUT", "/sessions/s/batches/0", {"n": 1})] * 4


def test_after_the_last_attempt_the_last_answer_is_returned() -> None:
    last = Reply(503, {"error": {"code": "database_unavailable", "message": "third"}}, 1.0)
    script = Script(Pacing(), Reply(503, UNAVAILABLE, 1.0), Reply(503, UNAVAILABLE, 1.0), last, OK)
    assert send(script, RetryPolicy(attempts=3)) is last
    assert len(script.calls) == 3
    assert script.pacing.sleeps == [1.0, 1.0]  # no wait after the last try


@pytest.mark.parametrize(
    "refusal", [answer(400, "invalid_json"), answer(409, "batch_mismatch"), answer(422, "digest_mismatch")]
)
def test_a_refusal_is_returned_at_once(refusal) -> None:
    script = Script(Pacing(), refusal, OK)
    assert send(script, fixed(0.5)) is refusal
    assert len(script.calls) == 1
    assert script.pacing.sleeps == []


def test_a_network_error_while_online_is_retried_after_the_backoff() -> None:
    script = Script(Pacing(), NetworkError("refused"), NetworkError("refused"), OK)
    assert send(script, fixed(0.0)) == OK
    assert script.pacing.sleeps == [0.5, 1.0]
    assert script.pacing.online_waits == 0


def test_network_errors_while_online_raise_after_the_last_attempt() -> None:
    script = Script(Pacing(), *(NetworkError(f"refused {n}") for n in range(5)))
    with pytest.raises(NetworkError, match="refused 2"):
        send(script, RetryPolicy(attempts=3, random=lambda: 0.0))
    assert len(script.calls) == 3
    assert len(script.pacing.sleeps) == 2


def test_being_offline_is_waited_out_and_not_counted_as_an_attempt() -> None:
    script = Script(Pacing(), *(Offline("offline") for _ in range(20)), OK)
    assert send(script, RetryPolicy(attempts=3)) == OK
    assert len(script.calls) == 21
    assert script.pacing.online_waits == 20
    assert script.pacing.sleeps == []


def test_tries_that_failed_online_still_count_across_an_offline_spell() -> None:
    script = Script(Pacing(), NetworkError("refused"), Offline("offline"), NetworkError("refused again"), OK)
    with pytest.raises(NetworkError, match="refused again"):
        send(script, RetryPolicy(attempts=2, base=1.0, random=lambda: 0.0))
    assert len(script.calls) == 3
    assert script.pacing.sleeps == [0.5]


def test_waiting_hears_every_wait() -> None:
    steps = (Reply(503, UNAVAILABLE, 2.0), NetworkError("refused"), Reply(502, None), Offline("offline"), OK)
    script, waits = Script(Pacing(), *steps), []
    assert send(script, RetryPolicy(base=1.0, random=lambda: 1 / 3), waits) == OK
    assert waits == [
        {"reason": "database_unavailable", "seconds": 2.0, "attempt": 1},
        {"reason": "network_error", "seconds": 1.333, "attempt": 2},
        {"reason": "http_502", "seconds": 2.667, "attempt": 3},
        {"reason": "offline", "attempt": 3},
    ]
    assert script.pacing.sleeps == pytest.approx([2.0, 4 / 3, 8 / 3])


def test_no_wait_is_announced_after_the_last_attempt() -> None:
    script, waits = Script(Pacing(), answer(503), answer(503), answer(503)), []
    send(script, RetryPolicy(attempts=3, random=lambda: 0.0), waits)
    assert [wait["attempt"] for wait in waits] == [1, 2]


OVERLOADED = Reply(503, {"error": {"code": "server_busy", "message": "busy", "details": {"reason": "in_flight"}}}, 3.0)
USER_BUSY = Reply(429, {"error": {"code": "user_busy", "message": "busy", "details": {"reason": "per_user"}}}, 1.0)


def test_load_shed_answers_are_waited_out_without_counting_as_failed_tries() -> None:
    shed = [OVERLOADED, USER_BUSY] * 6
    script = Script(Pacing(), *shed, Reply(503, UNAVAILABLE, 2.0), Reply(503, UNAVAILABLE, 2.0), OK)
    waits: list[dict[str, Any]] = []
    assert send(script, RetryPolicy(attempts=3), waits) == OK  # 12 shed answers, then 2 failed tries of 3
    assert script.pacing.sleeps == [3.0, 1.0] * 6 + [2.0, 2.0]
    assert [wait["reason"] for wait in waits[:2]] == ["server_busy", "user_busy"]


def test_a_server_that_sheds_for_ever_is_given_up_on_after_its_patience() -> None:
    policy = RetryPolicy(attempts=2)
    script = Script(Pacing(), *[OVERLOADED] * (2 * 10 + 5))
    answer = send(script, policy)
    assert answer.error_code == "server_busy"
    assert len(script.calls) == 2 * 10 + 2  # the patience, then two counted tries
