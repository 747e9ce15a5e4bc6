"""PgBouncer in transaction pooling mode in front of one PostgreSQL database, from the Debian package.

The settings that matter are written out in `pgbouncer_ini` with their reasons; docs/deployment.md
says how to size them. PgBouncer refuses to run as root: as root it is started with `-u postgres`
(it drops to that user itself, so the process we start is PgBouncer, stopped by its own pid) and its
folder belongs to that user.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from deploy.daemon import Daemon
from tests.fixtures_services import free_port

#: The user PgBouncer and PostgreSQL know (PostgresServer's clusters are initdb'ed with it, trust on loopback).
USER = "postgres"
DATABASE = "lsmigrate"
#: Connections one sync gunicorn worker may open to PgBouncer: Flask-SQLAlchemy's pool (5) and its overflow
#: (10). A worker serves one request at a time and so holds one in practice; the rest is headroom.
CLIENT_CONNECTIONS_PER_WORKER = 15


def pgbouncer_ini(folder: Path, port: int, postgres_port: int, pool_size: int, max_client_conn: int) -> str:
    """The pgbouncer.ini of one database `lsmigrate` on 127.0.0.1:`postgres_port`, listening on `port`."""
    return f"""\
[databases]
{DATABASE} = host=127.0.0.1 port={postgres_port} dbname={DATABASE}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
; TCP on loopback only: no Unix socket in a shared folder.
unix_socket_dir =
; Loopback on a throwaway machine: no password, but the user must still be in the auth_file.
auth_type = trust
auth_file = {folder / "userlist.txt"}
admin_users = {USER}
; A server connection is a client's for one transaction only: lsmigrate keeps no state in a database
; session (advisory locks and SET are transaction-scoped; prepared statements are off, see
; LSMIGRATE_DATABASE_PREPARED_STATEMENTS), so a few server connections serve every worker.
pool_mode = transaction
; Every sync worker of every instance in a transaction at once (a worker holds one connection at a
; time), so no batch ever waits here for a server connection; the reserve is for operators' commands.
default_pool_size = {pool_size}
reserve_pool_size = 2
reserve_pool_timeout = 1
; Idle client connections cost PgBouncer a few KB each: room for every worker's whole engine pool.
max_client_conn = {max_client_conn}
; A client waiting this long for a server connection gets an error (lsmigrate: 503 with Retry-After),
; well before gunicorn's timeout and the proxy's.
query_wait_timeout = 10
; Used between clients in session pooling only: in transaction mode (server_reset_query_always = 0)
; nothing session-level is left behind to reset, and a DISCARD ALL after every transaction would cost
; a round trip each.
server_reset_query = DISCARD ALL
server_reset_query_always = 0
; psycopg sends none of these, other clients (psql, JDBC) may. The log goes to stderr (its file, here).
ignore_startup_parameters = extra_float_digits
pidfile = {folder / "pgbouncer.pid"}
log_connections = 0
log_disconnections = 0
"""


class PgBouncer(Daemon):
    """PgBouncer on a free port of 127.0.0.1 in `folder`, pooling the `lsmigrate` database of `postgres_port`."""

    name = "PgBouncer"

    def __init__(self, folder: Path, postgres_port: int, pool_size: int, max_client_conn: int = 100) -> None:
        self.folder = folder
        self.postgres_port = postgres_port
        self.pool_size = pool_size
        self.max_client_conn = max_client_conn
        self.port = free_port()
        super().__init__()

    @property
    def url(self) -> str:
        """The pooled database's URL (a DATABASE_URL lsmigrate takes, and a psycopg conninfo)."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def start(self) -> None:
        """Write the configuration and start PgBouncer in the foreground of its own process."""
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "userlist.txt").write_text(f'"{USER}" ""\n')
        ini = pgbouncer_ini(self.folder, self.port, self.postgres_port, self.pool_size, self.max_client_conn)
        (self.folder / "pgbouncer.ini").write_text(ini)
        command = ["pgbouncer", str(self.folder / "pgbouncer.ini")]
        if os.geteuid() == 0:
            shutil.chown(self.folder, USER, USER)
            for path in self.folder.iterdir():
                shutil.chown(path, USER, USER)
            command[1:1] = ["-u", USER]
        self.launch(command, self.port, self.folder / "pgbouncer.log")

    def log_tail(self, size: int = 2000) -> str:
        """The end of PgBouncer's log, for an error message."""
        return (self.folder / "pgbouncer.log").read_text(errors="replace")[-size:]
