"""What the page loads from this server: the loader, Pyodide, and the wheels (built by `wheels`).

Pyodide comes from the pinned npm package under a versioned path so it can
be cached for good, as brotli or gzip copies built at install time
(`precompressed`) when the request accepts them (`negotiation`); `.wasm` goes
out as application/wasm, whatever its coding, so the browser can compile it
while it streams. The loader and the static scripts are gzip-compressed on
the fly, once per distinct body.
"""

from __future__ import annotations

import json
import mimetypes
from functools import lru_cache
from pathlib import Path
from typing import Any

from flask import Response, current_app
from flask import url_for as flask_url_for
from werkzeug.security import safe_join

from lsmigrate.server.blueprint import ApiBlueprint
from lsmigrate.server.errors import NotFound
from lsmigrate.server.extension import current_lsmigrate, settings
from lsmigrate.server.runtime.negotiation import YEAR, encoded_response, send_copy
from lsmigrate.server.runtime.precompressed import PYODIDE_FILES, copies, lock_info, pyodide_version
from lsmigrate.server.runtime.wheels import Wheel, browser_wheels, stores_wheel
from lsmigrate.shared.catalog import module_reference
from lsmigrate.shared.protocol import OUTCOMES

bp = ApiBlueprint("runtime", __name__, url_prefix="/lsmigrate")
_PAGE = "lsmigrate_page"

STATIC_DIR = Path(__file__).resolve().parents[2] / "browser" / "static"
_MIMETYPES = {".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript"}


def _page() -> tuple[dict[str, Wheel], dict[str, str]]:
    """The wheels the page installs (lsmigrate's, and the stores module's) and how it finds the stores."""
    built: tuple[dict[str, Wheel], dict[str, str]] | None = current_app.extensions.get(_PAGE)
    if built is None:
        descriptor = current_lsmigrate().page_stores
        wheels = browser_wheels()
        reference = module_reference(descriptor.get("module"))
        if reference is not None:
            wheels.append(stores_wheel(reference[0]))
        built = {wheel.filename: wheel for wheel in wheels}, descriptor
        current_app.extensions[_PAGE] = built
    return built


def _wheels() -> dict[str, Wheel]:
    return _page()[0]


def loader_config() -> dict[str, Any]:
    """What the loader needs to know before it downloads anything."""
    version = pyodide_version(settings()["PYODIDE_DIR"])
    # A page on another origin (CORS_ORIGINS) must be given this server's URLs in full.
    external = bool(settings()["CORS_ORIGINS"])

    def url_for(endpoint: str, **values: Any) -> str:
        return flask_url_for(endpoint, _external=external, **values)

    return {
        **current_lsmigrate().catalog.key_rules(),
        "stores": _page()[1],
        "outcomes": list(OUTCOMES),
        "api": url_for("lsmigrate.migration.show_config").removesuffix("/config"),
        "pyodide": url_for("lsmigrate.runtime.pyodide_file", version=version, filename=""),
        "lock_info": lock_info(settings()["PYODIDE_DIR"]),
        "wheels": [
            url_for("lsmigrate.runtime.wheel_file", content_hash=wheel.content_hash, filename=wheel.filename)
            for wheel in _wheels().values()
        ],
        "module": "lsmigrate.browser.page",
        "static": url_for("lsmigrate.runtime.static_file", filename=""),
    }


@bp.get("/loader.js")
def loader_script() -> Response:
    """The loader, with the store keys and runtime URLs filled in."""
    source = (STATIC_DIR / "loader.js").read_text()
    body = source.replace("__LSMIGRATE_CONFIG__", json.dumps(loader_config()))
    return encoded_response(body.encode("utf-8"), "text/javascript", "no-cache")


@bp.get("/pyodide/<version>/<path:filename>")
def pyodide_file(version: str, filename: str) -> Response:
    """A file of the pinned Pyodide runtime (one of `PYODIDE_FILES`), in the coding the request accepts best."""
    pyodide_dir = settings()["PYODIDE_DIR"]
    if version != pyodide_version(pyodide_dir):
        raise NotFound(f"Pyodide {version} is not served here.")
    if filename not in PYODIDE_FILES:
        raise NotFound(f"{filename} is not a file of the runtime lsmigrate serves.")
    try:
        found = copies(pyodide_dir, settings()["PYODIDE_PRECOMPRESSED_DIR"], filename)
    except FileNotFoundError as error:  # allowed, but not in this version of the package
        raise NotFound(f"{filename} is not in Pyodide {version}.") from error
    return send_copy(found, filename, _MIMETYPES.get(Path(filename).suffix))


@bp.get("/wheels/<content_hash>/<filename>")
def wheel_file(content_hash: str, filename: str) -> Response:
    """A wheel the page installs into Pyodide."""
    wheel = _wheels().get(filename)
    if wheel is None or wheel.content_hash != content_hash:
        raise NotFound(f"No wheel {filename} with hash {content_hash}.")
    return encoded_response(wheel.content, "application/zip", f"public, max-age={YEAR}, immutable")


@lru_cache(maxsize=64)
def _static_bytes(path: str, size: int, mtime_ns: int) -> bytes:
    """A static file's bytes as they were at this size and mtime (read again when it changes)."""
    return Path(path).read_bytes()


@bp.get("/static/<path:filename>")
def static_file(filename: str) -> Response:
    """The panel's, the worker's and the demo's scripts and styles, gzip-compressed when accepted."""
    path = safe_join(str(STATIC_DIR), filename)
    if path is None or not Path(path).is_file():
        raise NotFound(f"No static file {filename}.")
    stat = Path(path).stat()
    mimetype = _MIMETYPES.get(Path(filename).suffix) or mimetypes.guess_type(filename)[0] or "application/octet-stream"
    return encoded_response(_static_bytes(path, stat.st_size, stat.st_mtime_ns), mimetype, "no-cache")
