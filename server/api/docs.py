"""GET /api/openapi.json: the API's OpenAPI document, open to all (it holds no user data)."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from lsmigrate.server.openapi import openapi_document

bp = Blueprint("docs", __name__, url_prefix="/api")


@bp.get("/openapi.json")
def show_openapi() -> ResponseReturnValue:
    """The OpenAPI 3 document generated from the protocol's marshmallow schemas."""
    return openapi_document()
