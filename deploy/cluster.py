"""lsmigrate deployed as it runs in production, on one machine: for the smoke test, load tests and benchmarks.

    .venv/bin/python -m deploy.cluster up [--instances 3] [--workers 2] [--port P]

                 clients
                    |
          nginx 127.0.0.1:P  (buffering, body limit = MAX_CONTENT_LENGTH, retries what is replay-safe)
           /        |        \\
    gunicorn-0  gunicorn-1  gunicorn-2   (the standalone service, N sync workers each)
           \\        |        /     \\
    PgBouncer (transaction pooling)   Redis (cache, rate limits)
                    |
               PostgreSQL

`Deployment` starts it all on free ports of 127.0.0.1 in a temporary folder (PostgreSQL and Redis
from tests/fixtures_services, the schema by `flask db upgrade` on the direct connection, PgBouncer
and nginx as deploy/pgbouncer.py and deploy/nginx.py configure them), and stops every process it
started by its own pid, in the reverse order, whatever went wrong. `kill_instance` SIGKILLs one
instance (master and workers) as a crash would; `restart_instance` brings it back on its port.
The command line starts one and keeps it up until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from deploy.nginx import Nginx
from deploy.pgbouncer import CLIENT_CONNECTIONS_PER_WORKER, PgBouncer
from lsmigrate.server.config import DEFAULTS
from tests.fixtures_services import PostgresServer, RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
#: gunicorn's worker timeout (its default, said out loud): a request running longer has its worker killed.
#: The longest batch lsmigrate takes (MAX_BATCH_RECORDS records, MAX_CONTENT_LENGTH bytes) takes a few
#: seconds; nginx's proxy_read_timeout is above it (PROXY_READ_TIMEOUT).
GUNICORN_TIMEOUT = 30
PROXY_READ_TIMEOUT = 2 * GUNICORN_TIMEOUT
#: Variables of the caller's environment that would configure the instances behind the deployment's back.
_INHERITED_NOT = ("DATABASE_URL", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR")


def _process_table() -> dict[int, int]:
    """Every live process's parent: pid -> ppid, from /proc (a zombie, dead and not yet reaped, is not live)."""
    parents = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                text = Path(entry.path, "stat").read_text()
            except OSError:
                continue  # ended while we looked
            state, parent = text[text.rindex(")") + 2 :].split()[:2]
            if state != "Z":
                parents[int(entry.name)] = int(parent)
    return parents


def _tree(pid: int, parents: dict[int, int]) -> list[int]:
    """`pid` (if alive) and its live descendants."""
    found = [pid] if pid in parents else []
    for each in found:
        found.extend(child for child, parent in parents.items() if parent == each)
    return found


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class Instance:
    """One gunicorn of the standalone service on a fixed port, in its own process group."""

    def __init__(self, name: str, folder: Path, port: int, workers: int) -> None:
        self.name = name
        self.folder = folder
        self.port = port
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[Any] | None = None

    @property
    def url(self) -> str:
        """The instance's own base URL (behind nginx)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, env: dict[str, str]) -> None:
        """Start gunicorn (returns at once: `wait_healthy` waits for it)."""
        # prometheus-client's multiprocess files are per run: wiped before each start.
        metrics = self.folder / "prometheus"
        shutil.rmtree(metrics, ignore_errors=True)
        metrics.mkdir(parents=True)
        if self._log is not None:
            self._log.close()  # the crashed run's
        self._log = open(self.folder / "gunicorn.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "python:lsmigrate.server.gunicorn_conf",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.workers),
                "--timeout",
                str(GUNICORN_TIMEOUT),
                "--log-level",
                "warning",
                "lsmigrate.server:create_app()",
            ],
            env={**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics)},
            cwd=ROOT,
            stdout=self._log,
            stderr=self._log,
            # Its own process group: the whole instance dies at once in `kill`, and a Ctrl-C at the
            # terminal reaches only the deployment, which stops the instance in order.
            start_new_session=True,
        )

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Return once the instance answers 200 on /healthz (its database reached through PgBouncer)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while not _healthy(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start: {self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, size: int = 3000) -> str:
        """The end of gunicorn's log, for an error message."""
        path = self.folder / "gunicorn.log"
        return path.read_text(errors="replace")[-size:] if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the master and its workers at once (the process group), as a crash would, and reap the master."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """Stop gunicorn gracefully (SIGTERM to the master, which waits for its workers); SIGKILL if it hangs."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=GUNICORN_TIMEOUT + 5)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None


