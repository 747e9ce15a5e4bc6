"""End-to-end fixtures: the real server (gunicorn, PostgreSQL, Redis) and Chromium.

Playwright cannot download browsers here, so its Chromium is the Debian one.
Browser console output is forwarded to the test log, so a Python traceback
in the page shows up in pytest's report.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from playwright.sync_api import ConsoleMessage, Page

from tests.fixtures_services import CHROMIUM, CHROMIUM_ARGS, PostgresServer, RedisServer, free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
SECRET_KEY = "Rk7vB2nM9qX4cL8sD1fG6hJ3wT5yP0zA"  # strong: the integrator server is not a demo


class LiveServer:
    """The demo server running under gunicorn on a free port."""

    def __init__(self, postgres: PostgresServer, redis_server: RedisServer, instance: Path, **settings: str) -> None:
        self.port = free_port()
        self.postgres = postgres
        #: psycopg connection string of the server's database (`rows` queries it).
        self.conninfo = postgres.conninfo
        self.env = {
            **os.environ,
            "DATABASE_URL": postgres.url,
            "REDIS_URL": redis_server.url,
            "LSMIGRATE_SECRET_KEY": SECRET_KEY,
            "LSMIGRATE_DEMO": "1",
            "LSMIGRATE_INSTANCE_PATH": str(instance),
            **settings,
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Upgrade the database, then start gunicorn."""
        flask = [sys.executable, "-m", "flask", "--app", "lsmigrate.server"]
        subprocess.run([*flask, "db", "upgrade"], env=self.env, check=True, capture_output=True)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                "python:lsmigrate.server.gunicorn_conf",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "2",
                "--log-level",
                "warning",
                "lsmigrate.server:create_app()",
            ],
            env=self.env,
            cwd=ROOT,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        """Stop gunicorn by its process id."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def token(self, user_id: str) -> str:
        """A bearer token for `user_id`, from the operator CLI."""
        result = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "lsmigrate.server", "lsmigrate", "token", user_id],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout.strip()

    def rows(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of a query on the server's database."""
        with psycopg.connect(self.conninfo) as connection:
            return connection.execute(query, params).fetchall()


def catalog_server(
    postgres: PostgresServer, redis_server: RedisServer, instance: Path, database: str, **settings: str
) -> LiveServer:
    """A server (not started) that is not the demo: an integrator's stores (LSMIGRATE_STORES in `settings`) on a
    database of its own, `database`, created empty."""
    admin = postgres.conninfo.replace("dbname=lsmigrate", "dbname=postgres")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {database}")
    url = postgres.url.rsplit("/", 1)[0] + f"/{database}"
    server = LiveServer(postgres, redis_server, instance, DATABASE_URL=url, **settings)
    server.env.pop("LSMIGRATE_DEMO")
    server.conninfo = postgres.conninfo.replace("dbname=lsmigrate", f"dbname={database}")
    return server


@pytest.fixture(scope="session")
def live_server(
    postgres: PostgresServer, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The demo server for the e2e session."""
    server = LiveServer(postgres, redis_server, tmp_path_factory.mktemp("instance"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Launch Debian's Chromium: Playwright cannot download its own here."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture
def page(page: Page) -> Page:
    """Playwright's page, with the browser console forwarded to the test log."""

    def forward(message: ConsoleMessage) -> None:
        print(f"[browser {message.type}] {message.text}")

    page.on("console", forward)
    page.on("pageerror", lambda error: print(f"[browser pageerror] {error}"))
    return page


def seed(page: Page, server: LiveServer, stores: dict[str, str]) -> None:
    """Write `stores` into the origin's localStorage (from a page that runs no loader)."""
    page.goto(f"{server.url}/lsmigrate/static/demo.css")
    page.evaluate(
        "(stores) => { localStorage.clear();"
        " for (const [k, v] of Object.entries(stores)) localStorage.setItem(k, v); }",
        stores,
    )
