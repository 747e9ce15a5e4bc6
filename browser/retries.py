"""Calling the server until it answers: exponential backoff with jitter, Retry-After, waiting for the network.

A request that got no answer (`NetworkError`) is sent again: at once when the
network comes back if the browser says it is offline (waiting for as long as
that takes), otherwise after a backoff. An answer is retried when it says
"later": 408, 429, 500, 502, 503, 504, and 409 `session_active` (another
device holds the user's session) or `concurrent_write`. The wait is the
answer's `Retry-After` when it has one, else `base * 2**(attempt - 1)` capped
at `cap`, of which a random half is kept (equal jitter: never two clients in
lockstep, never less than half the step). After `attempts` tries the last
error is raised. Any other 4xx is the caller's to report, at once. A load-shed
answer (503 `server_busy`, 429 `user_busy`) is waited out for its Retry-After
without counting as a failed try, up to SHED_PATIENCE times `attempts` of them.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status, decoded JSON body (None when there was none), Retry-After in seconds if given."""

    status: int
    body: Any
    retry_after: float | None = None

    @property
    def error_code(self) -> str:
        """The error envelope's code, or `http_<status>` without one."""
        error = self.body.get("error") if isinstance(self.body, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        return code if isinstance(code, str) else f"http_{self.status}"


class NetworkError(Exception):
    """The request got no answer: offline, connection refused, aborted."""


Send = Callable[[str, str, Any], Awaitable[Reply]]

RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
RETRIED_CONFLICTS = frozenset({"session_active", "concurrent_write"})
#: Load shed by the server (lsmigrate.server.api.shedding): waited out without counting as failed tries, up to
#: SHED_PATIENCE times the policy's attempts (at the server's Retry-After of 2 to 4 s, minutes of a busy server).
SHED_CODES = frozenset({"server_busy", "user_busy"})
SHED_PATIENCE = 10


class Pacing(Protocol):
    """Time and the network, as the page has them (tests pass their own)."""

    async def sleep(self, seconds: float) -> None: ...
    def online(self) -> bool: ...
    async def until_online(self) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying: `attempts` tries, waits from `base` seconds doubling up to `cap`."""

    attempts: int = 8
    base: float = 0.5
    cap: float = 30.0
    random: Callable[[], float] = field(default=random.random, compare=False)

    def backoff(self, attempt: int) -> float:
        """The wait after failed try number `attempt` (1-based): half the step plus a random half."""
        step = min(self.cap, self.base * 2 ** (attempt - 1))
        return step / 2 + self.random() * step / 2


def should_retry(reply: Reply) -> bool:
    """True when the answer means "try again later"."""
    return reply.status in RETRIED_STATUSES or (reply.status == 409 and reply.error_code in RETRIED_CONFLICTS)


Waiting = Callable[[dict[str, Any]], None]


async def send_with_retries(
    send: Send,
    pacing: Pacing,
    policy: RetryPolicy,
    method: str,
    path: str,
    body: Any,
    waiting: Waiting | None = None,
) -> Reply:
    """The first answer that is not "later" (success or a refusal), or the last one after `policy.attempts` tries.

    `waiting` hears of every wait: `{"reason": code, "seconds": s, "attempt": n}`, or `{"reason": "offline"}`.
    Raises NetworkError when the last try got no answer.
    """
    attempt = shed = 0
    while True:
        try:
            reply = await send(method, path, body)
        except NetworkError:
            if not pacing.online():
                if waiting is not None:
                    waiting({"reason": "offline", "attempt": attempt})
                await pacing.until_online()
                continue  # being offline is not a failed try
            attempt += 1
            if attempt >= policy.attempts:
                raise
            delay = policy.backoff(attempt)
            reason = "network_error"
        else:
            if not should_retry(reply):
                return reply
            if reply.error_code in SHED_CODES and shed < policy.attempts * SHED_PATIENCE:
                # The server is busy, not failing: its Retry-After spreads the herd; this is no failed try.
                shed += 1
                delay = reply.retry_after if reply.retry_after is not None else policy.backoff(attempt + 1)
                if waiting is not None:
                    waiting({"reason": reply.error_code, "seconds": round(delay, 3), "attempt": attempt})
                await pacing.sleep(delay)
                continue
            attempt += 1
            if attempt >= policy.attempts:
                return reply
            delay = reply.retry_after if reply.retry_after is not None else policy.backoff(attempt)
            reason = reply.error_code
        if waiting is not None:
            waiting({"reason": reason, "seconds": round(delay, 3), "attempt": attempt})
        await pacing.sleep(delay)
