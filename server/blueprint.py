"""The one blueprint lsmigrate adds to an app, `lsmigrate`, and the rules that hold on its routes only.

    lsmigrate              error envelope, request-size limit, JSON answers
     ├── lsmigrate.health     GET /healthz
     ├── lsmigrate.docs       GET /api/openapi.json
     ├── lsmigrate.migration  /api/migration/... (the protocol)
     └── lsmigrate.runtime    /lsmigrate/... (loader, Pyodide, wheels, static files)

Other origins are let in only as CORS_ORIGINS says (a preflight is answered before authentication).
A view of these blueprints may return a dict (or `(dict, status)`): `ApiBlueprint` writes it with
lsmigrate's own encoder, so a host app's JSON provider is neither used nor changed. Rate limits are
applied to these routes by `limits` (never to the host's).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, request
from flask.typing import RouteCallable

from lsmigrate.server.errors import register_error_handlers
from lsmigrate.server.jsontext import json_response

NAME = "lsmigrate"


def _answer(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def answered(*args: Any, **kwargs: Any) -> Any:
        value = view(*args, **kwargs)
        if isinstance(value, dict | list):
            return json_response(value)
        if isinstance(value, tuple) and value and isinstance(value[0], dict | list):
            return json_response(value[0], *value[1:])
        return value

    return answered


class ApiBlueprint(Blueprint):
    """A blueprint whose views' dicts become JSON answers written by lsmigrate."""

    def add_url_rule(
        self,
        rule: str,
        endpoint: str | None = None,
        view_func: RouteCallable | None = None,
        provide_automatic_options: bool | None = None,
        **options: Any,
    ) -> None:
        """Flask's `add_url_rule`, the view wrapped so its dict is written by lsmigrate's encoder."""
        view = None if view_func is None else _answer(view_func)
        super().add_url_rule(rule, endpoint, view, provide_automatic_options, **options)


def _limit_body() -> None:
    """The body limit of lsmigrate's routes (MAX_CONTENT_LENGTH), whatever the host's own is."""
    from lsmigrate.server.extension import settings

    request.max_content_length = settings()["MAX_CONTENT_LENGTH"]


def guard(parent: Blueprint) -> None:
    """lsmigrate's rules on `parent`'s routes: CORS, the body limit, the error envelope, the 429 answer."""
    from flask_limiter import RateLimitExceeded

    from lsmigrate.server.api.limits import too_many_requests

    parent.before_request(_preflight)
    parent.before_request(_limit_body)
    from lsmigrate.server.runtime.negotiation import compress_answer

    parent.after_request(compress_answer)
    parent.after_request(_cors)
    parent.after_request(_security_headers)
    register_error_handlers(parent)
    parent.register_error_handler(RateLimitExceeded, too_many_requests)


def build() -> Blueprint:
    """A new `lsmigrate` blueprint holding every route lsmigrate serves (one per app: its prefix is the app's)."""
    from lsmigrate.server import runtime
    from lsmigrate.server.api import docs, health, migration
    from lsmigrate.server.observability import views as observability
    from lsmigrate.server.operator import views as operator

    parent = Blueprint(NAME, __name__)
    guard(parent)
    for child in (health.bp, docs.bp, migration.bp, runtime.bp, observability.bp, operator.bp):
        parent.register_blueprint(child)
    return parent


_CORS_METHODS = "GET, POST, PUT"
_CORS_HEADERS = "Authorization, Content-Type, Content-Encoding"


def _security_headers(response: Response) -> Response:
    """On every lsmigrate response: no content sniffing, no referrer, no framing; the API's answers (a user's
    records, tokens in requests) never stored by a cache."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if response.mimetype == "application/json" and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    return response


def _allowed_origin() -> str | None:
    """The request's Origin when CORS_ORIGINS lets it call lsmigrate ("*" for any), else None."""
    from lsmigrate.server.extension import settings

    origin = request.headers.get("Origin")
    allowed: tuple[str, ...] = settings()["CORS_ORIGINS"]
    if origin is None or not allowed:
        return None
    if allowed == ("*",):
        return "*"
    return origin if origin.lower() in allowed else None


def _preflight() -> Response | None:
    """A CORS preflight (OPTIONS with Access-Control-Request-Method), answered before authentication."""
    if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
        return None
    response = Response(status=204)
    if _allowed_origin() is not None:
        response.headers["Access-Control-Allow-Methods"] = _CORS_METHODS
        response.headers["Access-Control-Allow-Headers"] = _CORS_HEADERS
        response.headers["Access-Control-Max-Age"] = "600"
    return response


def _cors(response: Response) -> Response:
    """CORS headers on an answer to an allowed origin; credentials only for an origin named, never for "*"."""
    origin = _allowed_origin()
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = "Retry-After"
        if origin != "*":
            response.headers["Access-Control-Allow-Credentials"] = "true"
            response.vary.add("Origin")
    return response
