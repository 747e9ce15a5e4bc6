"""Throwaway PostgreSQL and Redis servers for the tests, from the installed binaries.

Each is started on a free port in a temporary folder and stopped by its own
process id when the test session ends. initdb and pg_ctl refuse to run as
root, so as root they run as the `postgres` user.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from lsmigrate.server import create_app
from lsmigrate.server.db import db

#: Debian's Chromium, for Playwright (it cannot download its own here), and its arguments.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PG_BIN = Path(os.environ.get("LSMIGRATE_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    """Return once 127.0.0.1:port accepts connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


def _as_postgres_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class PostgresServer:
    """A PostgreSQL cluster in a temporary folder, trust auth on 127.0.0.1."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="lsmigrate-pg-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log: Any = None

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the `lsmigrate` database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/lsmigrate"

    @property
    def conninfo(self) -> str:
        """psycopg connection string of the `lsmigrate` database."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=lsmigrate"

    def start(self) -> None:
        """initdb, start the server, create the database."""
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        data = self.root / "data"
        subprocess.run(
            _as_postgres_user([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8"]),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        self.log = open(self.root / "postgres.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            _as_postgres_user(
                [
                    str(PG_BIN / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(self.port),
                    "-h",
                    "127.0.0.1",
                    "-k",
                    str(self.root),
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ]
            ),
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        wait_for_port(self.port)
        deadline = time.monotonic() + 30
        while True:
            created = subprocess.run(
                [str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "lsmigrate"],
                capture_output=True,
            )
            if created.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(created.stderr.decode())
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its folder."""
        if self.process is not None:
            # runuser does not pass signals on: signal the postmaster itself,
            # by the pid it wrote in its data folder. SIGINT = fast shutdown.
            pid_file = self.root / "data" / "postmaster.pid"
            if self.process.poll() is None and pid_file.exists():
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log is not None:
            self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """A Redis server on a free port with no persistence."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """redis:// URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start redis-server in the foreground of its own process."""
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        """Stop the server by its process id."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): it keeps its port and its data but answers nothing."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server answer again (SIGCONT), with the data it held."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole test session."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A Redis server for the whole test session."""
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis server for one test, which may stop, pause or restart it (on the same port)."""
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.resume()  # a paused server would not act on SIGTERM
        server.stop()


@pytest.fixture
def make_app(app: Flask, postgres: PostgresServer) -> Iterator[Callable[..., Flask]]:
    """make_app(redis_url, **config): one more app on the session's emptied PostgreSQL, e.g. on its own Redis.

    It shares the `app` fixture's secret key, so the `auth` fixture's tokens are valid there too.
    """
    made: list[Flask] = []

    def build(redis_url: str | None, **config: Any) -> Flask:
        settings = {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": postgres.url,
            "SECRET_KEY": app.config["SECRET_KEY"],
            "DEMO": True,
        }
        made.append(create_app({**settings, "REDIS_URL": redis_url, **config}))
        return made[-1]

    yield build
    for each in made:
        with each.app_context():
            db.engine.dispose()
