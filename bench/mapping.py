"""CPython figures: json.loads against validate+map of ~20,000 realistic tasks.

.venv/bin/python -m bench.mapping [--records N] [--rounds R] [--seed S]
"""

from __future__ import annotations

import argparse

from bench.mapping_core import measure, report
from tests.corpus import js_json, realistic_tasks


def task_texts(count: int, seed: int) -> list[str]:
    """The realistic tasks' JSON texts, as the app's JSON.stringify writes them."""
    return [js_json(task) for task in realistic_tasks(count, seed)]


def arguments(description: str | None) -> argparse.Namespace:
    """The benchmarks' command line."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--records", type=int, default=20_000, help="realistic tasks to map (default 20000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the best one counts (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the task generator (default 0)")
    return parser.parse_args()


def main() -> None:
    """Print the CPython figures."""
    options = arguments(__doc__)
    print(report(measure(task_texts(options.records, options.seed), options.rounds)))


if __name__ == "__main__":
    main()
