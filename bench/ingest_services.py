"""The ingest benchmark's servers: throwaway PostgreSQL and Redis, and gunicorn serving the app.

`Services` starts them (PostgreSQL and Redis from tests/fixtures_services, the
schema by `flask db upgrade`, gunicorn with 2 sync workers and the shipped settings as
scripts/demo.sh runs it) and stops every one of them by its process id.
`cpu_seconds` reads a process tree's CPU time from /proc, so the benchmark can
put the server's CPU beside the load generator's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psycopg

from tests.fixtures_services import PostgresServer, RedisServer, free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
SECRET_KEY = "bench-secret-key"
WORKERS = 2
THREADS = 1  # sync workers, as scripts/demo.sh runs them with PostgreSQL
#: The settings the app is served with (gc.freeze() in each worker once the app is loaded).
SERVED_CONFIG = "python:lsmigrate.server.gunicorn_conf"
PROFILE_CONFIG = str(Path(__file__).resolve().parent / "gunicorn_profile.py")
#: Tables emptied between measurements (the tests' list).
TABLES = (
    "tasks, environments, form_drafts, user_preferences, "
    "migration_ledger, quarantine, migration_batches, migration_sessions"
)
# Rate limits off, under the names Flask-Limiter and the LSMIGRATE_ prefix give them: a
# benchmark sends far more than a browser would. Unknown names are ignored by the app.
RATE_LIMIT_OFF = {"RATELIMIT_ENABLED": "false", "LSMIGRATE_RATELIMIT_ENABLED": "false"}
_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat from the state on (the command name may hold spaces)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if int(_stat_fields(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                pass  # a process that ended while we looked
    return found


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of `pid`, its live children and the children it has reaped."""
    fields = _stat_fields(pid)
    # utime, stime, cutime, cstime are fields 14-17 of proc(5); fields[0] is field 3.
    ticks = sum(int(value) for value in fields[11:15])
    for child in _children(pid):
        try:
            ticks += sum(int(value) for value in _stat_fields(child)[11:13])
        except (OSError, ValueError):
            pass
    return ticks / _TICKS


def postgres_version(conninfo: str) -> str:
    """The server's version string, e.g. 15.20."""
    with psycopg.connect(conninfo) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    return str(row[0]).split()[0] if row else "?"


class Services:
    """PostgreSQL, Redis and gunicorn for one benchmark run; `close()` stops them all."""

    def __init__(self, threads: int = THREADS, gc_freeze: bool = True, profile_dir: str | None = None) -> None:
        self.threads = threads
        self.gc_freeze = gc_freeze
        self.profile_dir = profile_dir
        self.postgres = PostgresServer()
        self.redis = RedisServer()
        self.port = free_port()
        self.gunicorn: subprocess.Popen[bytes] | None = None
        self._stack = ExitStack()
        instance = self._stack.enter_context(tempfile.TemporaryDirectory(prefix="lsmigrate-bench-"))
        self.env = {
            **os.environ,
            **RATE_LIMIT_OFF,
            "DATABASE_URL": self.postgres.url,
            "REDIS_URL": self.redis.url,
            "LSMIGRATE_SECRET_KEY": SECRET_KEY,
            "LSMIGRATE_INSTANCE_PATH": instance,
        }
        # The demo preset: its stores and tables, and its per-user read cache, which `complete` writes through.
        self.env["LSMIGRATE_DEMO"] = "1"
        if profile_dir is not None:
            self.env["LSMIGRATE_BENCH_PROFILE_DIR"] = profile_dir
            self.env["LSMIGRATE_BENCH_GC_FREEZE"] = "1" if gc_freeze else ""

    @property
    def url(self) -> str:
        """Base URL of gunicorn."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start PostgreSQL and Redis, create the tables, start gunicorn."""
        self._stack.callback(self._stop_postgres)
        self.postgres.start()
        self._stack.callback(self.redis.stop)
        self.redis.start()
        self._flask("db", "upgrade")
        self.gunicorn = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(WORKERS),
                "--threads",
                str(self.threads),
                "--log-level",
                "warning",
                *(["--config", self._config()] if self._config() else []),
                "lsmigrate.server:create_app()",
            ],
            env=self.env,
            cwd=ROOT,
            # Its own process group: a Ctrl-C reaches the benchmark, which stops gunicorn itself.
            start_new_session=True,
        )
        self._stack.callback(self._stop_gunicorn)
        wait_for_port(self.port)

    def _config(self) -> str | None:
        if self.profile_dir is not None:
            return PROFILE_CONFIG  # it takes the served settings' hooks too, when gc_freeze
        return SERVED_CONFIG if self.gc_freeze else None

    def _stop_postgres(self) -> None:
        try:
            self.postgres.stop()
        except ProcessLookupError:
            # A Ctrl-C reached the postmaster too, and it exited between stop()'s check and its
            # signal: stop again, which now only waits for it and removes the cluster's folder.
            self.postgres.stop()

    def _stop_gunicorn(self) -> None:
        if self.gunicorn is None or self.gunicorn.poll() is not None:
            return
        self.gunicorn.terminate()
        try:
            self.gunicorn.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.gunicorn.kill()
            self.gunicorn.wait()

    def close(self) -> None:
        """Stop gunicorn, Redis and PostgreSQL (whichever were started) and remove their folders."""
        self._stack.close()

    def _flask(self, *arguments: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "lsmigrate.server", *arguments],
            env=self.env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout.strip()

    def tokens(self, users: list[str]) -> dict[str, str]:
        """A bearer token per user, from the operator CLI (`lsmigrate token USER`)."""
        with ThreadPoolExecutor(max_workers=2) as pool:
            return dict(zip(users, pool.map(lambda user: self._flask("lsmigrate", "token", user), users), strict=True))

    def postmaster_pid(self) -> int:
        """The PostgreSQL postmaster's pid (the one the cluster's pid file names)."""
        return int((self.postgres.root / "data" / "postmaster.pid").read_text().split()[0])

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of gunicorn (master and workers), PostgreSQL (all backends) and Redis.

        Each gunicorn worker's own CPU is there too, under "worker <pid>".
        """
        assert self.gunicorn is not None and self.redis.process is not None
        workers = {f"worker {pid}": cpu_seconds(pid) for pid in _children(self.gunicorn.pid)}
        return {
            "gunicorn": cpu_seconds(self.gunicorn.pid),
            "postgres": cpu_seconds(self.postmaster_pid()),
            "redis": cpu_seconds(self.redis.process.pid),
            **workers,
        }

    def truncate(self) -> None:
        """Empty every table the ingest writes."""
        with psycopg.connect(self.postgres.conninfo) as connection:
            connection.execute(f"TRUNCATE {TABLES} CASCADE")

    def rows(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of a query on the benchmark's database."""
        with psycopg.connect(self.postgres.conninfo) as connection:
            return connection.execute(query, params).fetchall()
