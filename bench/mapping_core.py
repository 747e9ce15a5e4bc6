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
from lsmigrate.shared.canonical import manifest_digest, parse_json
from lsmigrate.shared.envelopes import MAX_DEPTH
from lsmigrate.shared.keys import split_key

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

    # The whole key as the page reads it: the demo's Zustand task-store, the tasks beside the UI's selection.
    raw = '{"state":{"tasks":[' + ",".join(texts) + '],"selectedTaskId":"task-1"},"version":0}'
    stores = STORES.stores_for_key(KEY)

    def records_only() -> object:
        # What the page did before whole keys: parse, take the array, map, the records' manifest.
        found = parse_json(raw, max_depth=MAX_DEPTH)["state"]["tasks"]
        mapped = spec.map(found, key=KEY, user_id=USER_ID, migrated_at=MIGRATED_AT)
        return manifest_digest(record.digest for record in mapped)

    def whole_key() -> object:
        # Split into records and remainder, map, and the key's manifest (its remainder digested too).
        split = split_key(KEY, raw, stores)
        mapped = spec.map(split.records["tasks"], key=KEY, user_id=USER_ID, migrated_at=MIGRATED_AT)
        return split.manifest([record.digest for record in mapped])

    loads_seconds = best_of(rounds, parse_all)
    map_seconds = best_of(rounds, map_all)
    records_only_seconds = best_of(rounds, records_only)
    whole_key_seconds = best_of(rounds, whole_key)
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
        "records_only_per_second": count / records_only_seconds,
        "whole_key_per_second": count / whole_key_seconds,
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
            f"key, records only  {figures['records_only_per_second']:>10,.0f} records/s  (parse, take the array, map)",
            f"key, whole         {figures['whole_key_per_second']:>10,.0f} records/s  (split_key, map, remainder and "
            f"manifest): {figures['whole_key_per_second'] / figures['records_only_per_second']:.1%} of records only",
        ]
    )
