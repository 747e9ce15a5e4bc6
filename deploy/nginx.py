"""nginx (the Debian package) in front of lsmigrate's gunicorn instances: the generated nginx.conf and its process.

What each setting is for is said beside it in `nginx_conf`; docs/deployment.md explains the choices.
Everything nginx writes (pid file, logs, request-body and response buffers) is in its folder, and it
runs in the foreground (`daemon off`), so the process we start is nginx's master, stopped by its own pid.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from deploy.daemon import Daemon

#: A request sent to an instance may be sent to another only within this many seconds of its first try:
#: an instance that refused the connection, died mid-request or answered 502/503 is left at once, and
#: a request that had been running for longer (a batch that took a while, then the instance died) gets
#: the 502 back and the client's own retry, rather than a second full run stacked behind the first.
NEXT_UPSTREAM_SECONDS = 10
#: An instance that failed this many times in FAIL_SECONDS gets no request for FAIL_SECONDS. Under
#: /api/migration/ a 503 is not a failure (no http_503 there): an instance shedding load answers at once, and
#: its Retry-After goes back to the page, whose backoff spreads the herd; benching every busy instance would
#: turn a busy cluster into 502s. Short, because a crashed instance refuses connections at once (a probe costs
#: nothing on a LAN) and a restarted one should get its share back within seconds.
MAX_FAILS = 3
FAIL_SECONDS = 3


def _envelope(code: str, message: str) -> str:
    """lsmigrate's error envelope (lsmigrate.server.errors) as one line of JSON, for nginx's own answers."""
    return json.dumps({"error": {"code": code, "message": message, "details": None}}, separators=(",", ":"))


def nginx_conf(folder: Path, port: int, upstreams: Sequence[int], max_body: int, read_timeout: int) -> str:
    """nginx.conf of a proxy on 127.0.0.1:`port` to the gunicorn instances on 127.0.0.1:`upstreams`.

    `max_body` is lsmigrate's MAX_CONTENT_LENGTH (the proxy refuses no body lsmigrate takes, and reads none
    lsmigrate would refuse); `read_timeout` is above gunicorn's worker timeout.
    """
    servers = "\n".join(
        f"        server 127.0.0.1:{upstream} max_fails={MAX_FAILS} fail_timeout={FAIL_SECONDS}s;"
        for upstream in upstreams
    )
    # The master runs as whoever started it (root here, for a throwaway deployment on loopback in a
    # root-only temporary folder); a production nginx keeps its unprivileged worker user.
    user = "user root root;" if os.geteuid() == 0 else ""
    return f"""\
{user}
daemon off;
worker_processes 1;
pid {folder / "nginx.pid"};
error_log {folder / "error.log"} warn;
# Two descriptors per proxied request (the client's and the instance's).
worker_rlimit_nofile 16384;

events {{
    worker_connections 8192;
}}

