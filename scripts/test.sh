#!/usr/bin/env bash
# The whole test suite: installs what it needs, lints (ruff), checks formatting
# (ruff format) and types (mypy, configured in pyproject.toml), then unit,
# integration (throwaway PostgreSQL and Redis) and end-to-end (Chromium +
# Pyodide) tests. Each step that fails ends the script with its status.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh test
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
