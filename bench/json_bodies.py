"""Parsing a batch body: the old lenient parse against the strict one that refuses a repeated name (issue 13).

.venv/bin/python -m bench.json_bodies [--records N] [--rounds R] [--seed S]

One batch body of N tasks (default 1000), as the page sends it (`json_body`: compact `json.dumps`), for two
kinds of task: `compact` (the ten fields of a to-do list, one object each, about 330 bytes) and `realistic`
(with a conversation and a pull request: about a dozen objects, 1.6 KB). For each it prints the median
time over R rounds (default 30; each round times every parse once, in turn, each after a
`gc.collect()`) of:

- `lenient`: what `parse_body` did before, `parse_json` on the decoded body (last of a repeated name wins);
- `strict`: `parse_body` now, on the page's body: the lenient parse, then orjson writes the value again
  and the body must be those very bytes;
- `strict, other spelling`: `parse_body` on the same value written with spaces (`json.dumps`'s default
  separators), which orjson does not write: the lenient parse, orjson, then `parse_json_strict`;
- `hook only`: `parse_json_strict` alone (json's C scanner, an object_pairs_hook per object).

Each is also given as a ratio to `lenient` and in microseconds per record over `lenient`.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

from lsmigrate.browser.page import json_body
from lsmigrate.server.api.bodies import parse_body
from lsmigrate.shared.canonical import digest, parse_json, parse_json_strict
from tests.corpus import compact_tasks, realistic_tasks

KINDS: dict[str, Callable[[int, int], list[dict[str, Any]]]] = {
    "compact": compact_tasks,
    "realistic": realistic_tasks,
}


def batch(records: list[dict[str, Any]]) -> dict[str, Any]:
    """A PUT /batches body for `records`."""
    return {"key": "task-store", "offset": 0, "records": records, "digests": [digest(r) for r in records]}


def lenient(body: bytes) -> Any:
    """What `parse_body` did before the strict parse: `parse_json` on the decoded body."""
    return parse_json(body.decode("utf-8"))


def medians(parses: dict[str, tuple[Callable[[bytes], Any], bytes]], rounds: int) -> dict[str, float]:
    """The median seconds of each parse over `rounds` rounds, each round timing every parse once, in turn."""
    times: dict[str, list[float]] = {name: [] for name in parses}
    for _ in range(rounds):
        for name, (parse, body) in parses.items():
            gc.collect()  # each parse starts from the same heap, not from the garbage of the one before
            start = time.perf_counter()
            parse(body)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(spent) for name, spent in times.items()}


def measure(kind: str, count: int, seed: int, rounds: int) -> str:
    """The figures of one kind of task, as printed lines."""
    value = batch(KINDS[kind](count, seed))
    page = json_body(value).encode("utf-8")
    spaced = json.dumps(value, ensure_ascii=False).encode("utf-8")
    assert parse_body(page) == parse_body(spaced) == lenient(page)
    parses: dict[str, tuple[Callable[[bytes], Any], bytes]] = {
        "lenient": (lenient, page),
        "strict": (parse_body, page),
        "strict, other spelling": (parse_body, spaced),
        "hook only": (lambda body: parse_json_strict(body.decode("utf-8")), page),
    }
    median = medians(parses, rounds)
    base = median["lenient"]
    lines = [f"{kind}: {count} tasks, {len(page):,} bytes, median of {rounds} rounds"]
    for name, seconds in median.items():
        extra = (seconds - base) / count * 1e6
        lines.append(f"  {name:<24}{seconds * 1e3:8.2f} ms  {seconds / base:5.2f}x  {extra:+6.2f} µs/record")
    return "\n".join(lines)


def main() -> None:
    """Print the figures of each kind of task."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1000, help="tasks in the batch (default 1000)")
    parser.add_argument("--rounds", type=int, default=30, help="rounds; the median counts (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the task generator (default 0)")
    options = parser.parse_args()
    print(f"{platform.python_implementation()} {platform.python_version()}")
    for kind in KINDS:
        print(measure(kind, options.records, options.seed, options.rounds))


if __name__ == "__main__":
    main()
