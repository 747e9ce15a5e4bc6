#!/usr/bin/env bash
# The whole test suite: installs what it needs, then unit, integration
# (throwaway PostgreSQL and Redis) and end-to-end (Chromium + Pyodide) tests.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh test
exec .venv/bin/python -m pytest "$@"
