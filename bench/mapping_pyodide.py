"""Pyodide figures: the mapping benchmark inside Pyodide in Chromium.

    .venv/bin/python -m bench.mapping_pyodide [--records N] [--rounds R] [--seed S]

The Flask app itself serves Pyodide and the wheels (on SQLite in a temporary
instance folder, with werkzeug's server in a thread on a free port); Chromium
boots Pyodide from the loader's URLs, imports bench/mapping_core.py and
measures there. The server and the browser are stopped on the way out.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import ConsoleMessage, Page, sync_playwright
from werkzeug.serving import make_server

from bench.mapping import arguments, task_texts
from bench.mapping_core import report
from lsmigrate.server import create_app
from lsmigrate.server.runtime import loader_config
from tests.fixtures_services import CHROMIUM, CHROMIUM_ARGS

CORE_SOURCE = Path(__file__).resolve().parent / "mapping_core.py"
# Boots Pyodide exactly as browser/static/loader.js does, from the URLs the loader is given.
BOOT = """async ({ pyodide, wheels }) => {
  const { loadPyodide } = await import(pyodide + "pyodide.mjs");
  window.benchPyodide = await loadPyodide({ indexURL: pyodide });
  await window.benchPyodide.loadPackage(wheels);
}"""
MEASURE = """([source, textsJson, rounds]) => {
  const pyodide = window.benchPyodide;
  pyodide.FS.writeFile("/home/pyodide/mapping_core.py", source);
  const core = pyodide.pyimport("mapping_core");
  try {
    return core.measure_json(textsJson, rounds);
  } finally {
    core.destroy();
  }
}"""


@contextmanager
def served_app() -> Iterator[tuple[str, dict[str, Any]]]:
    """The Flask app on SQLite in a temporary instance folder: its base URL and the loader's config."""
    with tempfile.TemporaryDirectory(prefix="lsmigrate-bench-") as instance:
        previous = os.environ.get("LSMIGRATE_INSTANCE_PATH")
        os.environ["LSMIGRATE_INSTANCE_PATH"] = instance
        try:
            app = create_app(
                {
                    "SQLALCHEMY_DATABASE_URI": f"sqlite:///{Path(instance) / 'bench.sqlite'}",
                    "REDIS_URL": None,
                    "SECRET_KEY": "bench-secret-key",
                    "DEMO": True,
                }
            )
        finally:
            if previous is None:
                del os.environ["LSMIGRATE_INSTANCE_PATH"]
            else:
                os.environ["LSMIGRATE_INSTANCE_PATH"] = previous
        with app.test_request_context():
            config = loader_config()
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, name="bench-server", daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}", config
        finally:
            server.shutdown()
            thread.join()
            server.server_close()


def _print_errors(message: ConsoleMessage) -> None:
    # Errors only: a Python traceback in the page shows up, Pyodide's loading chatter does not.
    if message.type == "error":
        print(f"[browser] {message.text}")


@contextmanager
def pyodide_page(base_url: str, config: dict[str, Any]) -> Iterator[Page]:
    """A Chromium page on the app's origin with Pyodide booted and the wheels installed."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", _print_errors)
            page.on("pageerror", lambda error: print(f"[browser pageerror] {error}"))
            page.route("**/favicon.ico", lambda route: route.fulfill(status=204))
            page.goto(f"{base_url}/lsmigrate/static/demo.css")
            page.evaluate(BOOT, {"pyodide": config["pyodide"], "wheels": config["wheels"]})
            yield page
        finally:
            browser.close()


def main() -> None:
    """Print the Pyodide figures."""
    options = arguments(__doc__)
    texts_json = json.dumps(task_texts(options.records, options.seed))
    with served_app() as (base_url, config), pyodide_page(base_url, config) as page:
        figures = json.loads(page.evaluate(MEASURE, [CORE_SOURCE.read_text(), texts_json, options.rounds]))
    print(report(figures))


if __name__ == "__main__":
    main()
