"""One benchmark, before and after a change, in the same run: alternating, medians, the ratio.

.venv/bin/python -m bench.before_after [--rounds 3] BASE_CHECKOUT MODULE [BENCH ARGS...]

BASE_CHECKOUT is another checkout of lsmigrate with its own `.venv` (for example
`git worktree add /tmp/lsm-base <commit>` then `python3 -m venv .venv && .venv/bin/pip install -e ".[dev]"`
there). The benchmark module (`bench.ingest_http`, `bench.mapping`) runs `--rounds` times in each
checkout, before and after taking turns so the machine's drift falls on both alike; every line of its
output that reports records/s is collected, and the median of each is printed beside the other's,
with after / before.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: A figure line: its label, then a records/s figure (the first number followed by "/s" or "records/s").
FIGURE = re.compile(r"^(?P<label>[A-Za-z][^0-9]*?)\s+(?P<rate>[0-9][0-9,]*)\s*records/s")
#: A row of bench.ingest_http's table: its measurement, records, wall seconds, records/s.
ROW = re.compile(r"^(?P<label>(?:HTTP, [0-9]+ clients?|COPY, same rows))\s+[0-9,]+\s+[0-9.]+\s+(?P<rate>[0-9,]+)\s")


def figures(output: str) -> dict[str, float]:
    """Label -> records/s of every figure line of a benchmark's output."""
    found: dict[str, float] = {}
    for line in output.splitlines():
        match = FIGURE.match(line.strip()) or ROW.match(line.strip())
        if match:
            found.setdefault(match["label"].strip(), float(match["rate"].replace(",", "")))
    return found


def run(checkout: Path, module: str, arguments: list[str]) -> dict[str, float]:
    """One run of the benchmark in a checkout, with that checkout's interpreter."""
    python = checkout / ".venv" / "bin" / "python"
    done = subprocess.run(
        [str(python), "-m", module, *arguments], cwd=checkout, capture_output=True, text=True, check=True
    )
    return figures(done.stdout)


def main() -> None:
    """Alternate the runs and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", type=Path)
    parser.add_argument("module")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("arguments", nargs=argparse.REMAINDER)
    options = parser.parse_args()
    arguments = [argument for argument in options.arguments if argument != "--"]
    before: dict[str, list[float]] = {}
    after: dict[str, list[float]] = {}
    for round_ in range(options.rounds):
        for name, checkout, into in (("before", options.base, before), ("after", ROOT, after)):
            print(f"... round {round_ + 1}/{options.rounds}: {name} ({checkout})", file=sys.stderr, flush=True)
            for label, rate in run(checkout, options.module, arguments).items():
                into.setdefault(label, []).append(rate)
    print(f"{options.module} {' '.join(arguments)}: medians of {options.rounds} alternating runs")
    print(f"{'figure':<36} {'before':>12} {'after':>12} {'after/before':>13}")
    for label in after:
        if label in before:
            old, new = statistics.median(before[label]), statistics.median(after[label])
            print(f"{label:<36} {old:>12,.0f} {new:>12,.0f} {new / old:>12.1%}")
        else:
            print(f"{label:<36} {'-':>12} {statistics.median(after[label]):>12,.0f} {'(new)':>13}")


if __name__ == "__main__":
    main()
