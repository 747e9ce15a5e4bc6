"""Progress events: phase, done, total, items per second and time left, on a clock the test moves."""

from __future__ import annotations

from typing import Any

import pytest

from lsmigrate.browser.progress import PHASES, Progress


class Clock:
    """Seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def progress() -> tuple[Progress, Clock, list[dict[str, Any]]]:
    clock, events = Clock(), []

    def emit(name: str, detail: dict[str, Any]) -> None:
        assert name == "lsmigrate:progress"
        events.append(detail)

    return Progress(emit, clock), clock, events


def test_the_phases_are_those_of_the_design_in_order() -> None:
    assert PHASES == ("check", "extract", "validate", "backup", "upload", "verify", "cleanup", "done")


def test_a_phase_starts_with_an_event_that_has_no_rate_yet() -> None:
    tracker, _, events = progress()
    tracker.start("upload", 10)
    assert events == [{"phase": "upload", "done": 0, "total": 10, "rate": None, "eta": None}]


@pytest.mark.parametrize(
    ("total", "already", "steps", "rate", "eta"),
    [
        (10, 0, [(2.0, 4)], 2.0, 3.0),  # 4 items in 2 s: 2/s, 6 left
        (10, 0, [(1.0, 2), (1.0, 2)], 2.0, 3.0),  # the rate is over the whole phase
        (10, 0, [(4.0, 2), (0.0, 6)], 2.0, 1.0),  # a burst after a slow start
        (9, 0, [(3.0, 1)], 0.3, 24.0),  # rounded: rate to 0.1, eta to 0.01 (from the exact rate)
        (10, 0, [(2.0, 10)], 5.0, 0.0),  # finished: no time left
        (10, 6, [(2.0, 2)], 1.0, 2.0),  # 6 done before the clock started do not count as work done in 2 s
        (10, 10, [(2.0, 0)], None, None),  # nothing was worked on: no rate to tell
        (10, 0, [(0.0, 3)], None, None),  # no time has passed: no rate, no division by zero
    ],
)
def test_rate_is_the_items_worked_over_the_time_taken_and_eta_the_rest_over_the_rate(
    total, already, steps, rate, eta
) -> None:
    tracker, clock, events = progress()
    tracker.start("upload", total, already)
    for seconds, items in steps:
        clock.now += seconds
        tracker.advance(items)
    assert events[-1] == {
        "phase": "upload",
        "done": already + sum(items for _, items in steps),
        "total": total,
        "rate": rate,
        "eta": eta,
    }


def test_every_step_is_an_event() -> None:
    tracker, clock, events = progress()
    tracker.start("validate", 3)
    for _ in range(3):
        clock.now += 1.0
        tracker.advance(1)
    assert [(event["done"], event["rate"], event["eta"]) for event in events] == [
        (0, None, None),
        (1, 1.0, 2.0),
        (2, 1.0, 1.0),
        (3, 1.0, 0.0),
    ]


def test_a_new_phase_starts_its_own_clock_and_count() -> None:
    tracker, clock, events = progress()
    tracker.start("validate", 100)
    clock.now += 100.0
    tracker.advance(100)  # 1/s
    tracker.start("upload", 10)
    clock.now += 1.0
    tracker.advance(5)
    assert events[-1] == {"phase": "upload", "done": 5, "total": 10, "rate": 5.0, "eta": 1.0}


def test_waiting_is_the_same_event_with_why() -> None:
    tracker, clock, events = progress()
    tracker.start("upload", 10)
    clock.now += 2.0
    tracker.advance(4)
    why = {"reason": "database_unavailable", "seconds": 2.0, "attempt": 1}
    tracker.waiting(why)
    assert events[-1] == {"phase": "upload", "done": 4, "total": 10, "rate": 2.0, "eta": 3.0, "waiting": why}
    tracker.advance(1)
    assert "waiting" not in events[-1]  # the next step is not waiting any more
