"""One server process of the deployment (nginx, PgBouncer): started in its own session with its output in a log
file, ready once its port accepts, stopped by its own pid."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import IO, Any

from tests.fixtures_services import wait_for_port


class Daemon:
    """A server in the foreground of a process of its own; `name` is what errors call it."""

    name = "server"

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self._output: IO[Any] | None = None

    def launch(self, command: list[str], port: int, output: Path) -> None:
        """Start `command` (its stderr into `output`) and return once `port` accepts; RuntimeError with the end of
        its log when it does not within 15 s. Its own session: a Ctrl-C at the terminal reaches whoever started
        it, who stops it in order."""
        self._output = open(output, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self._output, start_new_session=True)
        try:
            wait_for_port(port, timeout=15)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"{self.name} did not start: {self.log_tail()}") from None

    def log_tail(self, size: int = 2000) -> str:
        """The end of its log, for an error message."""
        raise NotImplementedError

    def stop(self) -> None:
        """SIGTERM to its pid (fast shutdown for both), then wait; SIGKILL to its process group after 10 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self._output is not None:
            self._output.close()
            self._output = None
