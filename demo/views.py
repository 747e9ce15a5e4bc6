"""Demo mode (LSMIGRATE_DEMO=1): a small task app that migrates on page load; `enable_demo` turns it on."""

from __future__ import annotations

import re

from flask import Blueprint, Flask, make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from lsmigrate.server.api.auth import DEMO_AUDIENCE, issue_token
from lsmigrate.server.errors import BadRequest

bp = Blueprint("demo", __name__, template_folder="templates")

_USER_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
#: No inline script or style anywhere; Pyodide needs to compile WebAssembly and nothing more.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; worker-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


@bp.get("/")
def index() -> ResponseReturnValue:
    """Send a visitor to alice's demo page."""
    return redirect(url_for("lsmigrate_demo.demo.show_demo", user="alice"))


@bp.get("/demo")
def show_demo() -> ResponseReturnValue:
    """The demo app for ?user=USER_ID, with the loader in automatic mode (?mode=manual: from the button).

    ?batch=N sets the records per batch (default 1000, the server's largest).
    """
    user_id = request.args.get("user", "alice")
    if not _USER_ID.match(user_id):
        raise BadRequest("user must be 1-64 letters, digits or _.@-", code="invalid_user")
    mode = "manual" if request.args.get("mode") == "manual" else "auto"
    batch = request.args.get("batch", "1000")
    if not batch.isdigit() or not 1 <= int(batch) <= 1000:
        raise BadRequest("batch must be a number of records from 1 to 1000", code="invalid_batch")
    page = make_response(
        render_template(
            "demo.html", user_id=user_id, token=issue_token(user_id, DEMO_AUDIENCE), mode=mode, batch=int(batch)
        )
    )
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page


def enable_demo(app: Flask) -> None:
    """The demo preset on the standalone service: its page, its read API (rate-limited and in lsmigrate's
    envelope like lsmigrate's own routes) and its cache of each user's records."""
    from lsmigrate.demo import records
    from lsmigrate.server.blueprint import ApiBlueprint, guard

    parent = ApiBlueprint("lsmigrate_demo", __name__)
    guard(parent)
    parent.register_blueprint(bp)
    parent.register_blueprint(records.bp)
    app.register_blueprint(parent)
    records.subscribe(app)
