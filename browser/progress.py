"""Progress of a run's phases, as the `lsmigrate:progress` events carry it: done, total, items/s, ETA."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Emit = Callable[[str, dict[str, Any]], None]

#: The phases of design §7, in order.
PHASES = ("check", "extract", "validate", "backup", "upload", "verify", "cleanup", "done")


class Progress:
    """Emits one `lsmigrate:progress` event per step of a phase, with its rate and time left."""

    def __init__(self, emit: Emit, clock: Callable[[], float]) -> None:
        self._emit = emit
        self._clock = clock
        self.phase = "check"
        self.total = 0
        self.done = 0
        self._started = clock()
        self._counted = 0  # items done in this phase before its clock started (an acknowledged batch skipped)

    def start(self, phase: str, total: int, done: int = 0) -> None:
        """Begin `phase` over `total` items, `done` of which need no work; emits its first event."""
        self.phase, self.total, self.done, self._counted = phase, total, done, done
        self._started = self._clock()
        self._send()

    def advance(self, items: int) -> None:
        """`items` more are done."""
        self.done += items
        self._send()

    def _send(self, **extra: Any) -> None:
        elapsed = self._clock() - self._started
        worked = self.done - self._counted
        rate = worked / elapsed if elapsed > 0 and worked > 0 else None
        eta = (self.total - self.done) / rate if rate else None
        detail: dict[str, Any] = {"phase": self.phase, "done": self.done, "total": self.total}
        detail["rate"] = None if rate is None else round(rate, 1)
        detail["eta"] = None if eta is None else round(eta, 2)
        self._emit("lsmigrate:progress", detail | extra)

    def waiting(self, why: dict[str, Any]) -> None:
        """The phase is waiting (a retry, the network): the same event with `waiting` set."""
        self._send(waiting=why)
