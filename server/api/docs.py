"""GET /api/openapi.json: the API's OpenAPI document, open to all (it holds no user data)."""

from __future__ import annotations

from flask import current_app
from flask.typing import ResponseReturnValue

from lsmigrate.server.api.openapi import openapi_document
from lsmigrate.server.blueprint import ApiBlueprint
from lsmigrate.server.extension import current_lsmigrate

bp = ApiBlueprint("docs", __name__, url_prefix="/api")


@bp.get("/openapi.json")
def show_openapi() -> ResponseReturnValue:
    """The OpenAPI 3 document generated from the protocol's marshmallow schemas."""
    routes = frozenset(rule.rule for rule in current_app.url_map.iter_rules())
    return openapi_document(current_lsmigrate().url_prefix, routes)
