"""Load shedding: under more load than the database can take, answer "later" at once, never by timing out.

Three rules, each answered before any database work, each with a jittered `Retry-After` (SHED_RETRY_AFTER_SECONDS
to twice that, so a herd told to come back does not come back in step), each counted in
`lsmigrate_load_shed_total{reason}`:

- **queue_wait** (503 `server_busy`): a request that waited in front of the app longer than MAX_QUEUE_WAIT_SECONDS
  (the proxy's `X-Request-Start: t=<epoch ms>` header, which nginx sets in the deployment of deploy/) is shed
  without being worked on: its client may already have given up, and working on it would only make the queue
  behind it longer. Without the header nothing is known of the wait and nothing is shed for it. Keeping
  MAX_QUEUE_WAIT_SECONDS well under the proxy's read time-out means no request waits past it.
- **in_flight** (503 `server_busy`): at most MAX_BATCHES_IN_FLIGHT batch uploads and `complete`s are worked on at
  once per instance (all the worker processes of one gunicorn master share the slots; elsewhere, one process);
  one more is shed. The other workers stay free for the cheap requests and for the answers that shed.
- **per_user** (429 `user_busy`): a user has at most one batch worked on at a time, across every instance: a batch
  that finds the user's lock taken is shed (`try_lock_user`) rather than holding a worker while it waits. A page
  sends one batch at a time, so this is a second tab or a retried request still running; neither may take a
  second worker from the other users.

The slots are a table of process ids in shared memory, made by the gunicorn master before it forks its workers
(`gunicorn_conf.on_starting` calls `share_slots`): a worker killed in the middle of a batch (SIGKILL, gunicorn's
time-out) leaves its pid in its slot, and the slot is taken back by the next request that finds that process
gone, so a crash never shrinks the instance's capacity for good.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import request

from lsmigrate.server.errors import Shed
from lsmigrate.server.extension import settings


class Slots:
    """`size` slots shared by the processes forked after it was made: each holds the pid of its holder or 0."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._holders: Any = multiprocessing.Array("i", size, lock=True)
        self._threads = threading.Lock()

    def take(self) -> bool:
        """Take a free slot (or one whose process is gone) for this process; False when all are held."""
        pid = os.getpid()
        with self._threads, self._holders.get_lock():
            holders = self._holders.get_obj()
            for index in range(self.size):
                if holders[index] == 0 or not _alive(holders[index]):
                    holders[index] = pid
                    return True
        return False

    def give_back(self) -> None:
        """Free one slot this process holds."""
        pid = os.getpid()
        with self._threads, self._holders.get_lock():
            holders = self._holders.get_obj()
            for index in range(self.size):
                if holders[index] == pid:
                    holders[index] = 0
                    return

    def held(self) -> int:
        """How many slots are held by a live process now."""
        with self._holders.get_lock():
            return sum(1 for pid in self._holders.get_obj() if pid and _alive(pid))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: The slots of this instance: made by `share_slots` in a gunicorn master, else on first use in this process.
_shared: Slots | None = None
_made = threading.Lock()


def share_slots(size: int) -> None:
    """Make the instance's slots now, in the process whose forks will share them (gunicorn's master)."""
    global _shared
    _shared = Slots(size)


def _slots() -> Slots:
    global _shared
    size = settings()["MAX_BATCHES_IN_FLIGHT"]
    with _made:
        if _shared is None or (_shared.size != size and _shared.held() == 0):
            _shared = Slots(size)
        return _shared


def retry_after() -> int:
    """SHED_RETRY_AFTER_SECONDS to twice that, at random: a shed herd comes back spread out."""
    base: int = settings()["SHED_RETRY_AFTER_SECONDS"]
    return random.randint(base, 2 * base)


def _count(reason: str) -> None:
    # Imported here: gunicorn's master imports this module (`share_slots`) and keeps no metrics of its own.
    from lsmigrate.server.observability.metrics import count_load_shed

    count_load_shed(reason)


def _overloaded(reason: str, message: str) -> Shed:
    _count(reason)
    return Shed(503, "server_busy", message, retry_after(), reason)


def queued_seconds() -> float | None:
    """How long the request waited in front of the app, from the proxy's `X-Request-Start: t=<ms>` (nginx's
    `${msec}`: seconds with a fraction, or milliseconds); None without a usable header."""
    value = request.headers.get("X-Request-Start", "").strip()
    value = value.removeprefix("t=")
    try:
        stamp = float(value)
    except ValueError:
        return None
    if stamp != stamp or stamp <= 0:  # NaN
        return None
    if stamp > 1e11:  # milliseconds
        stamp /= 1000
    return max(0.0, time.time() - stamp)


def shed_queued() -> None:
    """before_request of the migration API: Shed (queue_wait) for a request that waited too long to get in."""
    limit = settings()["MAX_QUEUE_WAIT_SECONDS"]
    waited = queued_seconds()
    if limit and waited is not None and waited > limit:
        raise _overloaded(
            "queue_wait", f"The server is busy: this request waited {waited:.1f} s to be handled. Send it again later."
        )


@contextmanager
def batch_slot() -> Iterator[None]:
    """Hold one of the instance's MAX_BATCHES_IN_FLIGHT slots while a batch or a `complete` is worked on;
    Shed (in_flight) when none is free."""
    slots = _slots()
    if not slots.take():
        raise _overloaded(
            "in_flight",
            f"The server is busy: {slots.size} batches are being written already. Send this one again later.",
        )
    try:
        yield
    finally:
        slots.give_back()


def user_busy() -> Shed:
    """Shed (per_user): the user's lock is held by another of their batches."""
    _count("per_user")
    return Shed(
        429,
        "user_busy",
        "Another batch of yours is being written; send this one again when it is done.",
        1,
        "per_user",
    )