class Deployment:
    """nginx, `instances` gunicorns of `workers` sync workers, PgBouncer, PostgreSQL and Redis; a context manager.

    `env` adds to (or overrides) the instances' environment: LSMIGRATE_* settings, say. `port`: nginx's,
    else a free one.
    """

    def __init__(
        self, instances: int = 3, workers: int = 2, env: dict[str, str] | None = None, *, port: int | None = None
    ) -> None:
        if instances < 1 or workers < 1:
            raise ValueError("a deployment has at least one instance of at least one worker")
        self.root = Path(tempfile.mkdtemp(prefix="lsmigrate-deploy-"))
        # PgBouncer runs as the postgres user in a folder of its own: it must be able to reach it.
        self.root.chmod(0o711)
        self.postgres = PostgresServer()
        self.redis = RedisServer()
        self.pgbouncer = PgBouncer(
            self.root / "pgbouncer",
            self.postgres.port,
            pool_size=instances * workers,
            max_client_conn=max(100, instances * workers * CLIENT_CONNECTIONS_PER_WORKER + 20),
        )
        self.instances = [
            Instance(f"gunicorn-{i}", self.root / f"gunicorn-{i}", free_port(), workers) for i in range(instances)
        ]
        self.env = self._environment(env or {})
        max_body = int(self.env.get("LSMIGRATE_MAX_CONTENT_LENGTH", DEFAULTS["MAX_CONTENT_LENGTH"]))
        upstreams = [each.port for each in self.instances]
        self.nginx = Nginx(self.root / "nginx", port or free_port(), upstreams, max_body, PROXY_READ_TIMEOUT)
        # Stopped in the reverse order: nginx, the instances, PgBouncer, then these (each a no-op if never started).
        self._stack = ExitStack()
        self._stack.callback(shutil.rmtree, self.root, ignore_errors=True)
        self._stack.callback(self._stop_postgres)  # also removes the cluster's own temporary folder
        self._stack.callback(self.redis.stop)

    def _environment(self, given: dict[str, str]) -> dict[str, str]:
        inherited = {
            name: value
            for name, value in os.environ.items()
            if name not in _INHERITED_NOT and not name.startswith("LSMIGRATE_")
        }
        return {
            **inherited,
            "DATABASE_URL": self.pooled_url,
            "REDIS_URL": self.redis_url,
            "LSMIGRATE_SECRET_KEY": secrets.token_urlsafe(48),
            "LSMIGRATE_INSTANCE_PATH": str(self.root / "instance"),
            # psycopg's server-side prepared statements do not survive PgBouncer 1.18's transaction pooling.
            "LSMIGRATE_DATABASE_PREPARED_STATEMENTS": "false",
            # The demo's stores and tables, and `GET /demo?user=...` to try it in a browser.
            "LSMIGRATE_DEMO": "1",
            **given,
        }

    @property
    def url(self) -> str:
        """nginx's base URL: what clients talk to."""
        return self.nginx.url

    @property
    def database_url(self) -> str:
        """PostgreSQL directly (for checks and schema changes), as a URL psycopg and lsmigrate both take."""
        return f"postgresql://postgres@127.0.0.1:{self.postgres.port}/lsmigrate"

    @property
    def pooled_url(self) -> str:
        """PostgreSQL through PgBouncer: the instances' DATABASE_URL."""
        return self.pgbouncer.url

    @property
    def redis_url(self) -> str:
        """Redis's URL."""
        return self.redis.url

    def start(self) -> None:
        """Start everything, in dependency order; on a failure stop what was started and raise."""
        try:
            self.postgres.start()
            self.redis.start()
            self._flask({**self.env, "DATABASE_URL": self.database_url}, "db", "upgrade")
            self._stack.callback(self.pgbouncer.stop)
            self.pgbouncer.start()
            for instance in self.instances:
                self._stack.callback(instance.stop)
                instance.start(self.env)
            for instance in self.instances:
                instance.wait_healthy()
            self._stack.callback(self.nginx.stop)
            self.nginx.start()
            if not _healthy(self.url):
                raise RuntimeError(f"nginx does not reach the instances: {self.nginx.log_tail()}")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop everything that was started (nginx first, PostgreSQL last) and remove the temporary folders."""
        self._stack.close()

    def __enter__(self) -> Deployment:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _stop_postgres(self) -> None:
        try:
            self.postgres.stop()
        except ProcessLookupError:
            # A Ctrl-C reached the postmaster too (it shares the terminal's process group) and it exited
            # between stop()'s check and its signal: stop again, which only waits and removes the folder.
            self.postgres.stop()

    def kill_instance(self, i: int) -> None:
        """SIGKILL instance `i`'s gunicorn master and workers, as a crash would."""
        self.instances[i].kill()

    def restart_instance(self, i: int) -> None:
        """Start instance `i` again on its port and return once it answers /healthz."""
        instance = self.instances[i]
        instance.kill()  # if it is still running, the restart is a crash and a start
        instance.start(self.env)
        instance.wait_healthy()

    def pids(self) -> dict[str, list[int]]:
        """The live processes of each part ("nginx", "pgbouncer", "postgres", "redis", "gunicorn-0", ...):
        each process the deployment started and its descendants (nginx's and gunicorn's workers, PostgreSQL's
        backends). Each process's own CPU time, summed per name, is that part's."""
        parents = _process_table()
        started = {
            "nginx": self.nginx.process,
            "pgbouncer": self.pgbouncer.process,
            "postgres": self.postgres.process,
            "redis": self.redis.process,
            **{instance.name: instance.process for instance in self.instances},
        }
        return {
            name: _tree(process.pid, parents) if process is not None and process.poll() is None else []
            for name, process in started.items()
        }

    def flask(self, *args: str) -> str:
        """`flask --app lsmigrate.server ARGS` with the instances' environment; what it printed, stripped."""
        return self._flask(self.env, *args)

    def _flask(self, env: dict[str, str], *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "lsmigrate.server", *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"flask {' '.join(args)} failed ({result.returncode}): {result.stderr[-3000:]}")
        return result.stdout.strip()