http {{
    log_format timed '$remote_addr [$time_iso8601] "$request" $status $body_bytes_sent $request_id '
                     'upstream=$upstream_addr/$upstream_status rt=$request_time urt=$upstream_response_time';
    access_log {folder / "access.log"} timed;
    client_body_temp_path {folder / "client_body"};
    proxy_temp_path {folder / "proxy"};
    fastcgi_temp_path {folder / "fastcgi"};
    uwsgi_temp_path {folder / "uwsgi"};
    scgi_temp_path {folder / "scgi"};
    server_tokens off;
    default_type application/octet-stream;

    # lsmigrate compresses its own answers (its JSON from 1 KB, the Pyodide runtime from precompressed gzip
    # and brotli copies): the proxy passes them through as they are.
    gzip off;

    # Equal to lsmigrate's MAX_CONTENT_LENGTH: nginx answers 413 for exactly the bodies lsmigrate would.
    client_max_body_size {max_body};
    # A batch body (typically tens to hundreds of KB) stays in memory; a larger one goes to a file.
    client_body_buffer_size 1m;

    upstream lsmigrate {{
{servers}
        # No keepalive to the instances: gunicorn's sync workers close the connection after each answer.
    }}

    server {{
        listen 127.0.0.1:{port};

        # Buffered both ways, because the workers are sync (one request at a time each): nginx reads a whole
        # request before it takes a worker and takes a whole answer off it at once, so a slow or idle client
        # (a phone on a bad network, a browser's preconnected socket) ties up an nginx connection, not a
        # worker. The buffered body is also what lets nginx send the request to another instance.
        proxy_request_buffering on;
        proxy_buffering on;
        proxy_buffer_size 16k;
        proxy_buffers 64 16k;
        proxy_busy_buffers_size 64k;

        # Loopback: an instance that does not accept within 2 s is gone. A worker is killed by gunicorn
        # after --timeout seconds; nginx waits longer, so a stuck request ends as gunicorn's (logged) kill
        # and a 502 the client retries, never as nginx walking away from a worker that keeps running.
        proxy_connect_timeout 2s;
        proxy_send_timeout {read_timeout}s;
        proxy_read_timeout {read_timeout}s;

        proxy_set_header Host $http_host;
        proxy_set_header X-Request-Id $request_id;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        # When nginx received the request (seconds, ms resolution): the app can tell queueing from work.
        proxy_set_header X-Request-Start "t=${{msec}}";
        add_header X-Request-Id $request_id always;

        proxy_next_upstream_timeout {NEXT_UPSTREAM_SECONDS}s;

        # lsmigrate's protocol: every request in it may be sent twice. A PUT of a batch or a remainder is
        # replayed from what was stored, POST /sessions finds the session of its client_session_id again,
        # POST /complete verifies again (it writes nothing a second run would change), and resolving a
        # conflict or rolling back again answers the same; the page itself sends each of them again after
        # a network error or a 5xx. So a request that was sent to an instance which then died (error), did
        # not answer in time (timeout) or answered 502 goes to the next instance, POSTs included
        # (non_idempotent). A 503 (load shed, or the database unreachable) goes back to the page with its
        # Retry-After: sending it on would only move the queue, and would bench the instance (MAX_FAILS).
        location /api/migration/ {{
            proxy_pass http://lsmigrate;
            proxy_next_upstream error timeout http_502 non_idempotent;
        }}

        # nginx's own refusals in lsmigrate's error envelope, so a page reads them as it reads lsmigrate's (an
        # instance's own answers pass as they are): a body over the limit, and no instance answering at all.
        error_page 413 @request_too_large;
        error_page 502 @no_instance;
        location @request_too_large {{
            default_type application/json;
            return 413 '{_envelope("request_too_large", "The request body is larger than the server accepts.")}';
        }}
        location @no_instance {{
            default_type application/json;
            add_header X-Request-Id $request_id always;
            add_header Retry-After 1 always;
            return 502 '{_envelope("bad_gateway", "No lsmigrate instance answered; send the request again shortly.")}';
        }}

        # Everything else (the demo, the runtime's files, /healthz, operator views): GET, HEAD, PUT and
        # DELETE may go to the next instance, a POST (not known to be replay-safe) never once it was sent.
        location / {{
            proxy_pass http://lsmigrate;
            proxy_next_upstream error timeout http_502 http_503;
        }}
    }}
}}
"""


class Nginx(Daemon):
    """nginx on 127.0.0.1:`port` in `folder`, proxying to the instances' ports."""

    name = "nginx"

    def __init__(self, folder: Path, port: int, upstreams: Sequence[int], max_body: int, read_timeout: int) -> None:
        self.folder = folder
        self.port = port
        self.upstreams = list(upstreams)
        self.max_body = max_body
        self.read_timeout = read_timeout
        super().__init__()

    @property
    def url(self) -> str:
        """nginx's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        # -e: the error log before the configuration is read (else nginx opens /var/log/nginx/error.log).
        conf = self.folder / "nginx.conf"
        return ["nginx", "-p", str(self.folder), "-e", str(self.folder / "error.log"), "-c", str(conf)]

    def write_config(self) -> str:
        """Write nginx.conf and have nginx check it (`nginx -t`); its text. RuntimeError when nginx refuses it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        text = nginx_conf(self.folder, self.port, self.upstreams, self.max_body, self.read_timeout)
        (self.folder / "nginx.conf").write_text(text)
        checked = subprocess.run([*self._command(), "-t", "-q"], capture_output=True, text=True)
        if checked.returncode != 0:
            raise RuntimeError(f"nginx refused its configuration: {checked.stderr}")
        return text

    def start(self) -> None:
        """Write and check nginx.conf, and start nginx in the foreground of its own process."""
        self.write_config()
        self.launch(self._command(), self.port, self.folder / "stderr.log")

    def log_tail(self, size: int = 2000) -> str:
        """The end of nginx's error log, for an error message."""
        path = self.folder / "error.log"
        return path.read_text(errors="replace")[-size:] if path.exists() else ""
