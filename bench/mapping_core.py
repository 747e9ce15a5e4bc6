"""The mapping benchmark's measurement: json.loads against validate+map, in one process.

Standard library and lsmigrate.shared only, so the very same file runs in
CPython (bench.mapping) and inside Pyodide (bench.mapping_pyodide writes it
into Pyodide's file system and imports it). Figures, not a pass/fail.
"""

from __future__ import annotations

import gc
import json
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from lsmigrate.demo.stores import STORES

KEY = "task-store"
USER_ID = "bench-user"
MIGRATED_AT = datetime(2026, 1, 1, tzinfo=UTC)


def best_of(rounds: int, run: Callable[[], object]) -> float:
    """The shortest wall time of `rounds` runs, in seconds."""
    best = float("inf")
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
        del result
    return best


def measure(texts: list[str], rounds: int = 5) -> dict[str, Any]:
    """Records/s of json.loads of each record's text and of validate+map of the parsed records."""
    spec = STORES.named("tasks")
    records = [json.loads(text) for text in texts]
    mapped = spec.map(records, key=KEY, user_id=USER_ID, migrated_at=MIGRATED_AT)
    loads = json.loads

    def parse_all() -> object:
        return [loads(text) for text in texts]

    def map_all() -> object:
        return spec.map(records, key=KEY, user_id=USER_ID, migrated_at=MIGRATED_AT)

    loads_seconds = best_of(rounds, parse_all)
    map_seconds = best_of(rounds, map_all)
    count = len(texts)
    return {
        "runtime": f"{platform.python_implementation()} {platform.python_version()} ({sys.platform})",
        "records": count,
        "average_bytes": sum(len(text.encode("utf-8")) for text in texts) / count,
        "quarantined": sum(record.quarantined for record in mapped),
        "rounds": rounds,
        "loads_per_second": count / loads_seconds,
        "map_per_second": count / map_seconds,
        "map_to_loads": map_seconds / loads_seconds,
    }


def measure_json(texts_json: str, rounds: int = 5) -> str:
    """`measure` with a JSON array of record texts in and JSON figures out (for JavaScript callers)."""
    return json.dumps(measure(json.loads(texts_json), rounds))


def report(figures: dict[str, Any]) -> str:
    """The figures as the benchmarks print them."""
    return "\n".join(
        [
            f"runtime            {figures['runtime']}",
            f"records            {figures['records']} (average {figures['average_bytes']:.0f} bytes of JSON, "
            f"{figures['quarantined']} quarantined), best of {figures['rounds']} rounds",
            f"json.loads         {figures['loads_per_second']:>10,.0f} records/s",
            f"validate+map       {figures['map_per_second']:>10,.0f} records/s",
            f"map / loads cost   {figures['map_to_loads']:>10.2f}x",
        ]
    )