def _up(arguments: argparse.Namespace) -> None:
    def stop(signum: int, frame: Any) -> None:
        # Once: a second Ctrl-C must not cut the stopping short and leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    deployment = Deployment(arguments.instances, arguments.workers, port=arguments.port or None)
    try:
        with deployment:
            print(f"lsmigrate behind nginx:  {deployment.url}  (demo: {deployment.url}/demo?user=alice)")
            for instance in deployment.instances:
                print(f"  {instance.name}:  {instance.url}  (sync workers: {instance.workers})")
            print(f"PostgreSQL (direct):     {deployment.database_url}")
            print(f"PostgreSQL (PgBouncer):  {deployment.pooled_url}")
            print(f"Redis:                   {deployment.redis_url}")
            print(f"Files and logs:          {deployment.root}")
            print("Ctrl-C or SIGTERM stops it all.", flush=True)
            while True:
                signal.pause()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """The command line: `up` starts a deployment and keeps it up until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m deploy.cluster", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start a deployment and keep it up until Ctrl-C or SIGTERM")
    up.add_argument("--instances", type=int, default=3, help="gunicorn instances behind nginx (default 3)")
    up.add_argument("--workers", type=int, default=2, help="sync workers per instance (default 2)")
    up.add_argument("--port", type=int, default=0, help="nginx's port on 127.0.0.1 (default: a free one)")
    _up(parser.parse_args(argv))


if __name__ == "__main__":
    main()
