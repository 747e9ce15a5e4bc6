"""What the page loads from this server: the loader, Pyodide, and the wheels (built by `wheels`).

Pyodide comes from the pinned npm package under a versioned path so it can
be cached for good; `.wasm` goes out as application/wasm so the browser can
compile it while it streams.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from flask import Response, current_app, send_from_directory
from flask import url_for as flask_url_for

from lsmigrate.server.blueprint import ApiBlueprint
from lsmigrate.server.errors import NotFound
from lsmigrate.server.extension import current_lsmigrate, settings
from lsmigrate.server.runtime.wheels import Wheel, browser_wheels, stores_wheel
from lsmigrate.shared.catalog import module_reference
from lsmigrate.shared.protocol import OUTCOMES

bp = ApiBlueprint("runtime", __name__, url_prefix="/lsmigrate")
_PAGE = "lsmigrate_page"

STATIC_DIR = Path(__file__).resolve().parents[2] / "browser" / "static"
_MIMETYPES = {".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript"}
_YEAR = 365 * 24 * 3600


@cache
def _pyodide_version(pyodide_dir: str) -> str:
    package = json.loads((Path(pyodide_dir) / "package.json").read_text())
    return str(package["version"])


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
    version = _pyodide_version(settings()["PYODIDE_DIR"])
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
    response = Response(body, mimetype="text/javascript")
    response.headers["Cache-Control"] = "no-cache"
    return response


#: The files of the Pyodide npm package the page's runtime loads; nothing else of the package is served (its
#: console.html, a REPL that would load jQuery from a CDN into the app's origin, least of all).
PYODIDE_FILES = frozenset(
    {"pyodide.mjs", "pyodide.js", "pyodide.asm.mjs", "pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip",
     "pyodide-lock.json"}
)  # fmt: skip


@bp.get("/pyodide/<version>/<path:filename>")
def pyodide_file(version: str, filename: str) -> Response:
    """A file of the pinned Pyodide runtime."""
    pyodide_dir = settings()["PYODIDE_DIR"]
    if version != _pyodide_version(pyodide_dir):
        raise NotFound(f"Pyodide {version} is not served here.")
    if filename not in PYODIDE_FILES:
        raise NotFound(f"{filename} is not a file of the runtime lsmigrate serves.")
    mimetype = _MIMETYPES.get(Path(filename).suffix)
    return send_from_directory(pyodide_dir, filename, mimetype=mimetype, max_age=_YEAR)


@bp.get("/wheels/<content_hash>/<filename>")
def wheel_file(content_hash: str, filename: str) -> Response:
    """A wheel the page installs into Pyodide."""
    wheel = _wheels().get(filename)
    if wheel is None or wheel.content_hash != content_hash:
        raise NotFound(f"No wheel {filename} with hash {content_hash}.")
    response = Response(wheel.content, mimetype="application/zip")
    response.headers["Cache-Control"] = f"public, max-age={_YEAR}, immutable"
    return response


@bp.get("/static/<path:filename>")
def static_file(filename: str) -> Response:
    """The panel's and the demo's scripts and styles."""
    return send_from_directory(STATIC_DIR, filename, mimetype=_MIMETYPES.get(Path(filename).suffix))
