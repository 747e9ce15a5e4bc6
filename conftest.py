"""Fixtures shared by tests/ and e2e/: the throwaway PostgreSQL and Redis servers."""

pytest_plugins = ["tests.fixtures_services"]
