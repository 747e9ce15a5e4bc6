"""The operator page under /lsmigrate/operator: read-only, behind the operator's own credential (`auth`).

    GET /lsmigrate/operator                  the page: an HTML shell holding no data (anyone may load it)
    GET /lsmigrate/operator/stats            the figures of `lsmigrate stats` (`stats.collect_stats`)
    GET /lsmigrate/operator/sessions         ?limit=1..500 (50) &user=USER_ID: the newest sessions
    GET /lsmigrate/operator/sessions/<sid>   a session's audit trail (`audit.session_audit`)

Every JSON route asks for an operator token (401 `operator_token_required` for none or a user's). The page's
script (browser/static/operator.js, served by the runtime's static route) keeps the token the operator pastes
in sessionStorage, never localStorage, and sends it as a bearer header; the shell's Content-Security-Policy
allows that script and style from this origin, and nothing inline.
"""

from __future__ import annotations

from flask import Response, request, url_for
from flask.typing import ResponseReturnValue
from markupsafe import escape
from marshmallow import Schema, ValidationError, fields, validate

from lsmigrate.server.blueprint import ApiBlueprint
from lsmigrate.server.errors import NotFound, Unprocessable
from lsmigrate.server.operator.audit import recent_sessions, session_audit
from lsmigrate.server.operator.auth import require_operator
from lsmigrate.server.operator.stats import collect_stats
from lsmigrate.server.sessions import session_by_id
from lsmigrate.shared.protocol import MAX_USER_ID

bp = ApiBlueprint("operator", __name__, url_prefix="/lsmigrate/operator")

#: The shell's policy: its own script and style, JSON from this origin, nothing inline, never framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_SHELL = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>lsmigrate operator</title>
<link rel="stylesheet" href="{css}">
<script src="{js}" defer></script>
</head>
<body data-api="{api}">
<header><h1>lsmigrate operator</h1><p id="status" role="status">Not signed in.</p></header>
<main>
<section class="card" id="signin">
<h2>Operator token</h2>
<form id="token-form">
<label for="token">Token from <code>flask lsmigrate operator-token NAME</code> (kept in this tab only)</label>
<div class="row"><input id="token" type="password" autocomplete="off" spellcheck="false" required>
<button type="submit">Use</button><button type="button" id="forget">Forget</button></div>
</form>
</section>
<section class="card"><h2>Live</h2>
<canvas id="chart" width="900" height="220" aria-label="records written per interval and sessions by state"></canvas>
<p class="muted" id="legend"></p></section>
<section class="card"><h2>Figures</h2><div id="figures" class="grid"></div></section>
<section class="card"><h2>Sessions</h2>
<form id="filter" class="row"><label for="user">User</label><input id="user" maxlength="255">
<button type="submit">Filter</button></form>
<div id="sessions"></div></section>
<section class="card"><h2>Audit trail</h2><div id="trail" class="muted">Pick a session.</div></section>
</main>
</body>
</html>
"""


class SessionsQuery(Schema):
    """The query string of GET /lsmigrate/operator/sessions."""

    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    user = fields.String(load_default=None, validate=validate.Length(min=1, max=MAX_USER_ID))


_SESSIONS_QUERY = SessionsQuery()


@bp.get("")
def show_page() -> Response:
    """The operator page: a shell whose script asks for the token and fetches everything else."""
    page = _SHELL.format(
        css=escape(url_for("lsmigrate.runtime.static_file", filename="operator.css")),
        js=escape(url_for("lsmigrate.runtime.static_file", filename="operator.js")),
        api=escape(url_for("lsmigrate.operator.show_page")),
    )
    response = Response(page, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/stats")
def show_stats() -> ResponseReturnValue:
    """The operator's figures: sessions by state, records by outcome, top reasons, open conflicts, slowest."""
    require_operator()
    return collect_stats()


@bp.get("/sessions")
def list_sessions() -> ResponseReturnValue:
    """The newest sessions, of one user when ?user= says so, each with its records by outcome."""
    require_operator()
    try:
        query = _SESSIONS_QUERY.load(request.args)
    except ValidationError as error:
        raise Unprocessable("The query string is not one this route reads.", details=error.messages) from error
    return {"sessions": recent_sessions(query["limit"], query["user"])}


@bp.get("/sessions/<sid>")
def show_trail(sid: str) -> ResponseReturnValue:
    """One session's audit trail."""
    require_operator()
    session = session_by_id(sid)
    if session is None:
        raise NotFound(f"No migration session {sid!r}.", code="unknown_session")
    return session_audit(session)
